// The layers of SD's autoencoders and the few operations their forward passes are made of, behind
// one interface with two implementations:
//  - ATen's (any device; the plain reference, NCHW activations);
//  - oneDNN's (CPU; activations kept in oneDNN's channel-blocked layout from the first convolution to
//    the last, direct or Winograd convolutions with bias and residual fused, GroupNorm and SiLU in
//    two passes, bfloat16 on CPUs with AMX/AVX512-BF16).
// Activations are at::Tensors whose layout only the implementation that made them knows; the model
// converts with input()/output() at its ends.
#pragma once

#include <ATen/Tensor.h>

#include <memory>

#include "latent/precision.h"

namespace latent {

struct SdConv {
  at::Tensor weight, bias;  // [out, in, k, k], [out] or undefined
  int64_t stride = 1;
  int64_t pad_begin = 1, pad_end = 1;  // top/left and bottom/right zero padding
  std::shared_ptr<void> cache;         // the implementation's prepared weights and kernels
};

struct SdNorm {
  at::Tensor weight, bias;  // [C]
  int64_t groups = 32;
  double eps = 1e-6;
};

struct SdAttention {  // single-head self-attention over the pixels, with a residual
  SdNorm norm;
  at::Tensor q_weight, q_bias, k_weight, k_bias, v_weight, v_bias, out_weight, out_bias;  // Linear [C, C], [C]
};

class SdOps {
 public:
  virtual ~SdOps() = default;
  /// NCHW float32 -> an activation, and back.
  virtual at::Tensor input(const at::Tensor& nchw) = 0;
  virtual at::Tensor output(const at::Tensor& act) = 0;
  /// conv(x) + residual (when defined), then ReLU when `relu`. The result may reuse the residual's
  /// storage: callers never read `residual` afterwards.
  virtual at::Tensor conv(const at::Tensor& x, SdConv& c, const at::Tensor& residual = {}, bool relu = false) = 0;
  /// SiLU(GroupNorm(x)).
  virtual at::Tensor norm_silu(const at::Tensor& x, const SdNorm& n) = 0;
  /// Nearest-neighbour 2x upsampling.
  virtual at::Tensor upsample2x(const at::Tensor& x) = 0;
  /// x + out(softmax(q k^T / sqrt(C)) v) on GroupNorm(x); memory linear in the number of pixels.
  virtual at::Tensor attention(const at::Tensor& x, const SdAttention& a) = 0;
};

std::unique_ptr<SdOps> make_sd_ops_aten();
/// Null when the build has no oneDNN. Throws latent::Error for bf16 on a CPU without bf16 instructions.
/// `winograd`: Winograd kernels for 3x3 stride-1 float32 convolutions (faster, 4x the weight memory).
std::unique_ptr<SdOps> make_sd_ops_dnnl(Precision precision, bool winograd);

/// Query rows handled at once by attention(): the score block is rows x pixels floats.
constexpr int64_t kSdAttentionRows = 1024;

}  // namespace latent
