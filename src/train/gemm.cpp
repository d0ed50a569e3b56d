#include "train/gemm.h"

#include <ATen/ATen.h>

#ifdef LATENT_HAVE_DNNL
#include <dnnl.h>
#endif

#include "latent/error.h"

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

const char* gemm_backend() {
#ifdef LATENT_HAVE_DNNL
  return "oneDNN";
#else
  return "ATen";
#endif
}

}  // namespace latent
