// The VQ-VAE training loop: straight-through gradients for the encoder and decoder (Adam), EMA
// updates of the codebook after each step, k-means initialisation from the first batches, restarts
// of codes unused for a window of steps, and the per-position prior fitted at the end.
//
// Determinism and resume follow the VAE loop (trainer.cpp): epoch e shuffles with (seed, e), step s
// binarizes with (seed, s), restarts draw with (seed, s); the window's code usage lives in the
// checkpoint (quantizer buffers), so a resumed run continues as the uninterrupted one.
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include <chrono>
#include <cmath>
#include <cstdio>

#include "latent/cpu.h"
#include "latent/eval.h"
#include "latent/image.h"
#include "latent/progress.h"
#include "train/step.h"

namespace latent {
namespace {

constexpr int64_t kRestartEvery = 20;  // steps between checks for unused codes
constexpr int64_t kInitBatches = 8;    // batches whose encodings seed k-means
constexpr int kKmeansIterations = 20;
constexpr uint64_t kKmeansSeedSalt = 0x6b6d65616e73ull;
constexpr uint64_t kRestartSeedSalt = 0x7265737461ull;
constexpr uint64_t kPriorSeedSalt = 0x707269ull;
constexpr int kPriorEpochs = 10;

}  // namespace

nlohmann::json evaluate_vq(VqVaeImpl& model, const Dataset& d) {
  at::NoGradGuard no_grad;
  model.eval();
  double recon = 0, commitment = 0;
  at::Tensor counts = at::zeros({model.codebook_size()}, at::kDouble);
  for (int64_t i = 0; i < d.size(); i += 500) {
    at::Tensor x = d.x.narrow(0, i, std::min<int64_t>(500, d.size() - i));
    VqForward f = model.forward(x);
    recon += f.recon.sum().item<double>();
    commitment += f.commitment.sum().item<double>();
    counts.index_add_(0, f.indices.reshape({-1}), at::ones({f.indices.numel()}, at::kDouble));
  }
  const double n = static_cast<double>(std::max<int64_t>(1, d.size()));
  return {{"recon", recon / n},
          {"commitment", commitment / n},
          {"usage", (counts > 0).sum().item<double>() / static_cast<double>(model.codebook_size())},
          {"perplexity", perplexity(counts)}};
}

namespace {

void write_pictures(VqVaeImpl& model, const DataSplit& data, const TrainOptions& opt) {
  if (!is_image_shape(model.data_shape())) return;
  at::NoGradGuard no_grad;
  model.eval();
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(mix_seed(opt.seed, kSampleSeedSalt));
  png_save_grid(opt.out + "/samples.png", model.likelihood_mean(model.decode_indices(model.sample_indices(64, gen))), 8);
  const Dataset& src = data.test.size() > 0 ? data.test : data.train;
  at::Tensor x = src.x.narrow(0, 0, std::min<int64_t>(16, src.size()));
  at::Tensor recon = model.likelihood_mean(model.decode_indices(model.nearest(model.encode(x))));
  png_save_grid(opt.out + "/reconstructions.png", interleave_rows(x, recon, 8), 8);
  model.train();
}

// Code grids [N, h, w] of a split's examples (binarized with a fixed draw when training binarizes).
at::Tensor codes_of(VqVaeImpl& model, const Dataset& d, const TrainOptions& opt) {
  at::NoGradGuard no_grad;
  model.eval();
  at::Tensor x_all = opt.binarize ? binarize_fixed(d.x, kTestBinarizeSeed) : d.x;
  std::vector<at::Tensor> grids;
  for (int64_t i = 0; i < x_all.size(0); i += 1000)
    grids.push_back(model.nearest(model.encode(x_all.narrow(0, i, std::min<int64_t>(1000, x_all.size(0) - i)))));
  model.train();
  return at::cat(grids);
}

// The priors over code grids, fitted to the training split's codes; their NLL on the test codes
// (nats per grid) goes into the last epoch's metrics.
void fit_priors(VqVaeImpl& model, const DataSplit& data, const TrainOptions& opt, nlohmann::json& m) {
  at::Tensor train_codes = codes_of(model, data.train, opt);
  model.fit_prior(train_codes, true);
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(mix_seed(opt.seed, kPriorSeedSalt));
  if (opt.progress)
    std::fprintf(stderr, "prior: fitting the autoregressive prior to %lld code grids\n",
                 static_cast<long long>(train_codes.size(0)));
  m["prior_train_nll"] = model.train_prior(train_codes, kPriorEpochs, 1e-3, gen);
  if (data.test.size() == 0) return;
  at::Tensor test_codes = codes_of(model, data.test, opt);
  m["prior_test_nll_categorical"] = model.prior_nll(test_codes, false);
  m["prior_test_nll_autoregressive"] = model.prior_nll(test_codes, true);
  if (opt.progress)
    std::fprintf(stderr, "  prior NLL of the test codes: %.1f nats per image (per-position categorical %.1f)\n",
                 m["prior_test_nll_autoregressive"].get<double>(), m["prior_test_nll_categorical"].get<double>());
}

}  // namespace

TrainResult train_vq(CheckpointInfo info, VqVae model_ptr, DataSplit data, const TrainOptions& opt,
                     const std::string& checkpoint_path, const SafetensorsFile* resume) {
  VqVaeImpl& model = *model_ptr;
  model.train();
  Adam adam(named_parameters(model), opt.adam);
  if (resume) adam.load_state(*resume);
  const Dataset& train = data.train;
  const int64_t n = train.size(), K = model.codebook_size();
  const int64_t bs = std::min(opt.batch_size, n), batches = (n + bs - 1) / bs;
  const double commitment = info.model.commitment;
  Dataset test = data.test;
  if (opt.binarize && test.size() > 0) test.x = binarize_fixed(test.x, kTestBinarizeSeed);

  nlohmann::json& state = info.state;
  int64_t epoch = state.value("epoch", int64_t{0}), step_in_epoch = state.value("step_in_epoch", int64_t{0});
  int64_t global_step = state.value("global_step", int64_t{0}), seen = state.value("seen", int64_t{0});
  int64_t restarts = state.value("restarts", int64_t{0});
  double sum_loss = state.value("sum_loss", 0.0), sum_recon = state.value("sum_recon", 0.0);
  double sum_commit = state.value("sum_commitment", 0.0), wall = state.value("wall_s", 0.0);
  // Code usage of the current restart window and of the epoch; both travel in the checkpoint.
  std::vector<double> window(static_cast<size_t>(K), 0.0), epoch_counts(static_cast<size_t>(K), 0.0);
  if (state.contains("window_usage")) window = state["window_usage"].get<std::vector<double>>();
  if (state.contains("epoch_usage")) epoch_counts = state["epoch_usage"].get<std::vector<double>>();

  TrainResult result;
  result.checkpoint = checkpoint_path;
  if (!info.metrics.empty()) result.last_metrics = info.metrics.back();
  const std::string metrics_path = opt.out + "/metrics.jsonl";
  write_metrics_jsonl(metrics_path, info.metrics);

  auto save_state = [&](int64_t epochs_done) {
    state = {{"epoch", epochs_done},   {"step_in_epoch", step_in_epoch}, {"global_step", global_step},
             {"seen", seen},           {"restarts", restarts},           {"sum_loss", sum_loss},
             {"sum_recon", sum_recon}, {"sum_commitment", sum_commit},   {"wall_s", wall},
             {"window_usage", window}, {"epoch_usage", epoch_counts}};
    checkpoint_save(checkpoint_path, info, model, &adam);
  };
  auto running = [&]() {
    return "loss " + fmt("%.2f", sum_loss / std::max<int64_t>(1, seen)) + " recon " +
           fmt("%.2f", sum_recon / std::max<int64_t>(1, seen)) + " commit " +
           fmt("%.2f", sum_commit / std::max<int64_t>(1, seen));
  };

  for (; epoch < opt.epochs; ++epoch) {
    at::Generator shuffle_gen =
        at::make_generator<at::CPUGeneratorImpl>(mix_seed(opt.seed, kShuffleSeedSalt + static_cast<uint64_t>(epoch)));
    at::Tensor perm = at::randperm(n, shuffle_gen, at::TensorOptions().dtype(at::kLong));
    if (global_step == 0) {  // k-means on the encodings of the first batches
      at::NoGradGuard no_grad;
      at::Tensor x = train.x.index_select(0, perm.narrow(0, 0, std::min(n, kInitBatches * bs)));
      at::Tensor z_e = model.encode(x);
      at::Tensor v = z_e.permute({0, 2, 3, 1}).reshape({-1, model.code_dim()});
      at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(mix_seed(opt.seed, kKmeansSeedSalt));
      const double distortion = model.init_codebook_kmeans(v, kKmeansIterations, gen);
      if (opt.progress)
        std::fprintf(stderr, "codebook: k-means on %lld encodings, mean squared distance %.4f\n",
                     static_cast<long long>(v.size(0)), distortion);
    }
    ProgressBar bar("epoch " + std::to_string(epoch + 1) + "/" + std::to_string(opt.epochs), n, "samples", opt.progress);
    const auto t0 = std::chrono::steady_clock::now();
    int64_t seen_now = 0;
    for (int64_t b = step_in_epoch; b < batches; ++b) {
      const int64_t start = b * bs, len = std::min(bs, n - start);
      at::Tensor x = train.x.index_select(0, perm.narrow(0, start, len));
      at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(mix_seed(opt.seed, static_cast<uint64_t>(global_step)));
      if (opt.binarize) x = at::bernoulli(x, gen);
      adam.zero_grad();
      VqForward f = model.forward(x);
      at::Tensor recon = f.recon.mean(), commit = f.commitment.mean();
      at::Tensor loss = recon + commitment * commit;
      const double loss_v = loss.item<double>();
      if (!std::isfinite(loss_v)) throw TrainingDiverged(diverged_message(epoch, b, loss_v, checkpoint_path));
      loss.backward();
      adam.step();
      model.ema_update(f.z_e, f.indices);
      at::Tensor counts = at::bincount(f.indices.reshape({-1}), {}, K).to(at::kDouble).contiguous();
      const double* c = counts.data_ptr<double>();
      for (int64_t k = 0; k < K; ++k) {
        window[k] += c[k];
        epoch_counts[k] += c[k];
      }
      ++global_step;
      if (global_step % kRestartEvery == 0) {  // codes no vector chose in the window move to this batch's encodings
        at::Tensor used = at::tensor(window) > 0;
        at::Generator rgen = at::make_generator<at::CPUGeneratorImpl>(mix_seed(opt.seed, kRestartSeedSalt + global_step));
        restarts += model.restart_codes(used, f.z_e.detach().permute({0, 2, 3, 1}).reshape({-1, model.code_dim()}), rgen);
        std::fill(window.begin(), window.end(), 0.0);
      }
      sum_loss += loss_v * len;
      sum_recon += recon.item<double>() * len;
      sum_commit += commit.item<double>() * len;
      seen += len;
      seen_now += len;
      step_in_epoch = b + 1;
      bar.update(start + len, running());
      if (stop_requested()) {
        wall += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        save_state(epoch);
        result.interrupted = true;
        return result;
      }
    }
    const double train_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    wall += train_seconds;
    bar.finish(running());
    at::Tensor epoch_hist = at::tensor(epoch_counts);
    nlohmann::json m = {{"epoch", epoch + 1},
                        {"objective", "vq"},
                        {"cpu", cpu_info()},
                        {"train_loss", sum_loss / seen},
                        {"train_recon", sum_recon / seen},
                        {"train_commitment", sum_commit / seen},
                        {"codebook_usage", (epoch_hist > 0).sum().item<double>() / static_cast<double>(K)},
                        {"perplexity", perplexity(epoch_hist)},
                        {"restarts", restarts},
                        {"samples_per_s", seen_now / std::max(train_seconds, 1e-9)},
                        {"wall_s", wall}};
    if (test.size() > 0) {
      nlohmann::json ev = evaluate_vq(model, test);
      model.train();
      m["test_recon"] = ev["recon"];
      m["test_commitment"] = ev["commitment"];
      m["test_codebook_usage"] = ev["usage"];
      m["test_perplexity"] = ev["perplexity"];
      if (opt.progress)
        std::fprintf(stderr, "  test: recon %.2f  codebook usage %.0f%%  perplexity %.1f of %lld codes\n",
                     ev["recon"].get<double>(), 100 * ev["usage"].get<double>(), ev["perplexity"].get<double>(),
                     static_cast<long long>(K));
    }
    if (epoch + 1 == opt.epochs) fit_priors(model, data, opt, m);
    info.metrics.push_back(m);
    result.last_metrics = m;
    sum_loss = sum_recon = sum_commit = 0;
    seen = step_in_epoch = restarts = 0;
    std::fill(epoch_counts.begin(), epoch_counts.end(), 0.0);
    save_state(epoch + 1);
    write_metrics_jsonl(metrics_path, info.metrics);
  }
  write_pictures(model, data, opt);
  return result;
}

}  // namespace latent
