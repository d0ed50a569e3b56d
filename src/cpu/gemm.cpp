#include "cpu/gemm.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <omp.h>

#include <algorithm>
#include <exception>
#include <map>
#include <tuple>
#include <vector>

#include "cpu/build_config.h"
#include "cpu/kernels.h"
#include "latent/error.h"

#if LATENT_HAVE_DNNL
#include "cpu/dnnl.h"
#endif

namespace latent::cpu {

namespace {

// C[M, N] (+)= op(A) op(B) on the calling thread alone, for row-major operands with leading dimensions.
void gemm_one_thread(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, const float* a, int64_t lda, const float* b,
                     int64_t ldb, float* c, int64_t ldc, bool accumulate) {
  omp_set_num_threads(1);  // (inside the parallel region below: this thread's setting, until the region ends)
#if LATENT_HAVE_DNNL
  const dnnl_status_t st =
      dnnl_sgemm(trans_a ? 'T' : 'N', trans_b ? 'T' : 'N', M, N, K, 1.0f, a, lda, b, ldb, accumulate ? 1.0f : 0.0f, c, ldc);
  if (st != dnnl_success) throw Error("gemm: oneDNN sgemm failed with status " + std::to_string(static_cast<int>(st)));
#else
  auto view = [](const float* p, int64_t rows, int64_t cols, int64_t ld, bool trans) {
    const at::Tensor t = at::from_blob(const_cast<float*>(p), {trans ? cols : rows, trans ? rows : cols}, {ld, 1}, at::kFloat);
    return trans ? t.t() : t;
  };
  at::Tensor out = at::from_blob(c, {M, N}, {ldc, 1}, at::kFloat);
  const at::Tensor A = view(a, M, K, lda, trans_a), B = view(b, K, N, ldb, trans_b);
  if (accumulate)
    out.addmm_(A, B);
  else
    at::mm_out(out, A, B);
#endif
}

}  // namespace

void gemm(const at::Tensor& a, bool trans_a, const at::Tensor& b, bool trans_b, const at::Tensor& c, bool accumulate) {
  const int64_t M = trans_a ? a.size(1) : a.size(0), K = trans_a ? a.size(0) : a.size(1);
  const int64_t N = trans_b ? b.size(0) : b.size(1);
  if ((trans_b ? b.size(1) : b.size(0)) != K || c.size(0) != M || c.size(1) != N) throw Error("gemm: shapes do not match");
#if LATENT_HAVE_DNNL
  dnnl_engine();  // the ISA cap set before oneDNN's first dispatch
#endif
  const float *ap = a.data_ptr<float>(), *bp = b.data_ptr<float>();
  float* cp = c.data_ptr<float>();
  const int64_t lda = a.size(1), ldb = b.size(1);
  // C's longer side in 2, 4 or 8 equal pieces (multiples of 16 wide, at least 128), fixed by the
  // shape: the operand the pieces share (the batch-sized one in a training step) is packed once per
  // piece, so fewer pieces pack less (12 pieces of 64 made the fused step 3-5% slower than oneDNN's
  // own threading; 4 of ~100-200 did not); a power of two shares out evenly among 2, 4 or 8 threads.
  const bool by_columns = N >= M;
  const int64_t side = by_columns ? N : M;
  const int64_t pieces = side >= 1024 ? 8 : side >= 512 ? 4 : side >= 256 ? 2 : 1, width = (side + pieces - 1) / pieces;
  const int64_t size = std::min(side, (width + 15) / 16 * 16), count = (side + size - 1) / size;
  const int team = static_cast<int>(std::min<int64_t>(count, omp_in_parallel() ? 1 : at::get_num_threads()));
  std::exception_ptr failure;
#pragma omp parallel for num_threads(team) schedule(static)
  for (int64_t p = 0; p < count; ++p) {
    const int64_t lo = p * size, n = std::min(size, side - lo);
    try {
      if (by_columns)
        gemm_one_thread(trans_a, trans_b, M, n, K, ap, lda, trans_b ? bp + lo * ldb : bp + lo, ldb, cp + lo, N, accumulate);
      else
        gemm_one_thread(trans_a, trans_b, n, N, K, trans_a ? ap + lo : ap + lo * lda, lda, bp, ldb, cp + lo * N, N, accumulate);
    } catch (...) {
#pragma omp critical(latent_gemm_failure)
      failure = std::current_exception();
    }
  }
  if (failure) std::rethrow_exception(failure);
}

void gemm_batch(int64_t count, int64_t M, int64_t N, int64_t K, const float* a, int64_t lda, int64_t stride_a, const float* b,
                int64_t ldb, int64_t stride_b, float* c, int64_t ldc, int64_t stride_c) {
#if LATENT_HAVE_DNNL
  dnnl_engine();
#endif
  const int team = static_cast<int>(std::min<int64_t>(count, omp_in_parallel() ? 1 : at::get_num_threads()));
  std::exception_ptr failure;
#pragma omp parallel for num_threads(team) schedule(static)
  for (int64_t i = 0; i < count; ++i) {
    try {
      gemm_one_thread(false, false, M, N, K, a + i * stride_a, lda, b + i * stride_b, ldb, c + i * stride_c, ldc, false);
    } catch (...) {
#pragma omp critical(latent_gemm_failure)
      failure = std::current_exception();
    }
  }
  if (failure) std::rethrow_exception(failure);
}

#if LATENT_HAVE_DNNL

struct Bf16Gemm::Impl {
  using Key = std::tuple<int64_t, int64_t, int64_t, bool, bool, bool>;  // M, N, K, trans_a, trans_b, accumulate
  std::map<Key, dnnl::matmul> primitives;
  dnnl::stream stream{dnnl_engine()};
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
    return primitives
        .emplace(key,
                 dnnl_call("a bfloat16 product",
                           [&] {
                             return dnnl::matmul(dnnl::matmul::primitive_desc(dnnl::matmul::desc(a, b, c), attr, dnnl_engine()));
                           }))
        .first->second;
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
    at::parallel_for(0, t.numel(), 16384, [&](int64_t i0, int64_t i1) { kernels().to_bf16(x + i0, i1 - i0, out + i0); });
    return out;
  }
};

