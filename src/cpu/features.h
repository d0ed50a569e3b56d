// @brief What this CPU can run, decided once for the process: the one place in latent that asks.
//
// latent's own kernels come in three levels (cpu/kernels.h): portable C++ that any compiler builds
// for any architecture, AVX2+FMA, and AVX-512 (F, BW, DQ, VL). The level is the highest the
// processor and operating system support (CPUID and XGETBV, as llama.cpp's cpu-feats.cpp reads
// them), lowered by the cap LATENT_MAX_CPU_ISA = portable | avx2 | avx512 | avx512_bf16 | amx.
// The same cap goes to oneDNN (it is also honoured when set through oneDNN's own
// ONEDNN_MAX_CPU_ISA / DNNL_MAX_CPU_ISA), and oneDNN is then asked what it will dispatch to;
// bfloat16 products, AMX, the convolutions' channel blocking and Winograd follow from its answer
// rather than from probe primitives. LibTorch's own kernels take their caps from ATEN_CPU_CAPABILITY
// and OPENBLAS_CORETYPE, which must be set before the process starts.
#pragma once

#include <string>

namespace latent::cpu {

/// The levels latent's own kernels are built in, lowest first.
enum class Isa { kPortable, kAvx2, kAvx512 };

struct Features {
  std::string name;          // the processor's brand string ("" where unknown)
  bool avx2 = false;         // AVX2 and FMA, with the OS saving YMM state
  bool avx512 = false;       // AVX-512 F, BW, DQ and VL, with the OS saving ZMM state
  bool avx512_bf16 = false;  // AVX512-BF16 dot products
  bool amx = false;          // AMX tiles with bfloat16
  std::string cap;           // the cap in force, as named in LATENT_MAX_CPU_ISA or oneDNN's variable ("" for none)
  Isa isa = Isa::kPortable;  // the level latent's kernels run at: the CPU's, capped
  std::string dnnl_isa;      // what oneDNN dispatches to ("avx2", "avx512_core_bf16", ...; "" without oneDNN)
  bool bf16 = false;         // oneDNN runs bfloat16 products on bfloat16 instructions (AVX512-BF16 or AMX)
  bool dnnl_amx = false;     // ... on AMX tiles
  bool winograd = false;     // oneDNN has its float32 Winograd convolutions here (AVX-512 only)
  int conv_block = 16;       // channels per block of the layout oneDNN's convolution kernels want (8 or 16)
};

/// The features, read on first use (and the cap applied to oneDNN then, before any oneDNN call).
/// Throws latent::Error when LATENT_MAX_CPU_ISA names no known level.
const Features& features();

/// "portable", "avx2" or "avx512".
const char* isa_name(Isa isa);

/// Throws latent::Error saying what `what` needs and what this CPU lacks, unless oneDNN runs
/// bfloat16 products on bfloat16 instructions here (AVX512-BF16 or AMX).
void require_bf16(const std::string& what);

}  // namespace latent::cpu
