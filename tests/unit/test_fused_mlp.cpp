// The fused MLP step against autograd on the same model and batch, and its elementwise
// approximations against the C library.
#include <cmath>

#include "cpu/kernels.h"
#include "latent/checkpoint.h"
#include "models/vae/steps.h"
#include "test_util.h"

namespace latent {
namespace {

using test::all_close;

TEST(FusedKernels, ExpAndLog1pAreAccurate) {
  double worst_exp = 0, worst_log = 0;
  for (int i = 0; i <= 200000; ++i) {
    const float x = -87.0f * static_cast<float>(i) / 200000;
    worst_exp = std::max(worst_exp, std::abs(cpu::exp_nonpositive(x) / std::exp(double(x)) - 1));
    const float e = static_cast<float>(i) / 200000;
    worst_log = std::max(worst_log, std::abs(cpu::log1p_unit(e) - std::log1p(double(e))));
  }
  EXPECT_LT(worst_exp, 4e-7);  // a few float ulps (relative)
  EXPECT_LT(worst_log, 3e-7);  // a few float ulps of log 2 (absolute)
}

TEST(FusedKernels, SoftplusTableIsAccurate) {
  // log(1 + exp(-a)) from the table the AVX-512 likelihood pass uses: float32 rounding of values up to log 2.
  double worst = 0;
  for (int i = 0; i <= 400000; ++i) {
    const float a = 40.0f * static_cast<float>(i) / 400000;
    worst = std::max(worst, std::abs(cpu::softplus_of_nonnegative(a) - std::log1p(std::exp(-double(a)))));
  }
  EXPECT_LT(worst, 1.5e-7);
}

TEST(FusedKernels, BernoulliLogProbRowsMatchFloat64) {
  // Whole rows (a tail shorter than 16, logits beyond +-32) against float64: 1e-5 relative, on
  // every variant this CPU runs.
  for (const cpu::Kernels* k : cpu::variants())
    for (int64_t D : {5, 37, 784}) {
      SCOPED_TRACE(cpu::isa_name(k->isa));
      at::manual_seed(13);
      at::Tensor l = at::randn({6, D}) * 12, x = at::rand({6, D});
      std::vector<const float*> rows;
      for (int64_t r = 0; r < 6; ++r) rows.push_back(x.data_ptr<float>() + r * D);
      std::vector<double> out(6);
      k->bernoulli_log_prob_rows(l.data_ptr<float>(), rows.data(), out.data(), 0, 6, D);
      const at::Tensor ld = l.to(at::kDouble), xd = x.to(at::kDouble);
      const at::Tensor expect = (xd * ld - (ld.clamp_min(0) + at::log1p(at::exp(-ld.abs())))).sum(1);
      for (int64_t r = 0; r < 6; ++r)
        EXPECT_NEAR(out[r], expect[r].item<double>(), 1e-5 * std::abs(expect[r].item<double>())) << D << " row " << r;
    }
}

struct FusedCase {
  std::string config;
  std::vector<int64_t> shape;
};

class FusedVsAutograd : public ::testing::TestWithParam<FusedCase> {};

TEST_P(FusedVsAutograd, SameLossAndGradients) {
  // float32 both ways; the products run in a different order, so 1e-4 relative + 1e-6 absolute.
  ModelConfig c = ModelConfig::from_text_or_file(GetParam().config);
  at::manual_seed(1);
  Vae a = make_vae(c, GetParam().shape);
  Vae b = make_vae(c, GetParam().shape);
  {
    at::NoGradGuard ng;
    auto pa = named_parameters(*a), pb = named_parameters(*b);
    for (size_t i = 0; i < pa.size(); ++i) pb[i].second.copy_(pa[i].second);
  }
  auto ref = make_autograd_step(*a);
  auto fused = make_fused_mlp_step(*b);
  ASSERT_TRUE(fused);
  std::vector<int64_t> xs{37};
  xs.insert(xs.end(), GetParam().shape.begin(), GetParam().shape.end());
  for (int64_t batch : {37, 11}) {  // a smaller batch reuses the buffers of the larger one
    xs[0] = batch;
    at::Tensor x = at::rand(xs);
    if (c.likelihood == Likelihood::kBernoulli) x.narrow(0, 0, batch / 2).round_();
    at::Tensor eps = at::randn({batch, c.latent});
    StepLoss la = ref->run(x, eps, 0.8), lb = fused->run(x, eps, 0.8);
    EXPECT_NEAR(la.loss, lb.loss, 1e-4 * std::abs(la.loss));
    EXPECT_NEAR(la.recon, lb.recon, 1e-4 * std::abs(la.recon));
    EXPECT_NEAR(la.kl, lb.kl, 1e-4 * std::abs(la.kl) + 1e-6);
    auto pa = named_parameters(*a), pb = named_parameters(*b);
    for (size_t i = 0; i < pa.size(); ++i)
      EXPECT_TRUE(all_close(pb[i].second.grad(), pa[i].second.grad(), 1e-4, 1e-6)) << pa[i].first;
  }
}

INSTANTIATE_TEST_SUITE_P(
    Models, FusedVsAutograd,
    ::testing::Values(
        FusedCase{R"({"type": "mlp_vae", "hidden": [32, 16], "latent": 5})", {1, 4, 5}},
        FusedCase{R"({"type": "mlp_vae", "hidden": [], "latent": 3})", {9}},
        FusedCase{R"({"type": "mlp_vae", "hidden": [24], "latent": 4, "likelihood": "gaussian", "sigma": 0.2})", {13}},
        FusedCase{R"({"type": "mlp_vae", "hidden": [24], "latent": 4, "likelihood": "gaussian", "variance": "learned"})", {13}}));

TEST(FusedMlp, MixedPrecisionStepStaysWithinBFloat16Rounding) {
  // bf16 rounds each product's operands to 8 significant bits (2^-9 relative) and sums in float32:
  // against the float32 step the loss moves by < 1e-3 relative and every gradient by < 3e-2 of its
  // norm; the products of the latent code's width (20 < 64) stay float32. A gradient equal to
  // float32's would mean bf16 never ran.
  ModelConfig c = ModelConfig::from_text_or_file(R"({"type": "mlp_vae", "hidden": [96], "latent": 5})");
  at::manual_seed(12);
  Vae a = make_vae(c, {100});
  Vae b = make_vae(c, {100});
  {
    at::NoGradGuard ng;
    auto pa = named_parameters(*a), pb = named_parameters(*b);
    for (size_t i = 0; i < pa.size(); ++i) pb[i].second.copy_(pa[i].second);
  }
  auto fp32 = make_fused_mlp_step(*a);
  LATENT_SKIP_WITHOUT_BF16();
  std::unique_ptr<VaeStep> bf16 = make_fused_mlp_step(*b, Precision::kBFloat16);
  ASSERT_TRUE(bf16);
  for (int rep = 0; rep < 2; ++rep) {  // the second step must not reuse the first step's rounded operands
    at::Tensor x = at::bernoulli(at::full({128, 100}, 0.3));
    at::Tensor eps = at::randn({128, 5});
    if (rep == 1) {
      at::NoGradGuard ng;
      for (auto& [name, p] : named_parameters(*a)) p.mul_(1.5);
      for (auto& [name, p] : named_parameters(*b)) p.mul_(1.5);
    }
    StepLoss la = fp32->run(x, eps, 1.0), lb = bf16->run(x, eps, 1.0);
    EXPECT_NEAR(la.loss, lb.loss, 1e-3 * std::abs(la.loss));
    auto pa = named_parameters(*a), pb = named_parameters(*b);
    bool any_differs = false;
    for (size_t i = 0; i < pa.size(); ++i) {
      const at::Tensor ga = pa[i].second.grad(), gb = pb[i].second.grad();
      EXPECT_LT((ga - gb).norm().item<double>(), 3e-2 * ga.norm().item<double>() + 1e-7) << pa[i].first << " step " << rep;
      any_differs = any_differs || !ga.equal(gb);
    }
    EXPECT_TRUE(any_differs);
  }
}

TEST(FusedMlp, DoesNotApplyToOtherModels) {
  EXPECT_FALSE(make_fused_mlp_step(*make_vae(
      ModelConfig::from_text_or_file(R"({"type": "mlp_vae", "hidden": [8], "latent": 2, "activation": "tanh"})"), {4})));
  EXPECT_FALSE(make_fused_mlp_step(
      *make_vae(ModelConfig::from_text_or_file(R"({"type": "conv_vae", "channels": [4], "latent": 2})"), {1, 4, 4})));
}

}  // namespace
}  // namespace latent

