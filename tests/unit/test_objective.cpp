#include <ATen/CPUGeneratorImpl.h>

#include <cmath>

#include "latent/model.h"
#include "latent/objective.h"
#include "test_util.h"

namespace latent {
namespace {

using test::all_close;

TEST(Kl, ClosedFormMatchesMonteCarlo) {
  // KL(q || p) = E_q[log q(z) - log p(z)], estimated from 400k draws; the tolerance is 5
  // standard errors of the estimate (a false failure has probability < 1e-6).
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(7);
  at::Tensor mu = at::tensor({0.5, -1.2, 0.0, 2.0}, at::kDouble).unsqueeze(0);
  at::Tensor logvar = at::tensor({-1.0, 0.3, 0.0, -2.5}, at::kDouble).unsqueeze(0);
  const int64_t n = 400000;
  at::Tensor eps = at::randn({n, 4}, gen, at::kDouble);
  at::Tensor z = reparameterize(mu, logvar, eps);
  at::Tensor diff = log_normal(z, mu, logvar) - log_standard_normal(z);  // [n]
  const double mc = diff.mean().item<double>(), se = diff.std().item<double>() / std::sqrt(double(n));
  const double closed = kl_standard_normal(mu, logvar).item<double>();
  EXPECT_NEAR(closed, mc, 5 * se);
  EXPECT_NEAR(kl_standard_normal(at::zeros({1, 3}), at::zeros({1, 3})).item<double>(), 0.0, 1e-12);
}

TEST(Reparameterization, GradientsMatchFiniteDifferences) {
  // f(z) = sum(sin(z) * w) through z = mu + exp(logvar/2) eps; central differences, h = 1e-6,
  // in float64: agreement to 1e-7 absolute.
  at::Tensor mu = at::tensor({0.3, -0.7, 1.1}, at::kDouble).requires_grad_();
  at::Tensor logvar = at::tensor({-0.5, 0.2, -1.5}, at::kDouble).requires_grad_();
  at::Tensor eps = at::tensor({0.9, -1.3, 0.4}, at::kDouble);
  at::Tensor w = at::tensor({1.5, -0.5, 2.0}, at::kDouble);
  auto f = [&](const at::Tensor& m, const at::Tensor& lv) { return (at::sin(reparameterize(m, lv, eps)) * w).sum(); };
  f(mu, logvar).backward();
  const double h = 1e-6;
  for (int64_t i = 0; i < 3; ++i) {
    for (auto [param, other, is_mu] : {std::tuple{mu, logvar, true}, std::tuple{logvar, mu, false}}) {
      at::Tensor plus = param.detach().clone(), minus = param.detach().clone();
      plus[i] += h;
      minus[i] -= h;
      const double fd = is_mu ? (f(plus, other.detach()) - f(minus, other.detach())).item<double>() / (2 * h)
                              : (f(other.detach(), plus) - f(other.detach(), minus)).item<double>() / (2 * h);
      EXPECT_NEAR(param.grad()[i].item<double>(), fd, 1e-7) << (is_mu ? "mu" : "logvar") << "[" << i << "]";
    }
  }
  // dz/dmu = 1 and dz/dsigma = eps, the identities the explorer shows.
  at::Tensor sigma = at::exp(0.5 * logvar.detach()).requires_grad_();
  at::Tensor m2 = mu.detach().clone().requires_grad_();
  (m2 + sigma * eps).sum().backward();
  EXPECT_TRUE(all_close(m2.grad(), at::ones({3}, at::kDouble), 0, 1e-15));
  EXPECT_TRUE(all_close(sigma.grad(), eps, 0, 1e-15));
}

TEST(Likelihood, BernoulliOnLogitsIsStableForExtremeLogits) {
  at::Tensor logits = at::tensor({500.0f, -500.0f, 30.0f, -30.0f}).reshape({1, 4});
  at::Tensor x = at::tensor({1.0f, 0.0f, 1.0f, 0.0f}).reshape({1, 4});
  at::Tensor lp = log_bernoulli(logits, x);
  EXPECT_TRUE(std::isfinite(lp.item<float>()));
  EXPECT_NEAR(lp.item<float>(), 0.0f, 1e-6);
  at::Tensor wrong = log_bernoulli(logits, 1 - x);
  EXPECT_NEAR(wrong.item<float>(), -1060.0f, 1e-2);
}

TEST(Likelihood, GaussianMatchesTheDensity) {
  at::Tensor mean = at::tensor({0.5, -1.0}, at::kDouble).reshape({1, 2});
  at::Tensor x = at::tensor({0.0, 1.0}, at::kDouble).reshape({1, 2});
  at::Tensor lv = at::tensor({0.0, std::log(4.0)}, at::kDouble).reshape({1, 2});
  const double expect = -0.5 * (std::log(2 * M_PI) + 0.25) - 0.5 * (std::log(2 * M_PI * 4.0) + 4.0 / 4.0);
  EXPECT_NEAR(log_gaussian(mean, lv, x).item<double>(), expect, 1e-12);
}

TEST(Iwae, OneSampleBoundIsTheElboSampleAndTheBoundTightensWithK) {
  at::manual_seed(3);
  ModelConfig c = ModelConfig::from_json({{"type", "mlp_vae"}, {"hidden", {16}}, {"latent", 2}});
  Vae m = make_vae(c, {10});
  m->to(at::kDouble);
  at::NoGradGuard ng;
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(11);
  at::Tensor x = at::bernoulli(at::full({4, 10}, 0.4, at::kDouble), gen);
  Posterior q = m->encode(x);
  at::Tensor eps = at::randn({1, 4, 2}, gen, at::kDouble);
  at::Tensor one = iwae_bound(iwae_log_weights(*m, x, q, eps));
  ElboTerms t = elbo_terms(*m, x, eps[0]);
  // log w = log p(x|z) + log p(z) - log q(z|x); its mean over eps is the ELBO. For one eps:
  at::Tensor z = reparameterize(q.mu, q.logvar, eps[0]);
  at::Tensor manual = -t.recon + log_standard_normal(z) - log_normal(z, q.mu, q.logvar);
  EXPECT_TRUE(all_close(one, manual, 1e-12, 1e-12));
  // E[IWAE_K] is non-decreasing in K: K = 1000 beats the mean of single-sample bounds.
  at::Tensor big = iwae_bound(iwae_log_weights(*m, x, q, at::randn({1000, 4, 2}, gen, at::kDouble)));
  at::Tensor singles = iwae_log_weights(*m, x, q, at::randn({1000, 4, 2}, gen, at::kDouble)).mean(0);
  EXPECT_TRUE((big > singles).all().item<bool>());
}

TEST(Gradients, ConvVaeElboMatchesFiniteDifferences) {
  // The conv path (conv, transposed conv, Gaussian learned variance) against central
  // differences on a few parameter entries, float64, h = 1e-6: agreement to 1e-6 relative.
  at::manual_seed(5);
  ModelConfig c = ModelConfig::from_json({{"type", "conv_vae"},
                                          {"channels", {3, 4}},
                                          {"hidden", {6}},
                                          {"latent", 2},
                                          {"likelihood", "gaussian"},
                                          {"variance", "learned"}});
  Vae m = make_vae(c, {1, 8, 8});
  m->to(at::kDouble);
  at::Tensor x = at::rand({2, 1, 8, 8}, at::kDouble), eps = at::randn({2, 2}, at::kDouble);
  auto loss = [&]() {
    ElboTerms t = elbo_terms(*m, x, eps);
    return (t.recon + t.kl).mean();
  };
  loss().backward();
  at::NoGradGuard ng;
  for (const auto& item : m->named_parameters()) {
    at::Tensor p = item.value();
    at::Tensor flat = p.view({-1});
    for (int64_t i : {int64_t{0}, flat.numel() / 2, flat.numel() - 1}) {
      const double orig = flat[i].item<double>(), h = 1e-6;
      flat[i] = orig + h;
      const double up = loss().item<double>();
      flat[i] = orig - h;
      const double down = loss().item<double>();
      flat[i] = orig;
      const double fd = (up - down) / (2 * h), g = p.grad().view({-1})[i].item<double>();
      EXPECT_NEAR(g, fd, 1e-6 * std::max(1.0, std::abs(fd))) << item.key() << "[" << i << "]";
    }
  }
}

}  // namespace
}  // namespace latent

