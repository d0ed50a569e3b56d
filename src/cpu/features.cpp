#include "cpu/features.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <cstring>
#include <nlohmann/json.hpp>

#include "cpu/build_config.h"
#include "latent/cpu.h"
#include "latent/error.h"
#include "latent/precision.h"

#if LATENT_CPU_X86
#include <cpuid.h>
#endif
#if LATENT_HAVE_DNNL
#include <dnnl.h>
#endif

namespace latent::cpu {
namespace {

// The cap's ladder: latent's levels, then the bfloat16 steps above AVX-512 (they cap oneDNN only:
// latent's kernels have no bfloat16 instructions of their own).
enum class Cap { kPortable, kAvx2, kAvx512, kAvx512Bf16, kAmx, kNone };

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

Cap parse_latent_cap(const std::string& value) {
  const std::string v = lower(value);
  if (v == "portable") return Cap::kPortable;
  if (v == "avx2") return Cap::kAvx2;
  if (v == "avx512") return Cap::kAvx512;
  if (v == "avx512_bf16") return Cap::kAvx512Bf16;
  if (v == "amx" || v == "all") return Cap::kAmx;
  throw Error("LATENT_MAX_CPU_ISA='" + value + "' is not a level (expected portable, avx2, avx512, avx512_bf16 or amx)");
}

// oneDNN's names (dev_guide_cpu_dispatcher_control) on latent's ladder; what lies between two of
// latent's levels counts as the lower (AVX is below AVX2: portable).
Cap parse_dnnl_cap(const std::string& value) {
  const std::string v = lower(value);
  if (v == "sse41" || v == "avx") return Cap::kPortable;
  if (v == "avx2" || v == "avx2_vnni") return Cap::kAvx2;
  if (v == "avx512_core" || v == "avx512_core_vnni" || v == "avx512_mic" || v == "avx512_mic_4ops") return Cap::kAvx512;
  if (v == "avx512_core_bf16") return Cap::kAvx512Bf16;
  return Cap::kNone;  // ALL, AMX, or a name this version does not know: no cap of ours
}

const char* cap_name(Cap c) {
  switch (c) {
    case Cap::kPortable:
      return "portable";
    case Cap::kAvx2:
      return "avx2";
    case Cap::kAvx512:
      return "avx512";
    case Cap::kAvx512Bf16:
      return "avx512_bf16";
    case Cap::kAmx:
      return "amx";
    case Cap::kNone:
      break;
  }
  return "";
}

#if LATENT_CPU_X86
struct Cpuid {
  unsigned a = 0, b = 0, c = 0, d = 0;
};
Cpuid cpuid(unsigned leaf, unsigned sub) {
  Cpuid r;
  if (!__get_cpuid_count(leaf, sub, &r.a, &r.b, &r.c, &r.d)) return {};
  return r;
}
unsigned long long xgetbv0() {
  unsigned lo = 0, hi = 0;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return (static_cast<unsigned long long>(hi) << 32) | lo;
}

void read_cpu(Features& f) {
  const unsigned max_leaf = __get_cpuid_max(0, nullptr);
  const Cpuid l1 = cpuid(1, 0);
  const bool osxsave = l1.c & (1u << 27), fma = l1.c & (1u << 12), avx = l1.c & (1u << 28);
  const unsigned long long xcr0 = osxsave ? xgetbv0() : 0;
  const bool ymm = (xcr0 & 0x6) == 0x6, zmm = (xcr0 & 0xe6) == 0xe6, tiles = (xcr0 & 0x60000) == 0x60000;
  const Cpuid l7 = max_leaf >= 7 ? cpuid(7, 0) : Cpuid{};
  const Cpuid l71 = max_leaf >= 7 && l7.a >= 1 ? cpuid(7, 1) : Cpuid{};
  f.avx2 = avx && fma && ymm && (l7.b & (1u << 5));
  const unsigned avx512_fdqbwvl = (1u << 16) | (1u << 17) | (1u << 30) | (1u << 31);
  f.avx512 = f.avx2 && zmm && (l7.b & avx512_fdqbwvl) == avx512_fdqbwvl;
  f.avx512_bf16 = f.avx512 && (l71.a & (1u << 5));
  f.amx = f.avx512 && tiles && (l7.d & (1u << 22)) && (l7.d & (1u << 24));
  char brand[49] = {};
  if (__get_cpuid_max(0x80000000u, nullptr) >= 0x80000004u)
    for (unsigned i = 0; i < 3; ++i) {
      const Cpuid r = cpuid(0x80000002u + i, 0);
      std::memcpy(brand + 16 * i, &r, 16);
    }
  f.name = brand;
  f.name.erase(0, f.name.find_first_not_of(' '));
  f.name.erase(f.name.find_last_not_of(' ') + 1);
}
#endif

#if LATENT_HAVE_DNNL
dnnl_cpu_isa_t dnnl_isa_of(Cap c) {
  switch (c) {
    case Cap::kPortable:
      return dnnl_cpu_isa_sse41;
    case Cap::kAvx2:
      return dnnl_cpu_isa_avx2;
    case Cap::kAvx512:
      return dnnl_cpu_isa_avx512_core;
    case Cap::kAvx512Bf16:
      return dnnl_cpu_isa_avx512_core_bf16;
    default:
      break;
  }
  return dnnl_cpu_isa_all;
}

const char* dnnl_isa_text(dnnl_cpu_isa_t isa) {
  switch (isa) {
    case dnnl_cpu_isa_sse41:
      return "sse41";
    case dnnl_cpu_isa_avx:
      return "avx";
    case dnnl_cpu_isa_avx2:
      return "avx2";
    case dnnl_cpu_isa_avx2_vnni:
      return "avx2_vnni";
    case dnnl_cpu_isa_avx512_mic:
      return "avx512_mic";
    case dnnl_cpu_isa_avx512_mic_4ops:
      return "avx512_mic_4ops";
    case dnnl_cpu_isa_avx512_core:
      return "avx512_core";
    case dnnl_cpu_isa_avx512_core_vnni:
      return "avx512_core_vnni";
    case dnnl_cpu_isa_avx512_core_bf16:
      return "avx512_core_bf16";
    case dnnl_cpu_isa_avx512_core_amx:
      return "avx512_core_amx";
    default:
      break;
  }
  return "other";  // not x86 (oneDNN's own dispatch), or a newer level
}
#endif

Features read() {
  Features f;
#if LATENT_CPU_X86
  read_cpu(f);
#endif
  Cap cap = Cap::kNone;
  if (const char* v = std::getenv("LATENT_MAX_CPU_ISA"); v && *v) cap = parse_latent_cap(v);
  Cap dnnl_cap = Cap::kNone;
  for (const char* name : {"ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA"})
    if (const char* v = std::getenv(name); v && *v) dnnl_cap = std::min(dnnl_cap, parse_dnnl_cap(v));
  f.cap = cap_name(std::min(cap, dnnl_cap));

  const Isa cpu_isa = f.avx512 ? Isa::kAvx512 : f.avx2 ? Isa::kAvx2 : Isa::kPortable;
  const Isa cap_isa = cap == Cap::kPortable ? Isa::kPortable : cap == Cap::kAvx2 ? Isa::kAvx2 : Isa::kAvx512;
  f.isa = std::min(cpu_isa, cap_isa);
#if !LATENT_CPU_X86 || LATENT_PORTABLE
  f.isa = Isa::kPortable;
#endif

#if LATENT_HAVE_DNNL
  // Our cap is set only when given (oneDNN reads its own variable otherwise); it wins over oneDNN's
  // variable, so the lower of the two is what goes in. It takes effect only before oneDNN's first
  // dispatch: if LibTorch dispatched first, what oneDNN reports below is what runs, and is what we use.
  if (cap != Cap::kNone) dnnl_set_max_cpu_isa(dnnl_isa_of(std::min(cap, dnnl_cap)));
  const dnnl_cpu_isa_t isa = dnnl_get_effective_cpu_isa();
  f.dnnl_isa = dnnl_isa_text(isa);
  const auto at_least = [isa](dnnl_cpu_isa_t level) {
    return (static_cast<unsigned>(isa) & static_cast<unsigned>(level)) == static_cast<unsigned>(level);
  };
  f.bf16 = at_least(dnnl_cpu_isa_avx512_core_bf16) && (f.avx512_bf16 || f.amx);
  f.dnnl_amx = at_least(dnnl_cpu_isa_avx512_core_amx) && f.amx;
  f.winograd = at_least(dnnl_cpu_isa_avx512_core);
  f.conv_block = at_least(dnnl_cpu_isa_avx512_core) ? 16 : 8;
#endif
  return f;
}

}  // namespace

const Features& features() {
  static const Features f = read();
  return f;
}

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::kPortable:
      return "portable";
    case Isa::kAvx2:
      return "avx2";
    case Isa::kAvx512:
      return "avx512";
  }
  return "";
}

}  // namespace latent::cpu

