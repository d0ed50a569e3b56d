#include "latent/model.h"

#include <ATen/ATen.h>

#include <cmath>

#include "latent/error.h"
#include "latent/objective.h"
#include "models/layers.h"
#include "models/registry.h"

namespace latent {

ModelImpl::ModelImpl(ModelConfig config, std::vector<int64_t> data_shape)
    : config_(std::move(config)), data_shape_(std::move(data_shape)) {
  if (config_.likelihood == Likelihood::kGaussian && config_.learned_variance)
    decoder_logvar_ = register_parameter("decoder_logvar", at::zeros(data_shape_));
}

int64_t ModelImpl::data_dim() const {
  int64_t n = 1;
  for (int64_t d : data_shape_) n *= d;
  return n;
}

at::Tensor ModelImpl::log_likelihood(const at::Tensor& params, const at::Tensor& x) const {
  if (config_.likelihood == Likelihood::kBernoulli) return log_bernoulli(params, x);
  if (config_.likelihood == Likelihood::kCategorical) {  // logits [B, T-1, V] of tokens x[:, 1:] ([B, T], 0 is padding)
    const at::Tensor target = x.narrow(1, 1, params.size(1)).to(at::kLong);
    const at::Tensor logp = at::log_softmax(params, 2).gather(2, target.unsqueeze(2)).squeeze(2);  // [B, T-1]
    return logp.masked_fill(target == 0, 0).sum(1);
  }
  if (config_.learned_variance) return log_gaussian(params, decoder_logvar_.expand_as(params), x);
  return log_gaussian(params, at::full_like(params, 2.0 * std::log(config_.sigma)), x);
}

at::Tensor ModelImpl::likelihood_mean(const at::Tensor& params) const {
  if (config_.likelihood == Likelihood::kCategorical) return params.argmax(-1).to(at::kFloat);  // the most likely tokens
  return config_.likelihood == Likelihood::kBernoulli ? at::sigmoid(params) : params;
}

at::Tensor activate(const at::Tensor& x, const std::string& activation) {
  if (activation == "relu") return at::relu(x);
  if (activation == "elu") return at::elu(x);
  if (activation == "tanh") return at::tanh(x);
  if (activation == "leaky_relu") return at::leaky_relu(x, 0.01);
  throw Error("unknown activation '" + activation + "'");
}

torch::nn::Functional activation_module(const std::string& activation) {
  activate(at::zeros({1}), activation);  // rejects unknown names at construction
  return torch::nn::Functional([activation](const at::Tensor& x) { return activate(x, activation); });
}

Model make_model(const ModelConfig& config, const std::vector<int64_t>& data_shape) {
  if (data_shape.empty()) throw Error("data shape is empty");
  for (int64_t d : data_shape)
    if (d < 1) throw Error("data shape has a zero dimension");
  const Family& f = family(config.type);
  const double numbers = f.numbers(config, data_shape);
  if (numbers > kMaxModelNumbers)
    throw Error("model config: a " + config.type + " of this size for data " + shape_text(data_shape) + " holds about " +
                std::to_string(static_cast<int64_t>(numbers / 1e6)) + "M numbers, at most " +
                std::to_string(static_cast<int64_t>(kMaxModelNumbers / 1e6)) + "M");
  return f.build(config, data_shape);
}

VaeImpl& require_gaussian_latent(ModelImpl& model, const std::string& what) {
  if (VaeImpl* vae = model.gaussian_latent()) return *vae;
  throw Error(what + " applies to VAEs, models with a Gaussian latent (" + families_with_gaussian_latent() +
              "); this model is a " + model.config().type);
}

Vae make_vae(const ModelConfig& config, const std::vector<int64_t>& data_shape) {
  Model m = make_model(config, data_shape);
  VaeImpl& vae = require_gaussian_latent(*m, "make_vae");
  return Vae(m, &vae);  // shares ownership with m
}

std::vector<std::pair<std::string, at::Tensor>> named_parameters(torch::nn::Module& model) {
  std::vector<std::pair<std::string, at::Tensor>> out;
  for (const auto& item : model.named_parameters(/*recurse=*/true)) out.emplace_back(item.key(), item.value());
  return out;
}

std::vector<std::pair<std::string, at::Tensor>> named_state(torch::nn::Module& model) {
  std::vector<std::pair<std::string, at::Tensor>> out = named_parameters(model);
  for (const auto& item : model.named_buffers(/*recurse=*/true)) out.emplace_back(item.key(), item.value());
  return out;
}

}  // namespace latent
