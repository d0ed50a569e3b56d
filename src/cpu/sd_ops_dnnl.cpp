// SdOps on oneDNN (CPU). Activations with a multiple of L channels stay in oneDNN's channel-blocked
// layout ([N, C/L, H, W, L]: nChw16c on AVX-512, nChw8c on AVX2 and below, as cpu::features() says
// oneDNN's convolution kernels want it) from the first convolution to the last, so no layer reorders
// its input, and no convolution falls to oneDNN's reference code for want of its layout.
// Convolutions: oneDNN's direct kernels, or Winograd's F(4x4, 3x3) or F(2x2, 3x3) (float32
// throughout; its transformed weights take 4x the memory) for 3x3 stride-1 ones where oneDNN has it
// for the shape and the output is large (128x128 and up); bias, the residual sum and ReLU fused.
// Weights: kept in the kernels' layout where small beside the output; else (large layers of a file
// read by mmap) transformed at each run into one shared buffer from the file's mapped bytes, whose
// pages are dropped again after, so the process holds ~40 MB of weights instead of 335 (the file's
// page cache holds them; re-read from disk if the system evicts it). `winograd` keeps Winograd
// weights for every 3x3 layer (fastest, ~2 GB at SD 1.x size).
// A convolution whose input is SiLU(GroupNorm(x)) or x upsampled runs band by band of output rows:
// the band's input rows are computed into a small buffer, convolved, and copied into place, so the
// normalized or upsampled tensor is never whole in memory (at 512x512 it would be 128-256 MB per
// layer). A resnet's 1x1 shortcut runs in the same bands, and when the channels shrink the result is
// written over the input's memory as its rows are consumed. The per-channel sums GroupNorm needs
// are taken from each band as it is copied out, so the next normalization need not read the tensor
// again. Attention runs on the same layout. Activations, weights and buffers are mapped pages
// outside malloc's heap; freed activations are kept for reuse up to the most ever in use at once.
// In bf16 mode every convolution reads bfloat16 (the band buffers are written in it) with bf16
// weights, float32 accumulation and output; the residual stream and the statistics stay float32.
#include "cpu/build_config.h"
#include "cpu/sd_ops.h"

#if LATENT_HAVE_DNNL

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <sys/mman.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <tuple>

#include "cpu/dnnl.h"
#include "cpu/gemm.h"
#include "cpu/kernels.h"
#include "cpu/thread_tuner.h"
#include "latent/error.h"
#include "latent/safetensors.h"

namespace latent {

using cpu::dnnl_engine;

namespace {

using dnnl::memory;
using Tag = memory::format_tag;
using Type = memory::data_type;

bool is_blocked(const at::Tensor& a) { return a.dim() == 5; }

// Where a convolution's Winograd weights live, if it may run Winograd.
enum class Wino { kNone, kKept, kTransient };

constexpr size_t kHugePage = size_t{2} << 20;

// Whole huge pages from 2 MB up, whole 4 KB pages below.
size_t page_bytes(size_t bytes) {
  const size_t unit = bytes >= kHugePage ? kHugePage : 4096;
  return std::max(unit, (bytes + unit - 1) / unit * unit);
}

// Memory mapped straight from the kernel, 2 MB-aligned and advised as huge pages (the kernel zeroes
// fresh pages, several times faster in 2 MB ones). Long-lived and large buffers live here rather
// than in malloc's heap, where a freed block below a live one stays resident (measured: ~100 MB of
// such holes at the decoder's peak, left by temporaries between the weights).
// `bytes` comes from page_bytes().
void* map_pages(size_t bytes) {
  if (bytes < kHugePage) {
    void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw Error("out of memory: " + std::to_string(bytes >> 10) + " KB for the SD autoencoder");
    return p;
  }
  void* p = mmap(nullptr, bytes + kHugePage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) throw Error("out of memory: " + std::to_string(bytes >> 20) + " MB for the SD autoencoder");
  const uintptr_t base = reinterpret_cast<uintptr_t>(p), aligned = (base + kHugePage - 1) / kHugePage * kHugePage;
  if (aligned > base) munmap(p, aligned - base);
  if (aligned + bytes < base + bytes + kHugePage) munmap(reinterpret_cast<void*>(aligned + bytes), base + kHugePage - aligned);
  madvise(reinterpret_cast<void*>(aligned), bytes, MADV_HUGEPAGE);
  return reinterpret_cast<void*>(aligned);
}

// A buffer of mapped pages that grows on request (its contents are not kept when it grows).
class Pages {
 public:
  Pages() = default;
  Pages(const Pages&) = delete;
  Pages& operator=(const Pages&) = delete;
  ~Pages() {
    if (p_) munmap(p_, bytes_);
  }
  void* at_least(size_t bytes) {  // the buffer, grown to at least `bytes`
    if (bytes > bytes_) {
      if (p_) munmap(p_, bytes_);
      p_ = nullptr;
      bytes_ = page_bytes(bytes);
      p_ = map_pages(bytes_);
    }
    return p_;
  }

 private:
  void* p_ = nullptr;
  size_t bytes_ = 0;
};

// The activations' memory. Freed buffers are kept for reuse, from one forward pass to the next, up
// to the most this pool ever had in use at once: reusing touched memory costs nothing, while fresh
// pages cost a fault each (measured in a decode's band copy-out: 0.7 GB/s into fresh pages, 4 GB/s
// into reused ones, about 0.9 s of a 512x512 decode), and what is in use plus what is kept never
// exceeds that high-water mark, so the pool does not raise the peak.
class ActivationMemory : public std::enable_shared_from_this<ActivationMemory> {
 public:
  ~ActivationMemory() {
    for (const auto& [p, bytes] : kept_) munmap(p, bytes);
  }

