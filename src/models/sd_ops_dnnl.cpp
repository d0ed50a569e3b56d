// SdOps on oneDNN (CPU). Activations with a multiple of 16 channels stay in oneDNN's nChw16c layout
// ([N, C/16, H, W, 16]) from the first convolution to the last, so no layer reorders its input.
// Convolutions: oneDNN's direct kernels, or on request (`winograd`) Winograd's F(4x4, 3x3) or
// F(2x2, 3x3) for 3x3 stride-1 ones where oneDNN has it for the shape (float32 throughout; its
// transformed weights take 4x the memory); bias, the residual sum and ReLU fused; weights kept once.
// A convolution whose input is SiLU(GroupNorm(x)) or x upsampled runs band by band of output rows:
// the band's input rows are computed into a small buffer (GroupNorm's statistics come from one pass
// over x first), convolved, and copied into place, so the normalized or upsampled tensor is never
// whole in memory (at 512x512 it would be 128-256 MB per layer).
// In bf16 mode every convolution reads bfloat16 (the band buffers are written in it) with bf16
// weights, float32 accumulation and output; the residual stream and the statistics stay float32.
#include "models/sd_ops.h"

#ifdef LATENT_HAVE_DNNL

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <sys/mman.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <dnnl.hpp>
#include <map>
#include <mutex>
#include <tuple>

#include "latent/error.h"
#include "latent/safetensors.h"
#include "train/dnnl_engine.h"
#include "train/fused_kernels.h"

namespace latent {

namespace {

using dnnl::memory;
using Tag = memory::format_tag;
using Type = memory::data_type;

bool is_blocked(const at::Tensor& a) { return a.dim() == 5; }

// A whole activation: 2 MB-aligned and advised as huge pages, which makes its first touch (the
// kernel zeroing fresh pages) several times cheaper than in 4 KB pages. Buffers are not kept for
// reuse: peak memory would grow by what is kept (measured: 256 MB kept bought under 0.5 s a decode).
at::Tensor activation(at::IntArrayRef sizes, at::ScalarType dtype) {
  constexpr size_t kAlign = size_t{2} << 20;
  int64_t numel = 1;
  for (int64_t s : sizes) numel *= s;
  const size_t bytes = std::max(kAlign, ((numel * at::elementSize(dtype) + kAlign - 1) / kAlign) * kAlign);
  void* p = std::aligned_alloc(kAlign, bytes);
  if (!p) throw Error("out of memory: " + std::to_string(bytes >> 20) + " MB for an activation");
  madvise(p, bytes, MADV_HUGEPAGE);
  return at::from_blob(
      p, sizes, [](void* q) { std::free(q); }, at::TensorOptions().dtype(dtype));
}

int64_t channels(const at::Tensor& a) { return is_blocked(a) ? a.size(1) * 16 : a.size(1); }

// A convolution layer's oneDNN state. Its weights are kept once per layout the kernels want; the
// float32 source is let go after the first layout (later ones are reordered from that), except for
// layers that may run Winograd's kernels, whose weights are transformed from the source alone.
struct ConvKernels {
  struct Entry {
    dnnl::convolution_forward primitive;
    memory::desc src, dst;
    memory weights;
  };
  // N, input rows, W, top padding, bottom padding, src blocked, residual, relu
  using Key = std::tuple<int64_t, int64_t, int64_t, int64_t, int64_t, bool, bool, bool>;
  std::mutex mutex;
  std::map<Key, Entry> entries;
  std::vector<std::pair<memory::desc, memory>> weights;
  memory bias;
  at::Tensor source;  // float32 [out, in, k, k] while needed
  int64_t out = 0, in = 0, k = 0;
};

// Output rows per band of a banded convolution: its input band (C channels, W wide) near
// `band_bytes`, a multiple of 4 rows (Winograd's output tiles are 4 rows high), at least 4.
int64_t band_rows(int64_t band_bytes, int64_t c, int64_t w, int64_t h) {
  const int64_t rows = std::max<int64_t>(4, band_bytes / (c * w * 4) / 4 * 4);
  return std::min(rows, h);
}

class DnnlOps : public SdOps {
 public:
  DnnlOps(Precision precision, bool winograd, int64_t band_bytes)
      : compute_(precision == Precision::kBFloat16 ? Type::bf16 : Type::f32),
        winograd_(winograd),
        band_bytes_(band_bytes),
        aten_(make_sd_ops_aten()) {}

