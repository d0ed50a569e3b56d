/// @brief The explorer's "SD latents" view: a Stable Diffusion first-stage autoencoder (`latent serve
/// --vae FILE`) behind JSON routes. An uploaded image is cropped to its central square and resized to
/// `size` x `size`, encoded to its posterior mean (times the scaling factor, as diffusion sees it),
/// shown as its latent channels, decoded back, and walked towards another image in latent space.
#pragma once

#include <ATen/Tensor.h>

#include <cstdint>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>

#include "latent/sd_vae.h"

namespace latent::server {

class SdApi {
 public:
  /// `size`: the side of the square images, a multiple of the autoencoder's downsampling factor.
  SdApi(std::unique_ptr<SdAutoencoder> vae, std::string path, int64_t size, int64_t max_upload_pixels = 4096 * 4096);

  /// {"file", "type", "layout", "dtype", "scaling_factor", "latent_channels", "factor", "size", "max_steps"}
  nlohmann::json info() const;
  /// {"png": base64 PNG/JPEG/BMP} -> {"latents": [C h w numbers], "shape": [C, h, w], "ranges": [[min,
  /// max] per channel], "channels": images [C, 1, h, w] (each stretched over its range), "input":
  /// the square input [1, 3, size, size], "decoded": its decoding, "psnr": of decoded against input}
  nlohmann::json encode(const nlohmann::json& body) const;
  /// {"latents": [C h w numbers]} -> {"image": [1, 3, size, size]}
  nlohmann::json decode(const nlohmann::json& body) const;
  /// {"a": latents, "b": latents, "steps" (2..max_steps) or "t" (numbers in [0, 1]), "method": "linear" |
  /// "slerp"} -> {"t": [..], "method", "images": [T, 3, size, size]}
  nlohmann::json interpolate(const nlohmann::json& body) const;

  /// Decodings per interpolation request (each is a full decode: seconds on a CPU at 256 x 256).
  static constexpr int64_t kMaxSteps = 9;

 private:
  at::Tensor latents_of(const nlohmann::json& v, const std::string& where) const;  // -> [1, C, h, w]
  nlohmann::json decode_images(const at::Tensor& latents) const;                   // [N, C, h, w] -> images

  std::unique_ptr<SdAutoencoder> vae_;
  std::string path_;
  int64_t size_, latent_side_, max_upload_pixels_;
  mutable std::mutex mutex_;  // one encode/decode at a time: each uses every core
};

}  // namespace latent::server
