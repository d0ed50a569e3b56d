#include "latent/anomaly.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "latent/error.h"
#include "latent/eval.h"
#include "latent/image.h"
#include "latent/objective.h"

namespace latent {
namespace {

void check_labels(const std::vector<double>& scores, const std::vector<int>& labels) {
  if (scores.size() != labels.size())
    throw Error("there are " + std::to_string(scores.size()) + " scores but " + std::to_string(labels.size()) + " labels");
  for (int l : labels)
    if (l != 0 && l != 1) throw Error("anomaly labels must be 0 (normal) or 1 (anomalous), got " + std::to_string(l));
  for (double s : scores)
    if (!std::isfinite(s)) throw Error("a score is not finite");
}

// Examples in descending score order, and the end of each run of equal scores.
std::vector<size_t> descending(const std::vector<double>& scores) {
  std::vector<size_t> order(scores.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return scores[a] > scores[b]; });
  return order;
}

// Sum over each example of (x - decoded mean at z = mu)^2: [B], float64.
at::Tensor recon_error(VaeImpl& model, const at::Tensor& x, const at::Tensor& mu) {
  return (x - model.likelihood_mean(model.decode(mu))).square().flatten(1).sum(1).to(at::kDouble);
}

at::Tensor mahalanobis(const at::Tensor& mu, const EncodingStats& stats) {  // mu [B, d] float64 -> [B]
  at::Tensor c = mu - stats.mean;
  return (c.mm(stats.precision) * c).sum(1);
}

}  // namespace

const std::vector<std::string>& anomaly_score_names() {
  static const std::vector<std::string> names = {"neg_elbo",    "iwae_nll", "recon_error",        "prior_nll",
                                                 "mahalanobis", "combined", "complexity_adjusted"};
  return names;
}

EncodingStats encoding_stats(VaeImpl& model, const at::Tensor& x) {
  at::NoGradGuard no_grad;
  std::vector<at::Tensor> mus, recons;
  for (int64_t i = 0; i < x.size(0); i += 1000) {
    at::Tensor xb = x.narrow(0, i, std::min<int64_t>(1000, x.size(0) - i));
    mus.push_back(model.encode(xb).mu);
    recons.push_back(recon_error(model, xb, mus.back()));
  }
  at::Tensor mu = at::cat(mus).to(at::kDouble);  // [N, d]
  at::Tensor mean = mu.mean(0);
  at::Tensor c = mu - mean;
  at::Tensor cov = c.t().mm(c) / static_cast<double>(std::max<int64_t>(1, mu.size(0) - 1));
  cov += 1e-6 * at::eye(cov.size(0), cov.options());
  EncodingStats stats{mean, at::linalg_inv(cov)};
  // Robust location and scale of the two scores that `combined` adds, on these (normal) examples.
  auto robust = [](const at::Tensor& v, double& median, double& mad) {
    at::Tensor l = v.clamp_min(1e-300).log();
    median = l.median().item<double>();
    mad = std::max(1e-12, (l - median).abs().median().item<double>());
  };
  robust(at::cat(recons), stats.log_recon_median, stats.log_recon_mad);
  robust(mahalanobis(mu, stats), stats.log_maha_median, stats.log_maha_mad);
  return stats;
}