  at::Tensor get(at::IntArrayRef sizes, at::ScalarType dtype) {
    int64_t numel = 1;
    for (int64_t s : sizes) numel *= s;
    size_t bytes = page_bytes(numel * at::elementSize(dtype));
    void* p = nullptr;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      // The smallest kept buffer that is big enough but not twice too big (a larger one serves a
      // smaller request rather than fresh pages being mapped, within a bound on the waste); else the
      // smallest kept ones go until the new one fits.
      auto fit = kept_.end();
      for (auto k = kept_.begin(); k != kept_.end(); ++k)
        if (k->second >= bytes && k->second <= 2 * bytes && (fit == kept_.end() || k->second < fit->second)) fit = k;
      if (fit != kept_.end()) {
        p = fit->first;
        bytes = fit->second;
        kept_total_ -= bytes;
        kept_.erase(fit);
      } else {
        std::sort(kept_.begin(), kept_.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
        while (!kept_.empty() && in_use_ + kept_total_ + bytes > high_) {
          munmap(kept_.back().first, kept_.back().second);
          kept_total_ -= kept_.back().second;
          kept_.pop_back();
        }
      }
      in_use_ += bytes;
      high_ = std::max(high_, in_use_);
    }
    if (!p) {
      try {
        p = map_pages(bytes);
      } catch (...) {
        std::lock_guard<std::mutex> lock(mutex_);
        in_use_ -= bytes;
        throw;
      }
    }
    std::weak_ptr<ActivationMemory> self = weak_from_this();
    return at::from_blob(
        p, sizes,
        [self, bytes](void* q) {
          if (auto memory = self.lock())
            memory->keep(q, bytes);
          else
            munmap(q, bytes);
        },
        at::TensorOptions().dtype(dtype));
  }

 private:
  void keep(void* p, size_t bytes) {
    std::lock_guard<std::mutex> lock(mutex_);
    in_use_ -= bytes;
    kept_.emplace_back(p, bytes);
    kept_total_ += bytes;
  }

  std::mutex mutex_;
  std::vector<std::pair<void*, size_t>> kept_;
  size_t in_use_ = 0, kept_total_ = 0, high_ = 0;
};

// Lets the operating system have the pages of [begin, end) back (the memory stays allocated).
void discard_pages(const void* begin, const void* end) {
  const uintptr_t page = 4096, b = (reinterpret_cast<uintptr_t>(begin) + page - 1) / page * page,
                  e = reinterpret_cast<uintptr_t>(end) / page * page;
  if (e > b + (uintptr_t{2} << 20)) madvise(reinterpret_cast<void*>(b), e - b, MADV_DONTNEED);
}

int64_t channels(const at::Tensor& a) { return is_blocked(a) ? a.size(1) * a.size(4) : a.size(1); }

// A convolution layer's oneDNN state. Its weights are kept once per layout the kernels want (or made
// for each run), reordered from the source or, when that had to go, from the first layout.
struct ConvKernels {
  struct Entry {
    dnnl::convolution_forward primitive;
    memory::desc src, dst, scratchpad, weights_desc;
    memory weights;  // empty when they are made for each run (Winograd's, transient)
  };
  // N, input rows, W, top padding, bottom padding, src blocked, residual, relu, Winograd (a Wino value),
  // threads: oneDNN's kernels split their work for the thread count at creation and run that many
  // threads whatever the count at run time, so each count the tuner chooses gets kernels of its own.
  using Key = std::tuple<int64_t, int64_t, int64_t, int64_t, int64_t, bool, bool, bool, int, int>;
  std::mutex mutex;
  std::map<Key, Entry> entries;
  std::vector<std::pair<memory::desc, memory>> weights;
  std::vector<std::unique_ptr<Pages>> weight_pages;  // the weights' memory, outside malloc's heap
  memory bias;
  at::Tensor source;  // [out, in, k, k]: the file's mapped bytes (any dtype), or a float32 copy until the first layout
  bool source_mapped = false;
  int64_t out = 0, in = 0, k = 0;
  std::unique_ptr<Pages> wino;  // latent's Winograd weights [36][in][out], where kept (small beside the output)
  // Names the layer for the buffers of transient weights (an address could be a freed layer's).
  const uint64_t id = next_id();
  static uint64_t next_id() {
    static std::atomic<uint64_t> ids{0};
    return ++ids;
  }
};

// Output rows per band of a banded convolution: its input band (C channels, W wide) near
// `band_bytes`, a multiple of 4 rows (Winograd's output tiles are 4 rows high), at least 4.
int64_t band_rows(int64_t band_bytes, int64_t c, int64_t w, int64_t h) {
  const int64_t rows = std::max<int64_t>(4, band_bytes / (c * w * 4) / 4 * 4);
  return std::min(rows, h);
}

class DnnlOps : public SdOps {
 public:
  DnnlOps(Precision precision, bool winograd, int64_t band_bytes, bool follow_load, SdWinograd own_winograd)
      : follow_load_(follow_load),
        own_winograd_(own_winograd == SdWinograd::kAlways || (own_winograd == SdWinograd::kAuto && !cpu::features().winograd)),
        compute_(precision == Precision::kBFloat16 ? Type::bf16 : Type::f32),
        L_(cpu::features().conv_block),
        blocked_tag_(L_ == 16 ? Tag::nChw16c : Tag::nChw8c),
        winograd_(winograd),
        band_bytes_(band_bytes),
        memory_(std::make_shared<ActivationMemory>()),
        aten_(make_sd_ops_aten()) {}

  at::Tensor input(const at::Tensor& nchw) override {
    const at::Tensor x = nchw.to(at::kFloat).contiguous();
    const int64_t n = x.size(0), c = x.size(1), h = x.size(2), w = x.size(3);
    if (c % L_) return x;
    return x.view({n, c / L_, L_, h, w}).permute({0, 1, 3, 4, 2}).contiguous();  // [N, C/L, H, W, L]
  }

  at::Tensor output(const at::Tensor& act) override {
    const at::Tensor a = act.to(at::kFloat);
    if (!is_blocked(a)) return a.contiguous();
    return a.permute({0, 1, 4, 2, 3}).reshape({a.size(0), channels(a), a.size(2), a.size(3)}).contiguous();  // [N, C, H, W]
  }

  at::Tensor conv(const at::Tensor& x, SdConv& c, const at::Tensor& residual, bool relu, const SdPrologue& pre,
                  SdConv* shortcut) override {
    return cpu::dnnl_call("an SD convolution", [&] { return conv_any(x, c, residual, relu, pre, shortcut); });
  }

  at::Tensor attention(const at::Tensor& x, const SdAttention& a) override {
    return cpu::dnnl_call("SD attention", [&] { return attention_any(x, a); });
  }

