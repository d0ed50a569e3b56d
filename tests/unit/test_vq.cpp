// VQ-VAE: nearest codes against brute force, the straight-through gradient, the commitment term,
// the EMA codebook update against the formula in float64, k-means on separated clusters, code
// restarts, perplexity, the prior's sampling frequencies, and the checkpoint round trip.
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>
#include <torch/csrc/autograd/autograd.h>

#include <cmath>

#include "latent/checkpoint.h"
#include "latent/error.h"
#include "models/vq_vae/vq_vae.h"
#include "test_util.h"

namespace latent {
namespace {

ModelConfig vq_config(int64_t K = 8, int64_t D = 3) {
  return ModelConfig::from_json({{"type", "vq_vae"}, {"channels", {4, 6}}, {"codebook", K}, {"code_dim", D}, {"decay", 0.9}});
}

at::Generator generator(uint64_t seed) { return at::make_generator<at::CPUGeneratorImpl>(seed); }

TEST(VqConfig, ValidatesItsKeys) {
  ModelConfig c = vq_config();
  EXPECT_EQ(c.codebook, 8);
  EXPECT_EQ(c.code_dim, 3);
  EXPECT_DOUBLE_EQ(c.commitment, 0.25);
  EXPECT_EQ(ModelConfig::from_json(c.to_json()).to_json(), c.to_json());
  for (const char* bad :
       {R"({"type": "vq_vae"})", R"({"type": "vq_vae", "channels": [4], "latent": 3})",
        R"({"type": "vq_vae", "channels": [4], "codebook": 1})", R"({"type": "vq_vae", "channels": [4], "decay": 1})",
        R"({"type": "vq_vae", "channels": [4], "beta": 2})"})
    EXPECT_THROW(ModelConfig::from_text_or_file(bad), Error) << bad;
  EXPECT_THROW(make_vq_vae(vq_config(), {1, 6, 8}), Error);  // 6 is not divisible by 4
}

TEST(VqVae, NearestIsTheBruteForceNearestCode) {
  at::manual_seed(1);
  VqVae m = make_vq_vae(vq_config(), {1, 8, 8});
  at::Tensor z_e = at::randn({5, 3, 2, 2});
  at::Tensor idx = m->nearest(z_e);
  ASSERT_EQ(idx.sizes(), at::IntArrayRef({5, 2, 2}));
  const at::Tensor E = m->codebook();
  for (int64_t b = 0; b < 5; ++b)
    for (int64_t i = 0; i < 2; ++i)
      for (int64_t j = 0; j < 2; ++j) {
        at::Tensor v = z_e.index({b, at::indexing::Slice(), i, j});
        const int64_t best = (E - v.unsqueeze(0)).square().sum(1).argmin().item<int64_t>();
        EXPECT_EQ(idx[b][i][j].item<int64_t>(), best);
      }
  EXPECT_TRUE(at::equal(m->lookup(idx).index({2, at::indexing::Slice(), 1, 0}), E[idx[2][1][0].item<int64_t>()]));
  EXPECT_THROW(m->lookup(at::full({1, 2, 2}, 8, at::kLong)), Error);
}

TEST(VqVae, StraightThroughGivesTheEncoderTheDecodersGradientAtZq) {
  at::manual_seed(2);
  VqVae m = make_vq_vae(vq_config(), {1, 8, 8});
  at::Tensor x = at::rand({3, 1, 8, 8});
  VqForward f = m->forward(x);
  at::Tensor g_e = torch::autograd::grad({f.recon.sum()}, {f.z_e}, {}, /*retain_graph=*/true)[0];
  at::Tensor z_q = m->lookup(f.indices).detach().requires_grad_(true);
  at::Tensor g_q = torch::autograd::grad({(-m->log_likelihood(m->decode(z_q), x)).sum()}, {z_q})[0];
  EXPECT_TRUE(test::all_close(g_e, g_q, 1e-6, 1e-7));
  EXPECT_GT(g_e.abs().sum().item<double>(), 0);
  // The commitment term: ||z_e - z_q||^2 per example, its gradient reaching z_e only.
  EXPECT_TRUE(test::all_close(f.commitment, (f.z_e - z_q).square().sum({1, 2, 3}), 1e-6, 1e-7));
  EXPECT_FALSE(m->codebook().requires_grad());
}

TEST(VqVae, EmaUpdateFollowsTheFormula) {
  // K = 3 codes in D = 2; four vectors, two to code 0, two to code 2, none to code 1; decay 0.9.
  VqVae m = make_vq_vae(
      ModelConfig::from_json({{"type", "vq_vae"}, {"channels", {2}}, {"codebook", 3}, {"code_dim", 2}, {"decay", 0.9}}),
      {1, 4, 2});
  m->set_codebook(at::tensor({0.f, 0.f, 5.f, 5.f, 10.f, 10.f}).view({3, 2}));  // count 1, sum = embed each
  EXPECT_THROW(m->set_codebook(at::zeros({2, 2})), Error);
  at::Tensor z_e = at::tensor({1.f, 3.f, 9.f, 11.f, 2.f, 5.f, 10.f, 12.f})
                       .view({1, 2, 2, 2});  // [B, D, h, w]: vectors (1,2) (3,5) (9,10) (11,12)
  at::Tensor idx = at::tensor(std::vector<int64_t>{0, 0, 2, 2}).view({1, 2, 2});
  m->ema_update(z_e, idx);
  // count = 0.9 [1, 1, 1] + 0.1 [2, 0, 2] = [1.1, 0.9, 1.1]; sum_0 = 0.9 (0, 0) + 0.1 (4, 7) = (0.4, 0.7),
  // sum_1 = (4.5, 4.5), sum_2 = 0.9 (10, 10) + 0.1 (20, 22) = (11, 11.2); Laplace smoothing with 1e-5.
  const double count[3] = {1.1, 0.9, 1.1}, sum[3][2] = {{0.4, 0.7}, {4.5, 4.5}, {11.0, 11.2}};
  const double total = 3.1, eps = 1e-5;
  for (int k = 0; k < 3; ++k)
    for (int j = 0; j < 2; ++j) {
      const double smoothed = (count[k] + eps) / (total + 3 * eps) * total;
      EXPECT_NEAR(m->codebook()[k][j].item<double>(), sum[k][j] / smoothed, 1e-5) << k << "," << j;
    }
}

TEST(VqVae, KmeansFindsSeparatedClustersAndRestartsMoveOnlyUnusedCodes) {
  at::manual_seed(4);
  VqVae m = make_vq_vae(vq_config(4, 2), {1, 8, 8});
  at::Tensor centres = at::tensor({0.f, 0.f, 10.f, 0.f, 0.f, 10.f, 10.f, 10.f}).view({4, 2});
  at::Tensor v = centres.repeat({50, 1}) + 0.1 * at::randn({200, 2});
  at::Generator gen = generator(5);
  const double distortion = m->init_codebook_kmeans(v, 20, gen);
  EXPECT_LT(distortion, 0.05);  // 2 dims x 0.01 variance; a missed cluster would cost ~25
  for (int64_t c = 0; c < 4; ++c)
    EXPECT_LT((m->codebook() - centres[c]).square().sum(1).min().item<double>(), 0.01) << "cluster " << c;

  const at::Tensor before = m->codebook().clone();
  at::Tensor used = at::tensor(std::vector<int64_t>{1, 0, 1, 0}) > 0;
  at::Tensor far = at::full({3, 2}, 100.f);
  EXPECT_EQ(m->restart_codes(used, far, gen), 2);
  EXPECT_TRUE(at::equal(m->codebook()[0], before[0]));
  EXPECT_TRUE(at::equal(m->codebook()[2], before[2]));
  EXPECT_TRUE(at::equal(m->codebook()[1], far[0]));
  EXPECT_TRUE(at::equal(m->codebook()[3], far[0]));
  EXPECT_EQ(m->restart_codes(at::ones({4}, at::kBool), far, gen), 0);
}

TEST(VqVae, Perplexity) {
  EXPECT_NEAR(perplexity(at::ones({16})), 16.0, 1e-9);
  EXPECT_NEAR(perplexity(at::tensor({0.0, 7.0, 0.0})), 1.0, 1e-9);
  EXPECT_NEAR(perplexity(at::tensor({1.0, 1.0, 2.0})), std::exp(1.5 * std::log(2.0)), 1e-9);  // H = 1.5 ln 2
}

TEST(VqVae, PriorSamplesFollowTheFittedCounts) {
  at::manual_seed(6);
  VqVae m = make_vq_vae(vq_config(4, 2), {1, 8, 8});  // grid 2x2
  at::Generator gen = generator(7);
  at::Tensor uniform = m->sample_indices(4000, gen);  // nothing fitted yet: uniform
  EXPECT_NEAR((uniform == 1).to(at::kDouble).mean().item<double>(), 0.25, 0.02);
  // Position (0, 0) always code 3; position (1, 1) code 0 three times in four, else code 2.
  at::Tensor idx = at::zeros({400, 2, 2}, at::kLong);
  idx.index_put_({at::indexing::Slice(), 0, 0}, 3);
  idx.index_put_({at::indexing::Slice(0, 100), 1, 1}, 2);
  m->fit_prior(idx, true);
  at::Tensor s = m->sample_indices(4000, gen);
  EXPECT_TRUE((s.index({at::indexing::Slice(), 0, 0}) == 3).all().item<bool>());
  const double p0 = (s.index({at::indexing::Slice(), 1, 1}) == 0).to(at::kDouble).mean().item<double>();
  EXPECT_NEAR(p0, 0.75, 0.03);  // binomial sd 0.007
  EXPECT_TRUE(((s.index({at::indexing::Slice(), 1, 1}) == 0) | (s.index({at::indexing::Slice(), 1, 1}) == 2)).all().item<bool>());
}

TEST(VqVae, TheAutoregressivePriorLearnsWhatThePerPositionOneCannot) {
  // 2x2 grids of K = 4 codes whose right column copies the left: every position is uniform on its
  // own (categorical NLL 4 ln 4 = 5.55 nats per grid), but given its left neighbour the right code
  // is certain (autoregressive NLL -> 2 ln 4 = 2.77).
  at::manual_seed(10);
  VqVae m = make_vq_vae(vq_config(4, 2), {1, 8, 8});
  at::Generator gen = generator(11);
  at::Tensor left = at::randint(4, {2000, 2, 1}, gen, at::kLong);
  at::Tensor grids = at::cat({left, left}, 2);  // [N, 2, 2]
  m->fit_prior(grids, true);
  EXPECT_FALSE(m->prior_trained());
  EXPECT_NEAR(m->prior_nll(grids, false), 4 * std::log(4.0), 0.05);
  m->train_prior(grids, 30, 1e-2, gen);
  EXPECT_TRUE(m->prior_trained());
  const double ar = m->prior_nll(grids, true);
  EXPECT_LT(ar, 2 * std::log(4.0) + 0.15);
  EXPECT_GT(ar, 2 * std::log(4.0) - 0.15);  // and no better than the truth allows
  at::Tensor s = m->sample_indices(1000, gen);
  const double copies = (s.select(2, 0) == s.select(2, 1)).all(1).to(at::kDouble).mean().item<double>();
  EXPECT_GT(copies, 0.95);
  EXPECT_NEAR((s.select(2, 0) == 2).to(at::kDouble).mean().item<double>(), 0.25, 0.04);
}

TEST(VqVae, CheckpointKeepsWeightsCodebookAndPrior) {
  at::manual_seed(8);
  test::TempDir dir;
  CheckpointInfo info;
  info.model = vq_config();
  info.data_shape = {1, 8, 8};
  VqVae m = make_vq_vae(info.model, info.data_shape);
  at::Generator gen = generator(9);
  m->init_codebook_kmeans(at::randn({50, 3}), 5, gen);
  m->fit_prior(at::randint(8, {10, 2, 2}, at::kLong), true);
  m->train_prior(at::randint(8, {10, 2, 2}, at::kLong), 1, 1e-3, gen);
  checkpoint_save(dir / "vq.safetensors", info, *m, nullptr);
  LoadedCheckpoint ck = checkpoint_load(dir / "vq.safetensors");
  auto* vq = dynamic_cast<VqVaeImpl*>(ck.model.get());
  ASSERT_TRUE(vq);
  EXPECT_FALSE(ck.model->gaussian_latent());
  EXPECT_THROW(ck.vae("latent interpolate"), Error);
  auto a = named_state(*m), b = named_state(*vq);
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].first, b[i].first);
    EXPECT_TRUE(at::equal(a[i].second, b[i].second)) << a[i].first;
  }
  EXPECT_TRUE(vq->prior_trained());
  bool has_prior = false;
  for (const auto& [name, t] : b) has_prior = has_prior || name == "prior.counts";
  EXPECT_TRUE(has_prior);
}

}  // namespace
}  // namespace latent