#include <ATen/CPUGeneratorImpl.h>

#include "eval/fused_decoder.h"
#include "latent/error.h"
#include "latent/eval.h"
#include "latent/objective.h"
#include "latent/train.h"

namespace latent {
namespace {

TEST(FusedMlpDecoder, LogLikelihoodMatchesTheModel) {
  // float32 both ways, different summation order: 1e-5 relative.
  at::manual_seed(4);
  Vae m = make_vae(ModelConfig::from_text_or_file(R"({"type": "mlp_vae", "hidden": [32, 16], "latent": 5})"), {1, 6, 5});
  auto fused = FusedMlpDecoder::make(*m);
  ASSERT_TRUE(fused);
  at::NoGradGuard ng;
  at::Tensor x = at::bernoulli(at::full({3, 30}, 0.3));
  at::Tensor z = at::randn({7, 5});
  std::vector<const float*> rows;
  for (int64_t r = 0; r < 7; ++r) rows.push_back(x.data_ptr<float>() + (r % 3) * 30);  // rows share images
  std::vector<double> out(7);
  fused->log_likelihood(z.data_ptr<float>(), 7, rows.data(), out.data());
  at::Tensor expect = m->log_likelihood(m->decode(z), x.index_select(0, at::arange(7) % 3).reshape({7, 1, 6, 5}));
  for (int64_t r = 0; r < 7; ++r) EXPECT_NEAR(out[r], expect[r].item<double>(), 1e-5 * std::abs(out[r])) << r;
  EXPECT_FALSE(FusedMlpDecoder::make(*make_vae(
      ModelConfig::from_text_or_file(R"({"type": "mlp_vae", "hidden": [8], "latent": 2, "likelihood": "gaussian"})"), {4})));
}

TEST(FusedMlpDecoder, LogitsMatchTheModelsDecoder) {
  // The explorer's decode path: float32 both ways, different summation order: 1e-5 absolute.
  at::manual_seed(5);
  Vae m = make_vae(ModelConfig::from_text_or_file(R"({"type": "mlp_vae", "hidden": [32, 16], "latent": 5})"), {1, 6, 5});
  auto fused = FusedMlpDecoder::make(*m);
  ASSERT_TRUE(fused);
  at::NoGradGuard ng;
  at::Tensor z = at::randn({9, 5});
  at::Tensor got = fused->logits(z);
  EXPECT_EQ(got.sizes(), at::IntArrayRef({9, 1, 6, 5}));
  EXPECT_TRUE(test::all_close(got, m->decode(z), 0, 1e-5));
}

TEST(FusedMlpDecoder, IwaeEstimateEqualsTheGenericPath) {
  // Same noise stream, so the fused and generic estimates agree to float rounding (1e-4 nats).
  at::manual_seed(6);
  ModelConfig relu = ModelConfig::from_text_or_file(R"({"type": "mlp_vae", "hidden": [16], "latent": 3})");
  Vae m = make_vae(relu, {12});
  at::Tensor x = at::bernoulli(at::full({5, 12}, 0.4));
  at::Tensor fused = iwae_log_likelihood(*m, x, 300, 9, 128);
  // The generic path by hand, replaying the same noise stream (128-sample chunks).
  at::NoGradGuard ng;
  at::Tensor generic = at::empty({5}, at::kDouble);
  for (int64_t i = 0; i < 5; ++i) {
    at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(mix_seed(9, i));  // each image its own stream
    at::Tensor xb = x.narrow(0, i, 1);
    Posterior q = m->encode(xb);
    std::vector<at::Tensor> lws;
    for (int64_t k0 = 0; k0 < 300; k0 += 128)
      lws.push_back(
          iwae_log_weights(*m, xb, q, at::randn({std::min<int64_t>(128, 300 - k0), 1, 3}, gen, at::kFloat)).to(at::kDouble));
    generic[i] = (at::logsumexp(at::cat(lws), 0) - std::log(300.0))[0];
  }
  EXPECT_TRUE(test::all_close(fused, generic, 0, 1e-4));
}

TEST(FusedMlpDecoder, OneImagesRowsMatchTheGeneralPath) {
  // log_likelihood_one restricts the last layer to the hidden units its rows use: the same values as
  // log_likelihood (float32, 1e-5 relative), with units that never fire among them.
  at::manual_seed(10);
  Vae m = make_vae(ModelConfig::from_text_or_file(R"({"type": "mlp_vae", "hidden": [100], "latent": 4})"), {1, 8, 8});
  {
    at::NoGradGuard ng;
    for (auto& [name, p] : named_parameters(*m))
      if (name == "decoder.0.bias") p.narrow(0, 0, 30).fill_(-50.0);
  }
  for (Precision p : {Precision::kFloat32, Precision::kBFloat16x3}) {
    if (p != Precision::kFloat32 && !cpu::features().bf16) continue;  // (bf16x3 needs bfloat16 dot products)
    std::unique_ptr<FusedMlpDecoder> fused = FusedMlpDecoder::make(*m, p);
    ASSERT_TRUE(fused);
    at::Tensor x = at::bernoulli(at::full({64}, 0.3));
    at::Tensor z = at::randn({300, 4});
    std::vector<double> one(300), general(300);
    fused->log_likelihood_one(z.data_ptr<float>(), 300, x.data_ptr<float>(), 128, one.data());
    const std::vector<const float*> rows(300, x.data_ptr<float>());
    fused->log_likelihood(z.data_ptr<float>(), 300, rows.data(), general.data());
    for (int r = 0; r < 300; ++r)
      EXPECT_NEAR(one[r], general[r], 1e-5 * std::abs(general[r])) << precision_name(p) << " row " << r;
  }
}

TEST(FusedMlpDecoder, IwaeEstimateDoesNotDependOnThreadsAndBFloat16x3AgreesWithFloat32) {
  at::manual_seed(11);
  Vae m = make_vae(ModelConfig::from_text_or_file(R"({"type": "mlp_vae", "hidden": [96], "latent": 3})"), {40});
  at::Tensor x = at::bernoulli(at::full({6, 40}, 0.4));
  const int threads = at::get_num_threads();
  at::set_num_threads(1);
  const at::Tensor one = iwae_log_likelihood(*m, x, 700, 3, 256);
  at::set_num_threads(2);
  const at::Tensor two = iwae_log_likelihood(*m, x, 700, 3, 256);
  at::set_num_threads(threads);
  EXPECT_TRUE(one.equal(two)) << "each image draws from its own generator, whatever thread runs it";
  LATENT_SKIP_WITHOUT_BF16();
  Precision used = Precision::kFloat32;
  const at::Tensor x3 = iwae_log_likelihood(*m, x, 700, 3, 256, false, Precision::kBFloat16x3, &used);
  EXPECT_EQ(used, Precision::kBFloat16x3);
  EXPECT_TRUE(test::all_close(x3, one, 0, 1e-4)) << "bf16x3 moves the estimate by far less than 1e-4 nats";
}

}  // namespace
}  // namespace latent
