// Anomaly scores against values computed by hand on a tiny linear model; ROC AUC and average
// precision against brute-force pair counts and ranks; calibration hitting its FPR on fresh draws.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "latent/anomaly.h"
#include "latent/checkpoint.h"
#include "latent/error.h"

namespace latent {
namespace {

TEST(AnomalyScores, MatchHandComputedValuesOnALinearModel) {
  // mlp_vae without hidden layers: mu = W_mu x + b_mu, logvar = W_lv x + b_lv, logits = W_d z + b_d.
  // The decoder's weights are 0, so -log p(x | z) does not depend on z and the ELBO is exact.
  Vae m = make_vae(ModelConfig::from_json({{"type", "mlp_vae"}, {"hidden", nlohmann::json::array()}, {"latent", 2}}), {3});
  at::NoGradGuard no_grad;
  const float Wm[2][3] = {{0.5f, -1.f, 0.f}, {0.f, 0.25f, 2.f}}, bm[2] = {0.1f, -0.2f};
  const float bd[3] = {0.3f, -0.7f, 1.1f};
  for (auto& [name, p] : named_parameters(*m)) {
    if (name == "fc_mu.weight")
      p.copy_(at::from_blob(const_cast<float*>(&Wm[0][0]), {2, 3}));
    else if (name == "fc_mu.bias")
      p.copy_(at::from_blob(const_cast<float*>(bm), {2}));
    else if (name == "decoder.0.bias")
      p.copy_(at::from_blob(const_cast<float*>(bd), {3}));
    else
      p.zero_();  // logvar = 0 (sigma 1), decoder weights 0
  }
  const float xs[2][3] = {{1.f, 0.f, 1.f}, {0.f, 1.f, 0.f}};
  at::Tensor x = at::from_blob(const_cast<float*>(&xs[0][0]), {2, 3}).clone();
  EncodingStats stats{at::tensor({0.2, -0.1}, at::kDouble), at::tensor({2.0, 0.5, 0.5, 1.0}, at::kDouble).view({2, 2})};
  ScoreOptions o;
  o.samples = 3;
  o.error_maps = true;
  AnomalyScores s = anomaly_scores(*m, x, stats, o);
  double exact_nll[2], exact_kl[2];
  for (int i = 0; i < 2; ++i) {
    double mu[2], nll = 0, sq = 0;
    for (int j = 0; j < 2; ++j) mu[j] = bm[j] + Wm[j][0] * xs[i][0] + Wm[j][1] * xs[i][1] + Wm[j][2] * xs[i][2];
    for (int k = 0; k < 3; ++k) {
      const double p = 1 / (1 + std::exp(-static_cast<double>(bd[k])));
      nll -= xs[i][k] * std::log(p) + (1 - xs[i][k]) * std::log(1 - p);
      sq += (xs[i][k] - p) * (xs[i][k] - p);
    }
    const double kl = 0.5 * (mu[0] * mu[0] + mu[1] * mu[1]);  // sigma = 1
    const double prior = 0.5 * (mu[0] * mu[0] + mu[1] * mu[1]) + std::log(2 * M_PI);
    const double c0 = mu[0] - 0.2, c1 = mu[1] + 0.1;
    const double maha = 2.0 * c0 * c0 + 2 * 0.5 * c0 * c1 + 1.0 * c1 * c1;
    exact_nll[i] = nll;
    exact_kl[i] = kl;
    EXPECT_NEAR(s.scores["neg_elbo"][i].item<double>(), nll + kl, 1e-5) << i;
    EXPECT_NEAR(s.scores["recon_error"][i].item<double>(), sq, 1e-5) << i;
    EXPECT_NEAR(s.scores["prior_nll"][i].item<double>(), prior, 1e-5) << i;
    EXPECT_NEAR(s.scores["mahalanobis"][i].item<double>(), maha, 1e-5) << i;
    EXPECT_NEAR(s.scores["combined"][i].item<double>(), std::log(sq) + std::log(maha), 1e-5) << i;  // median 0, MAD 1
  }
  EXPECT_EQ(s.error_maps.sizes(), at::IntArrayRef({2, 3}));
  EXPECT_EQ(s.scores.count("iwae_nll"), 0u);
  // p(x | z) does not depend on z, so -log p(x) = nll exactly, and the estimate -log mean_k p(z)/q(z|x)
  // is nll plus noise: p/q has variance e^{|mu|^2} - 1 <= 35 here, so with 20,000 samples the log
  // of its mean is off by ~0.04 (sd); 0.2 is 5 sd. The ELBO is worse by the KL (0.2 to 1.8).
  o.iwae_k = 20000;
  s = anomaly_scores(*m, x, stats, o);
  for (int i = 0; i < 2; ++i) {
    EXPECT_NEAR(s.scores["iwae_nll"][i].item<double>(), exact_nll[i], 0.2) << i;
    EXPECT_GT(exact_kl[i], 0.2) << i;
  }
}

std::pair<std::vector<double>, std::vector<int>> random_case(int n, int seed, bool ties) {
  std::mt19937 rng(seed);
  std::normal_distribution<double> normal;
  std::vector<double> s;
  std::vector<int> l;
  for (int i = 0; i < n; ++i) {
    l.push_back(i % 3 == 0);
    double v = normal(rng) + (l.back() ? 1.0 : 0.0);
    s.push_back(ties ? std::round(v * 2) / 2 : v);
  }
  return {s, l};
}

TEST(AnomalyMetrics, AurocIsTheFractionOfCorrectlyOrderedPairs) {
  for (bool ties : {false, true}) {
    auto [s, l] = random_case(301, ties ? 2 : 1, ties);
    double pairs = 0, right = 0;
    for (size_t i = 0; i < s.size(); ++i)
      for (size_t j = 0; j < s.size(); ++j)
        if (l[i] == 1 && l[j] == 0) {
          pairs += 1;
          right += s[i] > s[j] ? 1.0 : s[i] == s[j] ? 0.5 : 0.0;
        }
    EXPECT_NEAR(auroc(s, l), right / pairs, 1e-12) << (ties ? "with ties" : "");
  }
  EXPECT_DOUBLE_EQ(auroc({1, 2, 3, 4}, {0, 0, 1, 1}), 1.0);
  EXPECT_DOUBLE_EQ(auroc({4, 3, 2, 1}, {0, 0, 1, 1}), 0.0);
  EXPECT_THROW(auroc({1, 2}, {0, 0}), Error);
  EXPECT_THROW(auroc({1, 2}, {0, 2}), Error);
  EXPECT_THROW(auroc({1, 2, 3}, {0, 1}), Error);
}

TEST(AnomalyMetrics, AveragePrecisionIsTheMeanPrecisionAtEachAnomalysRank) {
  auto [s, l] = random_case(200, 3, false);
  std::vector<size_t> order(s.size());
  for (size_t i = 0; i < s.size(); ++i) order[i] = i;
  const auto& scores = s;  // C++17 lambdas cannot capture structured bindings (clang refuses; gcc allows)
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return scores[a] > scores[b]; });
  double hits = 0, sum = 0;
  for (size_t r = 0; r < order.size(); ++r)
    if (l[order[r]]) sum += ++hits / static_cast<double>(r + 1);
  EXPECT_NEAR(average_precision(s, l), sum / hits, 1e-12);
  const Curve roc = roc_curve(s, l);
  EXPECT_EQ(roc.x.front(), 0);
  EXPECT_EQ(roc.y.back(), 1);
  EXPECT_EQ(roc.x.back(), 1);
}