  at::Tensor input(const at::Tensor& nchw) override {
    const at::Tensor x = nchw.to(at::kFloat).contiguous();
    const int64_t n = x.size(0), c = x.size(1), h = x.size(2), w = x.size(3);
    if (c % 16) return x;
    return x.view({n, c / 16, 16, h, w}).permute({0, 1, 3, 4, 2}).contiguous();  // [N, C/16, H, W, 16]
  }

  at::Tensor output(const at::Tensor& act) override {
    const at::Tensor a = act.to(at::kFloat);
    if (!is_blocked(a)) return a.contiguous();
    return a.permute({0, 1, 4, 2, 3}).reshape({a.size(0), channels(a), a.size(2), a.size(3)}).contiguous();  // [N, C, H, W]
  }

  at::Tensor conv(const at::Tensor& x, SdConv& c, const at::Tensor& residual, bool relu, const SdPrologue& pre) override {
    const ConvKernels& layer = prepare(c);
    const bool banded = (pre.norm || pre.upsample2x) && is_blocked(x) && x.scalar_type() == at::kFloat && layer.k == 3 &&
                        c.stride == 1 && c.pad_begin == 1 && c.pad_end == 1 && layer.out % 16 == 0;
    if (banded) return conv_banded(x, c, residual, relu, pre);
    at::Tensor in = x;
    if (pre.norm) in = norm_silu(in, *pre.norm);
    if (pre.upsample2x) in = upsample2x(in);
    return conv_whole(in, c, residual, relu);
  }

  at::Tensor attention(const at::Tensor& x, const SdAttention& a) override { return input(aten_->attention(output(x), a)); }

 private:
  at::Tensor conv_whole(const at::Tensor& x, SdConv& c, const at::Tensor& residual, bool relu) {
    const bool src_blocked = is_blocked(x);
    const ConvKernels& layer = prepare(c);
    const int64_t n = x.size(0), h = x.size(2), w = x.size(3), out = layer.out, k = layer.k;
    const int64_t oh = (h + c.pad_begin + c.pad_end - k) / c.stride + 1, ow = (w + c.pad_begin + c.pad_end - k) / c.stride + 1;
    // Output channels not a multiple of 16 (conv_out: 3 or 8) are computed into a zero-padded block
    // (oneDNN's plain-layout kernels for them are its slow reference ones), then cut to NCHW.
    const bool padded = out % 16 != 0;
    const int64_t blocks = (out + 15) / 16;
    // The kernels read the compute type: bfloat16 inputs come straight from norm_silu in bf16 mode.
    at::Tensor src = x;
    if (compute_ == Type::bf16 && x.scalar_type() != at::kBFloat16) src = x.to(at::kBFloat16);
    if (compute_ == Type::f32 && x.scalar_type() != at::kFloat) src = x.to(at::kFloat);
    src = src.contiguous();
    const bool fuse = residual.defined() && !padded;
    const ConvKernels::Entry& e = kernels(c, n, h, w, c.pad_begin, c.pad_end, src_blocked, fuse, relu && !padded);
    at::Tensor dst = fuse ? checked_residual(residual, n, blocks, oh, ow) : activation({n, blocks, oh, ow, 16}, at::kFloat);
    execute(c, e, src.data_ptr(), dst.data_ptr());
    if (!padded) return dst;
    at::Tensor y = output(dst).narrow(1, 0, out).contiguous();  // [N, O, H', W']
    if (residual.defined()) y.add_(residual);
    if (relu) y.relu_();
    return y;
  }

