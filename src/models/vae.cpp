#include <ATen/ATen.h>

#include <cmath>

#include "latent/error.h"
#include "latent/model.h"
#include "latent/objective.h"
#include "models/architectures.h"

namespace latent {

VaeImpl::VaeImpl(ModelConfig config, std::vector<int64_t> data_shape)
    : config_(std::move(config)), data_shape_(std::move(data_shape)) {
  if (config_.likelihood == Likelihood::kGaussian && config_.learned_variance)
    decoder_logvar_ = register_parameter("decoder_logvar", at::zeros(data_shape_));
}

int64_t VaeImpl::data_dim() const {
  int64_t n = 1;
  for (int64_t d : data_shape_) n *= d;
  return n;
}

at::Tensor VaeImpl::log_likelihood(const at::Tensor& params, const at::Tensor& x) const {
  if (config_.likelihood == Likelihood::kBernoulli) return log_bernoulli(params, x);
  if (config_.learned_variance) return log_gaussian(params, decoder_logvar_.expand_as(params), x);
  return log_gaussian(params, at::full_like(params, 2.0 * std::log(config_.sigma)), x);
}

at::Tensor VaeImpl::likelihood_mean(const at::Tensor& params) const {
  return config_.likelihood == Likelihood::kBernoulli ? at::sigmoid(params) : params;
}

at::Tensor activate(const at::Tensor& x, const std::string& activation) {
  if (activation == "relu") return at::relu(x);
  if (activation == "elu") return at::elu(x);
  if (activation == "tanh") return at::tanh(x);
  if (activation == "leaky_relu") return at::leaky_relu(x, 0.01);
  throw Error("unknown activation '" + activation + "'");
}

Vae make_model(const ModelConfig& config, const std::vector<int64_t>& data_shape) {
  if (data_shape.empty()) throw Error("data shape is empty");
  for (int64_t d : data_shape)
    if (d < 1) throw Error("data shape has a zero dimension");
  if (config.type == "mlp_vae") return make_mlp_vae(config, data_shape);
  if (config.type == "conv_vae") return make_conv_vae(config, data_shape);
  throw Error("model config: unknown type '" + config.type + "'");
}

}  // namespace latent

namespace latent {

torch::nn::Functional activation_module(const std::string& activation) {
  activate(at::zeros({1}), activation);  // rejects unknown names at construction
  return torch::nn::Functional([activation](const at::Tensor& x) { return activate(x, activation); });
}

}  // namespace latent

namespace latent {
std::string shape_of(const at::Tensor& t) { return shape_text(t.sizes().vec()); }
}  // namespace latent
