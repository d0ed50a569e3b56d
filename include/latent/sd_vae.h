/// @brief Stable Diffusion's first-stage autoencoder (AutoencoderKL, "kl-f8") and TAESD, from the
/// published safetensors files.
///
/// `SdAutoencoder::load` reads every layout these weights are published in: diffusers
/// (`encoder.down_blocks.0.resnets.0.norm1.weight`), the original LDM names (`encoder.down.0.block.0...`,
/// decoder levels in reverse order), legacy diffusers attention names (`query/key/value/proj_attn`),
/// attention weights as Linear [C, C] or 1x1 conv [C, C, 1, 1], whole SD checkpoints (prefix
/// `first_stage_model.`) and `vae.`-prefixed files; F32, F16 and BF16 tensors. The architecture comes
/// from a `config.json` beside the file when there is one, else from the tensors' shapes; a file that
/// does not fit is refused with every missing, unexpected and wrongly shaped tensor listed at once.
///
/// Images are float [N, C, H, W] in [-1, 1] (SD's convention, not latent's usual [0, 1]); H and W
/// multiples of the downsampling factor (8 for SD). Latents handed in and out are *scaled*: the
/// posterior's sample or mean times the scaling factor (0.18215 for SD 1/2, 0.13025 for SDXL), the
/// values a diffusion model sees. TAESD's latents are already on that scale (its factor is 1).
#pragma once

#include <ATen/Tensor.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "latent/precision.h"

namespace latent {

struct SdVaeConfig {
  std::string type = "AutoencoderKL";  ///< or "AutoencoderTiny" (TAESD)
  int64_t in_channels = 3, out_channels = 3, latent_channels = 4;
  /// AutoencoderKL: channels per level, encoder order (SD: 128, 256, 512, 512). TAESD: the encoder's.
  std::vector<int64_t> block_out_channels;
  int64_t layers_per_block = 2;  ///< AutoencoderKL: resnets per encoder level (the decoder has one more)
  int64_t norm_num_groups = 32;
  bool use_quant_conv = true, use_post_quant_conv = true, mid_block_add_attention = true;
  /// TAESD only: the decoder's channels and the blocks per stage of each half.
  std::vector<int64_t> decoder_block_out_channels, num_encoder_blocks, num_decoder_blocks;
  double scaling_factor = 0.18215;
  double shift_factor = 0.0;  ///< latents = (z - shift) * scale (0 for SD 1/2 and SDXL)
  std::string source;         ///< where the architecture came from: "config.json" or "tensor shapes"

  /// Pixels per latent along each side (8 for SD's four levels).
  int64_t downsampling_factor() const;
};

struct SdLoadOptions {
  std::optional<double> scaling_factor;  ///< overrides config.json and the default
  Precision precision = Precision::kFloat32;
  /// Use oneDNN's kernels where the build has them (the reference path is ATen's; tests compare both).
  bool fast = true;
  /// Winograd convolutions for every 3x3 stride-1 layer in fp32 (oneDNN), their transformed weights
  /// (4x the direct ones) all kept. Off by default, when they run on outputs of 128x128 and up with
  /// weights transformed at each run where large: on, SD 1.x's 512x512 decode is ~20% faster for
  /// about 2.5x the memory (bench/RESULTS.md).
  bool winograd = false;
  /// oneDNN's convolutions run on at most at::get_num_threads() threads, fewer while other
  /// processes keep cores busy (chosen band by band as they run; the results are the same on any
  /// count). false: exactly at::get_num_threads() (`latent sd --threads N`).
  bool follow_load = true;
};

/// Tiled encode/decode for images larger than a tile: overlapping tiles, linearly blended where they
/// overlap, so memory is bounded by the tile size and no seam shows.
struct SdTiling {
  int64_t tile = 0;               ///< tile side in image pixels (a multiple of the downsampling factor); 0: no tiling
  double overlap = 0.25;          ///< fraction of a tile shared with its neighbour
  std::function<void()> on_tile;  ///< called as each tile is done (progress), when set
};

class SdNetwork;  // the network behind it (src/sd/sd_models.h)

class SdAutoencoder {
 public:
  /// Loads `path` (safetensors). TAESD files are recognised by their tensor names.
  static std::unique_ptr<SdAutoencoder> load(const std::string& path, const SdLoadOptions& options = {});
  ~SdAutoencoder();

  const SdVaeConfig& config() const { return config_; }
  Precision precision() const { return precision_; }
  /// The dtype of the file's weights ("F32", "F16", "BF16", or "mixed") and the layout that was read.
  const std::string& file_dtype() const { return file_dtype_; }
  const std::string& file_layout() const { return file_layout_; }

  /// Images [N, in_channels, H, W] in [-1, 1] -> scaled latents [N, latent_channels, H/f, W/f]: the
  /// posterior mean (`sample` false) or a sample mean + sigma * eps, eps drawn with `seed`.
  at::Tensor encode(const at::Tensor& images, bool sample, uint64_t seed = 0, const SdTiling& tiling = {});
  /// Scaled latents -> images [N, out_channels, H*f, W*f], about [-1, 1] (not clamped).
  at::Tensor decode(const at::Tensor& latents, const SdTiling& tiling = {});
  /// Tiles an image of height x width pixels is encoded or decoded in (1 when it fits one tile).
  int64_t tile_count(int64_t height, int64_t width, const SdTiling& tiling) const;

  /// The posterior's mean and log-variance, unscaled, for one untiled batch (TAESD: logvar undefined).
  void posterior(const at::Tensor& images, at::Tensor& mean, at::Tensor& logvar);
  /// Unscaled latents (what diffusers' AutoencoderKL.decode takes) -> images, one untiled batch.
  at::Tensor decode_unscaled(const at::Tensor& z);

 private:
  SdAutoencoder() = default;
  std::unique_ptr<SdNetwork> net_;
  SdVaeConfig config_;
  Precision precision_ = Precision::kFloat32;
  std::string file_dtype_, file_layout_;
};

}  // namespace latent