  // A 3x3 stride-1 convolution of pre(x), computed band of output rows by band: each band's input
  // rows (with their one-row halo) are transformed into a small buffer, convolved into another, and
  // copied into place; the residual band is copied in first for the fused sum.
  at::Tensor conv_banded(const at::Tensor& x, SdConv& c, const at::Tensor& residual, bool relu, const SdPrologue& pre) {
    const int64_t n = x.size(0), blocks = x.size(1), sh = x.size(2), sw = x.size(3);
    const int64_t f = pre.upsample2x ? 2 : 1, h = sh * f, w = sw * f, out_blocks = prepare(c).out / 16;
    std::vector<float> scale, shift;
    if (pre.norm) group_affine(x, *pre.norm, scale, shift);
    at::Tensor dst = residual.defined() ? checked_residual(residual, n, out_blocks, h, w)
                                        : activation({n, out_blocks, h, w, 16}, at::kFloat);  // [N, O/16, H, W, 16]
    const int64_t rows = band_rows(band_bytes_, blocks * 16, w, h);
    const bool bf16 = compute_ == Type::bf16;
    // The band buffers live as long as these operations (no page faults, no heap churn per layer);
    // one convolution at a time uses them.
    std::lock_guard<std::mutex> lock(band_mutex_);
    const at::Tensor in_band = band_buffer(in_band_, blocks * (rows + 2) * w * 16 * (bf16 ? 2 : 4));
    const at::Tensor out_band = band_buffer(out_band_, out_blocks * rows * w * 16 * 4);
    const float* xp = x.data_ptr<float>();
    float* dp = dst.data_ptr<float>();
    float* op = static_cast<float*>(out_band.data_ptr());
    for (int64_t i = 0; i < n; ++i)
      for (int64_t r0 = 0; r0 < h; r0 += rows) {
        const int64_t r1 = std::min(h, r0 + rows), y0 = std::max<int64_t>(0, r0 - 1), y1 = std::min(h, r1 + 1), in_rows = y1 - y0;
        at::parallel_for(0, blocks * in_rows, 1, [&](int64_t t0, int64_t t1) {
          for (int64_t t = t0; t < t1; ++t) {
            const int64_t b = t / in_rows, j = t % in_rows, sy = (y0 + j) / f;
            const float* src = xp + (((i * blocks + b) * sh + sy) * sw) * 16;
            const int64_t at = (b * in_rows + j) * w * 16, ch = i * blocks * 16 + b * 16;
            kernels::block16_fill(src, sw, pre.norm ? &scale[ch] : nullptr, pre.norm ? &shift[ch] : nullptr, f == 2,
                                  bf16 ? nullptr : static_cast<float*>(in_band.data_ptr()) + at,
                                  bf16 ? static_cast<uint16_t*>(in_band.data_ptr()) + at : nullptr);
          }
        });
        const int64_t band = (r1 - r0) * w * 16;  // floats of one output block's band
        auto dst_band = [&](int64_t ob) { return dp + ((i * out_blocks + ob) * h + r0) * w * 16; };
        if (residual.defined())
          at::parallel_for(0, out_blocks, 1, [&](int64_t b0, int64_t b1) {
            for (int64_t ob = b0; ob < b1; ++ob) std::memcpy(op + ob * band, dst_band(ob), band * sizeof(float));
          });
        const ConvKernels::Entry& e = kernels(c, 1, in_rows, w, r0 == 0, r1 == h, true, residual.defined(), relu);
        execute(c, e, in_band.data_ptr(), op);
        at::parallel_for(0, out_blocks, 1, [&](int64_t b0, int64_t b1) {
          for (int64_t ob = b0; ob < b1; ++ob) std::memcpy(dst_band(ob), op + ob * band, band * sizeof(float));
        });
      }
    return dst;
  }

  // `buffer` grown to at least `bytes` (kept between calls).
  static const at::Tensor& band_buffer(at::Tensor& buffer, int64_t bytes) {
    if (!buffer.defined() || buffer.numel() < bytes) buffer = at::empty({bytes}, at::kByte);
    return buffer;
  }

