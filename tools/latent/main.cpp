// latent: train, evaluate and use variational autoencoders.
#include <c10/util/Exception.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <string>

#include "common.h"
#include "latent/cpu.h"
#include "latent/error.h"
#include "launch.h"
#include "signals.h"

namespace {

std::string first_line(const std::string& s) { return s.substr(0, s.find('\n')); }

}  // namespace

int main(int argc, char** argv) {
  latent::cli::start_signal_thread();  // before anything starts a thread: see signals.h
  latent::cli::command_line().assign(argv, argv + argc);
  CLI::App app{"latent: variational autoencoders in C++. Train, evaluate, sample, reconstruct, interpolate, encode and decode."};
  app.require_subcommand(1);
  app.footer(
      "Quick start:\n  latent train --data fashion-mnist --epochs 10 --out runs/fmnist\n  latent eval "
      "runs/fmnist/model.safetensors --iwae-k 5000 --limit 1000\n"
      "  latent serve runs/fmnist/model.safetensors\n"
      "  latent sd roundtrip --vae vae/diffusion_pytorch_model.safetensors photo.png -o photo-vae.png\n"
      "Run 'latent COMMAND --help' for a command's options.\n"
      "CPU: latent picks its kernels (AVX-512, AVX2 or portable) and oneDNN's at run time; LATENT_MAX_CPU_ISA=portable|avx2|"
      "avx512|avx512_bf16|amx caps both (LibTorch's own: ATEN_CPU_CAPABILITY, OPENBLAS_CORETYPE). eval --json, /api/info "
      "and each training metrics record say which ran (\"cpu\").\n");
  latent::cli::add_train(app);
  latent::cli::add_eval(app);
  latent::cli::add_generate(app);
  latent::cli::add_serve(app);
  latent::cli::add_score(app);
  latent::cli::add_sd(app);
  latent::cli::add_info(app);
  latent::cli::add_molecules(app);
  try {
    latent::cpu_info();  // a bad LATENT_MAX_CPU_ISA is one line here, before any command starts threads
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::Success& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "latent: error: %s (see 'latent --help')\n", e.what());
    return 2;
  } catch (const latent::Error& e) {
    std::fprintf(stderr, "latent: error: %s\n", e.what());
    return 1;
  } catch (const c10::Error& e) {
    std::fprintf(stderr, "latent: error: %s\n", first_line(e.what_without_backtrace()).c_str());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "latent: error: %s\n", first_line(e.what()).c_str());
    return 1;
  }
  return latent::cli::exit_status();
}
