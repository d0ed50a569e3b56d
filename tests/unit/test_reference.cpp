// ELBO terms, the IWAE bound and every parameter gradient of small fixed mlp_vae models against
// fixtures written by tests/make_fixtures.py (PyTorch, float64, same weights and noise).
// Tolerances: float64 paths 1e-9 relative (only summation order differs); the float32 fused
// and autograd steps 2e-4 relative + 1e-5 absolute (float32 rounding through a few layers).
#include <nlohmann/json.hpp>

#include "latent/checkpoint.h"
#include "latent/objective.h"
#include "models/vae/steps.h"
#include "test_util.h"

namespace latent {
namespace {

using test::all_close;

struct Reference {
  SafetensorsFile file;
  ModelConfig config;
  double beta = 1;
  Vae model;

  at::Tensor t(const std::string& name) const {
    at::Tensor v = file.find(name);
    EXPECT_TRUE(v.defined()) << name;
    return v;
  }
};

Reference load_reference(const std::string& name, at::ScalarType dtype) {
  Reference r;
  r.file = safetensors_load(std::string(LATENT_FIXTURES) + "/" + name + ".safetensors");
  r.config = ModelConfig::from_json(nlohmann::json::parse(r.file.metadata.at("config")));
  r.beta = std::stod(r.file.metadata.at("beta"));
  r.model = make_vae(r.config, {std::stoll(r.file.metadata.at("data_dim"))});
  r.model->to(dtype);
  SafetensorsFile weights;
  for (const auto& [n, t] : r.file.tensors)
    if (n.find('.') != std::string::npos && n.rfind("input.", 0) != 0 && n.rfind("expect.", 0) != 0 && n.rfind("grad.", 0) != 0 &&
        n.rfind("iwae_grad.", 0) != 0)
      weights.tensors.emplace_back(n, t);
  for (const auto& [n, t] : r.file.tensors)
    if (n == "decoder_logvar") weights.tensors.emplace_back(n, t);
  load_parameters(*r.model, weights, name);
  return r;
}

class ReferenceTest : public ::testing::TestWithParam<std::string> {};

TEST_P(ReferenceTest, ElboAndGradientsMatchPyTorchInFloat64) {
  Reference r = load_reference(GetParam(), at::kDouble);
  ElboTerms terms = elbo_terms(*r.model, r.t("input.x"), r.t("input.eps"));
  EXPECT_TRUE(all_close(terms.recon, r.t("expect.recon"), 1e-9, 1e-12));
  EXPECT_TRUE(all_close(terms.kl, r.t("expect.kl"), 1e-9, 1e-12));
  at::Tensor loss = (terms.recon + r.beta * terms.kl).mean();
  EXPECT_TRUE(all_close(loss.reshape({1}), r.t("expect.loss"), 1e-9, 1e-12));
  loss.backward();
  for (auto& [name, p] : named_parameters(*r.model)) EXPECT_TRUE(all_close(p.grad(), r.t("grad." + name), 1e-8, 1e-11)) << name;
}

TEST_P(ReferenceTest, IwaeBoundAndGradientsMatchPyTorchInFloat64) {
  Reference r = load_reference(GetParam(), at::kDouble);
  at::Tensor x = r.t("input.x");
  Posterior q = r.model->encode(x);
  at::Tensor bound = iwae_bound(iwae_log_weights(*r.model, x, q, r.t("input.eps_k")));
  EXPECT_TRUE(all_close(bound, r.t("expect.iwae"), 1e-9, 1e-12));
  (-bound.mean()).backward();
  for (auto& [name, p] : named_parameters(*r.model))
    EXPECT_TRUE(all_close(p.grad(), r.t("iwae_grad." + name), 1e-8, 1e-11)) << name;
}

TEST_P(ReferenceTest, Float32TrainStepsMatchPyTorch) {
  for (bool fused : {false, true}) {
    Reference r = load_reference(GetParam(), at::kFloat);
    std::unique_ptr<VaeStep> step = fused ? make_fused_mlp_step(*r.model) : make_autograd_step(*r.model);
    ASSERT_TRUE(step) << "fused step should apply to mlp_vae with ReLU";
    StepLoss l = step->run(r.t("input.x").to(at::kFloat), r.t("input.eps").to(at::kFloat), r.beta);
    const double expect = r.t("expect.loss").item<double>();
    EXPECT_NEAR(l.loss, expect, 2e-4 * std::abs(expect) + 1e-5) << (fused ? "fused" : "autograd");
    EXPECT_NEAR(l.recon, r.t("expect.recon").mean().item<double>(), 2e-4 * std::abs(expect) + 1e-5);
    EXPECT_NEAR(l.kl, r.t("expect.kl").mean().item<double>(), 2e-4 * std::abs(expect) + 1e-5);
    for (auto& [name, p] : named_parameters(*r.model))
      EXPECT_TRUE(all_close(p.grad(), r.t("grad." + name), 2e-4, 1e-5)) << name << (fused ? " (fused)" : " (autograd)");
  }
}

INSTANTIATE_TEST_SUITE_P(Fixtures, ReferenceTest,
                         ::testing::Values("mlp_bernoulli", "mlp_gaussian_fixed", "mlp_gaussian_learned"));

}  // namespace
}  // namespace latent

namespace latent {
namespace {

TEST_P(ReferenceTest, IwaeTrainingStepGradientsMatchPyTorch) {
  // The --objective iwae step: -mean(IWAE bound) with the fixture's eps_k, float64, 1e-8 relative.
  Reference r = load_reference(GetParam(), at::kDouble);
  auto step = make_iwae_step(*r.model);
  StepLoss l = step->run(r.t("input.x"), r.t("input.eps_k"), 1.0);
  EXPECT_NEAR(l.loss, -r.t("expect.iwae").mean().item<double>(), 1e-9 * std::abs(l.loss));
  for (auto& [name, p] : named_parameters(*r.model))
    EXPECT_TRUE(test::all_close(p.grad(), r.t("iwae_grad." + name), 1e-8, 1e-11)) << name;
}

}  // namespace
}  // namespace latent
