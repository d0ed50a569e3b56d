// Building blocks the families share.
#pragma once

#include <torch/nn/modules/container/functional.h>

#include <string>
#include <vector>

namespace latent {

/// The config's activation as a module, so that nn.Sequential indices match PyTorch's.
torch::nn::Functional activation_module(const std::string& activation);

/// Numbers (weights and biases) in a stack of stride-2 4x4 convolutions with `channels` outputs from
/// `c_in` input channels, and in its transposed mirror; `c_in` becomes the last layer's channels and
/// `pixels` (H W) a quarter of itself per layer. For Family::numbers.
inline double conv_stack_numbers(const std::vector<int64_t>& channels, double& c_in, double& pixels) {
  double n = 0;
  for (int64_t ch : channels) {
    n += 2 * (16 * c_in * static_cast<double>(ch) + static_cast<double>(ch) + c_in);
    c_in = static_cast<double>(ch);
    pixels /= 4;
  }
  return n;
}

}  // namespace latent