  void end_pass() override {
    std::lock_guard<std::mutex> lock(moments_mutex_);
    moments_.clear();
  }

  std::vector<std::string> kernel_names() const override {
    std::lock_guard<std::mutex> lock(names_mutex_);
    return {names_.begin(), names_.end()};
  }

 private:
  at::Tensor conv_any(const at::Tensor& x, SdConv& c, const at::Tensor& residual, bool relu, const SdPrologue& pre,
                      SdConv* shortcut) {
    const ConvKernels& layer = prepare(c);
    const bool banded = (pre.norm || pre.upsample2x) && is_blocked(x) && x.scalar_type() == at::kFloat && layer.k == 3 &&
                        c.stride == 1 && c.pad_begin == 1 && c.pad_end == 1 && layer.out % L_ == 0 &&
                        (!shortcut || (is_blocked(residual) && prepare(*shortcut).k == 1));
    // In bf16 mode the band buffers hold bfloat16 for the convolution: the shortcut runs whole.
    if (banded && shortcut && compute_ == Type::bf16)
      return conv_banded(x, c, conv_whole(residual, *shortcut, {}, false), nullptr, relu, pre);
    if (banded) return conv_banded(x, c, residual, shortcut, relu, pre);
    at::Tensor in = x;
    if (pre.norm) in = norm_silu(in, *pre.norm);
    if (pre.upsample2x) in = upsample2x(in);
    return conv_whole(in, c, shortcut ? conv_whole(residual, *shortcut, {}, false) : residual, relu);
  }

  // Attention on the blocked layout, its buffers from the activation memory (ATen's temporaries would
  // come from malloc's heap and stay resident there as holes): GroupNorm into pixel-major rows, the
  // projections and the score blocks by BLAS, softmax in place, the residual added in the blocked layout.
  at::Tensor attention_any(const at::Tensor& x, const SdAttention& a) {
    if (!is_blocked(x) || x.scalar_type() != at::kFloat) return input(aten_->attention(output(x), a));
    const int64_t n = x.size(0), blocks = x.size(1), pixels = x.size(2) * x.size(3), c = blocks * L_, L = L_;
    std::vector<float> scale, shift;
    group_affine(x, a.norm, scale, shift);
    const at::Tensor y = activation(x.sizes(), at::kFloat);
    at::Tensor t = activation({pixels, c}, at::kFloat);  // [P, C]
    at::Tensor q = activation({pixels, c}, at::kFloat), k = activation({pixels, c}, at::kFloat),
               v = activation({pixels, c}, at::kFloat), o = activation({pixels, c}, at::kFloat);
    const int64_t rows = std::min(kSdAttentionRows, pixels);
    const at::Tensor s = activation({rows, pixels}, at::kFloat);  // a block of scores
    const float* xp = x.data_ptr<float>();
    float* yp = y.data_ptr<float>();
    float* tp = t.data_ptr<float>();
    for (int64_t i = 0; i < n; ++i) {
      const float* xi = xp + i * c * pixels;
      at::parallel_for(0, pixels, 256, [&](int64_t p0, int64_t p1) {
        for (int64_t p = p0; p < p1; ++p)
          for (int64_t b = 0; b < blocks; ++b)
            for (int64_t l = 0; l < L; ++l) {
              const int64_t ch = b * L + l;
              tp[p * c + ch] = xi[(b * pixels + p) * L + l] * scale[i * c + ch] + shift[i * c + ch];
            }
      });
      at::addmm_out(q, a.q_bias, t, a.q_weight.t());
      at::addmm_out(k, a.k_bias, t, a.k_weight.t());
      at::addmm_out(v, a.v_bias, t, a.v_weight.t());
      for (int64_t r = 0; r < pixels; r += rows) {
        const int64_t m = std::min(rows, pixels - r);
        at::Tensor sr = s.narrow(0, 0, m), orow = o.narrow(0, r, m);
        at::mm_out(sr, q.narrow(0, r, m), k.t());
        sr.mul_(1.0 / std::sqrt(static_cast<double>(c)));
        sr.sub_(std::get<0>(sr.max(1, true))).exp_();
        sr.div_(sr.sum(1, true));
        at::mm_out(orow, sr, v);
      }
      at::addmm_out(t, a.out_bias, o, a.out_weight.t());  // t now holds the attention's output
      float* yi = yp + i * c * pixels;
      at::parallel_for(0, blocks, 1, [&](int64_t b0, int64_t b1) {
        for (int64_t b = b0; b < b1; ++b)
          for (int64_t p = 0; p < pixels; ++p)
            for (int64_t l = 0; l < L; ++l) yi[(b * pixels + p) * L + l] = xi[(b * pixels + p) * L + l] + tp[p * c + b * L + l];
      });
    }
    return y;
  }

  at::Tensor conv_whole(const at::Tensor& x, SdConv& c, const at::Tensor& residual, bool relu) {
    const bool src_blocked = is_blocked(x);
    const ConvKernels& layer = prepare(c);
    const int64_t n = x.size(0), h = x.size(2), w = x.size(3), out = layer.out, k = layer.k;
    const int64_t oh = (h + c.pad_begin + c.pad_end - k) / c.stride + 1, ow = (w + c.pad_begin + c.pad_end - k) / c.stride + 1;
    // Output channels not a multiple of L (conv_out: 3 or 8) are computed into a zero-padded block
    // (oneDNN's plain-layout kernels for them are its slow reference ones), then cut to NCHW.
    const bool padded = out % L_ != 0;
    const int64_t blocks = (out + L_ - 1) / L_;
    // The kernels read the compute type: bfloat16 inputs come straight from norm_silu in bf16 mode.
    at::Tensor src = x;
    if (compute_ == Type::bf16 && x.scalar_type() != at::kBFloat16) src = x.to(at::kBFloat16);
    if (compute_ == Type::f32 && x.scalar_type() != at::kFloat) src = x.to(at::kFloat);
    src = src.contiguous();
    const bool fuse = residual.defined() && !padded;
    const ConvKernels::Entry& e = conv_kernels(c, n, h, w, c.pad_begin, c.pad_end, src_blocked, fuse, relu && !padded, oh * ow);
    at::Tensor dst = fuse ? checked_residual(residual, n, blocks, oh, ow) : activation({n, blocks, oh, ow, L_}, at::kFloat);
    if (fuse) forget_moments(dst);
    execute(c, e, src.data_ptr(), dst.data_ptr());
    if (!padded) return dst;
    at::Tensor y = output(dst).narrow(1, 0, out).contiguous();  // [N, O, H', W']
    if (residual.defined()) y.add_(residual);
    if (relu) y.relu_();
    return y;
  }

