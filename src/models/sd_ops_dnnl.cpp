// SdOps on oneDNN (CPU). Activations with a multiple of 16 channels stay in oneDNN's nChw16c layout
// ([N, C/16, H, W, 16]) from the first convolution to the last, so no layer reorders its input.
// Convolutions: oneDNN's direct kernels, or on request (`winograd`) Winograd's F(4x4, 3x3) or
// F(2x2, 3x3) for 3x3 stride-1 ones where oneDNN has it for the shape (2-2.5x faster on SD's shapes,
// float32 throughout, but its transformed weights take 4x the memory); bias, the residual sum and
// ReLU fused; weights reordered once per layout.
// GroupNorm + SiLU: per-channel moments in one pass (double across chunks), then one pass that
// scales, shifts and applies SiLU. In bf16 mode every convolution reads bfloat16 (GroupNorm+SiLU
// writes it directly) with float32 weights' bf16 copies and float32 accumulation and output; the
// residual stream and the statistics stay float32.
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
#include "train/dnnl_engine.h"
#include "train/fused_kernels.h"

namespace latent {

namespace {

using dnnl::memory;
using Tag = memory::format_tag;
using Type = memory::data_type;

bool is_blocked(const at::Tensor& a) { return a.dim() == 5; }

// Activation buffers, kept for reuse: a fresh 100+ MB buffer costs tens of thousands of page faults
// on first touch (as long as the convolution itself at 512x512). Buffers are 2 MB-aligned and
// advised as huge pages; a request for a size not in the pool first frees the pool, so moving to
// another resolution does not keep the last one's buffers.
class BufferPool : public std::enable_shared_from_this<BufferPool> {
 public:
  at::Tensor empty(at::IntArrayRef sizes, at::ScalarType dtype) {
    int64_t numel = 1;
    for (int64_t s : sizes) numel *= s;
    const size_t bytes = ((numel * at::elementSize(dtype) + kAlign - 1) / kAlign) * kAlign;
    void* p = nullptr;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      auto it = free_.find(bytes);
      if (it != free_.end()) {
        p = it->second;
        free_.erase(it);
      } else {
        for (auto& [b, q] : free_) std::free(q);
        free_.clear();
      }
    }
    if (!p) {
      p = std::aligned_alloc(kAlign, std::max(bytes, kAlign));
      if (!p) throw Error("out of memory: " + std::to_string(bytes >> 20) + " MB for an activation");
      madvise(p, bytes, MADV_HUGEPAGE);
    }
    std::weak_ptr<BufferPool> pool = weak_from_this();
    return at::from_blob(
        p, sizes,
        [pool, bytes](void* q) {
          if (auto live = pool.lock()) {
            std::lock_guard<std::mutex> lock(live->mutex_);
            live->free_.emplace(bytes, q);
          } else {
            std::free(q);
          }
        },
        at::TensorOptions().dtype(dtype));
  }
  ~BufferPool() {
    for (auto& [b, q] : free_) std::free(q);
  }

 private:
  static constexpr size_t kAlign = size_t{2} << 20;
  std::mutex mutex_;
  std::multimap<size_t, void*> free_;
};
int64_t channels(const at::Tensor& a) { return is_blocked(a) ? a.size(1) * 16 : a.size(1); }

struct ConvKernels {
  struct Entry {
    dnnl::convolution_forward primitive;
    memory::desc src, dst;
    memory weights;
  };
  using Key = std::tuple<int64_t, int64_t, int64_t, bool, bool, bool>;  // N, H, W, src blocked, residual, relu
  std::mutex mutex;
  std::map<Key, Entry> entries;
  std::vector<std::pair<memory::desc, memory>> weights;  // one copy per layout the kernels want
  memory bias;
  at::Tensor weight_storage;  // keeps the float32 source alive
};

class DnnlOps : public SdOps {
 public:
  DnnlOps(Precision precision, bool winograd)
      : compute_(precision == Precision::kBFloat16 ? Type::bf16 : Type::f32),
        winograd_(winograd),
        aten_(make_sd_ops_aten()),
        pool_(std::make_shared<BufferPool>()) {}

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

