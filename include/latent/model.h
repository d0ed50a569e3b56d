/// @brief The VAE interface every architecture implements, and the factory that builds one.
///
/// Shapes: B batch, D data shape ([C, H, W] for images, [F] for tables), d latent size.
/// encode: x [B, D...] -> q(z|x) = N(mu, exp(logvar)), mu and logvar [B, d].
/// decode: z [B, d] -> likelihood parameters [B, D...] (Bernoulli logits or Gaussian mean).
/// Parameters are registered under the names a PyTorch user would give the same model
/// (encoder.0.weight, fc_mu.weight, fc_logvar.weight, decoder.0.weight, ...), so a
/// checkpoint's tensors load into the equivalent torch.nn.Module by name.
#pragma once

#include <torch/nn/module.h>

#include <memory>
#include <vector>

#include "latent/config.h"

namespace latent {

struct Posterior {
  at::Tensor mu;      // [B, d]
  at::Tensor logvar;  // [B, d], log sigma^2
};

class VaeImpl : public torch::nn::Module {
 public:
  VaeImpl(ModelConfig config, std::vector<int64_t> data_shape);

  virtual Posterior encode(const at::Tensor& x) = 0;
  virtual at::Tensor decode(const at::Tensor& z) = 0;

  /// log p(x | z) per example [B], from the decoder's output `params` [B, D...].
  at::Tensor log_likelihood(const at::Tensor& params, const at::Tensor& x) const;
  /// The mean of p(x | z): sigmoid(logits) for Bernoulli, the mean for Gaussian.
  at::Tensor likelihood_mean(const at::Tensor& params) const;

  const ModelConfig& config() const { return config_; }
  const std::vector<int64_t>& data_shape() const { return data_shape_; }
  int64_t latent_dim() const { return config_.latent; }
  int64_t data_dim() const;

 protected:
  ModelConfig config_;
  std::vector<int64_t> data_shape_;
  at::Tensor decoder_logvar_;  // Gaussian with learned variance: [D...], else undefined
};

using Vae = std::shared_ptr<VaeImpl>;

/// Builds the architecture named by config.type for data of shape `data_shape` (no batch axis).
/// Throws latent::Error when the shape does not fit the architecture.
Vae make_model(const ModelConfig& config, const std::vector<int64_t>& data_shape);

/// Applies the activation named in the config.
at::Tensor activate(const at::Tensor& x, const std::string& activation);

}  // namespace latent
