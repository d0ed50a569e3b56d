/// @brief Adam (Kingma & Ba 2015) with PyTorch's update rule, its state keyed by parameter name.
///
/// m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;
/// p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
/// Contiguous float32 CPU parameters take one fused pass per tensor (read g, m, v, p once, split
/// across threads, denormal moments flushed to zero: see kernels::adam_update); other devices and
/// dtypes use tensor ops. State moves in and out of checkpoints
/// as "optimizer.exp_avg.<name>" / "optimizer.exp_avg_sq.<name>" tensors plus the step count.
#pragma once

#include <ATen/Tensor.h>

#include <string>
#include <utility>
#include <vector>

#include "latent/safetensors.h"

namespace latent {

struct AdamOptions {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
};

class Adam {
 public:
  Adam(std::vector<std::pair<std::string, at::Tensor>> params, AdamOptions options);

  /// One update from each parameter's .grad(); parameters without a gradient are skipped.
  void step();
  void zero_grad();
  int64_t steps() const { return step_; }
  const AdamOptions& options() const { return options_; }

  /// Adds the state tensors to `file` and the step count to its metadata.
  void save_state(SafetensorsFile& file) const;
  /// Restores state written by save_state; throws latent::Error on any mismatch.
  void load_state(const SafetensorsFile& file);

 private:
  std::vector<std::pair<std::string, at::Tensor>> params_;
  std::vector<at::Tensor> exp_avg_, exp_avg_sq_;
  AdamOptions options_;
  int64_t step_ = 0;
};

}  // namespace latent
