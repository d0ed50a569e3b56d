#include "train/packed_mlp.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <mutex>
#include <shared_mutex>
#include <tuple>

#include "latent/error.h"
#include "train/fused_kernels.h"

#ifdef LATENT_HAVE_DNNL
#include <dnnl.hpp>

#include "train/dnnl_engine.h"
#endif

namespace latent {

#ifdef LATENT_HAVE_DNNL

namespace {

using dnnl::memory;
using Tag = memory::format_tag;
using Type = memory::data_type;

size_t type_size(Type t) { return t == Type::bf16 ? 2 : 4; }

}  // namespace

struct PackedMlp::Impl {
  struct PackedLayer {
    int64_t in = 0, out = 0;    // the operand's columns (after any gather), the outputs
    int64_t stride = 0;         // columns of the float32 input the operand is made from
    int64_t k = 0;              // the product's inner size: in, or 3 * in for bf16x3
    bool x3 = false;            // bf16x3: the operand is split float32 input, [hi | lo | hi] per row
    std::vector<int32_t> cols;  // the input columns the operand takes (empty: all, in order)
    Type src = Type::f32, dst = Type::f32;
    bool relu = false;
    memory weights, bias;  // packed for the primitive, shared by every row count
    memory::desc packed_desc;

    struct Primitive {
      dnnl::matmul matmul;
      size_t scratch_bytes = 0;
      memory::desc weights;  // the packed layout it reads
      std::string kernel;    // oneDNN's name for the implementation
    };

    // The primitive for this many rows and this layer's shape: made on first use (oneDNN generates
    // its kernel then) and kept for every layer of the same shape, in one cache for the process.
    const Primitive& primitive(int64_t rows) const {
      using Key = std::tuple<int64_t, int64_t, int64_t, int, int, bool>;
      static std::shared_mutex mutex;
      static std::map<Key, Primitive> cache;
      const Key key{rows, k, out, static_cast<int>(src), static_cast<int>(dst), relu};
      {
        std::shared_lock lock(mutex);
        auto it = cache.find(key);
        if (it != cache.end()) return it->second;
      }
      dnnl::post_ops ops;
      if (relu) ops.append_eltwise(1.0f, dnnl::algorithm::eltwise_relu, 0.0f, 0.0f);
      dnnl::primitive_attr attr;
      attr.set_post_ops(ops);
      attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);  // each call brings its own
      const memory::desc s({rows, k}, src, Tag::ab), w({k, out}, src, Tag::any), b({1, out}, Type::f32, Tag::ab),
          d({rows, out}, dst, Tag::ab);
      const dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(s, w, b, d), attr, dnnl_cpu_engine());
      if (!packed_desc.is_zero() && pd.weights_desc() != packed_desc)
        throw Error("oneDNN chose another weight layout for " + std::to_string(rows) + " rows");
      std::unique_lock lock(mutex);
      return cache
          .try_emplace(key, Primitive{dnnl::matmul(pd), pd.scratchpad_desc().get_size(), pd.weights_desc(), pd.impl_info_str()})
          .first->second;
    }

