// One optimization step's forward and backward: computes the loss of a batch and leaves the
// gradients in the parameters' .grad(). Two implementations: autograd over the model (every
// architecture) and the fused MLP step (fused_mlp.cpp).
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "latent/checkpoint.h"
#include "latent/data.h"
#include "latent/model.h"
#include "latent/precision.h"
#include "latent/train.h"
#include "latent/vq_vae.h"

namespace latent {

struct StepLoss {
  double loss = 0;   // mean over the batch of recon + beta * kl
  double recon = 0;  // mean -log p(x|z)
  double kl = 0;     // mean KL(q || p)
};

class TrainStep {
 public:
  virtual ~TrainStep() = default;
  /// x [B, D...], eps [B, d]. Overwrites every parameter's gradient.
  virtual StepLoss run(const at::Tensor& x, const at::Tensor& eps, double beta) = 0;
  /// Whether run()'s results are the same on any thread count (then the training loop may choose
  /// the count as the load changes: cpu/thread_tuner.h).
  virtual bool thread_invariant() const { return false; }
};

/// Autograd on the ELBO; free_bits > 0 floors each dimension's batch-mean KL (kl_free_bits).
std::unique_ptr<TrainStep> make_autograd_step(VaeImpl& model, double free_bits = 0);

/// Autograd on the negative K-sample IWAE bound, gradients through the normalized weights
/// (Burda et al. 2015); eps is [K, B, d]; beta is not used. recon and kl report the first sample.
std::unique_ptr<TrainStep> make_iwae_step(VaeImpl& model);

/// The fused step for mlp_vae with ReLU on contiguous float32 CPU tensors, or null when the
/// model does not qualify. With bf16 (mixed precision) the products whose dimensions are all 64 or
/// more take bfloat16 operands (float32 accumulation, weights and optimizer state stay float32);
/// throws latent::Error where the build or CPU cannot.
std::unique_ptr<TrainStep> make_fused_mlp_step(VaeImpl& model, Precision precision = Precision::kFloat32);

// Shared by the VAE loop (trainer.cpp) and the VQ-VAE loop (vq_trainer.cpp).
constexpr uint64_t kShuffleSeedSalt = 0x50000000ull;  // epoch e shuffles with mix_seed(seed, salt + e)
constexpr uint64_t kSampleSeedSalt = 0x5a3b1eull;     // samples.png's draws
bool is_image_shape(const std::vector<int64_t>& s);
std::string fmt(const char* f, double v);  // printf of one number
void write_metrics_jsonl(const std::string& path, const nlohmann::json& metrics);
bool stop_requested();  // request_stop() was called (Ctrl-C)
std::string diverged_message(int64_t epoch, int64_t step, double loss, const std::string& checkpoint);

/// Trains (or, with `resume` holding a checkpoint's file, continues) a vq_vae: see vq_vae.h.
TrainResult train_vq(CheckpointInfo info, VqVae model, DataSplit data, const TrainOptions& opt,
                     const std::string& checkpoint_path, const SafetensorsFile* resume);

}  // namespace latent
