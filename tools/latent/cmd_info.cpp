// latent info: the build and what it runs on this CPU (kernels, oneDNN's ISA, bfloat16, cap).
#include <torch/version.h>

#include <algorithm>
#include <cstdio>
#include <thread>

#include "common.h"
#include "latent/chem.h"
#include "latent/cpu.h"
#include "latent/version.h"

namespace latent::cli {

void add_info(CLI::App& app) {
  auto json = std::make_shared<bool>(false);
  CLI::App* cmd = app.add_subcommand("info", "Show the version, the build and what latent runs on this CPU");
  cmd->add_flag("--json", *json, "print JSON");
  cmd->footer(
      "Example:\n  latent info\n  LATENT_MAX_CPU_ISA=avx2 latent info --json   (as on a CPU without AVX-512)\n"
      "kernels: latent's own (avx512, avx2 or portable); onednn: the ISA oneDNN dispatches to; bf16: bfloat16 products "
      "(AVX512-BF16 or AMX) available to --precision bf16; cap: LATENT_MAX_CPU_ISA or oneDNN's own cap.");
  cmd->callback([json] {
    const unsigned cores = std::max(1u, std::thread::hardware_concurrency());  // the commands' default thread count
    nlohmann::json j = {{"version", kVersion},
                        {"libtorch", TORCH_VERSION},
                        {"cores", cores},
                        {"cpu", cpu_info()},
                        {"rdkit", chem_available() ? chem_rdkit_version() : "no"}};
    if (*json) {
      std::printf("%s\n", j.dump(2).c_str());
      return;
    }
    std::printf("latent %s (LibTorch %s), %u cores\n%s\n", kVersion, TORCH_VERSION, cores, cpu_summary().c_str());
    std::printf("kernels built: %s\n", j["cpu"]["built"].dump().c_str());
    std::printf("rdkit: %s\n", j["rdkit"].get<std::string>().c_str());
  });
}

}  // namespace latent::cli
