// The explorer's JSON API, apart from HTTP: each request body or query in, a JSON reply out.
//
// Images travel as {"shape": [N, C, H, W], "pixels": base64 of uint8 values in C, H, W order}: a
// 20x20 grid of 28x28 decodings is 314 KB of pixels, against megabytes as JSON numbers. Every
// input is validated; a bad one throws ApiError with the HTTP status and a one-line message.
#pragma once

#include <ATen/Tensor.h>

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "latent/checkpoint.h"
#include "latent/serving_decoder.h"

namespace latent::server {

struct ApiError : std::runtime_error {
  ApiError(int status, const std::string& message) : std::runtime_error(message), status(status) {}
  int status;
};

struct ApiLimits {
  int64_t max_decode = 1024;   // codes per decode request (a 32x32 grid)
  int64_t max_items = 256;     // dataset items per request
  int64_t max_kl_steps = 500;  // gradient steps per KL request
  int64_t scatter = 2000;      // encoded test examples drawn over the manifold
  int64_t max_upload_pixels = int64_t{4096} * 4096;
};

class ExplorerApi {
 public:
  /// Loads the checkpoint's test split, encodes it, and finds the principal plane of the means.
  /// `precision` ("fp32", "bf16" or "auto") is that of the decoder's matrix products for images
  /// (decode, sample, interpolate): bf16 runs them on the CPU's bfloat16 units (an error where it
  /// has none); auto is bf16 where it can run. On the Fashion-MNIST model bf16 moved 8% of pixels,
  /// nearly all by one level of 255, the worst by 10 (bench/RESULTS.md).
  ExplorerApi(LoadedCheckpoint checkpoint, std::string checkpoint_path, ApiLimits limits = {},
              const std::string& precision = "fp32");
  ~ExplorerApi();

  nlohmann::json info() const;                                // GET /api/info
  nlohmann::json items(int64_t offset, int64_t limit) const;  // GET /api/items
  nlohmann::json scatter(int64_t limit) const;                // GET /api/scatter
  nlohmann::json metrics() const;                             // GET /api/metrics
  nlohmann::json encode(const nlohmann::json& body) const;    // POST /api/encode
  nlohmann::json decode(const nlohmann::json& body) const;    // POST /api/decode
  /// The reply text of decode() for a body of the usual shape {"z": [[..], ..]} with valid codes,
  /// read without a JSON tree; nothing for any other body (decode() then answers, or names the error).
  std::optional<std::string> decode_text(std::string_view body) const;
  nlohmann::json sample(const nlohmann::json& body) const;       // POST /api/sample
  nlohmann::json kl_steps(const nlohmann::json& body) const;     // POST /api/kl_steps
  nlohmann::json interpolate(const nlohmann::json& body) const;  // POST /api/interpolate
  /// GET /api/anomaly: the distribution of an anomaly score (anomaly.h) over the test split, as a
  /// histogram and 1001 quantiles; the calibration in the checkpoint, if any; the highest-scoring
  /// test images with their squared-error maps. Scores are computed once, on the first request.
  nlohmann::json anomaly(const std::string& score) const;

  int64_t latent_dim() const;
  std::string precision() const;  // "fp32" or "bf16": of the decoder's products for images

 private:
  /// The anomaly score `name` over the test split (all scores computed on the first call).
  const at::Tensor& anomaly_score(const std::string& name) const;
  at::Tensor input_of(const nlohmann::json& body) const;  // {"index": i} or {"png": base64} -> [1, D...]
  at::Tensor codes_of(const nlohmann::json& value, const std::string& key, int64_t max_rows) const;  // -> [N, d]
  at::Tensor decoder_params(const at::Tensor& z) const;         // z [N, d] -> likelihood parameters [N, D...]
  nlohmann::json images_of(const at::Tensor& z) const;          // decoded means of z [N, d]
  nlohmann::json images_json(const at::Tensor& x) const;        // model-space examples [N, D...] -> image JSON
  std::string pixels_of(const at::Tensor& x) const;             // model-space examples [N, D...] -> uint8, data space
  std::string decoded_pixels(const float* z, int64_t n) const;  // decoded means of z [n, d] as pixels

  LoadedCheckpoint ck_;
  VaeImpl* vae_;  // ck_'s model as a VAE
  std::string path_;
  ApiLimits limits_;
  at::Tensor x_, y_;          // test split [N, D...], labels [N] (or undefined)
  at::Tensor mu_;             // encoded means of the test split [N, d]
  at::Tensor pca_axes_;       // [2, d], unit rows
  at::Tensor pca_explained_;  // [2], fraction of the means' variance along each axis
  // Decoding is what the page asks for most, 16 to 1024 codes at a time.
  std::unique_ptr<ServingDecoder> decoder_;
  mutable std::once_flag anomaly_once_;
  mutable std::map<std::string, at::Tensor> anomaly_scores_;  // name -> float64 [N] over the test split
};

}  // namespace latent::server
