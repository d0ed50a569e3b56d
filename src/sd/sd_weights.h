// Reading SD autoencoder weight files into one naming: every published layout is renamed to the
// diffusers state-dict names (AutoencoderKL or AutoencoderTiny), checked strictly against the tensors
// the architecture needs, and converted to float32.
#pragma once

#include <ATen/Tensor.h>

#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "latent/sd_vae.h"

namespace latent {

struct SdWeights {
  SdVaeConfig config;
  std::map<std::string, at::Tensor> tensors;  // diffusers names -> float32, contiguous
  std::string dtype;                          // "F32", "F16", "BF16" or "mixed"
  std::string layout;                         // e.g. "ldm, prefix first_stage_model."
};

/// Loads, renames, infers or reads the config and checks every tensor; throws latent::Error listing
/// all problems at once.
SdWeights sd_weights_load(const std::string& path, std::optional<double> scaling_factor);

/// The tensors an architecture needs: diffusers name -> shape, in forward order.
std::vector<std::pair<std::string, std::vector<int64_t>>> sd_expected_tensors(const SdVaeConfig& config);

/// The diffusers name of a tensor named in the original LDM layout (`levels`: the decoder's levels,
/// whose order LDM reverses); names that are not LDM's come back unchanged.
std::string sd_name_from_ldm(const std::string& name, int64_t levels);
/// The reverse, for naming missing tensors in the file's own layout.
std::string sd_name_to_ldm(const std::string& name, int64_t levels);

}  // namespace latent