    // y = the layer of x, where x is float32 [rows, stride] or, for the first bf16 layer onwards,
    // already of the operand's type.
    void run(const void* x, int64_t rows, void* y) const {
      thread_local std::vector<char> operand;
      if (x3) {
        operand.resize(static_cast<size_t>(rows * k) * 2);
        kernels::split_bf16x3(static_cast<const float*>(x), rows, stride, cols.empty() ? nullptr : cols.data(), in,
                              /*lo_last=*/false, reinterpret_cast<uint16_t*>(operand.data()));
        x = operand.data();
      } else if (!cols.empty()) {
        operand.resize(static_cast<size_t>(rows * k) * 4);
        kernels::gather_columns(static_cast<const float*>(x), rows, stride, cols.data(), in,
                                reinterpret_cast<float*>(operand.data()));
        x = operand.data();
      }
      const auto& [matmul, scratch_bytes, unused_weights, unused_kernel] = primitive(rows);
      thread_local std::vector<char> scratch;
      scratch.resize(std::max(scratch.size(), scratch_bytes + 64));
      thread_local dnnl::stream stream(dnnl_cpu_engine());
      const auto& engine = dnnl_cpu_engine();
      memory x_mem({{rows, k}, src, Tag::ab}, engine, const_cast<void*>(x));
      memory y_mem({{rows, out}, dst, Tag::ab}, engine, y);
      memory pad({{static_cast<int64_t>(scratch.size())}, Type::u8, Tag::a}, engine, scratch.data());
      matmul.execute(stream, {{DNNL_ARG_SRC, x_mem},
                              {DNNL_ARG_WEIGHTS, weights},
                              {DNNL_ARG_BIAS, bias},
                              {DNNL_ARG_DST, y_mem},
                              {DNNL_ARG_SCRATCHPAD, pad}});
      stream.wait();
    }
  };

  // Packs weight [out, stride] (PyTorch's Linear layout, float32), restricted to the input columns
  // `cols` when given (padded to a multiple of 32 columns, few shapes for oneDNN to generate, by
  // repeating cols[0] with zero weights).
  static std::unique_ptr<PackedLayer> pack(const at::Tensor& weight, const at::Tensor& bias, bool relu, Precision precision,
                                           bool last, std::vector<int32_t> cols = {}) {
    const auto& engine = dnnl_cpu_engine();
    auto p = std::make_unique<PackedLayer>();
    const at::Tensor w = weight.to(at::kFloat).contiguous();
    p->out = w.size(0);
    p->stride = w.size(1);
    const int64_t used = static_cast<int64_t>(cols.size());
    if (!cols.empty()) cols.resize((cols.size() + 31) / 32 * 32, cols.front());
    p->in = cols.empty() ? p->stride : static_cast<int64_t>(cols.size());
    p->cols = std::move(cols);
    const int32_t* gather = p->cols.empty() ? nullptr : p->cols.data();
    // bf16x3 splits layers of 64 inputs and more; narrower ones (the latent code's) are cheap and run in float32.
    p->x3 = precision == Precision::kBFloat16x3 && p->in >= 64;
    p->k = p->x3 ? 3 * p->in : p->in;
    p->src = precision == Precision::kBFloat16 || p->x3 ? Type::bf16 : Type::f32;
    // bf16: the next layer reads the output as it is; bf16x3 splits the float32 output itself.
    p->dst = precision == Precision::kBFloat16 && !last ? Type::bf16 : Type::f32;
    p->relu = relu;
    const auto& prim = p->primitive(16);
    if (p->src == Type::bf16 && prim.kernel.find("bf16") == std::string::npos)
      throw Error(std::string(precision_name(precision)) +
                  " needs a CPU with bfloat16 matrix instructions (AVX512-BF16 or AMX); oneDNN offers '" + prim.kernel +
                  "' here: use fp32");
    p->packed_desc = prim.weights;
    p->weights = memory(p->packed_desc, engine);
    // Each weight row [out, in] (gathered, split) is a column of the product's [k, out] operand: format "ba".
    dnnl::stream stream(engine);
    if (p->x3) {
      // [W_hi; W_hi; W_lo] against the operand's [hi | lo | hi]: hi W_hi + lo W_hi + hi W_lo, the
      // product up to the lo * lo term (~2^-18 relative), accumulated in float32.
      std::vector<uint16_t> split(static_cast<size_t>(p->out * p->k));
      kernels::split_bf16x3(w.data_ptr<float>(), p->out, p->stride, gather, p->in, /*lo_last=*/true, split.data());
      if (gather)
        for (int64_t o = 0; o < p->out; ++o)
          for (int part = 0; part < 3; ++part)
            std::fill_n(split.data() + o * p->k + part * p->in + used, p->in - used, uint16_t{0});
      memory plain({{p->k, p->out}, Type::bf16, Tag::ba}, engine, split.data());
      dnnl::reorder(plain, p->weights).execute(stream, plain, p->weights);
      stream.wait();
    } else {
      std::vector<float> gathered;
      const float* wp = w.data_ptr<float>();
      if (gather) {
        gathered.resize(static_cast<size_t>(p->out * p->in));
        kernels::gather_columns(wp, p->out, p->stride, gather, p->in, gathered.data());
        for (int64_t o = 0; o < p->out; ++o) std::fill_n(gathered.data() + o * p->in + used, p->in - used, 0.0f);
        wp = gathered.data();
      }
      memory plain({{p->in, p->out}, Type::f32, Tag::ba}, engine, const_cast<float*>(wp));
      dnnl::reorder(plain, p->weights).execute(stream, plain, p->weights);
      stream.wait();
    }
    p->bias = memory({{1, p->out}, Type::f32, Tag::ab}, engine);
    const at::Tensor b = bias.to(at::kFloat).contiguous();
    std::memcpy(p->bias.get_data_handle(), b.data_ptr(), static_cast<size_t>(p->out) * 4);
    return p;
  }

  // x [rows, in of layer 0] through layers [0, end) into y; activations between layers in ping-pong buffers.
  void forward(const float* x, int64_t rows, size_t end, void* y) const {
    thread_local std::vector<char> a, b;
    const void* in = x;
    if (layers.front()->src == Type::bf16 && !layers.front()->x3) {
      a.resize(static_cast<size_t>(rows * layers.front()->in) * 2);
      kernels::to_bf16(x, rows * layers.front()->in, reinterpret_cast<uint16_t*>(a.data()));
      in = a.data();
    }
    for (size_t j = 0; j < end; ++j) {
      const auto& l = *layers[j];
      void* out = y;
      if (j + 1 < end) {
        std::vector<char>& buf = in == a.data() ? b : a;
        buf.resize(static_cast<size_t>(rows * l.out) * type_size(l.dst));
        out = buf.data();
      }
      l.run(in, rows, out);
      in = out;
    }
  }

  at::Tensor last_weight;  // float32 [out, in] of the last layer, for restrict_last
  std::vector<std::unique_ptr<PackedLayer>> layers;
  Precision precision = Precision::kFloat32;
};

