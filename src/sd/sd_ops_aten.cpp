// The reference implementation of SdOps on ATen operations (NCHW activations, any device).
#include <ATen/ATen.h>

#include <cmath>

#include "cpu/sd_ops.h"

namespace latent {

namespace {

class AtenOps : public SdOps {
 public:
  at::Tensor input(const at::Tensor& nchw) override { return nchw.contiguous(); }
  at::Tensor output(const at::Tensor& act) override { return act; }

  at::Tensor conv(const at::Tensor& x, SdConv& c, const at::Tensor& residual, bool relu, const SdPrologue& pre,
                  SdConv* shortcut) override {
    at::Tensor in = x;
    if (pre.norm) in = at::silu(at::group_norm(in, pre.norm->groups, pre.norm->weight, pre.norm->bias, pre.norm->eps));
    if (pre.upsample2x) in = at::upsample_nearest2d(in, {2 * in.size(2), 2 * in.size(3)});
    int64_t pad = c.pad_begin;
    if (c.pad_begin != c.pad_end) {  // SD's downsampling pads only the bottom and right
      in = at::constant_pad_nd(in, {c.pad_begin, c.pad_end, c.pad_begin, c.pad_end});
      pad = 0;
    }
    at::Tensor y = at::conv2d(in, c.weight.to(in.scalar_type()), c.bias, {c.stride, c.stride}, {pad, pad});  // [N, O, H', W']
    if (residual.defined()) y.add_(shortcut ? conv(residual, *shortcut, {}, false, {}, nullptr) : residual);
    if (relu) y.relu_();
    return y;
  }

  at::Tensor attention(const at::Tensor& x, const SdAttention& a) override {
    const int64_t n = x.size(0), c = x.size(1), h = x.size(2), w = x.size(3);
    const at::Tensor t = at::group_norm(x, a.norm.groups, a.norm.weight, a.norm.bias, a.norm.eps)
                             .reshape({n, c, h * w})
                             .transpose(1, 2);                 // [N, HW, C]
    const at::Tensor q = at::linear(t, a.q_weight, a.q_bias);  // [N, HW, C]
    const at::Tensor k = at::linear(t, a.k_weight, a.k_bias);  // [N, HW, C]
    const at::Tensor v = at::linear(t, a.v_weight, a.v_bias);  // [N, HW, C]
    at::Tensor o = at::empty_like(q);                          // [N, HW, C]
    const double scale = 1.0 / std::sqrt(static_cast<double>(c));
    for (int64_t r = 0; r < h * w; r += kSdAttentionRows) {  // the score block stays rows x HW
      const int64_t rows = std::min(kSdAttentionRows, h * w - r);
      const at::Tensor s = at::softmax(at::bmm(q.narrow(1, r, rows), k.transpose(1, 2)) * scale, -1);  // [N, rows, HW]
      o.narrow(1, r, rows).copy_(at::bmm(s, v));
    }
    return x + at::linear(o, a.out_weight, a.out_bias).transpose(1, 2).reshape({n, c, h, w});  // [N, C, H, W]
  }
};

}  // namespace

std::unique_ptr<SdOps> make_sd_ops_aten() { return std::make_unique<AtenOps>(); }

}  // namespace latent
