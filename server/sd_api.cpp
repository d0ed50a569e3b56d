#include "sd_api.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <cmath>
#include <thread>

#include "api_fields.h"
#include "base64.h"
#include "explorer_api.h"
#include "latent/error.h"
#include "latent/image.h"
#include "latent/interpolate.h"

namespace latent::server {

using nlohmann::json;

namespace {

// The central square of an image [3, H, W], resized to side x side (area averaging when shrinking).
at::Tensor square(const at::Tensor& image, int64_t side) {
  const int64_t h = image.size(1), w = image.size(2), s = std::min(h, w);
  at::Tensor x = image.narrow(1, (h - s) / 2, s).narrow(2, (w - s) / 2, s).unsqueeze(0);  // [1, 3, s, s]
  if (s > side) return at::adaptive_avg_pool2d(x, {side, side});
  if (s < side) return at::upsample_bilinear2d(x, {side, side}, false).clamp(0, 1);
  return x;
}

// Every core for one SD request (the server runs its request threads on one thread each): the
// calling thread's thread count for the guard's life.
class AllCores {
 public:
  AllCores() : before_(at::get_num_threads()) {
    at::set_num_threads(static_cast<int>(std::max(1u, std::thread::hardware_concurrency())));
  }
  ~AllCores() { at::set_num_threads(before_); }

 private:
  int before_;
};

}  // namespace

SdApi::SdApi(std::unique_ptr<SdAutoencoder> vae, std::string path, int64_t size, int64_t max_upload_pixels)
    : vae_(std::move(vae)), path_(std::move(path)), size_(size), max_upload_pixels_(max_upload_pixels) {
  const int64_t f = vae_->config().downsampling_factor();
  if (size_ < f || size_ % f != 0 || size_ > 2048)
    throw Error("--sd-size must be a multiple of " + std::to_string(f) + " between " + std::to_string(f) + " and 2048, got " +
                std::to_string(size_));
  latent_side_ = size_ / f;
}

json SdApi::info() const {
  const SdVaeConfig& c = vae_->config();
  return {{"file", path_},
          {"type", c.type},
          {"layout", vae_->file_layout()},
          {"dtype", vae_->file_dtype()},
          {"scaling_factor", c.scaling_factor},
          {"latent_channels", c.latent_channels},
          {"factor", c.downsampling_factor()},
          {"size", size_},
          {"max_steps", kMaxSteps}};
}

at::Tensor SdApi::latents_of(const json& v, const std::string& where) const {
  const int64_t c = vae_->config().latent_channels, n = c * latent_side_ * latent_side_;
  if (v.is_array() && static_cast<int64_t>(v.size()) != n)
    throw ApiError(400, where + " has " + std::to_string(v.size()) + " values; latents here are " + std::to_string(c) + " x " +
                            std::to_string(latent_side_) + " x " + std::to_string(latent_side_) + " = " + std::to_string(n));
  at::Tensor z = at::empty({n}, at::kFloat);
  code_json(v, where, n, z.data_ptr<float>());
  return z.view({1, c, latent_side_, latent_side_});
}

json SdApi::decode_images(const at::Tensor& latents) const {
  at::Tensor images;  // [N, 3, size, size] in [-1, 1]
  {
    std::lock_guard<std::mutex> lock(mutex_);
    AllCores cores;
    c10::InferenceMode guard;
    images = vae_->decode(latents);
  }
  return pixels_json((images.clamp(-1, 1) + 1) / 2);
}

json SdApi::encode(const json& body) const {
  const json& v = field(body, "png");
  if (!v.is_string()) throw ApiError(400, "'png' must be a base64 string");
  at::Tensor input;  // [1, 3, size, size] in [0, 1]
  try {
    input =
        square(image_decode(base64_decode(v.get<std::string>(), "uploaded image"), "uploaded image", 3, 0, 0, max_upload_pixels_),
               size_);
  } catch (const Error& e) {
    throw ApiError(400, e.what());
  }
  at::Tensor z, decoded;  // [1, C, h, w], [1, 3, size, size] in [-1, 1]
  {
    std::lock_guard<std::mutex> lock(mutex_);
    AllCores cores;
    c10::InferenceMode guard;
    z = vae_->encode(input * 2 - 1, false);
    decoded = vae_->decode(z).clamp(-1, 1);
  }
  const at::Tensor channels = z[0].unsqueeze(1);  // [C, 1, h, w]
  const at::Tensor lo = channels.amin({1, 2, 3}, true), hi = channels.amax({1, 2, 3}, true);
  json ranges = json::array();
  for (int64_t k = 0; k < channels.size(0); ++k) ranges.push_back({lo[k].item<double>(), hi[k].item<double>()});
  const at::Tensor back = (decoded + 1) / 2;
  const double mse = (back - input).pow(2).mean().item<double>();
  return {{"latents", vector_json(z.flatten())},
          {"shape", z[0].sizes().vec()},
          {"ranges", ranges},
          {"channels", pixels_json((channels - lo) / (hi - lo).clamp_min(1e-12))},
          {"input", pixels_json(input)},
          {"decoded", pixels_json(back)},
          {"psnr", mse > 0 ? 10 * std::log10(1.0 / mse) : 99.0}};
}

json SdApi::decode(const json& body) const { return {{"image", decode_images(latents_of(field(body, "latents"), "'latents'"))}}; }

json SdApi::interpolate(const json& body) const {
  const at::Tensor a = latents_of(field(body, "a"), "'a'"), b = latents_of(field(body, "b"), "'b'");
  const std::string method = interpolation_method(body);
  const at::Tensor t = interpolation_positions(body, kMaxSteps);             // [T]
  const at::Tensor z = interpolate_at(a.flatten(), b.flatten(), t, method);  // [T, C h w]
  return {{"t", vector_json(t)}, {"method", method}, {"images", decode_images(z.view({-1, a.size(1), a.size(2), a.size(3)}))}};
}

}  // namespace latent::server
