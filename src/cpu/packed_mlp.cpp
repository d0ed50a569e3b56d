#include "cpu/packed_mlp.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <omp.h>

#include <algorithm>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <shared_mutex>
#include <tuple>
#include <unordered_map>

#include "cpu/build_config.h"
#include "cpu/kernels.h"
#include "latent/error.h"

#if LATENT_HAVE_DNNL
#include "cpu/dnnl.h"
#endif

namespace latent::cpu {

#if LATENT_HAVE_DNNL

namespace {

using dnnl::memory;
using Tag = memory::format_tag;
using Type = memory::data_type;

size_t type_size(Type t) { return t == Type::bf16 ? 2 : 4; }

}  // namespace

struct PackedMlp::Impl {
  struct PackedLayer {
    // How a product writes y: the whole layer (bias, then ReLU when relu), or one of bf16x3's three
    // products: the first (bias), the middle (adds to y), the last (adds to y, then ReLU when relu).
    enum Role { kWhole, kFirst, kMiddle, kLast };

    int64_t in = 0, out = 0;  // the product's inner size (the inputs, padded), the outputs
    int64_t stride = 0;       // the inputs: columns of the float32 input the operand is made from
    bool x3 = false;          // bf16x3: three products, hi W_hi + lo W_hi + hi W_lo, of the split input
    Type src = Type::f32, dst = Type::f32;
    bool relu = false;
    memory weights, weights_lo, bias;  // packed for the primitive, shared by every row count (weights_lo: bf16x3's W_lo)
    memory::desc packed_desc;
    // The weights in other layouts, for primitives that chose another (oneDNN's choice may depend on
    // the row count and the thread count): reordered from `weights` on first use.
    mutable std::mutex layouts_mutex;
    mutable std::deque<std::tuple<memory::desc, memory, memory>>
        layouts;  // layout, W, W_lo (kept in place: handed out by reference)

    struct Primitive {
      dnnl::matmul matmul;
      size_t scratch_bytes = 0;
      memory::desc weights;  // the packed layout it reads
      std::string kernel;    // oneDNN's name for the implementation
    };

    // The primitive for this many rows, this layer's shape, a role and the thread count it runs on
    // (oneDNN splits a kernel's work for the count at its creation): made on first use (oneDNN
    // generates its kernel then) and kept for every layer of the same shape, in one cache for the process.
    const Primitive& primitive(int64_t rows, Role role) const {
      using Key = std::tuple<int64_t, int64_t, int64_t, int, int, bool, int, int>;
      static std::shared_mutex mutex;
      static std::map<Key, Primitive> cache;
      const int threads = omp_in_parallel() ? 1 : at::get_num_threads();
      const Key key{rows, in, out, static_cast<int>(src), static_cast<int>(dst), relu, role, threads};
      {
        std::shared_lock lock(mutex);
        auto it = cache.find(key);
        if (it != cache.end()) return it->second;
      }
      dnnl::post_ops ops;
      if (role == kMiddle || role == kLast) ops.append_sum(1.0f);
      if (relu && (role == kWhole || role == kLast)) ops.append_eltwise(1.0f, dnnl::algorithm::eltwise_relu, 0.0f, 0.0f);
      dnnl::primitive_attr attr;
      attr.set_post_ops(ops);
      attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);  // each call brings its own
      const memory::desc s({rows, in}, src, Tag::ab), w({in, out}, src, Tag::any), b({1, out}, Type::f32, Tag::ab),
          d({rows, out}, dst, Tag::ab);
      const bool with_bias = role == kWhole || role == kFirst;
      const dnnl::matmul::primitive_desc pd(with_bias ? dnnl::matmul::desc(s, w, b, d) : dnnl::matmul::desc(s, w, d), attr,
                                            dnnl_engine());
      std::unique_lock lock(mutex);
      return cache
          .try_emplace(key, Primitive{dnnl::matmul(pd), pd.scratchpad_desc().get_size(), pd.weights_desc(), pd.impl_info_str()})
          .first->second;
    }

