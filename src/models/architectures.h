// Constructors of the architectures, one file each; make_model() in vae.cpp dispatches by type.
#pragma once

#include "latent/model.h"

namespace latent {

Vae make_mlp_vae(const ModelConfig& config, const std::vector<int64_t>& data_shape);
Vae make_conv_vae(const ModelConfig& config, const std::vector<int64_t>& data_shape);

}  // namespace latent

#include <torch/nn/modules/container/functional.h>

#include <string>

namespace latent {

/// The config's activation as a module, so that nn.Sequential indices match PyTorch's.
torch::nn::Functional activation_module(const std::string& activation);

}  // namespace latent

namespace latent {
/// "[400, 784]" for a tensor.
std::string shape_of(const at::Tensor& t);
}  // namespace latent
