// mlp_vae: the fully connected VAE of Kingma & Welling (2014), as in pytorch/examples/vae.
//   encoder: Linear(D, h1) act ... Linear(h_{n-1}, h_n) act      -> fc_mu, fc_logvar: Linear(h_n, d)
//   decoder: Linear(d, h_n) act ... Linear(h_2, h1) act Linear(h1, D)
// State-dict names: encoder.{0,2,..}, fc_mu, fc_logvar, decoder.{0,2,..}: the indices of an
// nn.Sequential with activation modules between the Linear layers.
#include <ATen/ATen.h>
#include <torch/nn/modules/container/functional.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/linear.h>

#include "models/layers.h"
#include "models/registry.h"
#include "models/vae/steps.h"
#include "models/vae/vae_config.h"

namespace latent {
namespace {

class MlpVae : public VaeImpl {
 public:
  MlpVae(const ModelConfig& config, const std::vector<int64_t>& data_shape) : VaeImpl(config, data_shape) {
    register_module("encoder", encoder_);  // registration order = the PyTorch module's order
    int64_t in = data_dim();
    for (int64_t h : config_.hidden) {
      encoder_->push_back(torch::nn::Linear(in, h));
      encoder_->push_back(activation_module(config_.activation));
      in = h;
    }
    fc_mu_ = register_module("fc_mu", torch::nn::Linear(in, config_.latent));
    fc_logvar_ = register_module("fc_logvar", torch::nn::Linear(in, config_.latent));
    register_module("decoder", decoder_);
    int64_t out = config_.latent;
    for (auto it = config_.hidden.rbegin(); it != config_.hidden.rend(); ++it) {
      decoder_->push_back(torch::nn::Linear(out, *it));
      decoder_->push_back(activation_module(config_.activation));
      out = *it;
    }
    decoder_->push_back(torch::nn::Linear(out, data_dim()));
  }

  Posterior encode(const at::Tensor& x) override {
    at::Tensor h = x.reshape({x.size(0), -1});            // [B, D]
    if (!encoder_->is_empty()) h = encoder_->forward(h);  // [B, h_n]
    return {fc_mu_->forward(h), fc_logvar_->forward(h)};  // [B, d] each
  }

  /// The fused step where it applies (ReLU, the elbo objective, no free bits), else the VAE's.
  std::unique_ptr<TrainingStep> training_step(const TrainOptions& o) override {
    if (o.objective == "elbo" && o.fused && o.free_bits == 0)
      if (auto fused = make_fused_mlp_step(*this, parse_precision(o.precision)))
        return vae_training_step(*this, std::move(fused), o);
    return VaeImpl::training_step(o);
  }

  at::Tensor decode(const at::Tensor& z) override {
    at::Tensor h = decoder_->forward(z);  // [B, D]
    std::vector<int64_t> shape{z.size(0)};
    shape.insert(shape.end(), data_shape_.begin(), data_shape_.end());
    return h.reshape(shape);  // [B, D...]
  }

 private:
  torch::nn::Sequential encoder_, decoder_;
  torch::nn::Linear fc_mu_{nullptr}, fc_logvar_{nullptr};
};

}  // namespace

// The encoder's and the mirrored decoder's Linear layers, fc_mu and fc_logvar.
double mlp_numbers(const ModelConfig& c, const std::vector<int64_t>& shape) {
  double D = 1, n = 0, in = 0;
  for (int64_t d : shape) D *= static_cast<double>(d);
  in = D;
  for (int64_t h : c.hidden) {
    n += 2 * (in * static_cast<double>(h)) + in + static_cast<double>(h);  // encoder layer and its decoder mirror
    in = static_cast<double>(h);
  }
  return n + 3 * (in + 1) * static_cast<double>(c.latent) + D;
}

Family mlp_vae_family() {
  return {"mlp_vae",
          true,
          [](const nlohmann::json& j) { return parse_vae_config(j, "mlp_vae", false); },
          [](const ModelConfig& c) { return vae_config_json(c, false); },
          [](const ModelConfig& c, const std::vector<int64_t>& shape) -> Model { return std::make_shared<MlpVae>(c, shape); },
          mlp_numbers};
}

}  // namespace latent