  // A 3x3 stride-1 convolution of pre(x), computed band of output rows by band: each band's input
  // rows (with their one-row halo) are transformed into a small buffer, convolved into another (which
  // holds the band's residual first, for the fused sum: the residual's rows, or shortcut(residual)
  // computed from them), and copied into place, taking the output's per-channel moments on the way.
  // With a shortcut that shrinks the channels the output overwrites the residual's memory: band r of
  // the output lands on residual rows that band r or an earlier one has consumed.
  at::Tensor conv_banded(const at::Tensor& x, SdConv& c, const at::Tensor& residual, SdConv* shortcut, bool relu,
                         const SdPrologue& pre) {
    const int64_t n = x.size(0), blocks = x.size(1), sh = x.size(2), sw = x.size(3);
    const int64_t L = L_, f = pre.upsample2x ? 2 : 1, h = sh * f, w = sw * f, out_blocks = prepare(c).out / L;
    const int64_t res_blocks = shortcut ? prepare(*shortcut).in / L : out_blocks;
    if (shortcut && prepare(*shortcut).out != out_blocks * L) throw Error("internal: a shortcut does not match its convolution");
    std::vector<float> scale, shift;
    if (pre.norm) group_affine(x, *pre.norm, scale, shift);
    at::Tensor dst;  // [N, O/L, H, W, L]
    if (residual.defined()) checked_residual(residual, n, res_blocks, h, w);
    if (residual.defined() && res_blocks >= out_blocks)
      dst = residual.view(-1).narrow(0, 0, n * out_blocks * h * w * L).view({n, out_blocks, h, w, L});
    else
      dst = activation({n, out_blocks, h, w, L}, at::kFloat);
    const int64_t rows = band_rows(band_bytes_, blocks * L, w, h);
    const bool bf16 = compute_ == Type::bf16;
    // The band buffers live as long as these operations (no page faults, no heap churn per layer);
    // one convolution at a time uses them.
    std::lock_guard<std::mutex> lock(band_mutex_);
    float* ip = static_cast<float*>(
        in_band_.at_least(std::max(blocks * (rows + 2) * (bf16 ? 2 : 4), shortcut ? res_blocks * rows * 4 : 0) * w * L));
    float* op = static_cast<float*>(out_band_.at_least(out_blocks * rows * w * L * 4));
    const float* xp = x.data_ptr<float>();
    const float* rp = residual.defined() ? residual.data_ptr<float>() : nullptr;
    float* dp = dst.data_ptr<float>();
    std::vector<double> sum(n * out_blocks * L, 0.0), sumsq(n * out_blocks * L, 0.0);
    const cpu::Kernels& k = cpu::kernels();
    // latent's own Winograd where oneDNN has none (below AVX-512), in float32: its weights for this run.
    const float* wino = own_winograd_ && !bf16 ? wino_weights(c, h * w) : nullptr;
    if (follow_load_ && !tuner_) {
      // Bands take tens of milliseconds: probes of a few (a probe's units cost what they run slower).
      cpu::TunerSettings settings;
      settings.warmup = 1;
      settings.early = 2;
      settings.window = 6;
      settings.first_probe = 24;
      settings.min_interval = 48;
      settings.max_interval = 768;
      tuner_.emplace(at::get_num_threads(), settings);
    }
    const double in_channels = static_cast<double>(blocks * L);
    for (int64_t i = 0; i < n; ++i)
      for (int64_t r0 = 0; r0 < h; r0 += rows) {
        const int64_t r1 = std::min(h, r0 + rows), y0 = std::max<int64_t>(0, r0 - 1), y1 = std::min(h, r1 + 1), in_rows = y1 - y0;
        const int64_t band = (r1 - r0) * w * L;  // floats of one block's band of output rows
        auto rows_of = [&](auto* base, int64_t count, int64_t b) { return base + ((i * count + b) * h + r0) * w * L; };
        if (tuner_) tuner_->begin();
        if (shortcut) {  // the residual's band, gathered, through the 1x1 shortcut
          at::parallel_for(0, res_blocks, 1, [&](int64_t b0, int64_t b1) {
            for (int64_t b = b0; b < b1; ++b) std::memcpy(ip + b * band, rows_of(rp, res_blocks, b), band * sizeof(float));
          });
          execute(*shortcut, conv_kernels(*shortcut, 1, r1 - r0, w, 0, 0, true, false, false, h * w), ip, op);
        } else if (residual.defined()) {
          at::parallel_for(0, out_blocks, 1, [&](int64_t b0, int64_t b1) {
            for (int64_t b = b0; b < b1; ++b) std::memcpy(op + b * band, rows_of(rp, out_blocks, b), band * sizeof(float));
          });
        }
        at::parallel_for(0, blocks * in_rows, 1, [&](int64_t t0, int64_t t1) {
          for (int64_t t = t0; t < t1; ++t) {
            const int64_t b = t / in_rows, j = t % in_rows, sy = (y0 + j) / f;
            const float* src = xp + (((i * blocks + b) * sh + sy) * sw) * L;
            const int64_t at = (b * in_rows + j) * w * L, ch = i * blocks * L + b * L;
            k.block_fill(src, sw, L, pre.norm ? &scale[ch] : nullptr, pre.norm ? &shift[ch] : nullptr, f == 2,
                         bf16 ? nullptr : ip + at, bf16 ? reinterpret_cast<uint16_t*>(ip) + at : nullptr);
          }
        });
        if (wino)
          wino_band(wino, prepare(c), ip, blocks, in_rows, r0 == 0 ? -1 : 0, r1 - r0, w, residual.defined(), relu, op);
        else
          execute(c, conv_kernels(c, 1, in_rows, w, r0 == 0, r1 == h, true, residual.defined(), relu, h * w), ip, op);
        at::parallel_for(0, out_blocks, 1, [&](int64_t b0, int64_t b1) {
          for (int64_t b = b0; b < b1; ++b) {
            const int64_t ch = (i * out_blocks + b) * L;
            k.block_copy_moments(op + b * band, band / L, L, rows_of(dp, out_blocks, b), &sum[ch], &sumsq[ch]);
          }
        });
        if (tuner_) tuner_->end(static_cast<double>(band * out_blocks) * in_channels * 9);  // multiply-adds
      }
    if (residual.defined() && dst.data_ptr() == residual.data_ptr())  // the residual's rows past the output's
      discard_pages(dp + dst.numel(), rp + residual.numel());
    keep_moments(dst, std::move(sum), std::move(sumsq));
    return dst;
  }