AnomalyScores anomaly_scores(VaeImpl& model, const at::Tensor& x, const EncodingStats& stats, const ScoreOptions& o) {
  at::NoGradGuard no_grad;
  const int64_t d = model.latent_dim();
  std::map<std::string, std::vector<at::Tensor>> parts;
  std::vector<at::Tensor> maps;
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(o.seed);
  // This rank's batches (all of them in one process). The ELBO's draws run on from batch to batch,
  // so the batches before ours are drawn and dropped: our batches see one process's noise.
  const int world = o.comm ? o.comm->world() : 1, rank = o.comm ? o.comm->rank() : 0;
  const std::vector<int64_t> counts = split_examples(x.size(0), o.batch, world);
  int64_t first = 0;
  for (int r = 0; r < rank; ++r) first += counts[r];
  for (int64_t i = 0; i < first; i += o.batch)
    for (int64_t s = 0; s < o.samples; ++s) (void)at::randn({std::min(o.batch, first - i), d}, gen, x.options());
  const int64_t n = first + counts[rank];
  for (int64_t i = first; i < n; i += o.batch) {
    at::Tensor xb = x.narrow(0, i, std::min(o.batch, n - i));
    const int64_t b = xb.size(0);
    at::Tensor neg_elbo = at::zeros({b}, at::kDouble);
    Posterior q;
    for (int64_t s = 0; s < o.samples; ++s) {
      ElboTerms t = elbo_terms(model, xb, at::randn({b, d}, gen, xb.options()));
      neg_elbo += (t.recon + t.kl).to(at::kDouble) / static_cast<double>(o.samples);
      q = t.q;
    }
    parts["neg_elbo"].push_back(neg_elbo);
    at::Tensor sq = (xb - model.likelihood_mean(model.decode(q.mu))).square();  // [B, D...]
    parts["recon_error"].push_back(sq.flatten(1).sum(1).to(at::kDouble));
    if (o.error_maps) maps.push_back(sq);
    at::Tensor mu = q.mu.to(at::kDouble);
    parts["prior_nll"].push_back(-log_standard_normal(mu));
    parts["mahalanobis"].push_back(mahalanobis(mu, stats));
    const auto& shape = model.data_shape();
    if (shape.size() == 3 && (shape[0] == 1 || shape[0] == 3)) {
      at::Tensor complexity = at::empty({b}, at::kDouble);
      for (int64_t r = 0; r < b; ++r)
        complexity[r] = static_cast<double>(png_encode(xb[r].clamp(0, 1)).size()) * 8 * std::log(2.0);
      parts["complexity_adjusted"].push_back(neg_elbo - complexity);
    }
  }
  AnomalyScores out;
  const bool has_complexity = model.data_shape().size() == 3 && (model.data_shape()[0] == 1 || model.data_shape()[0] == 3);
  for (const char* name : {"neg_elbo", "recon_error", "prior_nll", "mahalanobis", "complexity_adjusted"}) {
    if (std::string(name) == "complexity_adjusted" && !has_complexity) continue;
    at::Tensor mine = parts[name].empty() ? at::empty({0}, at::kDouble) : at::cat(parts[name]);
    out.scores[name] = o.comm ? o.comm->allgather_rows(mine, counts) : mine;
  }
  out.scores["combined"] = (out.scores["recon_error"].clamp_min(1e-300).log() - stats.log_recon_median) / stats.log_recon_mad +
                           (out.scores["mahalanobis"].clamp_min(1e-300).log() - stats.log_maha_median) / stats.log_maha_mad;
  if (o.iwae_k > 0) {  // split on the estimate's own batches
    const std::vector<int64_t> part = split_examples(x.size(0), iwae_images_per_batch(o.iwae_k, 1024), world);
    int64_t at = 0;
    for (int r = 0; r < rank; ++r) at += part[r];
    at::Tensor mine =
        -iwae_log_likelihood(model, x.narrow(0, at, part[rank]), o.iwae_k, o.seed, 1024, false, Precision::kFloat32, nullptr, at);
    out.scores["iwae_nll"] = o.comm ? o.comm->allgather_rows(mine, part) : mine;
  }
  if (o.error_maps) {
    at::Tensor mine = maps.empty() ? at::empty({0}, x.options()) : at::cat(maps);
    if (mine.size(0) == 0) mine = at::empty(x.narrow(0, 0, 0).sizes(), x.options());
    out.error_maps = o.comm ? o.comm->allgather_rows(mine, counts) : mine;
  }
  return out;
}

