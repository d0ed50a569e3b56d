/// @brief The arithmetic a model runs in: float32; bfloat16 products with float32 accumulation; or
/// bf16x3, float32 products computed as three bfloat16 products (each operand split into a high and a
/// low bfloat16 part, hi*hi + hi*lo + lo*hi summed in float32), which keeps ~17 of float32's 24 bits
/// and runs on bfloat16 matrix units (Intel AMX) faster than float32 arithmetic.
#pragma once

#include <string>

#include "latent/error.h"

namespace latent {

enum class Precision { kFloat32, kBFloat16, kBFloat16x3 };

/// "fp32", "bf16" or "bf16x3" -> Precision; throws latent::Error naming the value otherwise.
inline Precision parse_precision(const std::string& name) {
  if (name == "fp32") return Precision::kFloat32;
  if (name == "bf16") return Precision::kBFloat16;
  if (name == "bf16x3") return Precision::kBFloat16x3;
  throw Error("unknown precision '" + name + "' (expected fp32, bf16 or bf16x3)");
}

/// The fastest way to run float32-accurate MLP products on this CPU: bf16x3 where oneDNN runs
/// bfloat16 on Intel AMX tiles (there it beats float32 arithmetic), else fp32.
Precision float32_accurate_precision();

/// The fastest precision for products whose results become 8-bit pixels: bf16 where the CPU has
/// bfloat16 dot products (AVX512-BF16 or AMX), else fp32. Never one the CPU cannot run.
Precision pixel_precision();

inline const char* precision_name(Precision p) {
  return p == Precision::kFloat32 ? "fp32" : p == Precision::kBFloat16 ? "bf16" : "bf16x3";
}

}  // namespace latent
