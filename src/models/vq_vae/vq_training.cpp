// The VQ-VAE's part of the training loop: straight-through gradients for the encoder and decoder,
// EMA updates of the codebook after each step, k-means initialisation from the first batches,
// restarts of codes unused for a window of steps, and the priors fitted after the last epoch.
//
// Determinism and resume follow the loop (train/trainer.cpp): restarts draw with (seed, step); the
// window's code usage travels in the checkpoint's state, so a resumed run continues as the
// uninterrupted one.
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include <cstdio>

#include "latent/error.h"
#include "latent/train.h"
#include "models/training_step.h"
#include "models/vq_vae/vq_vae.h"

namespace latent {
namespace {

constexpr int64_t kRestartEvery = 20;  // steps between checks for unused codes
constexpr int64_t kInitBatches = 8;    // batches whose encodings seed k-means
constexpr int kKmeansIterations = 20;
constexpr uint64_t kKmeansSeedSalt = 0x6b6d65616e73ull;
constexpr uint64_t kRestartSeedSalt = 0x7265737461ull;
constexpr uint64_t kPriorSeedSalt = 0x707269ull;
constexpr int kPriorEpochs = 10;

// Code grids [N, h, w] of examples x [N, ...].
at::Tensor codes_of(VqVaeImpl& model, const at::Tensor& x) {
  at::NoGradGuard no_grad;
  model.eval();
  std::vector<at::Tensor> grids;
  for (int64_t i = 0; i < x.size(0); i += 1000)
    grids.push_back(model.nearest(model.encode(x.narrow(0, i, std::min<int64_t>(1000, x.size(0) - i)))));
  model.train();
  return at::cat(grids);
}

class VqTraining : public TrainingStep {
 public:
  VqTraining(VqVaeImpl& model, const TrainOptions& o)
      : model_(model),
        options_(o),
        window_(static_cast<size_t>(model.codebook_size()), 0.0),
        epoch_counts_(static_cast<size_t>(model.codebook_size()), 0.0) {}

  int64_t first_examples() const override { return kInitBatches * options_.batch_size; }

  void begin(const at::Tensor& first, bool progress) override {  // k-means on the encodings of the first batches
    at::NoGradGuard no_grad;
    at::Tensor v = model_.encode(first).permute({0, 2, 3, 1}).reshape({-1, model_.code_dim()});
    at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(mix_seed(options_.seed, kKmeansSeedSalt));
    const double distortion = model_.init_codebook_kmeans(v, kKmeansIterations, gen);
    if (progress)
      std::fprintf(stderr, "codebook: k-means on %lld encodings, mean squared distance %.4f\n", static_cast<long long>(v.size(0)),
                   distortion);
  }

  void distribute(Communicator* comm) override { comm_ = comm; }

  BatchLoss run(const at::Tensor& x, const at::Tensor& /*index*/, const BatchRows& rows, at::Generator& /*gen*/,
                double /*kl_weight*/) override {
    rows_ = rows;
    for (auto& p : model_.parameters())
      if (p.grad().defined()) p.mutable_grad().zero_();
    last_ = model_.forward(x);
    at::Tensor recon = last_.recon.mean(), commit = last_.commitment.mean();
    at::Tensor loss = recon + model_.config().commitment * commit;
    const double loss_v = loss.item<double>();
    if (!std::isfinite(loss_v)) return {loss_v, {}};  // the loop stops before the update
    loss.backward();
    return {loss_v, {{"recon", recon.item<double>()}, {"commitment", commit.item<double>()}}};
  }

  void after_update(int64_t steps_done) override {
    const int64_t K = model_.codebook_size();
    if (comm_) {  // the codebook follows the whole batch, as in one process
      last_.z_e = comm_->gather_batch(last_.z_e.detach(), rows_);
      last_.indices = comm_->gather_batch(last_.indices, rows_);
    }
    model_.ema_update(last_.z_e, last_.indices);
    at::Tensor counts = at::bincount(last_.indices.reshape({-1}), {}, K).to(at::kDouble).contiguous();
    const double* c = counts.data_ptr<double>();
    for (int64_t k = 0; k < K; ++k) {
      window_[k] += c[k];
      epoch_counts_[k] += c[k];
    }
    if (steps_done % kRestartEvery == 0) {  // codes no vector chose in the window move to this batch's encodings
      at::Tensor used = at::tensor(window_) > 0;
      at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(mix_seed(options_.seed, kRestartSeedSalt + steps_done));
      restarts_ += model_.restart_codes(used, last_.z_e.detach().permute({0, 2, 3, 1}).reshape({-1, model_.code_dim()}), gen);
      std::fill(window_.begin(), window_.end(), 0.0);
    }
    last_ = VqForward{};
  }