  at::Tensor conv(const at::Tensor& x, SdConv& c, const at::Tensor& residual, bool relu) override {
    const bool src_blocked = is_blocked(x);
    const int64_t n = x.size(0), h = x.size(2), w = x.size(3), out = c.weight.size(0), k = c.weight.size(2);
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
    const ConvKernels::Entry& e = kernels(c, n, h, w, src_blocked, fuse, relu && !padded);
    at::Tensor dst;
    if (fuse) {
      dst = residual;  // the sum post-op adds into it
      if (dst.scalar_type() != at::kFloat || !dst.is_contiguous() || !is_blocked(dst) || dst.size(1) != blocks ||
          dst.size(2) != oh || dst.size(3) != ow)
        throw Error("internal: a residual does not match its convolution's output");
    } else {
      dst = pool_->empty({n, blocks, oh, ow, 16}, at::kFloat);  // [N, C/16, H', W', 16]
    }
    auto* cache = static_cast<ConvKernels*>(c.cache.get());
    memory src_m(e.src, dnnl_cpu_engine(), src.data_ptr()), dst_m(e.dst, dnnl_cpu_engine(), dst.data_ptr());
    std::unordered_map<int, memory> args = {{DNNL_ARG_SRC, src_m}, {DNNL_ARG_WEIGHTS, e.weights}, {DNNL_ARG_DST, dst_m}};
    if (c.bias.defined()) args[DNNL_ARG_BIAS] = cache->bias;
    dnnl::stream stream(dnnl_cpu_engine());
    e.primitive.execute(stream, args);
    stream.wait();
    if (!padded) return dst;
    at::Tensor y = output(dst).narrow(1, 0, out).contiguous();  // [N, O, H', W']
    if (residual.defined()) y.add_(residual);
    if (relu) y.relu_();
    return y;
  }

  at::Tensor norm_silu(const at::Tensor& x, const SdNorm& norm) override {
    if (!is_blocked(x) || x.scalar_type() != at::kFloat) return input(aten_->norm_silu(output(x), norm));
    const int64_t n = x.size(0), blocks = x.size(1), pixels = x.size(2) * x.size(3), c = blocks * 16;
    if (c % norm.groups)
      throw Error(std::to_string(c) + " channels do not divide into " + std::to_string(norm.groups) + " groups");
    const float* xp = x.data_ptr<float>();
    // Per-channel sums of x and x^2 (double), then each group's mean and 1 / std.
    std::vector<double> sum(n * c, 0.0), sumsq(n * c, 0.0);
    at::parallel_for(0, n * blocks, 1, [&](int64_t b0, int64_t b1) {
      for (int64_t b = b0; b < b1; ++b) kernels::block16_moments(xp + b * pixels * 16, pixels, &sum[b * 16], &sumsq[b * 16]);
    });
    std::vector<float> scale(n * c), shift(n * c);
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
    // The next convolution reads the result: bfloat16 in bf16 mode.
    const bool bf16 = compute_ == Type::bf16;
    at::Tensor y = pool_->empty(x.sizes(), bf16 ? at::kBFloat16 : at::kFloat);
    constexpr int64_t kChunk = 4096;  // pixels per task
    const int64_t chunks = (pixels + kChunk - 1) / kChunk;
    at::parallel_for(0, n * blocks * chunks, 1, [&](int64_t t0, int64_t t1) {
      for (int64_t t = t0; t < t1; ++t) {
        const int64_t b = t / chunks, p0 = (t % chunks) * kChunk, len = std::min(kChunk, pixels - p0);
        const int64_t off = (b * pixels + p0) * 16, ch = (b / blocks) * c + (b % blocks) * 16;
        kernels::block16_affine_silu(xp + off, len, &scale[ch], &shift[ch], bf16 ? nullptr : y.data_ptr<float>() + off,
                                     bf16 ? reinterpret_cast<uint16_t*>(y.data_ptr<at::BFloat16>()) + off : nullptr);
      }
    });
    return y;
  }

