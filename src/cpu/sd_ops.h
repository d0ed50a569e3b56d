// The layers of SD's autoencoders and the few operations their forward passes are made of, behind
// one interface with two implementations:
//  - ATen's (any device; the plain reference, NCHW activations);
//  - oneDNN's (CPU; activations kept in oneDNN's channel-blocked layout from the first convolution to
//    the last, direct or Winograd convolutions with bias and residual fused, GroupNorm+SiLU and
//    upsampling fused into the convolution that reads them, bfloat16 on CPUs with AMX/AVX512-BF16).
// Activations are at::Tensors whose layout only the implementation that made them knows; the model
// converts with input()/output() at its ends.
#pragma once

#include <ATen/Tensor.h>

#include <memory>
#include <string>
#include <vector>

#include "latent/precision.h"

namespace latent {

struct SdConv {
  at::Tensor weight, bias;  // [out, in, k, k] (3x3 ones may be F16/BF16, as in the file), [out] float32 or undefined
  int64_t stride = 1;
  int64_t pad_begin = 1, pad_end = 1;  // top/left and bottom/right zero padding
  std::shared_ptr<void> cache;         // the implementation's prepared weights and kernels
  /// Whether the layer exists (optional ones, like a resnet's shortcut, may not). An implementation
  /// may let `weight` go once it holds the weights in its own form.
  bool present() const { return weight.defined() || cache != nullptr; }
};

struct SdNorm {
  at::Tensor weight, bias;  // [C]
  int64_t groups = 32;
  double eps = 1e-6;
};

/// What a convolution applies to its input first: SiLU(GroupNorm(x)) when `norm` is set, then
/// nearest-neighbour 2x upsampling when `upsample2x`. The oneDNN implementation computes it band by
/// band of rows into the convolution, so the transformed input never exists whole.
struct SdPrologue {
  const SdNorm* norm = nullptr;
  bool upsample2x = false;
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
  /// conv(pre(x)) + residual (when defined), then ReLU when `relu`; with `shortcut` (a 1x1
  /// convolution) the sum takes shortcut(residual) instead, as a resnet whose channels change. The
  /// result may reuse the residual's storage: callers never read `residual` afterwards.
  virtual at::Tensor conv(const at::Tensor& x, SdConv& c, const at::Tensor& residual = {}, bool relu = false,
                          const SdPrologue& pre = {}, SdConv* shortcut = nullptr) = 0;
  /// x + out(softmax(q k^T / sqrt(C)) v) on GroupNorm(x); memory linear in the number of pixels.
  virtual at::Tensor attention(const at::Tensor& x, const SdAttention& a) = 0;
  /// Forgets what the implementation noted about this pass's activations (oneDNN: the per-channel
  /// sums of convolution outputs); a forward pass calls it when it ends.
  virtual void end_pass() {}
  /// oneDNN's names for the kernels and reorders made so far ("brg:avx512_core", "jit:avx2", ...),
  /// so tests can check that none is a reference kernel; empty for ATen's.
  virtual std::vector<std::string> kernel_names() const { return {}; }
};

/// Bytes of a banded convolution's input band (oneDNN): big enough for the kernels to run at full
/// speed (measured: 2, 4 and 8 MB within noise on SD's shapes), small beside the activations; 2 MB
/// keeps Winograd's scratch space (proportional to the band) small.
constexpr int64_t kSdBandBytes = int64_t{2} << 20;

std::unique_ptr<SdOps> make_sd_ops_aten();
/// Null when the build has no oneDNN. Throws latent::Error for bf16 on a CPU without bf16 instructions.
/// Winograd's kernels run the 3x3 stride-1 float32 convolutions with outputs of 128x128 and up,
/// their transformed weights kept where small beside the output, else transformed at each run;
/// `winograd`: every 3x3 layer, its transformed weights all kept (a little faster, ~2 GB at SD size).
/// `follow_load`: the banded convolutions choose their thread count, at most at::get_num_threads(),
/// band by band as the load changes (cpu/thread_tuner.h); their results do not depend on it.
/// `own_winograd`: the banded float32 3x3 convolutions by latent's Winograd F(4x4, 3x3) (with
/// oneDNN's products) where oneDNN has no Winograd kernels (below AVX-512: kAuto), always or never.
enum class SdWinograd { kAuto, kAlways, kNever };
std::unique_ptr<SdOps> make_sd_ops_dnnl(Precision precision, bool winograd, int64_t band_bytes = kSdBandBytes,
                                        bool follow_load = false, SdWinograd own_winograd = SdWinograd::kAuto);

/// Query rows handled at once by attention(): the score block is rows x pixels floats.
constexpr int64_t kSdAttentionRows = 1024;

}  // namespace latent