Bf16Gemm::Bf16Gemm() : impl_(std::make_unique<Impl>()) { require_bf16("bf16 (mixed precision)"); }
Bf16Gemm::~Bf16Gemm() = default;
void Bf16Gemm::clear() { impl_->used = 0; }

void Bf16Gemm::run(const at::Tensor& a, bool trans_a, const at::Tensor& b, bool trans_b, const at::Tensor& c, bool accumulate) {
  const int64_t M = trans_a ? a.size(1) : a.size(0), K = trans_a ? a.size(0) : a.size(1);
  const int64_t N = trans_b ? b.size(0) : b.size(1);
  if ((trans_b ? b.size(1) : b.size(0)) != K || c.size(0) != M || c.size(1) != N) throw Error("gemm: shapes do not match");
  using dnnl::memory;
  using Tag = memory::format_tag;
  using Type = memory::data_type;
  const auto& engine = dnnl_engine();
  const dnnl::matmul& mm = impl_->primitive(M, N, K, trans_a, trans_b, accumulate);
  memory am({{M, K}, Type::bf16, trans_a ? Tag::ba : Tag::ab}, engine, const_cast<uint16_t*>(impl_->round(a)));
  memory bm({{K, N}, Type::bf16, trans_b ? Tag::ba : Tag::ab}, engine, const_cast<uint16_t*>(impl_->round(b)));
  memory cm({{M, N}, Type::f32, Tag::ab}, engine, c.data_ptr<float>());
  dnnl_call("a bfloat16 product", [&] {
    mm.execute(impl_->stream, {{DNNL_ARG_SRC, am}, {DNNL_ARG_WEIGHTS, bm}, {DNNL_ARG_DST, cm}});
    impl_->stream.wait();
  });
}

#else

struct Bf16Gemm::Impl {};
Bf16Gemm::Bf16Gemm() { require_bf16("bf16 (mixed precision)"); }
Bf16Gemm::~Bf16Gemm() = default;
void Bf16Gemm::clear() {}
void Bf16Gemm::run(const at::Tensor&, bool, const at::Tensor&, bool, const at::Tensor&, bool) {}

#endif

const char* gemm_backend() {
#if LATENT_HAVE_DNNL
  return "oneDNN";
#else
  return "ATen";
#endif
}

}  // namespace latent::cpu