  void execute(const SdConv& c, const ConvKernels::Entry& e, void* src, void* dst) {
    auto* cache = static_cast<ConvKernels*>(c.cache.get());
    memory src_m(e.src, dnnl_cpu_engine(), src), dst_m(e.dst, dnnl_cpu_engine(), dst);
    std::unordered_map<int, memory> args = {{DNNL_ARG_SRC, src_m}, {DNNL_ARG_WEIGHTS, e.weights}, {DNNL_ARG_DST, dst_m}};
    if (c.bias.defined()) args[DNNL_ARG_BIAS] = cache->bias;
    dnnl::stream stream(dnnl_cpu_engine());
    e.primitive.execute(stream, args);
    stream.wait();
  }

  static const at::Tensor& checked_residual(const at::Tensor& r, int64_t n, int64_t blocks, int64_t h, int64_t w) {
    if (r.scalar_type() != at::kFloat || !r.is_contiguous() || !is_blocked(r) || r.size(0) != n || r.size(1) != blocks ||
        r.size(2) != h || r.size(3) != w)
      throw Error("internal: a residual does not match its convolution's output");
    return r;
  }

  // GroupNorm's per-channel scale and shift for x [N, C/16, H, W, 16]: per-channel sums of x and x^2
  // (double), then each group's mean and 1 / std folded with gamma and beta. scale, shift: [N * C].
  void group_affine(const at::Tensor& x, const SdNorm& norm, std::vector<float>& scale, std::vector<float>& shift) {
    const int64_t n = x.size(0), blocks = x.size(1), pixels = x.size(2) * x.size(3), c = blocks * 16;
    if (c % norm.groups)
      throw Error(std::to_string(c) + " channels do not divide into " + std::to_string(norm.groups) + " groups");
    const float* xp = x.data_ptr<float>();
    std::vector<double> sum(n * c, 0.0), sumsq(n * c, 0.0);
    at::parallel_for(0, n * blocks, 1, [&](int64_t b0, int64_t b1) {
      for (int64_t b = b0; b < b1; ++b) kernels::block16_moments(xp + b * pixels * 16, pixels, &sum[b * 16], &sumsq[b * 16]);
    });
    scale.assign(n * c, 0.0f);
    shift.assign(n * c, 0.0f);
    const float* gamma = norm.weight.data_ptr<float>();
    const float* beta = norm.bias.data_ptr<float>();
    const int64_t per_group = c / norm.groups;
    for (int64_t i = 0; i < n; ++i)
      for (int64_t g = 0; g < norm.groups; ++g) {
        double s = 0, q = 0;
        for (int64_t ch = g * per_group; ch < (g + 1) * per_group; ++ch) {
          s += sum[i * c + ch];
          q += sumsq[i * c + ch];
        }
        const double count = static_cast<double>(per_group * pixels), mean = s / count;
        const double rstd = 1.0 / std::sqrt(std::max(q / count - mean * mean, 0.0) + norm.eps);
        for (int64_t ch = g * per_group; ch < (g + 1) * per_group; ++ch) {
          scale[i * c + ch] = static_cast<float>(gamma[ch] * rstd);
          shift[i * c + ch] = static_cast<float>(beta[ch] - mean * gamma[ch] * rstd);
        }
      }
  }