  at::Tensor upsample2x(const at::Tensor& x) override {
    if (!is_blocked(x)) return aten_->upsample2x(x);
    const int64_t n = x.size(0), b = x.size(1), h = x.size(2), w = x.size(3);
    at::Tensor y = pool_->empty({n, b, 2 * h, 2 * w, 16}, x.scalar_type());  // [N, C/16, 2H, 2W, 16]
    y.view({n, b, h, 2, w, 2, 16}).copy_(x.view({n, b, h, 1, w, 1, 16}).expand({n, b, h, 2, w, 2, 16}));
    return y;
  }

  at::Tensor attention(const at::Tensor& x, const SdAttention& a) override { return input(aten_->attention(output(x), a)); }

 private:
  const ConvKernels::Entry& kernels(SdConv& c, int64_t n, int64_t h, int64_t w, bool src_blocked, bool residual, bool relu) {
    if (!c.cache) {
      auto cache = std::make_shared<ConvKernels>();
      cache->weight_storage = c.weight.to(at::kFloat).contiguous();
      if (c.bias.defined()) {
        cache->bias = memory(memory::desc({c.bias.size(0)}, Type::f32, Tag::x), dnnl_cpu_engine());
        std::memcpy(cache->bias.get_data_handle(), c.bias.to(at::kFloat).contiguous().data_ptr<float>(),
                    c.bias.numel() * sizeof(float));
      }
      c.cache = cache;
    }
    auto& cache = *static_cast<ConvKernels*>(c.cache.get());
    std::lock_guard<std::mutex> lock(cache.mutex);
    const ConvKernels::Key key{n, h, w, src_blocked, residual, relu};
    auto it = cache.entries.find(key);
    if (it != cache.entries.end()) return it->second;

    const int64_t in = c.weight.size(1), out = c.weight.size(0), k = c.weight.size(2);
    const int64_t oh = (h + c.pad_begin + c.pad_end - k) / c.stride + 1, ow = (w + c.pad_begin + c.pad_end - k) / c.stride + 1;
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
      const auto d =
          c.bias.defined()
              ? dnnl::convolution_forward::desc(dnnl::prop_kind::forward_inference, algorithm, src, wei, bias, dst,
                                                {c.stride, c.stride}, {c.pad_begin, c.pad_begin}, {c.pad_end, c.pad_end})
              : dnnl::convolution_forward::desc(dnnl::prop_kind::forward_inference, algorithm, src, wei, dst,
                                                {c.stride, c.stride}, {c.pad_begin, c.pad_begin}, {c.pad_end, c.pad_end});
      return dnnl::convolution_forward::primitive_desc(d, attr, dnnl_cpu_engine());
    };
    dnnl::convolution_forward::primitive_desc pd;
    bool have = false;
    if (compute_ == Type::f32 && k == 3 && c.stride == 1 && src_blocked && out % 16 == 0 && winograd_) {
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
      memory user(memory::desc({out, in, k, k}, Type::f32, Tag::oihw), dnnl_cpu_engine(), cache.weight_storage.data_ptr());
      weights = memory(pd.weights_desc(), dnnl_cpu_engine());
      dnnl::stream stream(dnnl_cpu_engine());
      dnnl::reorder(user, weights).execute(stream, user, weights);
      stream.wait();
      cache.weights.push_back({pd.weights_desc(), weights});
    }
    return cache.entries.emplace(key, ConvKernels::Entry{dnnl::convolution_forward(pd), src, dst, weights}).first->second;
  }

  Type compute_;
  bool winograd_;
  std::unique_ptr<SdOps> aten_;
  std::shared_ptr<BufferPool> pool_;
};

}  // namespace

std::unique_ptr<SdOps> make_sd_ops_dnnl(Precision precision, bool winograd) {
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
  return std::make_unique<DnnlOps>(precision, winograd);
}

}  // namespace latent

#else

namespace latent {

std::unique_ptr<SdOps> make_sd_ops_dnnl(Precision, bool) { return nullptr; }

}  // namespace latent

#endif