    // y (+)= the product of x [rows, in] (of the operand's type) and `w`, as `role` says. Each thread
    // makes its memory objects and argument map for a primitive once (a product of 128 rows takes
    // ~30 us on AMX; making them took several of those); per call only the pointers change.
    void product(Role role, const void* x, bool lo, int64_t rows, void* y) const {
      const Primitive& prim = primitive(rows, role);
      const memory& w = weights_in(prim.weights, lo);
      struct Bound {
        std::vector<char> scratch;
        std::unordered_map<int, memory> args;
      };
      thread_local std::map<const Primitive*, Bound> bound;
      thread_local dnnl::stream stream(dnnl_engine());
      auto [it, fresh] = bound.try_emplace(&prim);
      auto& args = it->second.args;
      if (fresh) {
        const auto& engine = dnnl_engine();
        auto& scratch = it->second.scratch;
        scratch.resize(prim.scratch_bytes + 64);
        args[DNNL_ARG_SRC] = memory({{rows, in}, src, Tag::ab}, engine, DNNL_MEMORY_NONE);
        args[DNNL_ARG_DST] = memory({{rows, out}, dst, Tag::ab}, engine, DNNL_MEMORY_NONE);
        args[DNNL_ARG_SCRATCHPAD] = memory({{static_cast<int64_t>(scratch.size())}, Type::u8, Tag::a}, engine, scratch.data());
      }
      args[DNNL_ARG_SRC].set_data_handle(const_cast<void*>(x));
      args[DNNL_ARG_DST].set_data_handle(y);
      args[DNNL_ARG_WEIGHTS] = w;
      if (role == kWhole || role == kFirst) args[DNNL_ARG_BIAS] = bias;
      prim.matmul.execute(stream, args);
      stream.wait();
    }

    // y = the layer of x, where x is float32 [rows, stride] or, for the first bf16 layer onwards,
    // already of the operand's type.
    void run(const void* x, int64_t rows, void* y) const {
      thread_local std::vector<char> operand;
      if (x3) {
        // Three products of in = 32 n inputs run ~1.3-1.6x faster on AMX than one of 3 in: oneDNN's
        // kernel keeps a weight block of that depth in cache (bench/RESULTS.md, 2026-11-25).
        operand.resize(static_cast<size_t>(rows * in) * 4);
        auto* hi = reinterpret_cast<uint16_t*>(operand.data());
        uint16_t* lo = hi + rows * in;
        kernels().split_bf16x3(static_cast<const float*>(x), rows, stride, nullptr, stride, in, hi, lo);
        product(kFirst, hi, false, rows, y);
        product(kMiddle, lo, false, rows, y);
        product(kLast, hi, true, rows, y);
        return;
      }
      if (in > stride) {
        operand.resize(static_cast<size_t>(rows * in) * 4);
        kernels().gather_columns(static_cast<const float*>(x), rows, stride, nullptr, stride, in,
                                 reinterpret_cast<float*>(operand.data()));
        x = operand.data();
      }
      product(kWhole, x, false, rows, y);
    }

    // W (W_lo when `lo`) in layout d.
    const memory& weights_in(const memory::desc& d, bool lo) const {
      if (d == packed_desc) return lo ? weights_lo : weights;
      std::lock_guard<std::mutex> lock(layouts_mutex);
      for (const auto& [desc, w, w_lo] : layouts)
        if (desc == d) return lo ? w_lo : w;
      dnnl::stream stream(dnnl_engine());
      auto reordered = [&](memory from) {  // (a handle: copies share the buffer)
        if (!from) return memory();
        memory to(d, dnnl_engine());
        dnnl::reorder(from, to).execute(stream, from, to);
        return to;
      };
      layouts.emplace_back(d, reordered(weights), reordered(weights_lo));
      stream.wait();
      return lo ? std::get<2>(layouts.back()) : std::get<1>(layouts.back());
    }
  };