namespace latent {

nlohmann::json cpu_info() {
  using cpu::features;
  using cpu::isa_name;
  const cpu::Features& f = features();
  nlohmann::json built = {"portable"};
#if LATENT_CPU_X86
  built.push_back("avx2");
  built.push_back("avx512");
#endif
  return {{"name", f.name},
          {"kernels", isa_name(f.isa)},
          {"built", built},
          {"onednn", f.dnnl_isa.empty() ? nlohmann::json(nullptr) : nlohmann::json(f.dnnl_isa)},
          {"bf16", f.bf16},
          {"amx", f.dnnl_amx},
          {"cap", f.cap.empty() ? nlohmann::json(nullptr) : nlohmann::json(f.cap)}};
}

std::string cpu_summary() {
  const cpu::Features& f = cpu::features();
  std::string s = (f.name.empty() ? std::string("CPU") : f.name) + ": kernels " + cpu::isa_name(f.isa);
  if (!f.dnnl_isa.empty()) s += ", oneDNN " + f.dnnl_isa;
  s += f.dnnl_amx ? ", bfloat16 on AMX" : f.bf16 ? ", bfloat16 dot products" : ", no bfloat16";
  if (!f.cap.empty()) s += " (capped at " + f.cap + ")";
  return s;
}

}  // namespace latent

namespace latent::cpu {

void require_bf16(const std::string& what) {
  const Features& f = features();
  if (f.bf16) return;
  std::string why;
  if (f.dnnl_isa.empty())
    why = "this build has no oneDNN (Debian: libdnnl-dev)";
  else if (f.avx512_bf16 || f.amx)
    why = "bfloat16 is capped off here (" + (f.cap.empty() ? "oneDNN " + f.dnnl_isa : "capped at " + f.cap) + ")";
  else
    why = "this CPU (" + (f.name.empty() ? std::string("unknown") : f.name) + ") has no AVX512-BF16 or AMX";
  throw Error(what + " needs bfloat16 dot products (AVX512-BF16 or AMX); " + why + ": use fp32");
}

}  // namespace latent::cpu

namespace latent {

Precision float32_accurate_precision() { return cpu::features().dnnl_amx ? Precision::kBFloat16x3 : Precision::kFloat32; }

Precision pixel_precision() { return cpu::features().bf16 ? Precision::kBFloat16 : Precision::kFloat32; }

}  // namespace latent
