#include "train/packed_mlp.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <mutex>
#include <shared_mutex>

#include "latent/error.h"

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

// float32 -> bfloat16, rounding to nearest even (finite inputs; the decoder sees no NaN).
void to_bf16(const float* x, int64_t n, uint16_t* out) {
  for (int64_t i = 0; i < n; ++i) {
    uint32_t u;
    std::memcpy(&u, &x[i], 4);
    out[i] = static_cast<uint16_t>((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
  }
}

size_t type_size(Type t) { return t == Type::bf16 ? 2 : 4; }

}  // namespace

struct PackedMlp::Impl {
  struct PackedLayer {
    int64_t in = 0, out = 0;
    Type src = Type::f32, dst = Type::f32;
    bool relu = false;
    memory weights, bias;  // packed for the primitive, shared by every row count
    memory::desc packed_desc;
    mutable std::shared_mutex mutex;
    mutable std::map<int64_t, std::pair<dnnl::matmul, size_t>> by_rows;  // rows -> primitive, scratchpad bytes

    dnnl::matmul::primitive_desc describe(int64_t rows) const {
      dnnl::post_ops ops;
      if (relu) ops.append_eltwise(1.0f, dnnl::algorithm::eltwise_relu, 0.0f, 0.0f);
      dnnl::primitive_attr attr;
      attr.set_post_ops(ops);
      attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);  // each call brings its own
      const memory::desc s({rows, in}, src, Tag::ab), w({in, out}, src, Tag::any), b({1, out}, Type::f32, Tag::ab),
          d({rows, out}, dst, Tag::ab);
      return dnnl::matmul::primitive_desc(dnnl::matmul::desc(s, w, b, d), attr, dnnl_cpu_engine());
    }

    // The primitive for this many rows: made on first use (oneDNN generates its kernel then), kept.
    const std::pair<dnnl::matmul, size_t>& primitive(int64_t rows) const {
      {
        std::shared_lock lock(mutex);
        auto it = by_rows.find(rows);
        if (it != by_rows.end()) return it->second;
      }
      const auto pd = describe(rows);
      if (pd.weights_desc() != packed_desc)
        throw Error("oneDNN chose another weight layout for " + std::to_string(rows) + " rows");
      std::unique_lock lock(mutex);
      return by_rows.try_emplace(rows, dnnl::matmul(pd), pd.scratchpad_desc().get_size()).first->second;
    }

    void run(const void* x, int64_t rows, void* y) const {
      const auto& [matmul, scratch_bytes] = primitive(rows);
      thread_local std::vector<char> scratch;
      scratch.resize(std::max(scratch.size(), scratch_bytes + 64));
      thread_local dnnl::stream stream(dnnl_cpu_engine());
      const auto& engine = dnnl_cpu_engine();
      memory x_mem({{rows, in}, src, Tag::ab}, engine, const_cast<void*>(x));
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

  std::vector<std::unique_ptr<PackedLayer>> layers;
  Precision precision = Precision::kFloat32;
};

std::unique_ptr<PackedMlp> PackedMlp::make(const std::vector<Layer>& layers, Precision precision) {
  if (layers.empty()) throw Error("PackedMlp: no layers");
  auto impl = std::make_unique<Impl>();
  impl->precision = precision;
  const Type compute = precision == Precision::kBFloat16 ? Type::bf16 : Type::f32;
  const auto& engine = dnnl_cpu_engine();
  dnnl::stream stream(engine);
  for (size_t j = 0; j < layers.size(); ++j) {
    const Layer& l = layers[j];
    auto p = std::make_unique<Impl::PackedLayer>();
    p->out = l.weight.size(0);
    p->in = l.weight.size(1);
    p->src = compute;
    p->dst = j + 1 < layers.size() ? compute : Type::f32;  // the next layer reads it as it is
    p->relu = l.relu;
    if (j > 0 && p->in != impl->layers.back()->out) throw Error("PackedMlp: layer sizes do not chain");
    const auto pd = p->describe(16);
    const std::string kernel = pd.impl_info_str();
    if (precision == Precision::kBFloat16 && kernel.find("bf16") == std::string::npos)
      throw Error("bf16 needs a CPU with bfloat16 matrix instructions (AVX512-BF16 or AMX); oneDNN offers '" + kernel +
                  "' here: use fp32");
    p->packed_desc = pd.weights_desc();
    // The weight [out, in] row-major is the product's [in, out] operand with format "ba".
    at::Tensor w = l.weight.to(at::kFloat).contiguous();
    memory plain({{p->in, p->out}, Type::f32, Tag::ba}, engine, w.data_ptr());
    p->weights = memory(p->packed_desc, engine);
    dnnl::reorder(plain, p->weights).execute(stream, plain, p->weights);
    p->bias = memory({{1, p->out}, Type::f32, Tag::ab}, engine);
    at::Tensor b = l.bias.to(at::kFloat).contiguous();
    std::memcpy(p->bias.get_data_handle(), b.data_ptr(), static_cast<size_t>(p->out) * 4);
    impl->layers.push_back(std::move(p));
  }
  stream.wait();
  return std::unique_ptr<PackedMlp>(new PackedMlp(std::move(impl)));
}

void PackedMlp::forward(const float* x, int64_t rows, float* y) const {
  if (rows == 0) return;
  const auto& layers = impl_->layers;
  thread_local std::vector<char> a, b;  // activations between layers, ping-pong
  const void* in = x;
  if (layers.front()->src == Type::bf16) {
    a.resize(static_cast<size_t>(rows * layers.front()->in) * 2);
    to_bf16(x, rows * layers.front()->in, reinterpret_cast<uint16_t*>(a.data()));
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

#else  // no oneDNN

struct PackedMlp::Impl {
  Precision precision = Precision::kFloat32;
};

std::unique_ptr<PackedMlp> PackedMlp::make(const std::vector<Layer>&, Precision precision) {
  if (precision == Precision::kBFloat16) throw Error("bf16 needs a build with oneDNN (Debian: libdnnl-dev)");
  return nullptr;
}

void PackedMlp::forward(const float*, int64_t, float*) const {}

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