  // Packs weight [out, in] (PyTorch's Linear layout, float32). In bf16x3 the operand gets zero
  // columns up to a multiple of 32 inputs: AMX runs 400 inputs at 1.3 TFLOP/s and 416 at 2.0.
  static std::unique_ptr<PackedLayer> pack(const at::Tensor& weight, const at::Tensor& bias, bool relu, Precision precision,
                                           bool last) {
    const auto& engine = dnnl_engine();
    auto p = std::make_unique<PackedLayer>();
    const at::Tensor w = weight.to(at::kFloat).contiguous();
    p->out = w.size(0);
    p->stride = w.size(1);
    // bf16x3 splits layers of 64 inputs and more; narrower ones (the latent code's) are cheap and run in float32.
    p->x3 = precision == Precision::kBFloat16x3 && p->stride >= 64;
    p->in = p->x3 ? (p->stride + 31) / 32 * 32 : p->stride;
    p->src = precision == Precision::kBFloat16 || p->x3 ? Type::bf16 : Type::f32;
    // bf16: the next layer reads the output as it is; bf16x3 splits the float32 output itself.
    p->dst = precision == Precision::kBFloat16 && !last ? Type::bf16 : Type::f32;
    p->relu = relu;
    const auto& prim = p->primitive(16, p->x3 ? PackedLayer::kFirst : PackedLayer::kWhole);
    p->packed_desc = prim.weights;
    // Each weight row [out, in] (gathered, split, padded) is a column of the product's [in, out] operand: format "ba".
    dnnl::stream stream(engine);
    auto pack_plain = [&](const void* plain_data, Type type) {
      memory packed(p->packed_desc, engine);
      memory plain({{p->in, p->out}, type, Tag::ba}, engine, const_cast<void*>(plain_data));
      dnnl::reorder(plain, packed).execute(stream, plain, packed);
      stream.wait();
      return packed;
    };
    if (p->x3) {
      // W_hi and W_lo against the operand's hi and lo: hi W_hi + lo W_hi + hi W_lo, the product up to
      // the lo * lo term (~2^-18 relative), accumulated in float32.
      std::vector<uint16_t> hi(static_cast<size_t>(p->out * p->in)), lo(hi.size());
      kernels().split_bf16x3(w.data_ptr<float>(), p->out, p->stride, nullptr, p->stride, p->in, hi.data(), lo.data());
      p->weights = pack_plain(hi.data(), Type::bf16);
      p->weights_lo = pack_plain(lo.data(), Type::bf16);
    } else if (p->in > p->stride) {
      std::vector<float> padded(static_cast<size_t>(p->out * p->in));
      kernels().gather_columns(w.data_ptr<float>(), p->out, p->stride, nullptr, p->stride, p->in, padded.data());
      p->weights = pack_plain(padded.data(), Type::f32);
    } else {
      p->weights = pack_plain(w.data_ptr<float>(), Type::f32);
    }
    p->bias = memory({{1, p->out}, Type::f32, Tag::ab}, engine);
    const at::Tensor b = bias.to(at::kFloat).contiguous();
    std::memcpy(p->bias.get_data_handle(), b.data_ptr(), static_cast<size_t>(p->out) * 4);
    return p;
  }

  // x [rows, inputs of the first] through `layers` into y; activations between layers in ping-pong buffers.
  static void forward(const std::vector<const PackedLayer*>& layers, const float* x, int64_t rows, void* y) {
    thread_local std::vector<char> a, b;
    const void* in = x;
    if (layers.front()->src == Type::bf16 && !layers.front()->x3) {
      a.resize(static_cast<size_t>(rows * layers.front()->in) * 2);
      kernels().to_bf16(x, rows * layers.front()->in, reinterpret_cast<uint16_t*>(a.data()));
      in = a.data();
    }
    for (size_t j = 0; j < layers.size(); ++j) {
      const auto& l = *layers[j];
      void* out = y;
      if (j + 1 < layers.size()) {
        std::vector<char>& buf = in == a.data() ? b : a;
        buf.resize(static_cast<size_t>(rows * l.out) * type_size(l.dst));
        out = buf.data();
      }
      l.run(in, rows, out);
      in = out;
    }
  }

  // The first `end` layers.
  std::vector<const PackedLayer*> head(size_t end) const {
    std::vector<const PackedLayer*> out;
    for (size_t j = 0; j < end; ++j) out.push_back(layers[j].get());
    return out;
  }

  std::vector<Layer> source;  // the float32 weights of the last two layers, for restrict_last
  std::vector<std::unique_ptr<PackedLayer>> layers;
  Precision precision = Precision::kFloat32;
};

struct PackedMlp::Restricted::Impl {
  std::unique_ptr<PackedMlp::Impl::PackedLayer> hidden, last;  // the last two layers, cut to the active units
  std::vector<const PackedMlp::Impl::PackedLayer*> layers;     // the MLP's layers before them, then these two
};

std::unique_ptr<PackedMlp> PackedMlp::make(const std::vector<Layer>& layers, Precision precision) {
  if (layers.empty()) throw Error("PackedMlp: no layers");
  if (precision != Precision::kFloat32) require_bf16(precision_name(precision));
  auto impl = std::make_unique<Impl>();
  impl->precision = precision;
  for (size_t j = 0; j < layers.size(); ++j) {
    const Layer& l = layers[j];
    if (j > 0 && l.weight.size(1) != impl->layers.back()->out) throw Error("PackedMlp: layer sizes do not chain");
    impl->layers.push_back(dnnl_call("packing a decoder layer",
                                     [&] { return Impl::pack(l.weight, l.bias, l.relu, precision, j + 1 == layers.size()); }));
  }
  if (layers.size() >= 2)
    for (size_t j = layers.size() - 2; j < layers.size(); ++j)
      impl->source.push_back(
          {layers[j].weight.to(at::kFloat).contiguous(), layers[j].bias.to(at::kFloat).contiguous(), layers[j].relu});
  return std::unique_ptr<PackedMlp>(new PackedMlp(std::move(impl)));
}

