// What every VAE family shares: reconstruction and sampling through encode/decode, the held-out
// ELBO metrics, the autograd and IWAE training steps, and the training loop's step that wraps them.
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include <cstdio>

#include "latent/error.h"
#include "latent/objective.h"
#include "models/vae/steps.h"

namespace latent {
namespace {

void zero_gradients(VaeImpl& model) {
  for (auto& p : model.parameters())
    if (p.grad().defined()) p.mutable_grad().zero_();
}

class AutogradStep : public VaeStep {
 public:
  AutogradStep(VaeImpl& model, double free_bits) : model_(model), free_bits_(free_bits) {}
  StepLoss run(const at::Tensor& x, const at::Tensor& eps, double beta) override {
    zero_gradients(model_);
    ElboTerms t = elbo_terms(model_, x, eps);
    at::Tensor recon = t.recon.mean(), kl = t.kl.mean();
    at::Tensor kl_term = free_bits_ > 0 ? kl_free_bits(t.q.mu, t.q.logvar, free_bits_) : kl;
    at::Tensor loss = recon + beta * kl_term;
    loss.backward();
    return {loss.item<double>(), recon.item<double>(), kl.item<double>()};
  }

 private:
  VaeImpl& model_;
  double free_bits_;
};

class IwaeStep : public VaeStep {
 public:
  explicit IwaeStep(VaeImpl& model) : model_(model) {}
  StepLoss run(const at::Tensor& x, const at::Tensor& eps, double /*beta*/) override {
    zero_gradients(model_);
    Posterior q = model_.encode(x);                          // [B, d]
    at::Tensor log_w = iwae_log_weights(model_, x, q, eps);  // [K, B]
    at::Tensor loss = -iwae_bound(log_w).mean();
    loss.backward();
    at::NoGradGuard no_grad;
    const at::Tensor z0 = reparameterize(q.mu, q.logvar, eps[0]);  // [B, d]
    const double recon = -model_.log_likelihood(model_.decode(z0), x).mean().item<double>();
    return {loss.item<double>(), recon, kl_standard_normal(q.mu, q.logvar).mean().item<double>()};
  }

 private:
  VaeImpl& model_;
};

class VaeTraining : public TrainingStep {
 public:
  VaeTraining(VaeImpl& model, std::unique_ptr<VaeStep> step, const TrainOptions& o)
      : model_(model), step_(std::move(step)), options_(o) {}

  BatchLoss run(const at::Tensor& x, const at::Tensor& /*index*/, const BatchRows& rows, at::Generator& gen,
                double kl_weight) override {
    const int64_t len = rows.rows, d = model_.latent_dim();
    at::Tensor eps = options_.objective == "iwae" ? rows.take(at::randn({options_.iwae_k, len, d}, gen, x.options()), 1)
                                                  : rows.take(at::randn({len, d}, gen, x.options()));
    StepLoss l = step_->run(x, eps, kl_weight);
    return {l.loss, {{"recon", l.recon}, {"kl", l.kl}}};
  }
  bool thread_invariant() const override { return step_->thread_invariant(); }

  void end_epoch(nlohmann::json& m, const Dataset& test, uint64_t eval_seed, bool /*last*/, const DataSplit& /*data*/,
                 bool progress) override {
    m["objective"] = options_.objective;
    m["precision"] = options_.precision;
    m["beta"] = options_.beta >= 0 ? options_.beta : model_.config().beta;
    m["train_elbo"] = -(m["train_recon"].get<double>() + m["train_kl"].get<double>());
    if (test.size() == 0) return;
    const nlohmann::json ev = model_.evaluate(test, eval_seed);
    m["test_elbo"] = ev["elbo"];
    m["test_recon"] = ev["recon"];
    m["test_kl"] = ev["kl"];
    m["active_units"] = ev["active_units"];
    if (progress)
      std::fprintf(stderr, "  test: elbo %.2f  recon %.2f  kl %.2f  active units %lld/%lld\n", ev["elbo"].get<double>(),
                   ev["recon"].get<double>(), ev["kl"].get<double>(), ev["active_units"].get<long long>(),
                   static_cast<long long>(model_.latent_dim()));
  }

