#include "latent/interpolate.h"

#include <ATen/ATen.h>

#include <cmath>

#include "latent/error.h"

namespace latent {

at::Tensor interpolate_latents(const at::Tensor& z0, const at::Tensor& z1, int64_t steps, const std::string& method) {
  if (steps < 2) throw Error("interpolation needs at least 2 steps");
  return interpolate_at(z0, z1, at::linspace(0, 1, steps, z0.options()), method);
}

at::Tensor interpolate_at(const at::Tensor& z0, const at::Tensor& z1, const at::Tensor& positions, const std::string& method) {
  if (z0.sizes() != z1.sizes() || z0.dim() != 1) throw Error("interpolation endpoints must be two codes of the same size");
  if (method != "linear" && method != "slerp") throw Error("interpolation method must be linear or slerp, got '" + method + "'");
  at::Tensor t = positions.to(z0.options()).reshape({-1, 1});  // [T, 1]
  at::Tensor a = z0.unsqueeze(0), b = z1.unsqueeze(0);         // [1, d]
  if (method == "slerp") {
    const double n0 = z0.norm().item<double>(), n1 = z1.norm().item<double>();
    if (n0 > 1e-12 && n1 > 1e-12) {
      const double cos = std::clamp((z0 / n0).dot(z1 / n1).item<double>(), -1.0, 1.0);
      const double omega = std::acos(cos), sin = std::sin(omega);
      if (sin > 1e-6) return (at::sin((1 - t) * omega) * a + at::sin(t * omega) * b) / sin;  // [T, d]
    }
  }
  return (1 - t) * a + t * b;  // [T, d]
}

}  // namespace latent
