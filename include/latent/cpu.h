/// @brief What latent runs on this CPU, decided once per process at first use: the instruction set
/// of its own kernels (AVX-512, AVX2, or portable C++), what oneDNN dispatches to, whether bfloat16
/// products (AVX512-BF16 or AMX) are available, and the cap in force. LATENT_MAX_CPU_ISA =
/// portable | avx2 | avx512 | avx512_bf16 | amx caps latent's kernels and oneDNN's, to run as a
/// smaller CPU would (LibTorch's own kernels take ATEN_CPU_CAPABILITY and OPENBLAS_CORETYPE).
#pragma once

#include <nlohmann/json.hpp>
#include <string>

namespace latent {

/// {"name": brand string, "kernels": "avx512" | "avx2" | "portable", "built": the kernel levels this
///  build has, "onednn": oneDNN's ISA or null, "bf16": bool, "amx": bool, "cap": the cap or null}, as
/// eval's JSON, /api/info and every training metrics record carry it. Throws latent::Error when
/// LATENT_MAX_CPU_ISA names no level.
nlohmann::json cpu_info();

/// One line: "AMD EPYC: kernels avx2, oneDNN avx2, no bfloat16 (capped at avx2)".
std::string cpu_summary();

}  // namespace latent
