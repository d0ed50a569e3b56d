#include "train/gemm.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <map>
#include <tuple>
#include <vector>

#ifdef LATENT_HAVE_DNNL
#include <dnnl.hpp>

#include "train/dnnl_engine.h"
#endif

#include "latent/error.h"
#include "train/fused_kernels.h"

namespace latent {

void gemm(const at::Tensor& a, bool trans_a, const at::Tensor& b, bool trans_b, const at::Tensor& c, bool accumulate) {
  const int64_t M = trans_a ? a.size(1) : a.size(0), K = trans_a ? a.size(0) : a.size(1);
  const int64_t N = trans_b ? b.size(0) : b.size(1);
  if ((trans_b ? b.size(1) : b.size(0)) != K || c.size(0) != M || c.size(1) != N) throw Error("gemm: shapes do not match");
#ifdef LATENT_HAVE_DNNL
  const dnnl_status_t st = dnnl_sgemm(trans_a ? 'T' : 'N', trans_b ? 'T' : 'N', M, N, K, 1.0f, a.data_ptr<float>(), a.size(1),
                                      b.data_ptr<float>(), b.size(1), accumulate ? 1.0f : 0.0f, c.data_ptr<float>(), N);
  if (st != dnnl_success) throw Error("gemm: oneDNN sgemm failed with status " + std::to_string(static_cast<int>(st)));
#else
  const at::Tensor A = trans_a ? a.t() : a, B = trans_b ? b.t() : b;
  at::Tensor out = c;
  if (accumulate)
    out.addmm_(A, B);
  else
    at::mm_out(out, A, B);
#endif
}

#ifdef LATENT_HAVE_DNNL

struct Bf16Gemm::Impl {
  using Key = std::tuple<int64_t, int64_t, int64_t, bool, bool, bool>;  // M, N, K, trans_a, trans_b, accumulate
  std::map<Key, dnnl::matmul> primitives;
  dnnl::stream stream{dnnl_cpu_engine()};
  struct Rounded {
    const void* source = nullptr;
    int64_t numel = 0;
    std::vector<uint16_t> values;
  };
  std::vector<Rounded> rounded;  // the first `used` hold this step's copies
  size_t used = 0;

  const dnnl::matmul& primitive(int64_t M, int64_t N, int64_t K, bool trans_a, bool trans_b, bool accumulate) {
    const Key key{M, N, K, trans_a, trans_b, accumulate};
    auto it = primitives.find(key);
    if (it != primitives.end()) return it->second;
    using dnnl::memory;
    using Tag = memory::format_tag;
    using Type = memory::data_type;
    // A stored [M, K] is "ab"; stored [K, M] and used transposed, "ba". Likewise B.
    const memory::desc a({M, K}, Type::bf16, trans_a ? Tag::ba : Tag::ab), b({K, N}, Type::bf16, trans_b ? Tag::ba : Tag::ab),
        c({M, N}, Type::f32, Tag::ab);
    dnnl::primitive_attr attr;
    if (accumulate) {
      dnnl::post_ops ops;
      ops.append_sum(1.0f);
      attr.set_post_ops(ops);
    }
    const dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(a, b, c), attr, dnnl_cpu_engine());
    const std::string kernel = pd.impl_info_str();
    if (kernel.find("bf16") == std::string::npos)
      throw Error("bf16 needs a CPU with bfloat16 matrix instructions (AVX512-BF16 or AMX); oneDNN offers '" + kernel +
                  "' here: use fp32");
    return primitives.emplace(key, dnnl::matmul(pd)).first->second;
  }

  const uint16_t* round(const at::Tensor& t) {
    for (size_t i = 0; i < used; ++i)
      if (rounded[i].source == t.data_ptr() && rounded[i].numel == t.numel()) return rounded[i].values.data();
    if (used == rounded.size()) rounded.emplace_back();
    Rounded& r = rounded[used++];
    r.source = t.data_ptr();
    r.numel = t.numel();
    r.values.resize(static_cast<size_t>(t.numel()));
    const float* x = t.data_ptr<float>();
    uint16_t* out = r.values.data();
    at::parallel_for(0, t.numel(), 16384, [&](int64_t i0, int64_t i1) { kernels::to_bf16(x + i0, i1 - i0, out + i0); });
    return out;
  }
};

Bf16Gemm::Bf16Gemm() : impl_(std::make_unique<Impl>()) { impl_->primitive(128, 128, 128, false, false, false); }
Bf16Gemm::~Bf16Gemm() = default;
void Bf16Gemm::clear() { impl_->used = 0; }

void Bf16Gemm::run(const at::Tensor& a, bool trans_a, const at::Tensor& b, bool trans_b, const at::Tensor& c, bool accumulate) {
  const int64_t M = trans_a ? a.size(1) : a.size(0), K = trans_a ? a.size(0) : a.size(1);
  const int64_t N = trans_b ? b.size(0) : b.size(1);
  if ((trans_b ? b.size(1) : b.size(0)) != K || c.size(0) != M || c.size(1) != N) throw Error("gemm: shapes do not match");
  using dnnl::memory;
  using Tag = memory::format_tag;
  using Type = memory::data_type;
  const auto& engine = dnnl_cpu_engine();
  const dnnl::matmul& mm = impl_->primitive(M, N, K, trans_a, trans_b, accumulate);
  memory am({{M, K}, Type::bf16, trans_a ? Tag::ba : Tag::ab}, engine, const_cast<uint16_t*>(impl_->round(a)));
  memory bm({{K, N}, Type::bf16, trans_b ? Tag::ba : Tag::ab}, engine, const_cast<uint16_t*>(impl_->round(b)));
  memory cm({{M, N}, Type::f32, Tag::ab}, engine, c.data_ptr<float>());
  mm.execute(impl_->stream, {{DNNL_ARG_SRC, am}, {DNNL_ARG_WEIGHTS, bm}, {DNNL_ARG_DST, cm}});
  impl_->stream.wait();
}

#else

struct Bf16Gemm::Impl {};
Bf16Gemm::Bf16Gemm() { throw Error("bf16 needs a build with oneDNN (Debian: libdnnl-dev)"); }
Bf16Gemm::~Bf16Gemm() = default;
void Bf16Gemm::clear() {}
void Bf16Gemm::run(const at::Tensor&, bool, const at::Tensor&, bool, const at::Tensor&, bool) {}

#endif

const char* gemm_backend() {
#ifdef LATENT_HAVE_DNNL
  return "oneDNN";
#else
  return "ATen";
#endif
}

}  // namespace latent
