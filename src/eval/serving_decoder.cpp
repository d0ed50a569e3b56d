#include "latent/serving_decoder.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <vector>

#include "cpu/kernels.h"
#include "eval/fused_decoder.h"
#include "latent/image.h"

namespace latent {

ServingDecoder::ServingDecoder(VaeImpl& vae, Precision precision) : vae_(vae), fused_(FusedMlpDecoder::make(vae, precision)) {}

ServingDecoder::~ServingDecoder() = default;

at::Tensor ServingDecoder::params(const at::Tensor& z) const { return fused_ ? fused_->logits(z) : vae_.decode(z); }

at::Tensor ServingDecoder::means(const at::Tensor& z) const { return vae_.likelihood_mean(params(z)); }

void ServingDecoder::pixels(const float* z, int64_t n, uint8_t* out) const {
  const int64_t D = vae_.data_dim();
  if (fused_) {  // Bernoulli means straight from the logits, in one pass
    thread_local std::vector<float> logits;
    logits.resize(static_cast<size_t>(n * D));
    fused_->logits_into(z, n, logits.data());
    cpu::kernels().sigmoid_to_u8(logits.data(), n * D, out);
    return;
  }
  c10::InferenceMode guard;
  const at::Tensor x = means(at::from_blob(const_cast<float*>(z), {n, vae_.latent_dim()}, at::kFloat)).contiguous();
  to_u8_pixels(x.data_ptr<float>(), n * D, out);
}

Precision ServingDecoder::precision() const { return fused_ ? fused_->precision() : Precision::kFloat32; }

}  // namespace latent