  // Winograd F(4x4, 3x3) weights of a 3x3 layer, [36][in][out] (G g G^T of each kernel): kept with
  // the layer where small beside its output (`pixels`, as oneDNN's are kept above) or when every
  // layer's are to be kept (`winograd`), else made into one buffer for this run (a 512-channel
  // layer's are 38 MB, made in ~20 ms).
  const float* wino_weights(SdConv& c, int64_t pixels) {
    ConvKernels& layer = prepare(c);
    const int64_t in = layer.in, out = layer.out, bytes = 36 * in * out * 4;
    if (layer.wino) return static_cast<const float*>(layer.wino->at_least(bytes));
    constexpr int64_t kKeptBytesPerPixel = 40;
    Pages* target = &wino_transient_;
    if (winograd_ || bytes <= kKeptBytesPerPixel * pixels) {  // (`winograd`: every layer's kept)
      layer.wino = std::make_unique<Pages>();
      target = layer.wino.get();
    } else if (wino_transient_layer_ == layer.id) {
      return static_cast<const float*>(wino_transient_.at_least(bytes));
    }
    float* u = static_cast<float*>(target->at_least(bytes));
    dnnl::stream stream(dnnl_engine());
    Pages as_float;
    const memory plain = plain_weights(layer, stream, as_float);
    stream.wait();
    const float* g = static_cast<const float*>(plain.get_data_handle());  // [out, in, 3, 3]
    // By input channel, then output channel: the 36 values of each kernel go to 36 rows of u, each
    // written in order of the output channel.
    at::parallel_for(0, in, 4, [&](int64_t c0, int64_t c1) {
      for (int64_t ci = c0; ci < c1; ++ci)
        for (int64_t o = 0; o < out; ++o) {
          const float* k = g + (o * in + ci) * 9;
          double gg[6][3];  // G g
          for (int64_t j = 0; j < 3; ++j) {
            const double k0 = k[j], k1 = k[3 + j], k2 = k[6 + j];
            gg[0][j] = k0 / 4;
            gg[1][j] = -(k0 + k1 + k2) / 6;
            gg[2][j] = -(k0 - k1 + k2) / 6;
            gg[3][j] = k0 / 24 + k1 / 12 + k2 / 6;
            gg[4][j] = k0 / 24 - k1 / 12 + k2 / 6;
            gg[5][j] = k2;
          }
          for (int64_t i = 0; i < 6; ++i) {  // (G g) G^T
            const double a = gg[i][0], b = gg[i][1], d = gg[i][2];
            const double row[6] = {a / 4, -(a + b + d) / 6, -(a - b + d) / 6, a / 24 + b / 12 + d / 6, a / 24 - b / 12 + d / 6,
                                   d};
            for (int64_t e = 0; e < 6; ++e) u[((i * 6 + e) * in + ci) * out + o] = static_cast<float>(row[e]);
          }
        }
    });
    if (target == &wino_transient_) wino_transient_layer_ = layer.id;
    safetensors_drop_pages(layer.source);
    return u;
  }

  // One band of a 3x3 convolution by Winograd F(4x4, 3x3): the input band's tiles transformed, 36
  // matrix products over the input channels, the output tiles transformed back into `op`, with the
  // bias, the residual already in `op` (accumulate) and ReLU. Every step is per tile or per product,
  // so the result does not depend on the thread count.
  void wino_band(const float* u, const ConvKernels& layer, const float* ip, int64_t in_blocks, int64_t in_rows, int64_t first_row,
                 int64_t out_rows, int64_t w, bool accumulate, bool relu, float* op) {
    const cpu::Kernels& k = cpu::kernels();
    const int64_t L = L_, tiles_w = (w + 3) / 4, tiles = (out_rows + 3) / 4 * tiles_w, cin = layer.in, cout = layer.out;
    std::lock_guard<std::mutex> lock(wino_mutex_);
    // A tile's 36 transformed positions lie together ([tiles][36][channels]), so the transforms read
    // and write a few kilobytes per tile; each position's product reads and writes them with a stride.
    float* v = static_cast<float*>(wino_v_.at_least(36 * tiles * cin * 4));   // [tiles][36][in]
    float* m = static_cast<float*>(wino_m_.at_least(36 * tiles * cout * 4));  // [tiles][36][out]
    constexpr int64_t kTilesPerTask = 16;
    const int64_t chunks = (tiles + kTilesPerTask - 1) / kTilesPerTask;
    at::parallel_for(0, in_blocks * chunks, 1, [&](int64_t q0, int64_t q1) {
      for (int64_t q = q0; q < q1; ++q) {
        const int64_t b = q / chunks, t0 = (q % chunks) * kTilesPerTask, t1 = std::min(tiles, t0 + kTilesPerTask);
        k.wino_input(ip + b * in_rows * w * L, in_rows, first_row, w, L, tiles_w, t0, t1, v + b * L, cin, 36 * cin);
      }
    });
    cpu::gemm_batch(36, tiles, cout, cin, v, 36 * cin, cin, u, cout, cin * cout, m, 36 * cout, cout);
    const float* bias = layer.bias ? static_cast<const float*>(layer.bias.get_data_handle()) : nullptr;
    const int64_t out_blocks = cout / L;
    at::parallel_for(0, out_blocks * chunks, 1, [&](int64_t q0, int64_t q1) {
      for (int64_t q = q0; q < q1; ++q) {
        const int64_t b = q / chunks, t0 = (q % chunks) * kTilesPerTask, t1 = std::min(tiles, t0 + kTilesPerTask);
        k.wino_output(m + b * L, cout, 36 * cout, tiles_w, t0, t1, out_rows, w, L, bias ? bias + b * L : nullptr, accumulate,
                      relu, op + b * out_rows * w * L);
      }
    });
  }

