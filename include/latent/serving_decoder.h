/// @brief A VAE's decoder made for serving: many small decodes, from many threads at once.
///
/// For an mlp_vae with ReLU and a Bernoulli likelihood the products run without autograd on weights
/// packed once (oneDNN where the build has it), in the requested precision; every other VAE decodes
/// through its model in float32. The explorer's /api/decode, /api/sample and /api/interpolate run here.
#pragma once

#include <ATen/Tensor.h>

#include <cstdint>
#include <memory>

#include "latent/model.h"
#include "latent/precision.h"

namespace latent {

class FusedMlpDecoder;

class ServingDecoder {
 public:
  /// `precision` applies to the packed mlp_vae path (bf16 throws latent::Error where the CPU or the
  /// build cannot run it); other models run in float32.
  ServingDecoder(VaeImpl& vae, Precision precision);
  ~ServingDecoder();

  /// The likelihood's parameters [N, D...] for codes z [N, d].
  at::Tensor params(const at::Tensor& z) const;
  /// The likelihood's means [N, D...] for codes z [N, d].
  at::Tensor means(const at::Tensor& z) const;
  /// 8-bit pixels (to_u8_pixels) of the means of n codes z [n, d] (row-major float32) into out
  /// [n, D], in the model's space.
  void pixels(const float* z, int64_t n, uint8_t* out) const;

  /// Whether the packed path runs (else the model itself).
  bool packed() const { return fused_ != nullptr; }
  /// Of the products that run: the requested precision on the packed path, float32 otherwise.
  Precision precision() const;

 private:
  VaeImpl& vae_;
  std::unique_ptr<FusedMlpDecoder> fused_;
};

}  // namespace latent
