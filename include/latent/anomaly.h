/// @brief Anomaly scores from a trained VAE, thresholds calibrated on normal data, and ROC / PR
/// evaluation against labels.
///
/// Scores, per example, higher meaning more anomalous (nats where they are log-densities):
///   neg_elbo     -ELBO = E_q[-log p(x | z)] + KL(q(z|x) || N(0, I)), the expectation from `samples` draws
///   iwae_nll     the importance-weighted estimate of -log p(x) with k samples (only when k > 0)
///   recon_error  sum over the example of (x - decoded mean at z = mu)^2
///   prior_nll    -log N(mu; 0, I): how far the encoding lies from the prior
///   mahalanobis  (mu - m)^T S^-1 (mu - m) under the mean m and covariance S of training encodings
///   combined     z(log recon_error) + z(log mahalanobis), each z-scored robustly (median, MAD) on
///                the training examples' values: the two best single scores on one-class
///                Fashion-MNIST, which fail on different classes (bench/RESULTS.md)
///   complexity_adjusted  images only: neg_elbo minus the input's complexity, the length in nats of
///                its 8-bit PNG encoding (Serra et al. 2020): simple inputs (a sandal against a
///                model of shirts) get high likelihood from any model; this removes that part
#pragma once

#include <ATen/Tensor.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "latent/distributed.h"
#include "latent/model.h"

namespace latent {

/// The names above, in that order (iwae_nll, combined and complexity_adjusted included).
const std::vector<std::string>& anomaly_score_names();

/// Mean [d] and inverse covariance [d, d] (float64; covariance + 1e-6 I) of the encoder means of x,
/// and the median and MAD of log recon_error and log mahalanobis over x (for `combined`).
struct EncodingStats {
  at::Tensor mean, precision;
  double log_recon_median = 0, log_recon_mad = 1, log_maha_median = 0, log_maha_mad = 1;
};
EncodingStats encoding_stats(VaeImpl& model, const at::Tensor& x);

struct ScoreOptions {
  int64_t samples = 1;  // draws of z for the ELBO's reconstruction term
  int64_t iwae_k = 0;   // 0: no iwae_nll
  int64_t batch = 500;
  uint64_t seed = 1;
  bool error_maps = false;  // also (x - x_hat)^2 per element
  /// A job of several ranks: the examples are split over them (whole batches each) and the scores
  /// gathered, the same as one process's, bit for bit. Every rank gets every score.
  Communicator* comm = nullptr;
};

struct AnomalyScores {
  std::map<std::string, at::Tensor> scores;  // name -> float64 [N]
  at::Tensor error_maps;                     // [N, D...] when asked for
};

/// Scores every example of x [N, D...] (model space).
AnomalyScores anomaly_scores(VaeImpl& model, const at::Tensor& x, const EncodingStats& stats, const ScoreOptions& options);

// ---- evaluation against labels (1 = anomalous, 0 = normal) ------------------------------------

struct Curve {
  std::vector<double> x, y, thresholds;  // ROC: x = FPR, y = TPR; PR: x = recall, y = precision
};

/// The ROC curve over every distinct score, from (0, 0) to (1, 1); a point flags scores >= threshold.
Curve roc_curve(const std::vector<double>& scores, const std::vector<int>& labels);
/// The precision-recall curve over every distinct score, highest threshold first.
Curve pr_curve(const std::vector<double>& scores, const std::vector<int>& labels);
/// Area under the ROC curve: P(score of an anomaly > score of a normal), ties counting one half.
double auroc(const std::vector<double>& scores, const std::vector<int>& labels);
/// Average precision: sum over anomalies ranked by score of the precision at their rank (ties
/// share a rank), divided by the number of anomalies; the area under the PR step curve.
double average_precision(const std::vector<double>& scores, const std::vector<int>& labels);

struct Confusion {
  int64_t tp = 0, fp = 0, tn = 0, fn = 0;
  double precision = 0, recall = 0, f1 = 0, fpr = 0;
};
/// Counts with the examples whose score exceeds `threshold` flagged as anomalous.
Confusion confusion_at(const std::vector<double>& scores, const std::vector<int>& labels, double threshold);

/// The threshold that flags (score > threshold) at most a fraction `fpr` of `normal_scores`: their
/// ceil((1 - fpr) n)-th smallest value. Throws latent::Error when fpr is not in (0, 1) or there are
/// no scores.
double calibrate_threshold(std::vector<double> normal_scores, double fpr);
/// The conformal tail probability of score s against sorted normal scores: (1 + #{normal >= s}) / (n + 1).
double tail_probability(const std::vector<double>& sorted_normal, double s);

}  // namespace latent
