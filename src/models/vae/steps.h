// A VAE's training step: the loss of a batch with given noise, its gradients left in the
// parameters' .grad(). Three implementations: autograd on the ELBO (every VAE family), autograd on
// the IWAE bound, and the fused MLP step (models/mlp_vae/fused_step.cpp). VaeImpl::training_step
// wraps the chosen one for the training loop (models/training_step.h).
#pragma once

#include <ATen/Tensor.h>

#include <memory>

#include "latent/model.h"
#include "latent/precision.h"
#include "latent/train.h"
#include "models/training_step.h"

namespace latent {

struct StepLoss {
  double loss = 0;   // mean over the batch of recon + beta * kl
  double recon = 0;  // mean -log p(x|z)
  double kl = 0;     // mean KL(q || p)
};

class VaeStep {
 public:
  virtual ~VaeStep() = default;
  /// x [B, D...], eps [B, d] ([K, B, d] for the IWAE step). Overwrites every parameter's gradient.
  virtual StepLoss run(const at::Tensor& x, const at::Tensor& eps, double beta) = 0;
  /// Whether run()'s results are the same on any thread count.
  virtual bool thread_invariant() const { return false; }
};

/// Autograd on the ELBO; free_bits > 0 floors each dimension's batch-mean KL (kl_free_bits).
std::unique_ptr<VaeStep> make_autograd_step(VaeImpl& model, double free_bits = 0);

/// Autograd on the negative K-sample IWAE bound, gradients through the normalized weights
/// (Burda et al. 2015); eps is [K, B, d]; beta is not used. recon and kl report the first sample.
std::unique_ptr<VaeStep> make_iwae_step(VaeImpl& model);

/// The fused step for mlp_vae with ReLU on contiguous float32 CPU tensors, or null when the
/// model does not qualify. With bf16 (mixed precision) the products whose dimensions are all 64 or
/// more take bfloat16 operands (float32 accumulation, weights and optimizer state stay float32);
/// throws latent::Error where the build or CPU cannot.
std::unique_ptr<VaeStep> make_fused_mlp_step(VaeImpl& model, Precision precision = Precision::kFloat32);

/// The training loop's step for a VAE: draws eps ([B, d], or [K, B, d] for the IWAE objective)
/// from the step's generator after any binarization, runs `step`, and reports the ELBO's terms.
std::unique_ptr<TrainingStep> vae_training_step(VaeImpl& model, std::unique_ptr<VaeStep> step, const TrainOptions& options);

}  // namespace latent
