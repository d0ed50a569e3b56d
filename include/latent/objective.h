/// @brief The VAE objectives: closed-form KL, likelihoods, the ELBO and the IWAE bound.
///
/// Conventions: every function returns nats per example, shape [B] (summed over data or latent
/// dimensions). "recon" is the reconstruction term -log p(x|z) >= 0 for Bernoulli. The negative
/// ELBO of one example is recon + kl, and the training loss is mean_B(recon + beta * kl).
#pragma once

#include <ATen/Tensor.h>

#include "latent/model.h"

namespace latent {

/// KL(N(mu, exp(logvar)) || N(0, I)) = 0.5 * sum(mu^2 + exp(logvar) - 1 - logvar).  [B, d] -> [B]
at::Tensor kl_standard_normal(const at::Tensor& mu, const at::Tensor& logvar);
/// Per-dimension KL, [B, d] -> [B, d].
at::Tensor kl_standard_normal_per_dim(const at::Tensor& mu, const at::Tensor& logvar);

/// z = mu + exp(logvar / 2) * eps.
at::Tensor reparameterize(const at::Tensor& mu, const at::Tensor& logvar, const at::Tensor& eps);

/// log Bernoulli(x | sigmoid(logits)) summed over all but the first axis, computed on logits
/// (log-sum-exp form, no overflow for any logit). x may be fractional (continuous relaxation).
at::Tensor log_bernoulli(const at::Tensor& logits, const at::Tensor& x);
/// log N(x | mean, exp(logvar)) summed over all but the first axis.
at::Tensor log_gaussian(const at::Tensor& mean, const at::Tensor& logvar, const at::Tensor& x);
/// log N(z | 0, I) summed over the last axis; [..., d] -> [...].
at::Tensor log_standard_normal(const at::Tensor& z);
/// log N(z | mu, exp(logvar)) summed over the last axis, broadcasting.
at::Tensor log_normal(const at::Tensor& z, const at::Tensor& mu, const at::Tensor& logvar);

struct ElboTerms {
  at::Tensor recon;  // [B] -log p(x | z)
  at::Tensor kl;     // [B]
  Posterior q;       // [B, d]
};

/// One-sample ELBO terms with the given noise eps [B, d].
ElboTerms elbo_terms(VaeImpl& model, const at::Tensor& x, const at::Tensor& eps);

/// log w_k = log p(x, z_k) - log q(z_k | x) for z_k = mu + sigma * eps[k]; eps [K, B, d] -> [K, B].
/// With q already computed (pass q = model.encode(x)) so callers can chunk over K.
at::Tensor iwae_log_weights(VaeImpl& model, const at::Tensor& x, const Posterior& q, const at::Tensor& eps);

/// log p(z) - log q(z | x) for z = mu + sigma * eps: z and eps [K, B, d], q [B, d] -> [K, B].
at::Tensor log_prior_ratio(const Posterior& q, const at::Tensor& z, const at::Tensor& eps);

/// The K-sample importance-weighted bound log (1/K) sum_k w_k per example: [K, B] -> [B].
at::Tensor iwae_bound(const at::Tensor& log_weights);

/// The KL term with free bits (Kingma et al. 2016): sum_i max(lambda, mean_B KL_i), a scalar.
/// Dimensions whose batch-mean KL is under lambda nats get no gradient from the KL.
at::Tensor kl_free_bits(const at::Tensor& mu, const at::Tensor& logvar, double lambda);

/// The weight of the KL term at `epoch` (fractional: epoch + step / steps_per_epoch).
///   warmup > 0: rises linearly from 0 to beta over `warmup` epochs, then stays at beta.
///   cycle > 0: cyclical annealing (Fu et al. 2019): each cycle of `cycle` epochs rises linearly
///              from 0 to beta over the first `ratio` of the cycle, then holds beta.
///   both 0: beta.
double kl_weight(double beta, double epoch, double warmup, double cycle, double ratio);

}  // namespace latent
