// Matrix products of the fused step on row-major contiguous float32 CPU tensors.
// oneDNN's sgemm (Debian libdnnl-dev, the library LibTorch itself uses for CPU kernels) when the
// build found it: on the 784-400-20 VAE's products at batch 128 it ran 1.30x faster than
// OpenBLAS through at::mm with 2 threads (1075 vs 1394 us per step, bench/RESULTS.md); else at::mm_out.
// oneDNN picks its kernels for the ISA cpu::features() allows.
#pragma once

#include <ATen/Tensor.h>

#include <memory>

namespace latent::cpu {

/// C = op(A) op(B), or C += op(A) op(B) with accumulate. A and B are given in their stored
/// (contiguous) shape; trans_a / trans_b transpose them. C is [M, N], contiguous.
/// The result does not depend on the thread count: C's longer side is cut into pieces fixed by the
/// shape alone, each one product on one thread, the threads sharing the pieces out (oneDNN's own
/// threading splits some products' sums across threads, so a training step's numbers changed in
/// their last bits with --threads, and could not follow the thread count chosen under load).
void gemm(const at::Tensor& a, bool trans_a, const at::Tensor& b, bool trans_b, const at::Tensor& c, bool accumulate = false);

/// C_i = A_i B_i for i in [0, count): row-major float32 products [M, K] x [K, N] -> [M, N], the
/// i-th operands at a + i stride_a, b + i stride_b, c + i stride_c; the products are shared out among
/// the threads, each on one thread (the same results on any thread count).
void gemm_batch(int64_t count, int64_t M, int64_t N, int64_t K, const float* a, int64_t lda, int64_t stride_a, const float* b,
                int64_t ldb, int64_t stride_b, float* c, int64_t ldc, int64_t stride_c);

/// Matrix products with bfloat16 operands and float32 accumulation and output (mixed-precision
/// training: the operands are rounded to 8 significant bits, the sums are not), on oneDNN's matmul
/// (Intel AMX tiles where the CPU has them). One instance serves one thread; each float32 operand is
/// rounded once between clear() calls however many products read it.
class Bf16Gemm {
 public:
  /// Throws latent::Error where the build has no oneDNN or the CPU no bfloat16 dot products.
  Bf16Gemm();
  ~Bf16Gemm();
  /// Forgets the rounded copies (call when the operands' values change: each training step).
  void clear();
  /// As gemm(); a and b are float32, contiguous.
  void run(const at::Tensor& a, bool trans_a, const at::Tensor& b, bool trans_b, const at::Tensor& c, bool accumulate = false);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// The name of the implementation in use ("oneDNN" or "ATen").
const char* gemm_backend();

}  // namespace latent::cpu
