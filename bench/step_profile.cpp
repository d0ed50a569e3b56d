// Times the training step of the 784-400-20 VAE (batch 128) phase by phase: forward+backward
// (fused or autograd) and the Adam update, for 1 and 2 threads. A tool for optimizing the fused
// step; the comparison with PyTorch is bench/train_vs_pytorch.py.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <chrono>
#include <cstdio>
#include <string>

#include "latent/adam.h"
#include "latent/checkpoint.h"
#include "models/vae/steps.h"

using Clock = std::chrono::steady_clock;

int main(int argc, char** argv) {
  const int64_t B = argc > 1 ? std::atoll(argv[1]) : 128, steps = argc > 2 ? 3000 : 300;
  const std::string only = argc > 2 ? argv[2] : "";  // "fused2": only the fused step on 2 threads (for perf)
  for (int threads : {1, 2}) {
    at::set_num_threads(threads);
    for (bool fused : {true, false}) {
      if (!only.empty() && (only != "fused2" || threads != 2 || !fused)) continue;
      at::manual_seed(0);
      latent::Vae m = latent::make_vae(
          latent::ModelConfig::from_text_or_file(R"({"type": "mlp_vae", "hidden": [400], "latent": 20})"), {784});
      auto step = fused ? latent::make_fused_mlp_step(*m) : latent::make_autograd_step(*m);
      latent::Adam adam(latent::named_parameters(*m), {});
      // A pool of batches, as training sees (one batch repeated drives Adam's moments into denormals).
      std::vector<at::Tensor> xs, es;
      for (int k = 0; k < 64; ++k) {
        xs.push_back(at::bernoulli(at::rand({B, 784})));
        es.push_back(at::randn({B, 20}));
      }
      double t_step = 0, t_adam = 0;
      for (int64_t i = 0; i < steps + 20; ++i) {
        auto t0 = Clock::now();
        step->run(xs[i % 64], es[i % 64], 1.0);
        auto t1 = Clock::now();
        adam.step();
        auto t2 = Clock::now();
        if (i >= 20) {
          t_step += std::chrono::duration<double>(t1 - t0).count();
          t_adam += std::chrono::duration<double>(t2 - t1).count();
        }
      }
      std::printf("threads %d %-8s step %7.1f us  adam %6.1f us  -> %7.0f samples/s\n", threads, fused ? "fused" : "autograd",
                  1e6 * t_step / steps, 1e6 * t_adam / steps, B * steps / (t_step + t_adam));
    }
  }
}
