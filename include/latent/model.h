/// @brief The model interface every family implements, and the factory that builds one by type.
///
/// A family (mlp_vae, conv_vae, vq_vae, ...) is a folder under src/models/ and one line in
/// src/models/registry.cpp; everything that starts from a model (training, eval, sample,
/// reconstruct, the explorer) goes through this interface and asks the model what it supports.
///
/// Shapes: B batch, D data shape ([C, H, W] for images, [F] for tables), d latent size.
/// Parameters are registered under the names a PyTorch user would give the same model
/// (encoder.0.weight, fc_mu.weight, decoder.0.weight, ...), so a checkpoint's tensors load into the
/// equivalent torch.nn.Module by name.
#pragma once

#include <torch/nn/module.h>

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "latent/config.h"
#include "latent/data.h"

namespace latent {

struct TrainOptions;
class TrainingStep;  // a family's part of the training loop (src/models/training_step.h)
class VaeImpl;

class ModelImpl : public torch::nn::Module {
 public:
  ModelImpl(ModelConfig config, std::vector<int64_t> data_shape);

  /// Means of p(x | x's code) [N, D...] for examples x [N, D...]: the reconstructions.
  virtual at::Tensor reconstruct(const at::Tensor& x) = 0;
  /// n new examples [n, D...]: means of p(x | code) for codes drawn from the model's prior.
  /// `temperature` scales a Gaussian prior's spread (1: the prior itself); families with another
  /// prior ignore it.
  virtual at::Tensor sample(int64_t n, at::Generator& gen, double temperature = 1.0) = 0;
  /// Held-out metrics of examples x (in nats per example where they are likelihoods): every family
  /// gives "examples" and "recon" (-log p(x | code)); the rest are its own (a VAE's elbo, kl,
  /// active_units, kl_per_dim, mu_variance; a VQ-VAE's commitment, usage, perplexity).
  /// `seed` seeds any noise (the VAE's one-sample ELBO).
  virtual nlohmann::json evaluate(const Dataset& data, uint64_t seed, int64_t batch_size = 500) = 0;
  /// The family's part of training: loss, noise, per-step updates and per-epoch metrics.
  /// Throws latent::Error naming the option when `options` asks for what the family cannot do.
  virtual std::unique_ptr<TrainingStep> training_step(const TrainOptions& options) = 0;

  /// The model as a VAE with a Gaussian latent (encode to N(mu, sigma), decode any z), or null:
  /// interpolation, encodings, anomaly scores, the IWAE estimate and the explorer need one.
  virtual VaeImpl* gaussian_latent() { return nullptr; }

  /// log p(x | params) per example [B], from the decoder's output `params` [B, D...].
  at::Tensor log_likelihood(const at::Tensor& params, const at::Tensor& x) const;
  /// The mean of p(x | params): sigmoid(logits) for Bernoulli, the mean for Gaussian.
  at::Tensor likelihood_mean(const at::Tensor& params) const;

  const ModelConfig& config() const { return config_; }
  const std::vector<int64_t>& data_shape() const { return data_shape_; }
  int64_t data_dim() const;

 protected:
  ModelConfig config_;
  std::vector<int64_t> data_shape_;
  at::Tensor decoder_logvar_;  // Gaussian with learned variance: [D...], else undefined
};

using Model = std::shared_ptr<ModelImpl>;

struct Posterior {
  at::Tensor mu;      // [B, d]
  at::Tensor logvar;  // [B, d], log sigma^2
};

/// A VAE: q(z|x) = N(mu, exp(logvar)) over a d-dimensional latent, decoded by p(x|z).
/// encode: x [B, D...] -> mu and logvar [B, d]; decode: z [B, d] -> likelihood parameters [B, D...]
/// (Bernoulli logits or Gaussian mean).
class VaeImpl : public ModelImpl {
 public:
  using ModelImpl::ModelImpl;

  virtual Posterior encode(const at::Tensor& x) = 0;
  virtual at::Tensor decode(const at::Tensor& z) = 0;
  int64_t latent_dim() const { return config_.latent; }

  at::Tensor reconstruct(const at::Tensor& x) override;
  at::Tensor sample(int64_t n, at::Generator& gen, double temperature = 1.0) override;
  nlohmann::json evaluate(const Dataset& data, uint64_t seed, int64_t batch_size = 500) override;
  std::unique_ptr<TrainingStep> training_step(const TrainOptions& options) override;
  VaeImpl* gaussian_latent() override { return this; }
};

using Vae = std::shared_ptr<VaeImpl>;

/// Builds the family named by config.type for data of shape `data_shape` (no batch axis).
/// Throws latent::Error when the type is unknown or the shape does not fit the architecture.
Model make_model(const ModelConfig& config, const std::vector<int64_t>& data_shape);
/// make_model for a family with a Gaussian latent; throws latent::Error for any other.
Vae make_vae(const ModelConfig& config, const std::vector<int64_t>& data_shape);

/// The model's Gaussian latent, or latent::Error saying that `what` needs one.
VaeImpl& require_gaussian_latent(ModelImpl& model, const std::string& what);

/// The model's parameters by state-dict name, in registration order.
std::vector<std::pair<std::string, at::Tensor>> named_parameters(torch::nn::Module& model);
/// Its parameters, then its buffers (the state a checkpoint holds).
std::vector<std::pair<std::string, at::Tensor>> named_state(torch::nn::Module& model);

/// Applies the activation named in the config.
at::Tensor activate(const at::Tensor& x, const std::string& activation);

}  // namespace latent
