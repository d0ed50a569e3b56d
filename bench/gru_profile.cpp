// Times one GRU layer of the SMILES VAE's size (T steps, batch B, input and hidden 256) forward and
// forward+backward: latent's gru_sequence (src/models/smiles_vae/gru.h) against ATen's at::gru,
// the kernels PyTorch's torch.nn.GRU runs on a CPU. A tool for optimizing the layer; the model-level
// comparison with PyTorch is bench/smiles_vs_pytorch.py.
//   gru_profile [T] [B] [threads] [rows of the decoding step]
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/autograd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>

#include "models/smiles_vae/gru.h"

using Clock = std::chrono::steady_clock;

namespace {

double best_ms(const std::function<void()>& f, int reps) {
  double best = 1e30;
  for (int i = 0; i < reps + 1; ++i) {
    const auto t0 = Clock::now();
    f();
    const double ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
    if (i > 0 && ms < best) best = ms;  // the first run warms caches and allocators
  }
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  const int64_t T = argc > 1 ? std::atoll(argv[1]) : 45, B = argc > 2 ? std::atoll(argv[2]) : 128, I = 256, H = 256;
  at::set_num_threads(argc > 3 ? std::atoi(argv[3]) : 2);
  at::manual_seed(0);
  auto leaf = [](at::Tensor t) { return t.requires_grad_(true); };
  const at::Tensor x = leaf(at::randn({T, B, I})), h0 = leaf(at::randn({B, H}) * 0.5);
  const at::Tensor w_ih = leaf(at::randn({3 * H, I}) * 0.06), w_hh = leaf(at::randn({3 * H, H}) * 0.06);
  const at::Tensor b_ih = leaf(at::randn({3 * H}) * 0.1), b_hh = leaf(at::randn({3 * H}) * 0.1);
  const at::Tensor dy = at::randn({T, B, H});
  auto aten = [&] {
    return std::get<0>(at::gru(x, h0.unsqueeze(0), {w_ih, w_hh, b_ih, b_hh}, true, 1, 0.0, true, false, false));
  };
  auto ours = [&] { return latent::gru_sequence(at::linear(x, w_ih, b_ih), h0, w_hh, b_hh); };
  const std::vector<at::Tensor> params = {x, h0, w_ih, w_hh, b_ih, b_hh};
  std::printf("GRU layer: T %lld, B %lld, input and hidden %lld, %d threads; best of 5, ms\n", static_cast<long long>(T),
              static_cast<long long>(B), static_cast<long long>(H), at::get_num_threads());
  std::printf("%-10s %10s %18s\n", "", "forward", "forward+backward");
  for (const auto& [name, f] : {std::pair<const char*, std::function<at::Tensor()>>{"ATen", aten}, {"latent", ours}}) {
    const double fwd = best_ms(
        [&] {
          at::NoGradGuard no_grad;
          f();
        },
        5);
    const double both = best_ms([&] { torch::autograd::grad({(f() * dy).sum()}, params); }, 5);
    std::printf("%-10s %10.2f %18.2f\n", name, fwd, both);
  }
  // One decoding step of a large batch (sampling decodes 2,000 molecules at once): at::gru_cell
  // (what torch.nn.GRU runs for one step) against gru_step, with the input's product included.
  const int64_t R = argc > 4 ? std::atoll(argv[4]) : 2000;
  at::NoGradGuard no_grad;
  const at::Tensor xs = at::randn({R, I}), hs = at::randn({R, H}) * 0.5;
  const double cell = best_ms([&] { at::gru_cell(xs, hs, w_ih, w_hh, b_ih, b_hh); }, 20);
  const double step = best_ms([&] { latent::gru_step(at::linear(xs, w_ih, b_ih), hs, w_hh, b_hh); }, 20);
  std::printf("one step of %lld rows: ATen gru_cell %.3f ms, latent gru_step %.3f ms\n", static_cast<long long>(R), cell, step);
}