 private:
  VaeImpl& model_;
  std::unique_ptr<VaeStep> step_;
  TrainOptions options_;
};

}  // namespace

std::unique_ptr<VaeStep> make_autograd_step(VaeImpl& model, double free_bits) {
  return std::make_unique<AutogradStep>(model, free_bits);
}

std::unique_ptr<VaeStep> make_iwae_step(VaeImpl& model) { return std::make_unique<IwaeStep>(model); }

std::unique_ptr<TrainingStep> vae_training_step(VaeImpl& model, std::unique_ptr<VaeStep> step, const TrainOptions& options) {
  return std::make_unique<VaeTraining>(model, std::move(step), options);
}

std::unique_ptr<TrainingStep> VaeImpl::training_step(const TrainOptions& o) {
  if (o.objective == "iwae") return vae_training_step(*this, make_iwae_step(*this), o);
  if (parse_precision(o.precision) != Precision::kFloat32)
    throw Error("--precision " + o.precision +
                " applies to the fused step only: an mlp_vae with ReLU, the elbo objective and no free bits");
  return vae_training_step(*this, make_autograd_step(*this, o.free_bits), o);
}

at::Tensor VaeImpl::reconstruct(const at::Tensor& x) { return likelihood_mean(decode(encode(x).mu)); }

at::Tensor VaeImpl::sample(int64_t n, at::Generator& gen, double temperature) {
  at::Tensor z = at::randn({n, latent_dim()}, gen, at::kFloat);  // [n, d]
  if (temperature != 1.0) z = z * temperature;
  return likelihood_mean(decode(z));
}

nlohmann::json VaeImpl::evaluate(const Dataset& data, uint64_t seed, int64_t batch_size) {
  at::NoGradGuard no_grad;
  eval();
  const int64_t examples = data.size(), d = latent_dim();
  nlohmann::json out = {{"examples", examples}};
  if (examples == 0) return out;
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  double recon = 0, kl = 0;
  at::Tensor kl_dims = at::zeros({d}, at::kDouble);
  at::Tensor mu_sum = at::zeros({d}, at::kDouble), mu_sq = at::zeros({d}, at::kDouble);
  for (int64_t start = 0; start < examples; start += batch_size) {
    const int64_t b = std::min(batch_size, examples - start);
    at::Tensor x = data.x.narrow(0, start, b);
    at::Tensor eps = at::randn({b, d}, gen, x.options());
    ElboTerms t = elbo_terms(*this, x, eps);
    recon += t.recon.sum().item<double>();
    kl += t.kl.sum().item<double>();
    kl_dims += kl_standard_normal_per_dim(t.q.mu, t.q.logvar).to(at::kDouble).sum(0);
    at::Tensor mu = t.q.mu.to(at::kDouble);
    mu_sum += mu.sum(0);
    mu_sq += mu.square().sum(0);
  }
  const double n = static_cast<double>(examples);
  at::Tensor mean = mu_sum / n;
  at::Tensor var = (mu_sq / n - mean.square()).clamp_min(0);
  kl_dims /= n;
  std::vector<double> kl_per_dim, mu_variance;
  int64_t active = 0;
  for (int64_t i = 0; i < d; ++i) {
    kl_per_dim.push_back(kl_dims[i].item<double>());
    mu_variance.push_back(var[i].item<double>());
    if (mu_variance.back() > 0.01) ++active;  // Burda et al.'s active units: Cov_x(E_q[z_i]) > 0.01
  }
  out["recon"] = recon / n;
  out["kl"] = kl / n;
  out["elbo"] = -(recon / n + kl / n);
  out["active_units"] = active;
  out["kl_per_dim"] = kl_per_dim;
  out["mu_variance"] = mu_variance;
  return out;
}

}  // namespace latent
