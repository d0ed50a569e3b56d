// The decoder of an mlp_vae with ReLU and a Bernoulli likelihood, as matrix products on cpu::gemm()
// and one-pass kernels: log p(x | z) for many rows at once, without autograd or temporaries.
// The IWAE estimate spends nearly all its time here (k decoder passes per image).
#pragma once

#include <memory>
#include <vector>

#include "cpu/packed_mlp.h"
#include "eval/split_relu_decoder.h"
#include "latent/model.h"

namespace latent {

class FusedMlpDecoder {
 public:
  /// Null when the model is not an mlp_vae with ReLU, Bernoulli likelihood and float32 CPU weights.
  /// With oneDNN the products run on weights packed once (PackedMlp), in `precision`; bf16 throws
  /// latent::Error where the CPU or the build cannot run it.
  static std::unique_ptr<FusedMlpDecoder> make(VaeImpl& model, Precision precision = Precision::kFloat32);

  /// out[r] = log p(x_rows[r] | z[r]) for z [R, d] (row-major float32); x_rows[r] points at D floats.
  /// Any number of threads may call it at once; inside a parallel region it runs on the calling thread.
  void log_likelihood(const float* z, int64_t R, const float* const* x_rows, double* out) const;

  /// out[r] = log p(x | z[r]) for R rows of z that all decode toward one x (the k samples of one
  /// image), on the calling thread. In fp32 with AVX2 or AVX-512 kernels it runs on SplitReluDecoder (units silent in a
  /// block of rows left out, units firing on most rows folded into a map of the layer's input); else in chunks of
  /// `chunk` rows, and with oneDNN in fp32 or bf16x3 the last layer leaves out the hidden units that
  /// no row uses (exact: their products are zero).
  void log_likelihood_one(const float* z, int64_t R, const float* x, int64_t chunk, double* out) const;

  /// The decoder's logits for z [R, d]: [R, D...] in the model's data shape. Uses no shared
  /// buffers, so any number of threads may call it at once (the explorer's request threads do).
  at::Tensor logits(const at::Tensor& z) const;
  /// The same into out [R, D] for z [R, d], both row-major float32 (no tensors made with oneDNN).
  void logits_into(const float* z, int64_t R, float* out) const;

  Precision precision() const { return packed_ ? packed_->precision() : Precision::kFloat32; }
  /// What log_likelihood_one runs on in fp32 with AVX2 or AVX-512 kernels (null elsewhere).
  const SplitReluDecoder* split() const { return split_.get(); }

 private:
  struct Layer {
    at::Tensor Wt, b;  // [in, out] (the weight transposed once: for few rows, oneDNN runs x Wt in
                       // 48 us where x W^T takes 76 us on the 784x400 layer), [out]
  };
  /// h [R, in] through every layer into `outs` ([R, out] each); returns the last.
  const at::Tensor& forward(const at::Tensor& z, std::vector<at::Tensor>& outs) const;
  std::vector<Layer> layers_;
  std::unique_ptr<cpu::PackedMlp> packed_;   // null without oneDNN
  std::unique_ptr<SplitReluDecoder> split_;  // fp32 with AVX2 or AVX-512 kernels only
  int64_t data_dim_ = 0;
  std::vector<int64_t> data_shape_;
};

}  // namespace latent
