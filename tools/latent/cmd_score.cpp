// latent calibrate | score: anomaly scores per example, a threshold calibrated on normal data at a
// target false-positive rate (kept in the checkpoint), and ROC / PR reports against labels.
#include <ATen/ATen.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>

#include "common.h"
#include "latent/anomaly.h"
#include "latent/atomic_file.h"
#include "latent/error.h"
#include "latent/image.h"
#include "latent/json.h"
#include "latent/npy.h"
#include "latent/plot.h"
#include "latent/train.h"
#include "launch.h"

namespace latent::cli {
namespace {

struct ScoreArgs {
  std::string checkpoint, data, split, labels, out, score = "neg_elbo";  // split "": see score_data
  std::vector<int64_t> normal_classes;
  int64_t limit = 0, k = 0, samples = 1;
  double fpr = 0.01;
  bool maps = false;
  int threads = 0, nproc = 0;
  uint64_t seed = 1;
};

std::vector<double> to_vector(const at::Tensor& t) {
  at::Tensor c = t.to(at::kDouble).contiguous();
  return std::vector<double>(c.data_ptr<double>(), c.data_ptr<double>() + c.numel());
}

// Scores of the checkpoint's (or --data's) examples; the Mahalanobis statistics come from the
// first 10,000 training examples' encodings. Under a launcher the ranks split the examples; every
// rank gets every score, and `*writer` says whether this one is rank 0, the one that writes.
AnomalyScores score_data(LoadedCheckpoint& ck, const ScoreArgs& a, Dataset* data_out, bool* writer) {
  VaeImpl& vae = ck.vae("anomaly scoring");
  vae.eval();
  // Data named on the command line is scored whole, unless it is built-in data with its own splits.
  const std::string split = !a.split.empty() ? a.split : !a.data.empty() && a.data != "fashion-mnist" ? "all" : "test";
  Dataset d = checkpoint_data(ck, a.data, split, a.limit);
  if (d.size() == 0) throw Error("no examples to score");
  Dataset train = checkpoint_data(ck, "", "train", 10000);
  const std::unique_ptr<Communicator> comm =
      join_job_if_launched({{"command", "score"},
                            {"model", ck.model->config().to_json()},
                            {"examples", d.size()},
                            {"options", {{"k", a.k}, {"samples", a.samples}, {"seed", a.seed}, {"maps", a.maps}}}},
                           a.threads);
  *writer = !comm || comm->rank() == 0;
  const EncodingStats stats = encoding_stats(vae, train.x);
  ScoreOptions o;
  o.comm = comm.get();
  o.samples = a.samples;
  o.iwae_k = a.k;
  o.seed = a.seed;
  o.error_maps = a.maps;
  AnomalyScores s = anomaly_scores(vae, d.x, stats, o);
  if (comm) comm->close();
  if (data_out) *data_out = std::move(d);
  return s;
}

void check_score_name(const ScoreArgs& a) {
  const auto& names = anomaly_score_names();
  if (std::find(names.begin(), names.end(), a.score) == names.end())
    throw Error("unknown score '" + a.score +
                "' (neg_elbo, iwae_nll, recon_error, prior_nll, mahalanobis, combined, complexity_adjusted)");
  if (a.score == "iwae_nll" && a.k < 1) throw Error("--score iwae_nll needs --k (importance samples), e.g. --k 1000");
}

void run_calibrate(const ScoreArgs& a) {
  if (a.nproc > 0) return run_as_workers(a.nproc);
  check_score_name(a);
  LoadedCheckpoint ck = checkpoint_load(a.checkpoint);
  bool writer = true;
  AnomalyScores s = score_data(ck, a, nullptr, &writer);
  if (!writer) return;
  std::vector<double> normal = to_vector(s.scores.at(a.score));
  const double threshold = calibrate_threshold(normal, a.fpr);
  std::sort(normal.begin(), normal.end());
  // The checkpoint is rewritten whole (atomically) with the calibration beside the weights.
  SafetensorsFile file = ck.file;
  file.tensors.erase(
      std::remove_if(file.tensors.begin(), file.tensors.end(), [](const auto& t) { return t.first.rfind("anomaly.", 0) == 0; }),
      file.tensors.end());
  file.tensors.emplace_back("anomaly.calibration", at::tensor(normal, at::kDouble));
  nlohmann::json meta = {{"score", a.score},
                         {"fpr", a.fpr},
                         {"threshold", threshold},
                         {"examples", normal.size()},
                         {"k", a.k},
                         {"samples", a.samples},
                         {"seed", a.seed},
                         {"split", a.split.empty() ? std::string("default") : a.split},
                         {"data", a.data.empty() ? ck.info.data.to_json() : nlohmann::json(a.data)}};
  file.metadata["anomaly"] = meta.dump();
  safetensors_save(a.checkpoint, file);
  std::printf("calibrated %s on %zu normal examples: threshold %.4f flags %.2f%% of them (target FPR %.2f%%); saved in %s\n",
              a.score.c_str(), normal.size(), threshold,
              100.0 * static_cast<double>(normal.end() - std::upper_bound(normal.begin(), normal.end(), threshold)) /
                  static_cast<double>(normal.size()),
              100 * a.fpr, a.checkpoint.c_str());
}

// 0/1 per example: from --labels (NPY or one number per line) or from --normal-class and the data's classes.
std::vector<int> anomaly_labels(const ScoreArgs& a, const Dataset& d) {
  std::vector<int> labels;
  if (!a.labels.empty()) {
    at::Tensor t;
    if (a.labels.size() > 4 && a.labels.substr(a.labels.size() - 4) == ".npy") {
      t = npy_load(a.labels).reshape({-1}).to(at::kLong);
    } else {
      std::ifstream in(a.labels);
      if (!in) throw Error(a.labels + ": cannot open");
      std::vector<int64_t> v;
      std::string line;
      while (std::getline(in, line)) {
        if (line.empty() || line == "\r") continue;
        try {
          v.push_back(std::stoll(line));
        } catch (const std::exception&) {
          throw Error(a.labels + ": line " + std::to_string(v.size() + 1) + " is not 0 or 1: '" + text_excerpt(line, 40) + "'");
        }
      }
      t = at::tensor(v, at::kLong);
    }
    for (int64_t i = 0; i < t.numel(); ++i) labels.push_back(static_cast<int>(t[i].item<int64_t>()));
    if (static_cast<int64_t>(labels.size()) != d.size())
      throw Error(a.labels + " has " + std::to_string(labels.size()) + " labels for " + std::to_string(d.size()) + " examples");
  } else if (!a.normal_classes.empty()) {
    if (!d.y.defined()) throw Error("--normal-class needs data with class labels");
    const std::set<int64_t> normal(a.normal_classes.begin(), a.normal_classes.end());
    for (int64_t i = 0; i < d.size(); ++i) labels.push_back(normal.count(d.y[i].item<int64_t>()) ? 0 : 1);
  }
  for (int l : labels)
    if (l != 0 && l != 1) throw Error(a.labels + ": labels must be 0 (normal) or 1 (anomalous), got " + std::to_string(l));
  return labels;
}

void write_curve(const std::string& path, const Curve& c, const char* header) {
  std::string text = std::string(header) + "\n";
  char line[128];
  for (size_t i = 0; i < c.x.size(); ++i) {
    std::snprintf(line, sizeof(line), "%.17g,%.17g,%.17g\n", c.thresholds[i], c.x[i], c.y[i]);
    text += line;
  }
  atomic_write(path, text);
}

void run_score(const ScoreArgs& a) {
  if (a.nproc > 0) return run_as_workers(a.nproc);
  LoadedCheckpoint ck = checkpoint_load(a.checkpoint);
  Dataset d;
  bool writer = true;
  AnomalyScores s = score_data(ck, a, &d, &writer);
  if (!writer) return;
  std::vector<int> labels = anomaly_labels(a, d);
  std::filesystem::create_directories(a.out);

  // The calibration in the checkpoint, if any: flags and tail probabilities for its score.
  nlohmann::json cal;
  std::vector<double> cal_scores;
  if (auto it = ck.file.metadata.find("anomaly"); it != ck.file.metadata.end()) {
    cal = parse_json(it->second, a.checkpoint + ": metadata 'anomaly'");
    at::Tensor t = ck.file.find("anomaly.calibration");
    if (t.defined()) cal_scores = to_vector(t);
    if (!s.scores.count(cal["score"].get<std::string>()))
      throw Error("the checkpoint is calibrated on " + cal["score"].get<std::string>() + "; pass --k " +
                  std::to_string(cal["k"].get<int64_t>()) + " to compute it");
  }
  std::vector<std::string> names;
  for (const auto& n : anomaly_score_names())
    if (s.scores.count(n)) names.push_back(n);
  std::vector<std::vector<double>> columns;
  for (const auto& n : names) columns.push_back(to_vector(s.scores.at(n)));

  std::string csv = "index";
  if (!labels.empty()) csv += ",label";
  for (const auto& n : names) csv += "," + n;
  if (!cal.is_null()) csv += ",flagged,tail_probability";
  csv += "\n";
  const size_t cal_column =
      cal.is_null() ? 0 : std::find(names.begin(), names.end(), cal["score"].get<std::string>()) - names.begin();
  int64_t flagged = 0;
  char num[64];
  for (int64_t i = 0; i < d.size(); ++i) {
    csv += std::to_string(i);
    if (!labels.empty()) csv += "," + std::to_string(labels[i]);
    for (const auto& c : columns) {
      std::snprintf(num, sizeof(num), ",%.9g", c[i]);
      csv += num;
    }
    if (!cal.is_null()) {
      const bool f = columns[cal_column][i] > cal["threshold"].get<double>();
      flagged += f;
      std::snprintf(num, sizeof(num), ",%d,%.6g", f ? 1 : 0, tail_probability(cal_scores, columns[cal_column][i]));
      csv += num;
    }
    csv += "\n";
  }
  atomic_write(a.out + "/scores.csv", csv);
  {
    std::vector<at::Tensor> cols;
    for (const auto& n : names) cols.push_back(s.scores.at(n));
    npy_save(a.out + "/scores.npy", at::stack(cols, 1).to(at::kFloat));
  }
  std::printf("wrote %s/scores.csv and scores.npy (%lld examples; columns: %s)\n", a.out.c_str(),
              static_cast<long long>(d.size()),
              [&] {
                std::string c;
                for (const auto& n : names) c += (c.empty() ? "" : ", ") + n;
                return c;
              }()
                  .c_str());
  if (!cal.is_null())
    std::printf("calibrated on %s at FPR %.2f%% (threshold %.4f): %lld of %lld flagged\n",
                cal["score"].get<std::string>().c_str(), 100 * cal["fpr"].get<double>(), cal["threshold"].get<double>(),
                static_cast<long long>(flagged), static_cast<long long>(d.size()));
  if (a.maps) {
    npy_save(a.out + "/error_maps.npy", s.error_maps.to(at::kFloat));
    if (is_image_model(ck)) {  // the most anomalous inputs (by the first score) above their error maps
      at::Tensor order = s.scores.at(cal.is_null() ? names[0] : cal["score"].get<std::string>()).argsort(0, true);
      at::Tensor top = order.narrow(0, 0, std::min<int64_t>(16, d.size()));
      at::Tensor maps = s.error_maps.index_select(0, top);
      maps = maps / maps.flatten(1).amax(1).clamp_min(1e-12).view({-1, 1, 1, 1});
      png_save_grid(a.out + "/error_maps.png", interleave_rows(to_data_space(ck, d.x.index_select(0, top)).clamp(0, 1), maps, 8),
                    8);
      std::printf("wrote %s/error_maps.npy and error_maps.png (the 16 highest-scoring inputs above their squared errors)\n",
                  a.out.c_str());
    }
  }
  if (labels.empty()) return;

  // ROC and PR against the labels: CSV per score, two plots, a table and report.json.
  nlohmann::json report = {
      {"examples", d.size()}, {"anomalies", std::count(labels.begin(), labels.end(), 1)}, {"scores", nlohmann::json::object()}};
  std::vector<PlotSeries> roc_series, pr_series;
  std::printf("\n%-20s %8s %8s", "score", "AUROC", "AUPRC");
  if (!cal.is_null()) std::printf("   at the calibrated threshold: %9s %9s %9s %9s", "precision", "recall", "F1", "FPR");
  std::printf("\n");
  for (size_t j = 0; j < names.size(); ++j) {
    const Curve roc = roc_curve(columns[j], labels), pr = pr_curve(columns[j], labels);
    write_curve(a.out + "/roc_" + names[j] + ".csv", roc, "threshold,fpr,tpr");
    write_curve(a.out + "/pr_" + names[j] + ".csv", pr, "threshold,recall,precision");
    const double au = auroc(columns[j], labels), ap = average_precision(columns[j], labels);
    nlohmann::json r = {{"auroc", au}, {"auprc", ap}};
    std::printf("%-20s %8.4f %8.4f", names[j].c_str(), au, ap);
    if (!cal.is_null() && j == cal_column) {
      const Confusion c = confusion_at(columns[j], labels, cal["threshold"].get<double>());
      r["at_threshold"] = {{"threshold", cal["threshold"]},
                           {"precision", c.precision},
                           {"recall", c.recall},
                           {"f1", c.f1},
                           {"fpr", c.fpr},
                           {"tp", c.tp},
                           {"fp", c.fp},
                           {"tn", c.tn},
                           {"fn", c.fn}};
      std::printf("   %37s %9.4f %9.4f %9.4f %9.4f", "", c.precision, c.recall, c.f1, c.fpr);
    }
    std::printf("\n");
    report["scores"][names[j]] = r;
    char label[96];
    std::snprintf(label, sizeof(label), "%s (AUROC %.3f)", names[j].c_str(), au);
    roc_series.push_back({label, roc.x, roc.y});
    std::snprintf(label, sizeof(label), "%s (AP %.3f)", names[j].c_str(), ap);
    pr_series.push_back({label, pr.x, pr.y});
  }
  atomic_write(a.out + "/report.json", report.dump(2) + "\n");
  png_save_plot(a.out + "/roc.png", roc_series, "ROC curves", "false positive rate", "true positive rate", true);
  png_save_plot(a.out + "/pr.png", pr_series, "Precision-recall curves", "recall", "precision", false);
  std::printf("wrote roc.png, pr.png, roc_*.csv, pr_*.csv and report.json in %s\n", a.out.c_str());
}

void add_common(CLI::App* cmd, ScoreArgs& a) {
  cmd->add_option("checkpoint", a.checkpoint, "checkpoint written by latent train")->required()->check(CLI::ExistingFile);
  cmd->add_option("--data", a.data, "data to score (default: the checkpoint's)");
  cmd->add_option("--split", a.split, "test or train; all: every example of a file or folder given as the data (its default)");
  cmd->add_option("--limit", a.limit, "first N examples only")->check(non_negative());
  cmd->add_option("--k", a.k, "importance samples for iwae_nll (0: skip it)")->capture_default_str()->check(non_negative());
  cmd->add_option("--samples", a.samples, "draws of z for neg_elbo")->capture_default_str()->check(positive());
  cmd->add_option("--seed", a.seed, "noise seed")->capture_default_str();
  cmd->add_option("--threads", a.threads, "threads (0: every core)")->capture_default_str();
  cmd->add_option("--nproc", a.nproc,
                  "N local workers split the examples (the same scores as one process); torchrun and srun start it the "
                  "same way")
      ->check(CLI::Range(1, 256));
}

}  // namespace

void add_score(CLI::App& app) {
  auto a = std::make_shared<ScoreArgs>();
  CLI::App* cal = app.add_subcommand(
      "calibrate", "Set the anomaly threshold at a target false-positive rate on normal data (kept in the checkpoint)");
  add_common(cal, *a);
  cal->add_option("--score", a->score, "neg_elbo, iwae_nll, recon_error, prior_nll, mahalanobis, combined or complexity_adjusted")
      ->capture_default_str();
  cal->add_option("--fpr", a->fpr, "target false-positive rate on normal data")->capture_default_str();
  cal->footer("Example:\n  latent calibrate runs/fmnist/model.safetensors --split test --fpr 0.01 --score neg_elbo");
  cal->callback([a]() { run_calibrate(*a); });

  auto b = std::make_shared<ScoreArgs>();
  CLI::App* sc = app.add_subcommand("score", "Anomaly scores per example (CSV, NPY); ROC/PR reports with labels");
  add_common(sc, *b);
  sc->add_option("source", b->data, "data to score, as --data (latent score CHECKPOINT DATA)");
  sc->add_option("--out", b->out, "output folder")->required();
  sc->add_option("--labels", b->labels, "0 (normal) / 1 (anomalous) per example: .npy or one per line");
  sc->add_option("--normal-class", b->normal_classes, "classes of the data that are normal (the rest are anomalies)");
  sc->add_flag("--maps", b->maps, "also per-element squared errors (error_maps.npy; PNG for images)");
  sc->footer(
      "Example:\n  latent score runs/tshirts/model.safetensors fashion-mnist --normal-class 0 --k 100 --maps --out "
      "runs/tshirts/scores");
  sc->callback([b]() { run_score(*b); });
}

}  // namespace latent::cli