  // Runs a convolution. Its scratchpad (Winograd's transformed tiles: tens of MB) is one buffer kept
  // by these operations: oneDNN's own would be allocated and freed around every run, each time
  // fresh pages (measured: most of a Winograd decode's page faults).
  void execute(const SdConv& c, const ConvKernels::Entry& e, void* src, void* dst) {
    auto* cache = static_cast<ConvKernels*>(c.cache.get());
    memory src_m(e.src, dnnl_engine(), src), dst_m(e.dst, dnnl_engine(), dst);
    std::unordered_map<int, memory> args = {{DNNL_ARG_SRC, src_m}, {DNNL_ARG_WEIGHTS, e.weights}, {DNNL_ARG_DST, dst_m}};
    if (c.bias.defined()) args[DNNL_ARG_BIAS] = cache->bias;
    std::lock_guard<std::mutex> lock(scratchpad_mutex_);
    args[DNNL_ARG_SCRATCHPAD] = memory(e.scratchpad, dnnl_engine(), scratchpad_.at_least(e.scratchpad.get_size()));
    dnnl::stream stream(dnnl_engine());
    if (!e.weights) {  // transient: transformed once per layer run, the bands after the first reuse them
      void* buffer = transient_.at_least(e.weights_desc.get_size());
      if (transient_layer_ != cache->id || transient_desc_ != e.weights_desc) {
        memory from = plain_weights(*cache, stream, transient_plain_), to(e.weights_desc, dnnl_engine(), buffer);
        // Its scratch space ours too (oneDNN's would come from malloc's heap and stay there).
        dnnl::primitive_attr attr;
        attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
        const dnnl::reorder::primitive_desc rpd(from, to, attr);
        note_kernel(rpd.impl_info_str());
        memory scratch(rpd.scratchpad_desc(), dnnl_engine(), transient_scratch_.at_least(rpd.scratchpad_desc().get_size()));
        dnnl::reorder(rpd).execute(stream, {{DNNL_ARG_FROM, from}, {DNNL_ARG_TO, to}, {DNNL_ARG_SCRATCHPAD, scratch}});
        stream.wait();
        safetensors_drop_pages(cache->source);
        transient_layer_ = cache->id;
        transient_desc_ = e.weights_desc;
      }
      args[DNNL_ARG_WEIGHTS] = memory(e.weights_desc, dnnl_engine(), buffer);
    }
    e.primitive.execute(stream, args);
    stream.wait();
  }

  static const at::Tensor& checked_residual(const at::Tensor& r, int64_t n, int64_t blocks, int64_t h, int64_t w) {
    if (r.scalar_type() != at::kFloat || !r.is_contiguous() || !is_blocked(r) || r.size(0) != n || r.size(1) != blocks ||
        r.size(2) != h || r.size(3) != w)
      throw Error("internal: a residual does not match its convolution's output");
    return r;
  }

  // Per-channel sums of x and x^2 (double) of a banded convolution's output, kept for the
  // GroupNorm that reads it next. The entry knows its tensor by storage (a weak reference, so the
  // identity cannot be reused while the entry exists), data pointer and shape.
  struct Moments {
    c10::weak_intrusive_ptr<c10::StorageImpl> storage;
    const void* data;
    std::vector<int64_t> sizes;
    std::vector<double> sum, sumsq;
    bool of(const at::Tensor& x) const {
      return !storage.expired() && storage._unsafe_get_target() == x.storage().unsafeGetStorageImpl() && data == x.data_ptr() &&
             sizes == x.sizes().vec();
    }
  };

  void keep_moments(const at::Tensor& x, std::vector<double> sum, std::vector<double> sumsq) {
    constexpr size_t kKept = 4;  // a resnet's input and intermediate, with room to spare
    std::lock_guard<std::mutex> lock(moments_mutex_);
    moments_.erase(std::remove_if(moments_.begin(), moments_.end(),
                                  [&](const Moments& m) {  // and what was known of x's memory before
                                    return m.storage.expired() ||
                                           m.storage._unsafe_get_target() == x.storage().unsafeGetStorageImpl();
                                  }),
                   moments_.end());
    if (moments_.size() >= kKept) moments_.erase(moments_.begin());
    moments_.push_back({x.storage().getWeakStorageImpl(), x.data_ptr(), x.sizes().vec(), std::move(sum), std::move(sumsq)});
  }

  // Forgets x's moments (its values are about to change).
  void forget_moments(const at::Tensor& x) {
    std::lock_guard<std::mutex> lock(moments_mutex_);
    moments_.erase(std::remove_if(moments_.begin(), moments_.end(), [&](const Moments& m) { return m.of(x); }), moments_.end());
  }