struct PackedMlp::Restricted::Impl {
  std::unique_ptr<PackedMlp::Impl::PackedLayer> layer;
};

std::unique_ptr<PackedMlp> PackedMlp::make(const std::vector<Layer>& layers, Precision precision) {
  if (layers.empty()) throw Error("PackedMlp: no layers");
  auto impl = std::make_unique<Impl>();
  impl->precision = precision;
  for (size_t j = 0; j < layers.size(); ++j) {
    const Layer& l = layers[j];
    if (j > 0 && l.weight.size(1) != impl->layers.back()->out) throw Error("PackedMlp: layer sizes do not chain");
    impl->layers.push_back(Impl::pack(l.weight, l.bias, l.relu, precision, j + 1 == layers.size()));
  }
  impl->last_weight = layers.back().weight.to(at::kFloat).contiguous();
  return std::unique_ptr<PackedMlp>(new PackedMlp(std::move(impl)));
}

void PackedMlp::forward(const float* x, int64_t rows, float* y) const {
  if (rows > 0) impl_->forward(x, rows, impl_->layers.size(), y);
}

void PackedMlp::hidden(const float* x, int64_t rows, float* h) const {
  if (impl_->precision == Precision::kBFloat16) throw Error("PackedMlp::hidden: float32 or bf16x3 only");
  if (impl_->layers.size() < 2) throw Error("PackedMlp::hidden: the MLP has one layer");
  if (rows > 0) impl_->forward(x, rows, impl_->layers.size() - 1, h);
}

std::unique_ptr<PackedMlp::Restricted> PackedMlp::restrict_last(const std::vector<int32_t>& active) const {
  if (active.empty()) throw Error("PackedMlp::restrict_last: no active inputs");
  const size_t last = impl_->layers.size() - 1;
  auto r = std::make_unique<Restricted::Impl>();
  at::Tensor bias = at::from_blob(impl_->layers[last]->bias.get_data_handle(), {impl_->layers[last]->out}, at::kFloat);
  r->layer = Impl::pack(impl_->last_weight, bias, impl_->layers[last]->relu, impl_->precision, true, active);
  return std::unique_ptr<Restricted>(new Restricted(std::move(r)));
}

PackedMlp::Restricted::Restricted(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
PackedMlp::Restricted::~Restricted() = default;

void PackedMlp::Restricted::forward(const float* h, int64_t rows, float* y) const {
  if (rows > 0) impl_->layer->run(h, rows, y);
}

Precision float32_accurate_precision() {
  static const Precision best = [] {
    // oneDNN names its AMX kernels "..._amx_..." (e.g. brg:avx512_core_amx_bf16).
    const memory::desc s({256, 384}, Type::bf16, Tag::ab), w({384, 256}, Type::bf16, Tag::any), d({256, 256}, Type::f32, Tag::ab);
    const dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(s, w, d), dnnl_cpu_engine());
    return std::string(pd.impl_info_str()).find("amx") != std::string::npos ? Precision::kBFloat16x3 : Precision::kFloat32;
  }();
  return best;
}

#else  // no oneDNN

Precision float32_accurate_precision() { return Precision::kFloat32; }

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

#ifdef LATENT_HAVE_DNNL
int64_t PackedMlp::in_features() const { return impl_->layers.front()->in; }
int64_t PackedMlp::out_features() const { return impl_->layers.back()->out; }
#else
int64_t PackedMlp::in_features() const { return 0; }
int64_t PackedMlp::out_features() const { return 0; }
#endif

}  // namespace latent
