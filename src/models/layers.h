// Building blocks the families share.
#pragma once

#include <torch/nn/modules/container/functional.h>

#include <string>

namespace latent {

/// The config's activation as a module, so that nn.Sequential indices match PyTorch's.
torch::nn::Functional activation_module(const std::string& activation);

}  // namespace latent