void PackedMlp::forward(const float* x, int64_t rows, float* y) const {
  if (rows > 0) dnnl_call("a decoder product", [&] { Impl::forward(impl_->head(impl_->layers.size()), x, rows, y); });
}

void PackedMlp::hidden(const float* x, int64_t rows, float* h) const {
  if (impl_->precision == Precision::kBFloat16) throw Error("PackedMlp::hidden: float32 or bf16x3 only");
  if (impl_->layers.size() < 2) throw Error("PackedMlp::hidden: the MLP has one layer");
  if (rows > 0) dnnl_call("a decoder product", [&] { Impl::forward(impl_->head(impl_->layers.size() - 1), x, rows, h); });
}

std::unique_ptr<PackedMlp::Restricted> PackedMlp::restrict_last(const std::vector<int32_t>& active) const {
  if (active.empty()) throw Error("PackedMlp::restrict_last: no active units");
  if (impl_->source.size() < 2) throw Error("PackedMlp::restrict_last: the MLP has one layer");
  const Layer& h = impl_->source[0];
  const Layer& last = impl_->source[1];
  // The units padded to a multiple of 32 with units of zero weight and bias (ReLU(0) = 0, and their
  // zero columns in the last layer): few shapes for oneDNN to generate, and AMX's fast inner sizes.
  const int64_t n = static_cast<int64_t>(active.size()), padded = (n + 31) / 32 * 32;
  const at::Tensor index = at::tensor(std::vector<int64_t>(active.begin(), active.end()), at::kLong);
  at::Tensor hw = at::zeros({padded, h.weight.size(1)}), hb = at::zeros({padded}), lw = at::zeros({last.weight.size(0), padded});
  hw.narrow(0, 0, n).copy_(h.weight.index_select(0, index));
  hb.narrow(0, 0, n).copy_(h.bias.index_select(0, index));
  lw.narrow(1, 0, n).copy_(last.weight.index_select(1, index));
  auto r = std::make_unique<Restricted::Impl>();
  dnnl_call("packing a decoder layer", [&] {
    r->hidden = Impl::pack(hw, hb, h.relu, impl_->precision, false);
    r->last = Impl::pack(lw, last.bias, last.relu, impl_->precision, true);
  });
  r->layers = impl_->head(impl_->layers.size() - 2);
  r->layers.push_back(r->hidden.get());
  r->layers.push_back(r->last.get());
  return std::unique_ptr<Restricted>(new Restricted(std::move(r)));
}

PackedMlp::Restricted::Restricted(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
PackedMlp::Restricted::~Restricted() = default;

void PackedMlp::Restricted::forward(const float* x, int64_t rows, float* y) const {
  if (rows > 0) dnnl_call("a decoder product", [&] { PackedMlp::Impl::forward(impl_->layers, x, rows, y); });
}

#else  // no oneDNN

struct PackedMlp::Impl {
  Precision precision = Precision::kFloat32;
};

std::unique_ptr<PackedMlp> PackedMlp::make(const std::vector<Layer>&, Precision precision) {
  if (precision != Precision::kFloat32)
    throw Error(std::string(precision_name(precision)) + " needs a build with oneDNN (Debian: libdnnl-dev)");
  return nullptr;
}

void PackedMlp::forward(const float*, int64_t, float*) const {}
void PackedMlp::hidden(const float*, int64_t, float*) const {}
std::unique_ptr<PackedMlp::Restricted> PackedMlp::restrict_last(const std::vector<int32_t>&) const { return nullptr; }
struct PackedMlp::Restricted::Impl {};
PackedMlp::Restricted::Restricted(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
PackedMlp::Restricted::~Restricted() = default;
void PackedMlp::Restricted::forward(const float*, int64_t, float*) const {}

#endif

PackedMlp::PackedMlp(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
PackedMlp::~PackedMlp() = default;
Precision PackedMlp::precision() const { return impl_->precision; }

#if LATENT_HAVE_DNNL
std::string PackedMlp::kernel() const {
  const auto& l = *impl_->layers.front();
  return l.primitive(16, l.x3 ? Impl::PackedLayer::kFirst : Impl::PackedLayer::kWhole).kernel;
}
int64_t PackedMlp::in_features() const { return impl_->layers.front()->in; }
int64_t PackedMlp::out_features() const { return impl_->layers.back()->out; }
#else
std::string PackedMlp::kernel() const { return ""; }
int64_t PackedMlp::in_features() const { return 0; }
int64_t PackedMlp::out_features() const { return 0; }
#endif

}  // namespace latent::cpu