  // SiLU(GroupNorm(x)) whole, for the convolutions that are not banded; bfloat16 in bf16 mode (the
  // next convolution reads it).
  at::Tensor norm_silu(const at::Tensor& x, const SdNorm& norm) {
    if (!is_blocked(x) || x.scalar_type() != at::kFloat)
      return input(at::silu(at::group_norm(output(x), norm.groups, norm.weight, norm.bias, norm.eps)));
    std::vector<float> scale, shift;
    group_affine(x, norm, scale, shift);
    const int64_t n = x.size(0), blocks = x.size(1), pixels = x.size(2) * x.size(3), c = blocks * 16;
    const bool bf16 = compute_ == Type::bf16;
    at::Tensor y = activation(x.sizes(), bf16 ? at::kBFloat16 : at::kFloat);
    const float* xp = x.data_ptr<float>();
    constexpr int64_t kChunk = 4096;  // pixels per task
    const int64_t chunks = (pixels + kChunk - 1) / kChunk;
    at::parallel_for(0, n * blocks * chunks, 1, [&](int64_t t0, int64_t t1) {
      for (int64_t t = t0; t < t1; ++t) {
        const int64_t b = t / chunks, p0 = (t % chunks) * kChunk, len = std::min(kChunk, pixels - p0);
        const int64_t off = (b * pixels + p0) * 16, ch = (b / blocks) * c + (b % blocks) * 16;
        kernels::block16_fill(xp + off, len, &scale[ch], &shift[ch], false, bf16 ? nullptr : y.data_ptr<float>() + off,
                              bf16 ? reinterpret_cast<uint16_t*>(y.data_ptr<at::BFloat16>()) + off : nullptr);
      }
    });
    return y;
  }

  at::Tensor upsample2x(const at::Tensor& x) {
    if (!is_blocked(x)) return at::upsample_nearest2d(x, {2 * x.size(2), 2 * x.size(3)});
    const int64_t n = x.size(0), b = x.size(1), h = x.size(2), w = x.size(3);
    at::Tensor y = activation({n, b, 2 * h, 2 * w, 16}, x.scalar_type());  // [N, C/16, 2H, 2W, 16]
    y.view({n, b, h, 2, w, 2, 16}).copy_(x.view({n, b, h, 1, w, 1, 16}).expand({n, b, h, 2, w, 2, 16}));
    return y;
  }

  // The convolution kernels for input [N, C, h, w] (h rows with `pad_top` and `pad_bottom` zero rows
  // around them), made once per shape.
  // The layer's state, made on first use; the model's own reference to the weights goes then.
  static ConvKernels& prepare(SdConv& c) {
    if (!c.cache) {
      auto cache = std::make_shared<ConvKernels>();
      cache->source = c.weight.to(at::kFloat).contiguous();
      cache->out = c.weight.size(0);
      cache->in = c.weight.size(1);
      cache->k = c.weight.size(2);
      if (c.bias.defined()) {
        cache->bias = memory(memory::desc({c.bias.size(0)}, Type::f32, Tag::x), dnnl_cpu_engine());
        std::memcpy(cache->bias.get_data_handle(), c.bias.to(at::kFloat).contiguous().data_ptr<float>(),
                    c.bias.numel() * sizeof(float));
      }
      c.cache = cache;
      c.weight = at::Tensor();
    }
    return *static_cast<ConvKernels*>(c.cache.get());
  }