namespace latent {
namespace {

TEST(FreeBits, FloorsEachDimensionsBatchMeanKlAndStopsItsGradient) {
  // Dim 0 has batch-mean KL 0.125 (under lambda = 0.5), dim 1 has 2.0 (over it).
  at::Tensor mu = at::tensor({0.5, 2.0, -0.5, -2.0}, at::kDouble).reshape({2, 2}).requires_grad_();
  at::Tensor logvar = at::zeros({2, 2}, at::kDouble).requires_grad_();
  at::Tensor v = kl_free_bits(mu, logvar, 0.5);
  EXPECT_NEAR(v.item<double>(), 0.5 + 2.0, 1e-12);
  v.backward();
  EXPECT_EQ(mu.grad()[0][0].item<double>(), 0.0);               // floored: no gradient
  EXPECT_NEAR(mu.grad()[0][1].item<double>(), 2.0 / 2, 1e-12);  // d/dmu of mean_B(mu^2 / 2)
  EXPECT_NEAR(kl_free_bits(mu, logvar, 0).item<double>(), kl_standard_normal(mu, logvar).mean().item<double>(), 1e-12);
}

TEST(KlWeight, LinearWarmupAndCyclicalAnnealing) {
  EXPECT_DOUBLE_EQ(kl_weight(2.0, 0.5, 0, 0, 0.5), 2.0);
  EXPECT_DOUBLE_EQ(kl_weight(2.0, 0.0, 4, 0, 0.5), 0.0);
  EXPECT_DOUBLE_EQ(kl_weight(2.0, 1.0, 4, 0, 0.5), 0.5);
  EXPECT_DOUBLE_EQ(kl_weight(2.0, 9.0, 4, 0, 0.5), 2.0);
  // Cycles of 4 epochs, rising over the first half of each.
  EXPECT_DOUBLE_EQ(kl_weight(1.0, 0.0, 0, 4, 0.5), 0.0);
  EXPECT_DOUBLE_EQ(kl_weight(1.0, 1.0, 0, 4, 0.5), 0.5);
  EXPECT_DOUBLE_EQ(kl_weight(1.0, 3.0, 0, 4, 0.5), 1.0);
  EXPECT_DOUBLE_EQ(kl_weight(1.0, 4.0, 0, 4, 0.5), 0.0);  // the next cycle starts again at 0
  EXPECT_DOUBLE_EQ(kl_weight(1.0, 5.0, 0, 4, 0.5), 0.5);
}

}  // namespace
}  // namespace latent
