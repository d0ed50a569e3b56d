// A VAE in a program of your own, on the installed library: train a small one on Fashion-MNIST's
// T-shirts, draw samples from the prior, and score test images of every class as anomalies against
// the T-shirts (AUROC of -ELBO and of the complexity-adjusted score, Serra et al. 2020: by -ELBO
// alone, simple images such as trousers look likelier than the shirts the model was trained on).
//
//   train_sample_score OUT_DIR [EPOCHS]
// writes OUT_DIR/model.safetensors, metrics.jsonl, samples.png and prints the AUROCs; exits 1 unless
// the mean AUROC of the better score over the nine other classes is above chance (0.5).
#include <ATen/ATen.h>
#include <latent/anomaly.h>
#include <latent/checkpoint.h>
#include <latent/checkpoint_data.h>
#include <latent/cpu.h>
#include <latent/error.h>
#include <latent/image.h>
#include <latent/train.h>
#include <latent/version.h>

#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s OUT_DIR [EPOCHS]\n", argv[0]);
    return 2;
  }
  try {
    std::printf("latent %s on %s\n", latent::kVersion, latent::cpu_summary().c_str());

    // Train: an MLP VAE on the T-shirts (class 0) of Fashion-MNIST.
    const latent::ModelConfig config =
        latent::ModelConfig::from_text_or_file(R"({"type": "mlp_vae", "hidden": [256], "latent": 8})");
    latent::DataSpec data;
    data.source = "fashion-mnist";
    data.classes = {0};
    latent::TrainOptions options;
    options.epochs = argc > 2 ? std::stoll(argv[2]) : 5;
    options.out = argv[1];
    options.progress = false;
    const latent::TrainResult result = latent::train(config, data, options);
    std::printf("trained: test ELBO %.2f nats after %lld epochs\n", result.last_metrics["test_elbo"].get<double>(),
                static_cast<long long>(options.epochs));

    // Sample: z ~ N(0, I), decoded to the likelihood's mean.
    latent::LoadedCheckpoint ck = latent::checkpoint_load(result.checkpoint);
    latent::VaeImpl& vae = ck.vae("this example");  // the model as a VAE: encode, decode, latent_dim
    vae.eval();
    at::NoGradGuard no_grad;
    const at::Tensor z = at::randn({16, vae.latent_dim()});        // [16, d]
    const at::Tensor images = vae.likelihood_mean(vae.decode(z));  // [16, 1, 28, 28]
    latent::png_save_grid(std::string(argv[1]) + "/samples.png", images, 8);

    // Score: test images of every class under the model of T-shirts.
    latent::LoadedCheckpoint all = latent::checkpoint_load(result.checkpoint);
    all.info.data.classes.clear();  // every class of the test split, not only the training class
    const latent::Dataset test = latent::checkpoint_data(all, "", "test", 2000);
    const latent::EncodingStats stats = latent::encoding_stats(vae, test.x);
    const latent::AnomalyScores scores = latent::anomaly_scores(vae, test.x, stats, {});
    const at::Tensor& neg_elbo = scores.scores.at("neg_elbo");             // [N]
    const at::Tensor& adjusted = scores.scores.at("complexity_adjusted");  // [N]
    const auto& names = latent::fashion_mnist_classes();
    std::printf("AUROC against the T-shirts (1: every image of the class scores above every T-shirt):\n");
    std::printf("  %-12s %8s %20s\n", "", "-ELBO", "complexity-adjusted");
    double mean_elbo = 0, mean_adjusted = 0;
    for (int64_t c = 1; c < 10; ++c) {
      const at::Tensor keep = (test.y == 0) | (test.y == c);
      const at::Tensor labels = (test.y.masked_select(keep) == c).to(at::kInt).contiguous();  // 1: anomalous
      const std::vector<int> l(labels.data_ptr<int>(), labels.data_ptr<int>() + labels.numel());
      auto auroc_of = [&](const at::Tensor& s) {
        const at::Tensor k = s.masked_select(keep).contiguous();
        return latent::auroc(std::vector<double>(k.data_ptr<double>(), k.data_ptr<double>() + k.numel()), l);
      };
      const double e = auroc_of(neg_elbo), a = auroc_of(adjusted);
      mean_elbo += e / 9, mean_adjusted += a / 9;
      std::printf("  %-12s %8.3f %20.3f\n", names[c].c_str(), e, a);
    }
    std::printf("  %-12s %8.3f %20.3f\n", "mean", mean_elbo, mean_adjusted);
    return std::max(mean_elbo, mean_adjusted) > 0.5 ? 0 : 1;
  } catch (const latent::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
}