  const ConvKernels::Entry& kernels(SdConv& c, int64_t n, int64_t h, int64_t w, int64_t pad_top, int64_t pad_bottom,
                                    bool src_blocked, bool residual, bool relu) {
    auto& cache = prepare(c);
    std::lock_guard<std::mutex> lock(cache.mutex);
    const ConvKernels::Key key{n, h, w, pad_top, pad_bottom, src_blocked, residual, relu};
    auto it = cache.entries.find(key);
    if (it != cache.entries.end()) return it->second;

    const int64_t in = cache.in, out = cache.out, k = cache.k;
    const int64_t oh = (h + pad_top + pad_bottom - k) / c.stride + 1, ow = (w + c.pad_begin + c.pad_end - k) / c.stride + 1;
    const memory::desc src({n, in, h, w}, compute_, src_blocked ? Tag::nChw16c : Tag::nchw);
    const memory::desc dst({n, out, oh, ow}, Type::f32, Tag::nChw16c);
    const memory::desc wei({out, in, k, k}, compute_, Tag::any);
    const memory::desc bias({out}, Type::f32, Tag::x);
    dnnl::post_ops ops;
    if (residual) ops.append_sum(1.0f);
    if (relu) ops.append_eltwise(1.0f, dnnl::algorithm::eltwise_relu, 0.0f, 0.0f);
    dnnl::primitive_attr attr;
    attr.set_post_ops(ops);
    auto describe = [&](dnnl::algorithm algorithm) {
      const memory::dims strides{c.stride, c.stride}, pad_l{pad_top, c.pad_begin}, pad_r{pad_bottom, c.pad_end};
      const auto d = c.bias.defined() ? dnnl::convolution_forward::desc(dnnl::prop_kind::forward_inference, algorithm, src, wei,
                                                                        bias, dst, strides, pad_l, pad_r)
                                      : dnnl::convolution_forward::desc(dnnl::prop_kind::forward_inference, algorithm, src, wei,
                                                                        dst, strides, pad_l, pad_r);
      return dnnl::convolution_forward::primitive_desc(d, attr, dnnl_cpu_engine());
    };
    dnnl::convolution_forward::primitive_desc pd;
    bool have = false;
    const bool may_wino = compute_ == Type::f32 && k == 3 && c.stride == 1 && out % 16 == 0 && winograd_;
    if (may_wino && src_blocked) {
      try {
        pd = describe(dnnl::algorithm::convolution_winograd);
        have = true;
      } catch (const dnnl::error&) {
        // this shape or post-op has no Winograd kernel on this CPU: direct below
      }
    }
    if (!have) pd = describe(dnnl::algorithm::convolution_direct);
    // The weights in the layout these kernels want, reordered once and shared by every shape.
    memory weights;
    for (const auto& [desc, m] : cache.weights)
      if (desc == pd.weights_desc()) weights = m;
    if (!weights) {
      memory from = cache.source.defined()
                        ? memory(memory::desc({out, in, k, k}, Type::f32, Tag::oihw), dnnl_cpu_engine(), cache.source.data_ptr())
                        : cache.weights.front().second;
      weights = memory(pd.weights_desc(), dnnl_cpu_engine());
      dnnl::stream stream(dnnl_cpu_engine());
      dnnl::reorder(from, weights).execute(stream, from, weights);
      stream.wait();
      cache.weights.push_back({pd.weights_desc(), weights});
      // A mapped file's pages go from memory either way (re-read if touched again).
      safetensors_drop_pages(cache.source);
      if (!may_wino) cache.source = at::Tensor();
    }
    return cache.entries.emplace(key, ConvKernels::Entry{dnnl::convolution_forward(pd), src, dst, weights}).first->second;
  }

  Type compute_;
  bool winograd_;
  int64_t band_bytes_;
  std::mutex band_mutex_;
  at::Tensor in_band_, out_band_;
  std::unique_ptr<SdOps> aten_;
};

}  // namespace

std::unique_ptr<SdOps> make_sd_ops_dnnl(Precision precision, bool winograd, int64_t band_bytes) {
  if (precision == Precision::kBFloat16) {
    // Refuse rather than let oneDNN fall back to its reference kernels (hundreds of times slower).
    const memory::desc s({1, 16, 8, 8}, Type::bf16, Tag::nChw16c), wd({16, 16, 3, 3}, Type::bf16, Tag::any),
        d({1, 16, 8, 8}, Type::f32, Tag::nChw16c);
    const dnnl::convolution_forward::primitive_desc pd(
        dnnl::convolution_forward::desc(dnnl::prop_kind::forward_inference, dnnl::algorithm::convolution_direct, s, wd, d, {1, 1},
                                        {1, 1}, {1, 1}),
        dnnl_cpu_engine());
    const std::string impl = pd.impl_info_str();
    if (impl.find("ref") != std::string::npos)
      throw Error("bf16 needs a CPU with bfloat16 instructions (AVX512-BF16 or AMX); oneDNN offers only '" + impl + "' here");
  }
  return std::make_unique<DnnlOps>(precision, winograd, band_bytes);
}

}  // namespace latent

#else

namespace latent {

std::unique_ptr<SdOps> make_sd_ops_dnnl(Precision, bool, int64_t) { return nullptr; }

}  // namespace latent

#endif
