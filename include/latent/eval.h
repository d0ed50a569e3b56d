/// @brief Evaluation: test ELBO, reconstruction, KL, active units, per-dimension KL and the
/// importance-weighted NLL estimate (Burda et al. 2015).
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <vector>

#include "latent/data.h"
#include "latent/distributed.h"
#include "latent/model.h"
#include "latent/precision.h"

namespace latent {

struct EvalOptions {
  int64_t batch_size = 500;
  uint64_t seed = 1;
  int64_t iwae_k = 0;        // 0: skip the IWAE estimate
  int64_t iwae_rows = 1024;  // decoder rows per batched product in the IWAE estimate (1024: measured fastest)
  Precision iwae_precision = Precision::kFloat32;  // of the IWAE estimate's decoder products (mlp_vae, ReLU, Bernoulli)
  bool progress = false;
  /// A job of several ranks: the IWAE images are split over them and gathered (the same numbers as
  /// one process, bit for bit); every rank computes the (cheap) ELBO terms and gets the result.
  Communicator* comm = nullptr;
};

struct EvalResult {
  int64_t examples = 0;
  double elbo = 0, recon = 0, kl = 0;  // nats per example; elbo = -(recon + kl)
  int64_t active_units = 0;            // dims with Cov_x(E_q[z_i]) > 0.01
  std::vector<double> kl_per_dim;
  std::vector<double> mu_variance;  // Cov_x(E_q[z_i]) per dim
  int64_t iwae_k = 0;
  double iwae_nll = 0;  // -log p(x) estimate with iwae_k samples (nats per example)
  Precision iwae_precision = Precision::kFloat32;
  double seconds = 0;

  nlohmann::json to_json() const;
};

EvalResult evaluate(VaeImpl& model, const Dataset& data, const EvalOptions& options);

/// The IWAE estimate of log p(x) for each example of x [N, D...] with k samples, accumulated in
/// float64 over chunks of samples. Returns float64 [N]. Each example draws its noise from its own
/// generator (seeded from `seed` and its index), so the result does not depend on thread count or
/// batching. `precision` applies to the decoder products of mlp_vae models with ReLU and a Bernoulli
/// likelihood (others always run in float32: `used`, when given, receives the one that ran); bf16 and
/// bf16x3 throw latent::Error where the CPU or the build cannot run them.
/// `first_index`: the index of x's first image in the whole set (each image's noise comes from
/// (seed, its index), so a part of a set gets the numbers the whole set would give it).
at::Tensor iwae_log_likelihood(VaeImpl& model, const at::Tensor& x, int64_t k, uint64_t seed, int64_t rows_per_batch,
                               bool progress = false, Precision precision = Precision::kFloat32, Precision* used = nullptr,
                               int64_t first_index = 0);

/// The images a job's rank takes for iwae_log_likelihood: whole batches of it, in order.
int64_t iwae_images_per_batch(int64_t k, int64_t rows_per_batch);

}  // namespace latent
