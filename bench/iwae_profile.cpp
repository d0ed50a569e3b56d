// Times the IWAE estimate's decoder pass on one thread, image by image: the k samples of each test
// image through FusedMlpDecoder::log_likelihood_one, with the last layer's multiply-adds against
// the dense layer's (SplitReluDecoder::Work). A tool for optimizing that pass; the comparison with
// PyTorch is bench/iwae_vs_pytorch.py.
//
//   build/bench/iwae_profile CHECKPOINT [images = 200] [k = 5000]   (an mlp_vae trained on Fashion-MNIST:
//   the first test images are its inputs)
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <chrono>
#include <cstdio>
#include <string>

#include "eval/fused_decoder.h"
#include "latent/checkpoint.h"
#include "latent/data.h"

using Clock = std::chrono::steady_clock;

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: iwae_profile CHECKPOINT [images] [k]\n");
    return 2;
  }
  const int64_t images = argc > 2 ? std::atoll(argv[2]) : 200, k = argc > 3 ? std::atoll(argv[3]) : 5000;
  at::set_num_threads(1);
  at::NoGradGuard no_grad;
  latent::LoadedCheckpoint ck = latent::checkpoint_load(argv[1]);
  latent::VaeImpl& vae = ck.vae("iwae_profile");
  const at::Tensor x = latent::idx_load(latent::fashion_mnist_dir() + "/t10k-images-idx3-ubyte.gz")
                           .narrow(0, 0, images)
                           .to(at::kFloat)
                           .div(255)
                           .reshape({images, -1})
                           .contiguous();
  const latent::Posterior q = vae.encode(x.reshape({images, 1, 28, 28}));
  const int64_t d = q.mu.size(1), D = x.size(1);
  const auto decoder = latent::FusedMlpDecoder::make(vae);
  if (!decoder) {
    std::fprintf(stderr, "not an mlp_vae with ReLU and a Bernoulli likelihood\n");
    return 1;
  }
  std::vector<double> out(k);
  double noise_s = 0, decode_s = 0;
  latent::SplitReluDecoder::Work work;
  for (int64_t i = 0; i < images; ++i) {
    auto t0 = Clock::now();
    const at::Tensor z = q.mu[i] + (0.5 * q.logvar[i]).exp() * at::randn({k, d});  // [k, d]
    auto t1 = Clock::now();
    if (decoder->split())
      decoder->split()->log_likelihood_one(z.data_ptr<float>(), k, x.data_ptr<float>() + i * D, out.data(), &work);
    else
      decoder->log_likelihood_one(z.data_ptr<float>(), k, x.data_ptr<float>() + i * D, 128, out.data());
    auto t2 = Clock::now();
    if (i > 0) {  // the first image pays for first-touch memory
      noise_s += std::chrono::duration<double>(t1 - t0).count();
      decode_s += std::chrono::duration<double>(t2 - t1).count();
    }
  }
  const double per = 1e3 / static_cast<double>(images - 1);
  std::printf("%lld images, k = %lld, one thread\n", static_cast<long long>(images), static_cast<long long>(k));
  std::printf("  noise and z           %7.3f ms per image\n", noise_s * per);
  std::printf("  decoder + likelihood  %7.3f ms per image\n", decode_s * per);
  if (work.dense_multiply_adds > 0)
    std::printf("  last layer: %.3f of the dense layer's multiply-adds; %.1f GFLOP/s of those done\n",
                static_cast<double>(work.multiply_adds) / static_cast<double>(work.dense_multiply_adds),
                2.0 * static_cast<double>(work.multiply_adds) / static_cast<double>(images) * static_cast<double>(images - 1) /
                    decode_s / 1e9);
  return 0;
}