TEST(AnomalyMetrics, ConfusionAtAThreshold) {
  Confusion c = confusion_at({0.1, 0.9, 0.4, 0.8, 0.3}, {0, 1, 1, 0, 0}, 0.35);
  EXPECT_EQ(c.tp, 2);
  EXPECT_EQ(c.fp, 1);
  EXPECT_EQ(c.tn, 2);
  EXPECT_EQ(c.fn, 0);
  EXPECT_NEAR(c.precision, 2.0 / 3, 1e-12);
  EXPECT_NEAR(c.recall, 1.0, 1e-12);
  EXPECT_NEAR(c.f1, 0.8, 1e-12);
  EXPECT_NEAR(c.fpr, 1.0 / 3, 1e-12);
}

TEST(AnomalyCalibration, HitsTheRequestedFalsePositiveRateOnFreshNormalData) {
  std::mt19937 rng(4);
  std::gamma_distribution<double> skewed(2.0, 3.0);  // scores are skewed in practice
  for (double fpr : {0.01, 0.05}) {
    std::vector<double> calibration(20000), fresh(200000);
    for (auto& v : calibration) v = skewed(rng);
    for (auto& v : fresh) v = skewed(rng);
    const double t = calibrate_threshold(calibration, fpr);
    double above = 0;
    for (double v : fresh) above += v > t;
    // Sampling error of the calibration quantile dominates: sd ~ sqrt(fpr (1 - fpr) / 20000).
    EXPECT_NEAR(above / fresh.size(), fpr, 4 * std::sqrt(fpr * (1 - fpr) / 20000)) << fpr;
    double flagged = 0;
    for (double v : calibration) flagged += v > t;
    EXPECT_LE(flagged / calibration.size(), fpr) << "at most fpr of the calibration set is flagged";
  }
  EXPECT_THROW(calibrate_threshold({1, 2}, 0), Error);
  EXPECT_THROW(calibrate_threshold({}, 0.1), Error);
  const std::vector<double> sorted = {1, 2, 3, 4};
  EXPECT_DOUBLE_EQ(tail_probability(sorted, 5), 1.0 / 5);
  EXPECT_DOUBLE_EQ(tail_probability(sorted, 3), 3.0 / 5);
  EXPECT_DOUBLE_EQ(tail_probability(sorted, 0), 1.0);
}

}  // namespace
}  // namespace latent