Curve roc_curve(const std::vector<double>& scores, const std::vector<int>& labels) {
  check_labels(scores, labels);
  const double P = static_cast<double>(std::count(labels.begin(), labels.end(), 1));
  const double N = static_cast<double>(labels.size()) - P;
  if (P == 0 || N == 0) throw Error("a ROC curve needs both normal and anomalous examples");
  Curve c;
  c.x.push_back(0);
  c.y.push_back(0);
  c.thresholds.push_back(INFINITY);
  const std::vector<size_t> order = descending(scores);
  double tp = 0, fp = 0;
  for (size_t i = 0; i < order.size(); ++i) {
    (labels[order[i]] ? tp : fp) += 1;
    if (i + 1 < order.size() && scores[order[i + 1]] == scores[order[i]]) continue;  // the whole tie at once
    c.x.push_back(fp / N);
    c.y.push_back(tp / P);
    c.thresholds.push_back(scores[order[i]]);
  }
  return c;
}

Curve pr_curve(const std::vector<double>& scores, const std::vector<int>& labels) {
  check_labels(scores, labels);
  const double P = static_cast<double>(std::count(labels.begin(), labels.end(), 1));
  if (P == 0) throw Error("a precision-recall curve needs anomalous examples");
  Curve c;
  const std::vector<size_t> order = descending(scores);
  double tp = 0, flagged = 0;
  for (size_t i = 0; i < order.size(); ++i) {
    tp += labels[order[i]];
    flagged += 1;
    if (i + 1 < order.size() && scores[order[i + 1]] == scores[order[i]]) continue;
    c.x.push_back(tp / P);
    c.y.push_back(tp / flagged);
    c.thresholds.push_back(scores[order[i]]);
  }
  return c;
}

double auroc(const std::vector<double>& scores, const std::vector<int>& labels) {
  const Curve c = roc_curve(scores, labels);
  double area = 0;  // trapezoids: a tie of normals and anomalies counts one half, as in Mann-Whitney
  for (size_t i = 1; i < c.x.size(); ++i) area += (c.x[i] - c.x[i - 1]) * (c.y[i] + c.y[i - 1]) / 2;
  return area;
}

double average_precision(const std::vector<double>& scores, const std::vector<int>& labels) {
  const Curve c = pr_curve(scores, labels);
  double ap = 0, previous_recall = 0;
  for (size_t i = 0; i < c.x.size(); ++i) {
    ap += (c.x[i] - previous_recall) * c.y[i];
    previous_recall = c.x[i];
  }
  return ap;
}

Confusion confusion_at(const std::vector<double>& scores, const std::vector<int>& labels, double threshold) {
  check_labels(scores, labels);
  Confusion c;
  for (size_t i = 0; i < scores.size(); ++i) {
    const bool flagged = scores[i] > threshold;
    if (labels[i])
      ++(flagged ? c.tp : c.fn);
    else
      ++(flagged ? c.fp : c.tn);
  }
  auto ratio = [](double a, double b) { return b > 0 ? a / b : 0.0; };
  c.precision = ratio(c.tp, c.tp + c.fp);
  c.recall = ratio(c.tp, c.tp + c.fn);
  c.f1 = ratio(2 * c.precision * c.recall, c.precision + c.recall);
  c.fpr = ratio(c.fp, c.fp + c.tn);
  return c;
}

double calibrate_threshold(std::vector<double> normal_scores, double fpr) {
  if (!(fpr > 0 && fpr < 1)) throw Error("--fpr must be in (0, 1), got " + std::to_string(fpr));
  if (normal_scores.empty()) throw Error("calibration needs normal examples");
  std::sort(normal_scores.begin(), normal_scores.end());
  const double n = static_cast<double>(normal_scores.size());
  const size_t k = static_cast<size_t>(std::max(1.0, std::ceil((1 - fpr) * n)));
  return normal_scores[std::min(k, normal_scores.size()) - 1];
}

double tail_probability(const std::vector<double>& sorted_normal, double s) {
  const auto at_least = sorted_normal.end() - std::lower_bound(sorted_normal.begin(), sorted_normal.end(), s);
  return (1.0 + static_cast<double>(at_least)) / (static_cast<double>(sorted_normal.size()) + 1.0);
}

}  // namespace latent
