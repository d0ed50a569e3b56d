// The decoder of an mlp_vae with ReLU and a Bernoulli likelihood, as matrix products on gemm()
// and one-pass kernels: log p(x | z) for many rows at once, without autograd or temporaries.
// The IWAE estimate spends nearly all its time here (k decoder passes per image).
#pragma once

#include <memory>
#include <vector>

#include "latent/model.h"

namespace latent {

class FusedMlpDecoder {
 public:
  /// Null when the model is not an mlp_vae with ReLU, Bernoulli likelihood and float32 CPU weights.
  static std::unique_ptr<FusedMlpDecoder> make(VaeImpl& model);

  /// out[r] = log p(x_rows[r] | z[r]) for z [R, d] (contiguous float32); x_rows[r] points at D floats.
  void log_likelihood(const at::Tensor& z, const std::vector<const float*>& x_rows, double* out);

 private:
  struct Layer {
    at::Tensor W, b;  // [out, in], [out]
  };
  std::vector<Layer> layers_;
  int64_t data_dim_ = 0;
  std::vector<at::Tensor> buffers_;  // per layer output, [capacity, out]
  int64_t capacity_ = 0;
};

}  // namespace latent