  void end_epoch(nlohmann::json& m, const Dataset& test, uint64_t /*eval_seed*/, bool last, const DataSplit& data,
                 bool progress) override {
    const int64_t K = model_.codebook_size();
    at::Tensor hist = at::tensor(epoch_counts_);
    m["objective"] = "vq";
    m["codebook_usage"] = (hist > 0).sum().item<double>() / static_cast<double>(K);
    m["perplexity"] = perplexity(hist);
    m["restarts"] = restarts_;
    if (test.size() > 0) {
      nlohmann::json ev = model_.evaluate(test, 0);
      model_.train();
      m["test_recon"] = ev["recon"];
      m["test_commitment"] = ev["commitment"];
      m["test_codebook_usage"] = ev["usage"];
      m["test_perplexity"] = ev["perplexity"];
      if (progress)
        std::fprintf(stderr, "  test: recon %.2f  codebook usage %.0f%%  perplexity %.1f of %lld codes\n",
                     ev["recon"].get<double>(), 100 * ev["usage"].get<double>(), ev["perplexity"].get<double>(),
                     static_cast<long long>(K));
    }
    if (last) fit_priors(data, test, m, progress);
    restarts_ = 0;
    std::fill(epoch_counts_.begin(), epoch_counts_.end(), 0.0);
  }

  nlohmann::json state() const override {
    return {{"restarts", restarts_}, {"window_usage", window_}, {"epoch_usage", epoch_counts_}};
  }
  void restore(const nlohmann::json& s) override {
    restarts_ = s.value("restarts", int64_t{0});
    if (s.contains("window_usage")) window_ = s["window_usage"].get<std::vector<double>>();
    if (s.contains("epoch_usage")) epoch_counts_ = s["epoch_usage"].get<std::vector<double>>();
  }

 private:
  // The priors over code grids, fitted to the training split's codes (binarized with the fixed draw
  // when training binarizes); their NLL on the test codes (nats per grid) goes into the record.
  void fit_priors(const DataSplit& data, const Dataset& test, nlohmann::json& m, bool progress) {
    at::Tensor train_x = options_.binarize ? binarize_fixed(data.train.x, kTestBinarizeSeed) : data.train.x;
    at::Tensor train_codes = codes_of(model_, train_x);
    model_.fit_prior(train_codes, true);
    at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(mix_seed(options_.seed, kPriorSeedSalt));
    if (progress)
      std::fprintf(stderr, "prior: fitting the autoregressive prior to %lld code grids\n",
                   static_cast<long long>(train_codes.size(0)));
    m["prior_train_nll"] = model_.train_prior(train_codes, kPriorEpochs, 1e-3, gen);
    if (test.size() == 0) return;
    at::Tensor test_codes = codes_of(model_, test.x);
    m["prior_test_nll_categorical"] = model_.prior_nll(test_codes, false);
    m["prior_test_nll_autoregressive"] = model_.prior_nll(test_codes, true);
    if (progress)
      std::fprintf(stderr, "  prior NLL of the test codes: %.1f nats per image (per-position categorical %.1f)\n",
                   m["prior_test_nll_autoregressive"].get<double>(), m["prior_test_nll_categorical"].get<double>());
  }

  VqVaeImpl& model_;
  TrainOptions options_;
  VqForward last_;  // the batch between run() and after_update()
  BatchRows rows_;
  Communicator* comm_ = nullptr;
  std::vector<double> window_, epoch_counts_;  // code usage of the current restart window and of the epoch
  int64_t restarts_ = 0;
};

}  // namespace

nlohmann::json VqVaeImpl::evaluate(const Dataset& d, uint64_t /*seed*/, int64_t batch_size) {
  at::NoGradGuard no_grad;
  eval();
  double recon = 0, commitment = 0;
  at::Tensor counts = at::zeros({codebook_size()}, at::kDouble);
  for (int64_t i = 0; i < d.size(); i += batch_size) {
    at::Tensor x = d.x.narrow(0, i, std::min<int64_t>(batch_size, d.size() - i));
    VqForward f = forward(x);
    recon += f.recon.sum().item<double>();
    commitment += f.commitment.sum().item<double>();
    counts.index_add_(0, f.indices.reshape({-1}), at::ones({f.indices.numel()}, at::kDouble));
  }
  const double n = static_cast<double>(std::max<int64_t>(1, d.size()));
  return {{"examples", d.size()},
          {"recon", recon / n},
          {"commitment", commitment / n},
          {"usage", (counts > 0).sum().item<double>() / static_cast<double>(codebook_size())},
          {"perplexity", perplexity(counts)}};
}

std::unique_ptr<TrainingStep> VqVaeImpl::training_step(const TrainOptions& o) {
  if (o.objective != "elbo" || o.beta >= 0 || o.kl_warmup > 0 || o.kl_cycle > 0 || o.free_bits > 0)
    throw Error(
        "--objective, --beta, --kl-warmup, --kl-cycle and --free-bits apply to VAEs; a vq_vae trains on "
        "reconstruction plus commitment (set \"commitment\" in the model config)");
  if (o.precision != "fp32") throw Error("--precision " + o.precision + " applies to the fused step of an mlp_vae");
  return std::make_unique<VqTraining>(*this, o);
}

}  // namespace latent