  // GroupNorm's per-channel scale and shift for x [N, C/L, H, W, L]: per-channel sums of x and x^2
  // (kept from the convolution that made x, or one pass over x), then each group's mean and 1 / std
  // folded with gamma and beta. scale, shift: [N * C].
  void group_affine(const at::Tensor& x, const SdNorm& norm, std::vector<float>& scale, std::vector<float>& shift) {
    const int64_t n = x.size(0), blocks = x.size(1), pixels = x.size(2) * x.size(3), L = x.size(4), c = blocks * L;
    if (c % norm.groups)
      throw Error(std::to_string(c) + " channels do not divide into " + std::to_string(norm.groups) + " groups");
    std::vector<double> sum, sumsq;
    {
      std::lock_guard<std::mutex> lock(moments_mutex_);
      for (const Moments& m : moments_)
        if (m.of(x)) {
          sum = m.sum;
          sumsq = m.sumsq;
        }
    }
    if (sum.empty()) {
      sum.assign(n * c, 0.0);
      sumsq.assign(n * c, 0.0);
      const float* xp = x.data_ptr<float>();
      at::parallel_for(0, n * blocks, 1, [&](int64_t b0, int64_t b1) {
        for (int64_t b = b0; b < b1; ++b)
          cpu::kernels().block_moments(xp + b * pixels * L, pixels, L, &sum[b * L], &sumsq[b * L]);
      });
    }
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
    const int64_t n = x.size(0), blocks = x.size(1), pixels = x.size(2) * x.size(3), L = x.size(4), c = blocks * L;
    const bool bf16 = compute_ == Type::bf16;
    at::Tensor y = activation(x.sizes(), bf16 ? at::kBFloat16 : at::kFloat);
    const float* xp = x.data_ptr<float>();
    constexpr int64_t kChunk = 4096;  // pixels per task
    const int64_t chunks = (pixels + kChunk - 1) / kChunk;
    at::parallel_for(0, n * blocks * chunks, 1, [&](int64_t t0, int64_t t1) {
      for (int64_t t = t0; t < t1; ++t) {
        const int64_t b = t / chunks, p0 = (t % chunks) * kChunk, len = std::min(kChunk, pixels - p0);
        const int64_t off = (b * pixels + p0) * L, ch = (b / blocks) * c + (b % blocks) * L;
        cpu::kernels().block_fill(xp + off, len, L, &scale[ch], &shift[ch], false, bf16 ? nullptr : y.data_ptr<float>() + off,
                                  bf16 ? reinterpret_cast<uint16_t*>(y.data_ptr<at::BFloat16>()) + off : nullptr);
      }
    });
    return y;
  }

  at::Tensor upsample2x(const at::Tensor& x) {
    if (!is_blocked(x)) return at::upsample_nearest2d(x, {2 * x.size(2), 2 * x.size(3)});
    const int64_t n = x.size(0), b = x.size(1), h = x.size(2), w = x.size(3), L = x.size(4);
    at::Tensor y = activation({n, b, 2 * h, 2 * w, L}, x.scalar_type());  // [N, C/L, 2H, 2W, L]
    y.view({n, b, h, 2, w, 2, L}).copy_(x.view({n, b, h, 1, w, 1, L}).expand({n, b, h, 2, w, 2, L}));
    return y;
  }

  // The convolution kernels for input [N, C, h, w] (h rows with `pad_top` and `pad_bottom` zero rows
  // around them), made once per shape.
  // The layer's state, made on first use; the model's own reference to the weights goes then.
  static ConvKernels& prepare(SdConv& c) {
    if (!c.cache) {
      auto cache = std::make_shared<ConvKernels>();
      // The file's mapped bytes in their own dtype when they are that (converted at each layout made),
      // else a float32 copy.
      cache->source = c.weight.contiguous();
      cache->source_mapped = safetensors_drop_pages(cache->source);  // (nothing read yet to drop)
      if (!cache->source_mapped) cache->source = cache->source.to(at::kFloat);
      cache->out = c.weight.size(0);
      cache->in = c.weight.size(1);
      cache->k = c.weight.size(2);
      if (c.bias.defined()) {
        cache->bias = memory(memory::desc({c.bias.size(0)}, Type::f32, Tag::x), dnnl_engine());
        std::memcpy(cache->bias.get_data_handle(), c.bias.to(at::kFloat).contiguous().data_ptr<float>(),
                    c.bias.numel() * sizeof(float));
      }
      c.cache = cache;
      c.weight = at::Tensor();
    }
    return *static_cast<ConvKernels*>(c.cache.get());
  }

  // `pixels`: the whole output's, per image (a band's kernels are chosen for the layer it is part of).
  const ConvKernels::Entry& conv_kernels(SdConv& c, int64_t n, int64_t h, int64_t w, int64_t pad_top, int64_t pad_bottom,
                                         bool src_blocked, bool residual, bool relu, int64_t pixels) {
    auto& cache = prepare(c);
    std::lock_guard<std::mutex> lock(cache.mutex);
    // Winograd everywhere on request, its weights kept. Else kept where they (F(4x4, 3x3): 36 values
    // per input and output channel, 4x the direct kernels') are small beside the output (at SD 1.x
    // sizes the layers at full resolution), and transformed for each run into one shared buffer
    // where the output is large enough for that to pay (oneDNN's transform of a 512-channel layer
    // takes ~42 ms; Winograd saves ~135 ms on one at 128x128, ~30 ms at 64x64).
    constexpr int64_t kWinogradBytesPerPixel = 40, kTransientPixels = 128 * 128;
    const Wino wino = winograd_ || cache.in * cache.out * 36 * 4 <= kWinogradBytesPerPixel * pixels ? Wino::kKept
                      : pixels >= kTransientPixels                                                  ? Wino::kTransient
                                                                                                    : Wino::kNone;
    const ConvKernels::Key key{
        n, h, w, pad_top, pad_bottom, src_blocked, residual, relu, static_cast<int>(wino), at::get_num_threads()};
    auto it = cache.entries.find(key);
    if (it != cache.entries.end()) return it->second;

    const int64_t in = cache.in, out = cache.out, k = cache.k;
    const int64_t oh = (h + pad_top + pad_bottom - k) / c.stride + 1, ow = (w + c.pad_begin + c.pad_end - k) / c.stride + 1;
    const memory::desc src({n, in, h, w}, compute_, src_blocked ? blocked_tag_ : Tag::nchw);
    const memory::desc dst({n, out, oh, ow}, Type::f32, blocked_tag_);
    const memory::desc wei({out, in, k, k}, compute_, Tag::any);
    const memory::desc bias({out}, Type::f32, Tag::x);
    dnnl::post_ops ops;
    if (residual) ops.append_sum(1.0f);
    if (relu) ops.append_eltwise(1.0f, dnnl::algorithm::eltwise_relu, 0.0f, 0.0f);
    dnnl::primitive_attr attr;
    attr.set_post_ops(ops);
    attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
    auto describe = [&](dnnl::algorithm algorithm) {
      const memory::dims strides{c.stride, c.stride}, pad_l{pad_top, c.pad_begin}, pad_r{pad_bottom, c.pad_end};
      const auto d = c.bias.defined() ? dnnl::convolution_forward::desc(dnnl::prop_kind::forward_inference, algorithm, src, wei,
                                                                        bias, dst, strides, pad_l, pad_r)
                                      : dnnl::convolution_forward::desc(dnnl::prop_kind::forward_inference, algorithm, src, wei,
                                                                        dst, strides, pad_l, pad_r);
      return dnnl::convolution_forward::primitive_desc(d, attr, dnnl_engine());
    };
    dnnl::convolution_forward::primitive_desc pd;
    bool have = false;
    const bool may_wino =
        cpu::features().winograd && compute_ == Type::f32 && k == 3 && c.stride == 1 && out % L_ == 0 && wino != Wino::kNone;
    if (may_wino && src_blocked) {
      try {
        pd = describe(dnnl::algorithm::convolution_winograd);
        have = true;
      } catch (const dnnl::error&) {
        // this shape or post-op has no Winograd kernel on this CPU: direct below
      }
    }
    if (!have) pd = describe(dnnl::algorithm::convolution_direct);
    note_kernel(pd.impl_info_str());
    // The weights in the layout these kernels want, reordered once and shared by every shape; or,
    // transient, for each run: Winograd's as above, and large direct ones whose source is the file's
    // mapped bytes (reordering 9 MB takes a few ms; kept, SD's 512-channel layers would hold ~170 MB
    // that the file's page cache holds anyway).
    constexpr int64_t kTransientDirectBytes = int64_t{4} << 20;
    const bool transient =
        (have && wino == Wino::kTransient) || (!have && cache.source.defined() && cache.source_mapped && cache.weights.empty() &&
                                               cache.out * cache.in * k * k * 4 >= kTransientDirectBytes);
    memory weights;
    for (const auto& [desc, m] : cache.weights)
      if (desc == pd.weights_desc()) weights = m;
    const bool converted = cache.source.defined() && !cache.source_mapped;
    if (!weights && !(transient && !converted)) {
      dnnl::stream stream(dnnl_engine());
      Pages as_float;  // an F16/BF16 source as float32, for this once
      memory from = plain_weights(cache, stream, as_float);
      auto add = [&](const memory::desc& desc) {
        cache.weight_pages.push_back(std::make_unique<Pages>());
        memory m(desc, dnnl_engine(), cache.weight_pages.back()->at_least(desc.get_size()));
        const dnnl::reorder::primitive_desc rpd(from, m);
        note_kernel(rpd.impl_info_str());
        dnnl::reorder(rpd).execute(stream, from, m);
        cache.weights.push_back({desc, m});
        return m;
      };
      // A source mapped from the file stays (its pages dropped: re-read if touched); a converted one
      // goes, after a direct layout exists to come back from (Winograd's cannot be reordered back).
      if (converted && have) add(describe(dnnl::algorithm::convolution_direct).weights_desc());
      if (!transient) weights = add(pd.weights_desc());
      stream.wait();
      if (converted) cache.source = at::Tensor();
      safetensors_drop_pages(cache.source);
    }
    return cache.entries
        .emplace(key, ConvKernels::Entry{dnnl::convolution_forward(pd), src, dst, pd.scratchpad_desc(), pd.weights_desc(),
                                         transient ? memory() : weights})
        .first->second;
  }

