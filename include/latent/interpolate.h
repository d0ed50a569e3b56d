/// @brief Paths through latent space between two codes.
#pragma once

#include <ATen/Tensor.h>

#include <cstdint>
#include <string>

namespace latent {

/// `steps` codes from z0 to z1 (both [d]), endpoints included: [steps, d].
/// method "linear": (1 - t) z0 + t z1. method "slerp": along the great circle between the two
/// directions (Shoemake 1985), falling back to linear when they are (anti)parallel.
at::Tensor interpolate_latents(const at::Tensor& z0, const at::Tensor& z1, int64_t steps, const std::string& method);

/// The codes at the positions `t` [T] (0 is z0, 1 is z1) along the same paths: [T, d].
at::Tensor interpolate_at(const at::Tensor& z0, const at::Tensor& z1, const at::Tensor& t, const std::string& method);

}  // namespace latent
