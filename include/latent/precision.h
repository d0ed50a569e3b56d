/// @brief The arithmetic a model runs in: float32, or bfloat16 products with float32 accumulation.
#pragma once

#include <string>

#include "latent/error.h"

namespace latent {

enum class Precision { kFloat32, kBFloat16 };

/// "fp32" or "bf16" -> Precision; throws latent::Error naming the value otherwise.
inline Precision parse_precision(const std::string& name) {
  if (name == "fp32") return Precision::kFloat32;
  if (name == "bf16") return Precision::kBFloat16;
  throw Error("unknown precision '" + name + "' (expected fp32 or bf16)");
}

inline const char* precision_name(Precision p) { return p == Precision::kFloat32 ? "fp32" : "bf16"; }

}  // namespace latent
