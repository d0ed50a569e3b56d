// The two SD autoencoders behind SdAutoencoder, made from checked weights and a set of operations.
#pragma once

#include <memory>

#include "cpu/sd_ops.h"
#include "latent/sd_vae.h"
#include "sd/sd_weights.h"

namespace latent {

/// One untiled batch through either half of a network; SdAutoencoder adds scaling, tiling and checks.
class SdNetwork {
 public:
  virtual ~SdNetwork() = default;
  /// The posterior's mean and log-variance, unscaled (TAESD: logvar undefined).
  virtual void posterior(const at::Tensor& images, at::Tensor& mean, at::Tensor& logvar) = 0;
  /// Unscaled latents -> images.
  virtual at::Tensor decode_unscaled(const at::Tensor& z) = 0;
};

/// Build the network from `weights` (SdWeights::take for each tensor; check_all_taken throws for
/// any that do not fit).
std::unique_ptr<SdNetwork> make_autoencoder_kl(SdWeights& weights, std::unique_ptr<SdOps> ops);
std::unique_ptr<SdNetwork> make_taesd(SdWeights& weights, std::unique_ptr<SdOps> ops);

}  // namespace latent
