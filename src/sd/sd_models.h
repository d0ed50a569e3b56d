// The two SD autoencoders behind SdAutoencoder, made from checked weights and a set of operations.
#pragma once

#include <memory>

#include "latent/sd_vae.h"
#include "sd/sd_ops.h"
#include "sd/sd_weights.h"

namespace latent {

std::unique_ptr<SdAutoencoder> make_autoencoder_kl(SdWeights weights, std::unique_ptr<SdOps> ops);
std::unique_ptr<SdAutoencoder> make_taesd(SdWeights weights, std::unique_ptr<SdOps> ops);

}  // namespace latent
