// An MLP for inference on oneDNN's matmul primitive: each weight packed once into the blocked
// layout of oneDNN's brgemm kernels, bias and ReLU applied as the product is written, in float32
// or bfloat16 (Intel AMX / AVX512-BF16 units; float32 accumulation and output).
//
// On the 784-400-20 decoder at 16 rows, one core: the 400 -> 784 layer takes 43 us packed against
// 52 us through sgemm() on the transposed weight, and 7 us in bfloat16 on AMX (bench/RESULTS.md).
// Without oneDNN at build time, make() returns null and callers keep their gemm() path.
#pragma once

#include <ATen/Tensor.h>

#include <memory>
#include <string>
#include <vector>

#include "latent/precision.h"

namespace latent::cpu {

class PackedMlp {
 public:
  struct Layer {
    at::Tensor weight, bias;  // [out, in] (PyTorch's Linear layout), [out]; float32, contiguous
    bool relu = false;
  };
  /// Null when the build has no oneDNN. Throws latent::Error when `precision` is bf16 or bf16x3 and
  /// this CPU has no bfloat16 dot products (cpu::features()).
  static std::unique_ptr<PackedMlp> make(const std::vector<Layer>& layers, Precision precision);
  ~PackedMlp();

  /// y [rows, out of the last layer] = the MLP of x [rows, in of the first]; both row-major float32.
  /// Any number of threads may call it at once; each product runs on the calling thread's OpenMP team.
  void forward(const float* x, int64_t rows, float* y) const;

  /// Every layer but the last: h [rows, inputs of the last layer], float32. fp32 and bf16x3 only;
  /// the MLP must have two layers or more.
  void hidden(const float* x, int64_t rows, float* h) const;

  /// The MLP with its last hidden layer cut to some of its units. For inputs on which the other units
  /// are inactive (ReLU gives 0 on every row, as for the k samples of one image in an IWAE estimate)
  /// it gives the whole MLP's result with fewer multiplications: the products it leaves out are 0 * w.
  class Restricted {
   public:
    ~Restricted();
    /// y [rows, out] = the MLP of x [rows, in] (float32).
    void forward(const float* x, int64_t rows, float* y) const;

   private:
    friend class PackedMlp;
    struct Impl;
    explicit Restricted(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> impl_;
  };
  /// `active`: ascending indices of the last hidden layer's units (the last layer's inputs), not
  /// empty; the MLP must have two layers or more. Packs two weights of its own (under a millisecond
  /// for the 784-400-20 decoder), so it pays for products of thousands of rows. Shares the MLP's
  /// other layers: it must not outlive the MLP.
  std::unique_ptr<Restricted> restrict_last(const std::vector<int32_t>& active) const;

  /// oneDNN's name for the kernel of the first layer's products ("brg:avx512_core", "gemm:jit", ...).
  std::string kernel() const;
  int64_t in_features() const;
  int64_t out_features() const;
  Precision precision() const;

 private:
  struct Impl;
  explicit PackedMlp(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace latent::cpu
