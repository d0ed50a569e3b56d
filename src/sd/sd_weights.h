// Reading SD autoencoder weight files into one naming: every published layout is renamed to the
// diffusers state-dict names (AutoencoderKL or AutoencoderTiny), checked strictly against the tensors
// the architecture needs, and converted to float32.
#pragma once

#include <ATen/Tensor.h>

#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "latent/sd_vae.h"

namespace latent {

/// A weight file's tensors under diffusers names, handed to a model's constructor one by one: the
/// module tree the constructor builds is the one list of the tensors an architecture needs.
struct SdWeights {
  SdVaeConfig config;
  std::map<std::string, at::Tensor> tensors;  // diffusers names -> as stored (mapped)
  std::string dtype;                          // "F32", "F16", "BF16" or "mixed" (after check_all_taken)
  std::string layout;                         // e.g. "ldm, prefix first_stage_model."
  // For messages: the file, each tensor's name in it, and problems found while renaming.
  std::string path, file_prefix;
  bool ldm_names = false;  // the file uses LDM names
  int64_t ldm_levels = 0;  // its decoder levels (LDM numbers them the other way round)
  std::map<std::string, std::string> file_names;
  std::vector<std::string> problems;

  /// The tensor `name`, which the architecture wants of shape `shape`: float32 and contiguous,
  /// except 3x3 convolution kernels (as stored, F32/F16/BF16). A missing, wrongly shaped or
  /// wrongly typed tensor is recorded (an undefined tensor comes back for a missing one).
  at::Tensor take(const std::string& name, const std::vector<int64_t>& shape);
  /// After the constructor took what it needs: throws latent::Error listing every missing,
  /// unexpected and wrongly shaped tensor at once, in the file's own names; else sets dtype and
  /// lets the map go.
  void check_all_taken();

 private:
  std::set<std::string> taken_, dtypes_;
  std::vector<std::string> missing_, shaped_;
};

/// Loads and renames the tensors and infers or reads the config; the model's constructor then
/// takes each tensor (SdWeights::take) and checks that none is left (check_all_taken).
SdWeights sd_weights_load(const std::string& path, std::optional<double> scaling_factor);

/// The diffusers name of a tensor named in the original LDM layout (`levels`: the decoder's levels,
/// whose order LDM reverses); names that are not LDM's come back unchanged.
std::string sd_name_from_ldm(const std::string& name, int64_t levels);
/// The reverse, for naming missing tensors in the file's own layout.
std::string sd_name_to_ldm(const std::string& name, int64_t levels);

}  // namespace latent
