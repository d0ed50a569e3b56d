// @brief log p(x | z) of a Bernoulli MLP decoder with ReLU hidden layers for the k samples of one
// image, in float32, doing under a third of the multiply-adds of the dense last layer.
//
// A ReLU layer is linear wherever its units keep their signs, and the k samples of one image lie
// close together in latent space, so in a block of a few samples most units of the last hidden
// layer keep theirs. With pre = u W_h^T + b_h the last hidden layer's pre-activation (u its input: z
// itself for one hidden layer) and F the units that fire on more than half of the image's first 256
// samples, the logits are
//
//   logits = u M^T + m + ReLU(pre)_{not F} W_L[:, not F]^T + ReLU(-pre)_F W_L[:, F]^T
//
// with M = W_L[:, F] W_h[F, :] and m = b_L + W_L[:, F] b_h folded once per image (ReLU(p) = p -
// ReLU(-p) for the units of F). In each block of 8 samples a unit enters the product only where its
// part is not zero on some row: units outside F that fire there, units of F that are silent there.
// On the 784-400-20 Fashion-MNIST decoder that is 0.29 of the dense layer's multiply-adds. Each
// piece is exact algebra; only float32's summation order changes (tested against float64). The
// products run in a register-tiled kernel (cpu::Kernels::tile_gemm: AVX-512 or AVX2) that reads B
// row by row through pointers, so choosing a block's units costs no copying.
#pragma once

#include <ATen/Tensor.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "cpu/kernels.h"

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

  /// Null where the decoder has no hidden layer, or where `kernels` is null and the kernels chosen
  /// for this CPU are the portable ones (then oneDNN's products are faster: callers keep their other
  /// path). Every layer but the last has ReLU. Keeps the tensors (no copies), so they must not
  /// change. `kernels`: a variant to run on (tests run each one), instead of cpu::kernels().
  static std::unique_ptr<SplitReluDecoder> make(std::vector<Layer> layers, const cpu::Kernels* kernels = nullptr);

  /// out[r] = log p(x | z[r]) for z [R, d] (row-major float32) and one target x [D] (the Bernoulli
  /// log-likelihood of the logits, x in [0, 1]). Runs on the calling thread; any number of threads
  /// may call it at once. `work` (when not null) gets this call's counts added.
  void log_likelihood_one(const float* z, int64_t R, const float* x, double* out, Work* work = nullptr) const;

 private:
  struct Scratch;
  SplitReluDecoder(std::vector<Layer> layers, const cpu::Kernels& kernels) : layers_(std::move(layers)), k_(kernels) {}
  /// Every layer but the last on `rows` rows of z (padded to a multiple of the tile) into w.acts.
  void hidden_layers(Scratch& w, const float* z, int64_t rows, int64_t padded) const;
  /// Chooses the folded units from the last hidden layer's pre-activations `pre` [rows, H] and, where
  /// folding pays for a call of R rows, builds the map (else folds none).
  void fold(Scratch& w, const float* pre, int64_t rows, int64_t R, Work* work) const;
  /// out[r] = log p(x | row r) for the n <= tile rows of one block: u [n, u_dim], pre [n, H].
  void block(Scratch& w, const float* u, const float* pre, int64_t n, const float* x, double* out, Work* work) const;
  std::vector<Layer> layers_;
  const cpu::Kernels& k_;
};

}  // namespace latent