  // The layer's weights as plain float32 [out, in, k, k]: its source (converted into `buffer` when
  // F16/BF16), or a copy from its first layout once the source has gone (oneDNN reorders to
  // Winograd's layout only from plain weights).
  static memory plain_weights(const ConvKernels& cache, dnnl::stream& stream, Pages& buffer) {
    const memory::desc plain({cache.out, cache.in, cache.k, cache.k}, Type::f32, Tag::oihw);
    if (cache.source.defined() && cache.source.scalar_type() == at::kFloat)
      return memory(plain, dnnl_engine(), const_cast<void*>(cache.source.data_ptr()));
    memory from(plain, dnnl_engine(), buffer.at_least(plain.get_size()));
    if (cache.source.defined()) {
      at::from_blob(from.get_data_handle(), cache.source.sizes(), at::kFloat).copy_(cache.source);
    } else {
      memory first = cache.weights.front().second;
      dnnl::reorder(first, from).execute(stream, first, from);
    }
    return from;
  }

  at::Tensor activation(at::IntArrayRef sizes, at::ScalarType dtype) { return memory_->get(sizes, dtype); }

  void note_kernel(const std::string& name) {
    std::lock_guard<std::mutex> lock(names_mutex_);
    names_.insert(name);
  }

  bool follow_load_;
  bool own_winograd_;                      // latent's Winograd for the banded float32 3x3 convolutions
  std::optional<cpu::ThreadTuner> tuner_;  // with follow_load, made at the first band (the thread count is known then)
  Type compute_;
  int64_t L_;        // channels per block of the activations
  Tag blocked_tag_;  // their oneDNN format
  bool winograd_;
  int64_t band_bytes_;
  std::shared_ptr<ActivationMemory> memory_;
  std::mutex moments_mutex_;
  std::vector<Moments> moments_;
  std::mutex band_mutex_, scratchpad_mutex_;  // the second also guards the transient weights
  Pages in_band_, out_band_, scratchpad_, transient_, transient_scratch_, transient_plain_;
  std::mutex wino_mutex_;
  Pages wino_v_, wino_m_, wino_transient_;  // latent's Winograd: transformed tiles, products, weights
  uint64_t wino_transient_layer_ = 0;       // the id of the layer whose weights wino_transient_ holds
  uint64_t transient_layer_ = 0;            // the id of the layer whose weights transient_ holds, in which layout
  memory::desc transient_desc_;
  std::unique_ptr<SdOps> aten_;
  mutable std::mutex names_mutex_;
  std::set<std::string> names_;  // oneDNN's names of the kernels made so far
};

}  // namespace

std::unique_ptr<SdOps> make_sd_ops_dnnl(Precision precision, bool winograd, int64_t band_bytes, bool follow_load,
                                        SdWinograd own_winograd) {
  // Refuse rather than let oneDNN fall back to its reference kernels (hundreds of times slower).
  if (precision == Precision::kBFloat16) cpu::require_bf16("the SD autoencoder in bf16");
  return std::make_unique<DnnlOps>(precision, winograd, band_bytes, follow_load, own_winograd);
}

}  // namespace latent

#else

namespace latent {

std::unique_ptr<SdOps> make_sd_ops_dnnl(Precision, bool, int64_t, bool, SdWinograd) { return nullptr; }

}  // namespace latent

#endif
