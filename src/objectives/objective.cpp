#include "latent/objective.h"

#include <ATen/ATen.h>

#include <cmath>

namespace latent {
namespace {
constexpr double kLog2Pi = 1.8378770664093453;
}

at::Tensor kl_standard_normal_per_dim(const at::Tensor& mu, const at::Tensor& logvar) {
  return 0.5 * (mu.square() + logvar.exp() - 1.0 - logvar);  // [B, d]
}

at::Tensor kl_standard_normal(const at::Tensor& mu, const at::Tensor& logvar) {
  return kl_standard_normal_per_dim(mu, logvar).sum(-1);  // [B]
}

at::Tensor reparameterize(const at::Tensor& mu, const at::Tensor& logvar, const at::Tensor& eps) {
  return mu + at::exp(0.5 * logvar) * eps;
}

at::Tensor log_bernoulli(const at::Tensor& logits, const at::Tensor& x) {
  // -BCE(logits, x) = x*l - softplus(l); binary_cross_entropy_with_logits is the stable form.
  at::Tensor nll = at::binary_cross_entropy_with_logits(logits, x, {}, {}, at::Reduction::None);
  return -nll.reshape({nll.size(0), -1}).sum(1);  // [B]
}

at::Tensor log_gaussian(const at::Tensor& mean, const at::Tensor& logvar, const at::Tensor& x) {
  at::Tensor lp = -0.5 * (kLog2Pi + logvar + (x - mean).square() * at::exp(-logvar));
  return lp.reshape({lp.size(0), -1}).sum(1);  // [B]
}

at::Tensor log_standard_normal(const at::Tensor& z) { return -0.5 * (z.square() + kLog2Pi).sum(-1); }

at::Tensor log_normal(const at::Tensor& z, const at::Tensor& mu, const at::Tensor& logvar) {
  return -0.5 * (kLog2Pi + logvar + (z - mu).square() * at::exp(-logvar)).sum(-1);
}

ElboTerms elbo_terms(VaeImpl& model, const at::Tensor& x, const at::Tensor& eps) {
  Posterior q = model.encode(x);                       // [B, d]
  at::Tensor z = reparameterize(q.mu, q.logvar, eps);  // [B, d]
  at::Tensor params = model.decode(z);                 // [B, D...]
  return {-model.log_likelihood(params, x), kl_standard_normal(q.mu, q.logvar), q};
}

at::Tensor iwae_log_weights(VaeImpl& model, const at::Tensor& x, const Posterior& q, const at::Tensor& eps) {
  const int64_t K = eps.size(0), B = eps.size(1), d = eps.size(2);
  at::Tensor z = reparameterize(q.mu.unsqueeze(0), q.logvar.unsqueeze(0), eps);  // [K, B, d]
  at::Tensor params = model.decode(z.reshape({K * B, d}));                       // [K*B, D...]
  std::vector<int64_t> xs{K, B};
  xs.insert(xs.end(), x.sizes().begin() + 1, x.sizes().end());
  at::Tensor x_rep = x.unsqueeze(0).expand(xs).reshape(params.sizes());     // [K*B, D...]
  at::Tensor log_px = model.log_likelihood(params, x_rep).reshape({K, B});  // [K, B]
  return log_px + log_prior_ratio(q, z, eps);                               // [K, B]
}

at::Tensor log_prior_ratio(const Posterior& q, const at::Tensor& z, const at::Tensor& eps) {
  // log q(z|x) with z - mu = sigma * eps: -0.5 * sum(log 2pi + logvar + eps^2)
  at::Tensor log_q = -0.5 * (kLog2Pi + q.logvar.unsqueeze(0) + eps.square()).sum(-1);  // [K, B]
  return log_standard_normal(z) - log_q;                                               // [K, B]
}

at::Tensor kl_free_bits(const at::Tensor& mu, const at::Tensor& logvar, double lambda) {
  at::Tensor per_dim = kl_standard_normal_per_dim(mu, logvar).mean(0);  // [d]
  return at::clamp_min(per_dim, lambda).sum();
}

double kl_weight(double beta, double epoch, double warmup, double cycle, double ratio) {
  if (cycle > 0) {
    const double phase = std::fmod(epoch, cycle) / cycle;  // [0, 1)
    return beta * std::min(1.0, phase / std::max(ratio, 1e-12));
  }
  if (warmup > 0) return beta * std::min(1.0, epoch / warmup);
  return beta;
}

at::Tensor iwae_bound(const at::Tensor& log_weights) {
  return at::logsumexp(log_weights, 0) - std::log(static_cast<double>(log_weights.size(0)));  // [B]
}

}  // namespace latent
