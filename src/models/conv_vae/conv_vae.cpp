// conv_vae: strided conv encoder, transposed conv decoder, for images [C, H, W] (C = 1 or 3).
//   encoder: Conv2d(C, c1, 4, stride 2, padding 1) act ... Conv2d(c_{L-1}, c_L, ...) act
//            Flatten [Linear(., h) act]...              -> fc_mu, fc_logvar: Linear(., d)
//   decoder: [Linear(d, h) act]... Linear(., c_L*H/2^L*W/2^L) act Unflatten
//            ConvTranspose2d(c_L, c_{L-1}, 4, stride 2, padding 1) act ... ConvTranspose2d(c_1, C, ...)
// Each conv halves H and W exactly and each transposed conv doubles them, so H and W must be
// divisible by 2^L. State-dict names follow the nn.Sequential indices (encoder.0, decoder.5, ...).
#include <ATen/ATen.h>
#include <torch/nn/modules/container/functional.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/linear.h>

#include "latent/error.h"
#include "models/layers.h"
#include "models/registry.h"
#include "models/vae/vae_config.h"

namespace latent {
namespace {

class ConvVae : public VaeImpl {
 public:
  ConvVae(const ModelConfig& config, const std::vector<int64_t>& data_shape) : VaeImpl(config, data_shape) {
    if (data_shape.size() != 3 || (data_shape[0] != 1 && data_shape[0] != 3))
      throw Error("conv_vae needs images [C, H, W] with 1 or 3 channels; the data has shape " + shape_text(data_shape));
    const int64_t levels = static_cast<int64_t>(config_.channels.size());
    const int64_t factor = int64_t{1} << levels;
    if (data_shape[1] % factor != 0 || data_shape[2] % factor != 0)
      throw Error("conv_vae with " + std::to_string(levels) + " stride-2 layers needs H and W divisible by " +
                  std::to_string(factor) + "; the images are " + std::to_string(data_shape[1]) + "x" +
                  std::to_string(data_shape[2]));
    const int64_t h = data_shape[1] / factor, w = data_shape[2] / factor;

    register_module("encoder", encoder_);  // registration order = the PyTorch module's order
    int64_t c_in = data_shape[0];
    for (int64_t c : config_.channels) {
      encoder_->push_back(torch::nn::Conv2d(torch::nn::Conv2dOptions(c_in, c, 4).stride(2).padding(1)));
      encoder_->push_back(activation_module(config_.activation));
      c_in = c;
    }
    encoder_->push_back(torch::nn::Flatten());
    int64_t features = c_in * h * w;
    for (int64_t units : config_.hidden) {
      encoder_->push_back(torch::nn::Linear(features, units));
      encoder_->push_back(activation_module(config_.activation));
      features = units;
    }
    fc_mu_ = register_module("fc_mu", torch::nn::Linear(features, config_.latent));
    fc_logvar_ = register_module("fc_logvar", torch::nn::Linear(features, config_.latent));

    register_module("decoder", decoder_);
    int64_t in = config_.latent;
    for (auto it = config_.hidden.rbegin(); it != config_.hidden.rend(); ++it) {
      decoder_->push_back(torch::nn::Linear(in, *it));
      decoder_->push_back(activation_module(config_.activation));
      in = *it;
    }
    decoder_->push_back(torch::nn::Linear(in, c_in * h * w));
    decoder_->push_back(activation_module(config_.activation));
    decoder_->push_back(torch::nn::Unflatten(torch::nn::UnflattenOptions(1, {c_in, h, w})));
    for (int64_t i = levels - 1; i >= 0; --i) {
      const int64_t c_out = i > 0 ? config_.channels[i - 1] : data_shape[0];
      decoder_->push_back(
          torch::nn::ConvTranspose2d(torch::nn::ConvTranspose2dOptions(config_.channels[i], c_out, 4).stride(2).padding(1)));
      if (i > 0) decoder_->push_back(activation_module(config_.activation));
    }
  }

  Posterior encode(const at::Tensor& x) override {
    at::Tensor h = encoder_->forward(x);                  // [B, features]
    return {fc_mu_->forward(h), fc_logvar_->forward(h)};  // [B, d] each
  }

  at::Tensor decode(const at::Tensor& z) override {
    return decoder_->forward(z);  // [B, C, H, W]
  }

 private:
  torch::nn::Sequential encoder_, decoder_;
  torch::nn::Linear fc_mu_{nullptr}, fc_logvar_{nullptr};
};

}  // namespace

// The conv stack and its transposed mirror (4x4 kernels), the dense layers both ways, fc_mu, fc_logvar.
double conv_numbers(const ModelConfig& c, const std::vector<int64_t>& shape) {
  if (shape.size() != 3) return 0;  // the constructor names what is wrong with the shape
  double c_in = static_cast<double>(shape[0]), pixels = static_cast<double>(shape[1]) * static_cast<double>(shape[2]);
  double n = conv_stack_numbers(c.channels, c_in, pixels);
  double in = c_in * pixels;
  const double flat = in;
  for (int64_t h : c.hidden) {
    n += 2 * (in * static_cast<double>(h) + static_cast<double>(h)) + in;
    in = static_cast<double>(h);
  }
  return n + 3 * (in + 1) * static_cast<double>(c.latent) + flat;
}

Family conv_vae_family() {
  return {"conv_vae",
          true,
          [](const nlohmann::json& j) { return parse_vae_config(j, "conv_vae", true); },
          [](const ModelConfig& c) { return vae_config_json(c, true); },
          [](const ModelConfig& c, const std::vector<int64_t>& shape) -> Model { return std::make_shared<ConvVae>(c, shape); },
          conv_numbers};
}

}  // namespace latent
