// @brief log p(x | z) of a Bernoulli MLP decoder with ReLU hidden layers for the k samples of one
// image, in float32 on AVX-512, doing about half the multiply-adds of the dense last layer.
//
// A ReLU layer is linear wherever its units keep their signs. The k samples of one image lie close
// together in latent space, so within a block of samples most units of the last hidden layer do
// keep their sign: on the 784-400-20 Fashion-MNIST decoder, in blocks of 32 of the 5000 samples,
// ~28% of the 400 units never fire (they contribute exactly 0) and ~29% always fire. The decoder
// therefore runs the last layer per block of rows as
//
//   logits = u M^T + m + h_mixed W_mixed^T  (M, m: the always-firing units folded through the layer)
//
// where u [rows, d'] is the last hidden layer's input (z itself for one hidden layer), M = W_L[:, on]
// W_h[on, :] and m = b_L + W_L[:, on] b_h over the units that fire on every row of a span of 256
// rows, and h_mixed, W_mixed the units that fire on some rows of the block and not on all of the span.
// Units silent on every row of the block are left out. Each piece is exact algebra; only float32's
// summation order changes (tested against float64). The products run in a register-tiled AVX-512
// kernel that reads B row by row through pointers, so choosing a block's units costs no copying.
#pragma once

#include <ATen/Tensor.h>

#include <cstdint>
#include <memory>
#include <vector>

namespace latent {

class SplitReluDecoder {
 public:
  struct Layer {
    at::Tensor wt, b;  // [in, out] (the weight transposed), [out]; float32, contiguous
  };
  /// Multiply-adds of the last layer (the folded map's included) against the dense layer's.
  struct Work {
    int64_t rows = 0, multiply_adds = 0, dense_multiply_adds = 0;
  };

  /// Null where the CPU has no AVX-512 or the decoder has no hidden layer (callers keep their other
  /// path). Every layer but the last has ReLU. Keeps the tensors (no copies), so they must not change.
  static std::unique_ptr<SplitReluDecoder> make(std::vector<Layer> layers);

  /// out[r] = log p(x | z[r]) for z [R, d] (row-major float32) and one target x [D] (the Bernoulli
  /// log-likelihood of the logits, x in [0, 1]). Runs on the calling thread; any number of threads
  /// may call it at once. `work` (when not null) gets this call's counts added.
  void log_likelihood_one(const float* z, int64_t R, const float* x, double* out, Work* work = nullptr) const;

 private:
  explicit SplitReluDecoder(std::vector<Layer> layers) : layers_(std::move(layers)) {}
  std::vector<Layer> layers_;
};

}  // namespace latent
