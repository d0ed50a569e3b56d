// Times SD's autoencoder in latent: decode a latent of `--latent-size` and encode the result back,
// each `--runs` times in one process, and prints the seconds of every run and the process's peak
// resident memory. bench/sd_vs_pytorch.py runs it beside the PyTorch reference.
//
//   sd_time --vae FILE [--latent-size 64] [--runs 2] [--precision fp32|bf16] [--threads 2] [--reference]
//   --threads 0: every core, the count following the load as `latent sd` does (bench/contention.sh)
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <sys/resource.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <thread>

#include "latent/sd_vae.h"

namespace {
// Resident memory now, in MB (/proc/self/statm's second field, in pages).
double resident_mb() {
  long pages = 0, size = 0;
  if (FILE* f = std::fopen("/proc/self/statm", "r")) {
    if (std::fscanf(f, "%ld %ld", &size, &pages) != 2) pages = 0;
    std::fclose(f);
  }
  return pages * (sysconf(_SC_PAGESIZE) / 1048576.0);
}
// Peak resident memory of this process's own address space (/proc/self/status VmHWM, in MB).
// getrusage's ru_maxrss is not: Linux carries it over from the parent through fork and exec.
double peak_mb() {
  double kb = 0;
  if (FILE* f = std::fopen("/proc/self/status", "r")) {
    char line[256];
    while (std::fgets(line, sizeof line, f))
      if (std::sscanf(line, "VmHWM: %lf kB", &kb) == 1) break;
    std::fclose(f);
  }
  return kb / 1024.0;
}
// Minor page faults of this process so far (each one a fresh page the kernel had to zero).
long page_faults() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_minflt;
}
}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Time SD autoencoder decode and encode in latent"};
  std::string vae, precision = "fp32", save;
  int64_t size = 64;
  int runs = 2, threads = 2;
  bool reference = false, winograd = false;
  app.add_option("--vae", vae)->required();
  app.add_option("--latent-size", size);
  app.add_option("--runs", runs);
  app.add_option("--precision", precision);
  app.add_option("--threads", threads, "threads (0: every core, following the load)");
  app.add_option("--save", save, "write the decoded image of the first run (.npy) to compare");
  app.add_flag("--reference", reference, "ATen's operations instead of oneDNN's");
  app.add_flag("--winograd", winograd, "Winograd convolutions");
  CLI11_PARSE(app, argc, argv);
  at::set_num_threads(threads > 0 ? threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency())));
  latent::SdLoadOptions options;
  options.follow_load = threads == 0;
  options.precision = latent::parse_precision(precision);
  options.fast = !reference;
  options.winograd = winograd;
  auto t0 = std::chrono::steady_clock::now();
  auto model = latent::SdAutoencoder::load(vae, options);
  auto seconds = [](auto since) { return std::chrono::duration<double>(std::chrono::steady_clock::now() - since).count(); };
  std::printf("load %.2f s, resident %.0f MB\n", seconds(t0), resident_mb());
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(0);
  const at::Tensor z = at::randn({1, model->config().latent_channels, size, size}, gen) * model->config().scaling_factor;
  for (int r = 0; r < runs; ++r) {
    long faults = page_faults();
    t0 = std::chrono::steady_clock::now();
    const at::Tensor image = model->decode(z);
    const double dec = seconds(t0);
    std::printf("  after decode: resident %.0f MB, peak so far %.0f MB, %ld page faults\n", resident_mb(), peak_mb(),
                page_faults() - faults);
    if (r == 0 && !save.empty()) {
      FILE* f = std::fopen(save.c_str(), "wb");
      const at::Tensor c = image.contiguous();
      std::fwrite(c.data_ptr<float>(), sizeof(float), c.numel(), f);
      std::fclose(f);
    }
    const at::Tensor clamped = image.clamp(-1, 1);
    faults = page_faults();
    t0 = std::chrono::steady_clock::now();
    const at::Tensor back = model->encode(clamped, false);
    const double enc = seconds(t0);
    std::printf("run %d: decode %.3f s, encode %.3f s (%ld page faults), resident after %.0f MB\n", r, dec, enc,
                page_faults() - faults, resident_mb());
  }
  std::printf("peak memory %.0f MB\n", peak_mb());
}
