#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <optional>
#include <thread>

#include "cpu/thread_tuner.h"
#include "latent/atomic_file.h"
#include "latent/checkpoint.h"
#include "latent/cpu.h"
#include "latent/eval.h"
#include "latent/image.h"
#include "latent/objective.h"
#include "latent/progress.h"
#include "latent/train.h"
#include "train/step.h"

namespace latent {
namespace {

std::atomic<bool> g_stop{false};

constexpr uint64_t kEvalSeedSalt = 0xe7a1ull;

void zero_gradients(VaeImpl& model) {
  for (auto& p : model.parameters())
    if (p.grad().defined()) p.mutable_grad().zero_();
}

class AutogradStep : public TrainStep {
 public:
  AutogradStep(VaeImpl& model, double free_bits) : model_(model), free_bits_(free_bits) {}
  StepLoss run(const at::Tensor& x, const at::Tensor& eps, double beta) override {
    zero_gradients(model_);
    ElboTerms t = elbo_terms(model_, x, eps);
    at::Tensor recon = t.recon.mean(), kl = t.kl.mean();
    at::Tensor kl_term = free_bits_ > 0 ? kl_free_bits(t.q.mu, t.q.logvar, free_bits_) : kl;
    at::Tensor loss = recon + beta * kl_term;
    loss.backward();
    return {loss.item<double>(), recon.item<double>(), kl.item<double>()};
  }

 private:
  VaeImpl& model_;
  double free_bits_;
};

class IwaeStep : public TrainStep {
 public:
  explicit IwaeStep(VaeImpl& model) : model_(model) {}
  StepLoss run(const at::Tensor& x, const at::Tensor& eps, double /*beta*/) override {
    zero_gradients(model_);
    Posterior q = model_.encode(x);                          // [B, d]
    at::Tensor log_w = iwae_log_weights(model_, x, q, eps);  // [K, B]
    at::Tensor loss = -iwae_bound(log_w).mean();
    loss.backward();
    at::NoGradGuard no_grad;
    const at::Tensor z0 = reparameterize(q.mu, q.logvar, eps[0]);  // [B, d]
    const double recon = -model_.log_likelihood(model_.decode(z0), x).mean().item<double>();
    return {loss.item<double>(), recon, kl_standard_normal(q.mu, q.logvar).mean().item<double>()};
  }

 private:
  VaeImpl& model_;
};

// Everything a run needs, whether new or resumed.
struct Run {
  CheckpointInfo info;
  Vae model;
  std::unique_ptr<Adam> adam;
  DataSplit data;
  TrainOptions opt;
  std::string checkpoint_path;
};

void write_pictures(Run& run) {
  if (!is_image_shape(run.info.data_shape)) return;
  at::NoGradGuard no_grad;
  run.model->eval();
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(mix_seed(run.opt.seed, kSampleSeedSalt));
  at::Tensor z = at::randn({64, run.model->latent_dim()}, gen, at::kFloat);
  png_save_grid(run.opt.out + "/samples.png", run.model->likelihood_mean(run.model->decode(z)), 8);
  const Dataset& src = run.data.test.size() > 0 ? run.data.test : run.data.train;
  const int64_t n = std::min<int64_t>(16, src.size());
  at::Tensor x = src.x.narrow(0, 0, n);
  at::Tensor recon = run.model->likelihood_mean(run.model->decode(run.model->encode(x).mu));
  png_save_grid(run.opt.out + "/reconstructions.png", interleave_rows(x, recon, 8), 8);
}

TrainResult run_loop(Run& run) {
  TrainOptions& opt = run.opt;
  VaeImpl& model = *run.model;
  const Dataset& train = run.data.train;
  const int64_t n = train.size(), d = model.latent_dim();
  const int64_t bs = std::min(opt.batch_size, n);
  const int64_t batches = (n + bs - 1) / bs;
  const double beta = opt.beta >= 0 ? opt.beta : run.info.model.beta;

  std::unique_ptr<TrainStep> step;
  const Precision precision = parse_precision(opt.precision);
  if (opt.objective == "iwae")
    step = make_iwae_step(model);
  else if (opt.fused && opt.free_bits == 0)
    step = make_fused_mlp_step(model, precision);
  if (!step && precision != Precision::kFloat32)
    throw Error("--precision " + opt.precision +
                " applies to the fused step only: an mlp_vae with ReLU, the elbo objective and no free bits");
  if (!step) step = make_autograd_step(model, opt.free_bits);
  const bool iwae = opt.objective == "iwae";

  Dataset test = run.data.test;
  if (opt.binarize && test.size() > 0) test.x = binarize_fixed(test.x, kTestBinarizeSeed);

  nlohmann::json& state = run.info.state;
  int64_t epoch = state.value("epoch", int64_t{0});
  int64_t step_in_epoch = state.value("step_in_epoch", int64_t{0});
  int64_t global_step = state.value("global_step", int64_t{0});
  double sum_loss = state.value("sum_loss", 0.0), sum_recon = state.value("sum_recon", 0.0), sum_kl = state.value("sum_kl", 0.0);
  double wall = state.value("wall_s", 0.0);
  int64_t seen = state.value("seen", int64_t{0});
  TrainResult result;
  result.checkpoint = run.checkpoint_path;
  if (!run.info.metrics.empty()) result.last_metrics = run.info.metrics.back();
  const std::string metrics_path = opt.out + "/metrics.jsonl";
  write_metrics_jsonl(metrics_path, run.info.metrics);

  // epochs_done counts finished epochs; step_in_epoch > 0 marks a checkpoint taken mid-epoch.
  auto save_state = [&](int64_t epochs_done) {
    state = {{"epoch", epochs_done},
             {"step_in_epoch", step_in_epoch},
             {"global_step", global_step},
             {"sum_loss", sum_loss},
             {"sum_recon", sum_recon},
             {"sum_kl", sum_kl},
             {"seen", seen},
             {"wall_s", wall}};
    checkpoint_save(run.checkpoint_path, run.info, model, run.adam.get());
  };

  // With the thread count left to latent (--threads 0) and a step whose numbers do not depend on it,
  // the count follows the load (cpu/thread_tuner.h); evaluation runs on every core.
  std::optional<cpu::ThreadTuner> tuner;
  if (opt.threads == 0 && step->thread_invariant()) tuner.emplace(at::get_num_threads());

  auto running_means = [&]() {
    return "loss " + fmt("%.2f", sum_loss / seen) + " recon " + fmt("%.2f", sum_recon / seen) + " kl " +
           fmt("%.2f", sum_kl / seen);
  };

  for (; epoch < opt.epochs; ++epoch) {
    model.train();
    at::Generator shuffle_gen =
        at::make_generator<at::CPUGeneratorImpl>(mix_seed(opt.seed, kShuffleSeedSalt + static_cast<uint64_t>(epoch)));
    at::Tensor perm = at::randperm(n, shuffle_gen, at::TensorOptions().dtype(at::kLong));
    ProgressBar bar("epoch " + std::to_string(epoch + 1) + "/" + std::to_string(opt.epochs), n, "samples", opt.progress);
    const auto t0 = std::chrono::steady_clock::now();
    int64_t seen_now = 0;
    for (int64_t b = step_in_epoch; b < batches; ++b) {
      const int64_t start = b * bs, len = std::min(bs, n - start);
      if (tuner) tuner->begin();
      at::Tensor x = train.x.index_select(0, perm.narrow(0, start, len));
      at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(mix_seed(opt.seed, static_cast<uint64_t>(global_step)));
      if (opt.binarize) x = at::bernoulli(x, gen);
      at::Tensor eps = iwae ? at::randn({opt.iwae_k, len, d}, gen, x.options()) : at::randn({len, d}, gen, x.options());
      const double beta_t = kl_weight(beta, static_cast<double>(epoch) + static_cast<double>(b) / static_cast<double>(batches),
                                      opt.kl_warmup, opt.kl_cycle, opt.kl_cycle_ratio);
      StepLoss l = step->run(x, eps, beta_t);
      if (!std::isfinite(l.loss)) {
        throw TrainingDiverged(diverged_message(epoch, b, l.loss, run.checkpoint_path));
      }
      run.adam->step();
      if (tuner) tuner->end(static_cast<double>(len));
      sum_loss += l.loss * len;
      sum_recon += l.recon * len;
      sum_kl += l.kl * len;
      seen += len;
      seen_now += len;
      step_in_epoch = b + 1;
      ++global_step;
      bar.update(start + len, running_means());
      if (g_stop.load()) {
        wall += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        save_state(epoch);
        result.interrupted = true;
        return result;
      }
    }
    const double train_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const int threads_used = tuner ? tuner->threads() : at::get_num_threads();
    if (tuner) at::set_num_threads(tuner->max_threads());
    wall += train_seconds;
    bar.finish(running_means());
    EvalOptions eo;
    eo.seed = mix_seed(opt.seed, kEvalSeedSalt + static_cast<uint64_t>(epoch));
    EvalResult ev = evaluate(model, test, eo);
    nlohmann::json m = {{"epoch", epoch + 1},
                        {"objective", opt.objective},
                        {"precision", opt.precision},
                        {"cpu", cpu_info()},
                        {"beta", beta},
                        {"train_loss", sum_loss / seen},
                        {"train_elbo", -(sum_recon + sum_kl) / seen},
                        {"train_recon", sum_recon / seen},
                        {"train_kl", sum_kl / seen},
                        {"samples_per_s", seen_now / std::max(train_seconds, 1e-9)},
                        {"threads", threads_used},
                        {"wall_s", wall}};
    if (ev.examples > 0) {
      m["test_elbo"] = ev.elbo;
      m["test_recon"] = ev.recon;
      m["test_kl"] = ev.kl;
      m["active_units"] = ev.active_units;
      if (opt.progress)
        std::fprintf(stderr, "  test: elbo %.2f  recon %.2f  kl %.2f  active units %lld/%lld\n", ev.elbo, ev.recon, ev.kl,
                     static_cast<long long>(ev.active_units), static_cast<long long>(d));
    }
    run.info.metrics.push_back(m);
    result.last_metrics = m;
    sum_loss = sum_recon = sum_kl = 0;
    seen = 0;
    step_in_epoch = 0;
    save_state(epoch + 1);
    write_metrics_jsonl(metrics_path, run.info.metrics);
  }
  write_pictures(run);
  return result;
}

void check_data_fits(const Run& run) {
  const Dataset& t = run.data.train;
  if (t.size() == 0) throw Error("the training data holds no examples");
  if (run.info.model.likelihood == Likelihood::kBernoulli) {
    const double lo = t.x.min().item<double>(), hi = t.x.max().item<double>();
    if (lo < 0 || hi > 1)
      throw Error("likelihood bernoulli needs data in [0, 1], the data spans [" + fmt("%g", lo) + ", " + fmt("%g", hi) +
                  "]; use \"likelihood\": \"gaussian\" (with --standardize for tables)");
  }
  if (run.opt.batch_size < 1) throw Error("batch size must be >= 1");
  if (run.opt.epochs < 0) throw Error("epochs must be >= 0");
  if (!(run.opt.adam.lr > 0)) throw Error("learning rate must be > 0");
  const TrainOptions& o = run.opt;
  if (o.objective != "elbo" && o.objective != "iwae") throw Error("objective must be elbo or iwae, got '" + o.objective + "'");
  if (o.iwae_k < 1) throw Error("--k must be >= 1");
  if (o.objective == "iwae" && (o.beta >= 0 || o.kl_warmup > 0 || o.kl_cycle > 0 || o.free_bits > 0))
    throw Error(
        "--beta, --kl-warmup, --kl-cycle and --free-bits shape the ELBO's KL term; they do not apply to --objective iwae");
  if (o.objective == "iwae" && run.info.model.beta != 1.0)
    throw Error("the model config's beta weights the ELBO's KL term; it does not apply to --objective iwae");
  if (o.kl_warmup > 0 && o.kl_cycle > 0) throw Error("use either --kl-warmup or --kl-cycle, not both");
  if (!(o.kl_cycle_ratio > 0 && o.kl_cycle_ratio <= 1)) throw Error("--kl-cycle-ratio must be in (0, 1]");
  if (o.free_bits < 0) throw Error("--free-bits must be >= 0");
  if (run.info.model.type == "vq_vae" &&
      (o.objective != "elbo" || o.beta >= 0 || o.kl_warmup > 0 || o.kl_cycle > 0 || o.free_bits > 0))
    throw Error(
        "--objective, --beta, --kl-warmup, --kl-cycle and --free-bits apply to VAEs; a vq_vae trains on "
        "reconstruction plus commitment (set \"commitment\" in the model config)");
}

}  // namespace

bool is_image_shape(const std::vector<int64_t>& s) { return s.size() == 3 && (s[0] == 1 || s[0] == 3); }

std::string fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), f, v);
  return buf;
}

void write_metrics_jsonl(const std::string& path, const nlohmann::json& metrics) {
  std::string text;
  for (const auto& m : metrics) text += m.dump() + "\n";
  atomic_write(path, text);
}

bool stop_requested() { return g_stop.load(); }

std::string diverged_message(int64_t epoch, int64_t step, double loss, const std::string& checkpoint) {
  return "training diverged at epoch " + std::to_string(epoch + 1) + ", step " + std::to_string(step + 1) + ": the loss is " +
         (std::isnan(loss) ? "NaN" : "infinite") + "; the last good checkpoint is " +
         (std::filesystem::exists(checkpoint) ? checkpoint : std::string("(none yet)")) + "; try a lower --lr";
}

std::unique_ptr<TrainStep> make_autograd_step(VaeImpl& model, double free_bits) {
  return std::make_unique<AutogradStep>(model, free_bits);
}

std::unique_ptr<TrainStep> make_iwae_step(VaeImpl& model) { return std::make_unique<IwaeStep>(model); }

uint64_t mix_seed(uint64_t seed, uint64_t step) {
  auto splitmix = [](uint64_t x) {
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
  };
  return splitmix(seed ^ splitmix(step));
}

void set_num_threads(int threads) {
  at::set_num_threads(threads > 0 ? threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency())));
}

void request_stop() { g_stop.store(true); }
void clear_stop_request() { g_stop.store(false); }

nlohmann::json TrainOptions::to_json() const {
  return {{"epochs", epochs},       {"batch_size", batch_size}, {"lr", adam.lr},
          {"beta1", adam.beta1},    {"beta2", adam.beta2},      {"adam_eps", adam.eps},
          {"seed", seed},           {"threads", threads},       {"binarize", binarize},
          {"beta", beta},           {"kl_warmup", kl_warmup},   {"limit", limit},
          {"fused", fused},         {"kl_cycle", kl_cycle},     {"kl_cycle_ratio", kl_cycle_ratio},
          {"free_bits", free_bits}, {"objective", objective},   {"iwae_k", iwae_k},
          {"precision", precision}};
}

TrainOptions TrainOptions::from_json(const nlohmann::json& j) {
  TrainOptions o;
  o.epochs = j.value("epochs", o.epochs);
  o.batch_size = j.value("batch_size", o.batch_size);
  o.adam.lr = j.value("lr", o.adam.lr);
  o.adam.beta1 = j.value("beta1", o.adam.beta1);
  o.adam.beta2 = j.value("beta2", o.adam.beta2);
  o.adam.eps = j.value("adam_eps", o.adam.eps);
  o.seed = j.value("seed", o.seed);
  o.threads = j.value("threads", o.threads);
  o.binarize = j.value("binarize", o.binarize);
  o.beta = j.value("beta", o.beta);
  o.kl_warmup = j.value("kl_warmup", o.kl_warmup);
  o.limit = j.value("limit", o.limit);
  o.fused = j.value("fused", o.fused);
  o.kl_cycle = j.value("kl_cycle", o.kl_cycle);
  o.kl_cycle_ratio = j.value("kl_cycle_ratio", o.kl_cycle_ratio);
  o.free_bits = j.value("free_bits", o.free_bits);
  o.objective = j.value("objective", o.objective);
  o.iwae_k = j.value("iwae_k", o.iwae_k);
  o.precision = j.value("precision", o.precision);
  return o;
}

TrainResult train(const ModelConfig& model, const DataSpec& data, const TrainOptions& options) {
  if (options.out.empty()) throw Error("no output folder given (--out)");
  set_num_threads(options.threads);
  Run run;
  run.opt = options;
  run.data = load_data(data);
  if (options.limit > 0) run.data.train = run.data.train.head(options.limit);
  run.info.model = model;
  run.info.data = data;
  run.info.data_shape = run.data.train.example_shape();
  run.info.classes = run.data.train.classes;
  run.info.train = options.to_json();
  run.info.data_mean = run.data.mean;
  run.info.data_std = run.data.std;
  check_data_fits(run);
  at::manual_seed(options.seed);  // parameter initialization
  run.checkpoint_path = options.out + "/model.safetensors";
  if (model.type == "vq_vae")
    return train_vq(run.info, make_vq_vae(model, run.info.data_shape), run.data, run.opt, run.checkpoint_path, nullptr);
  run.model = make_model(model, run.info.data_shape);
  run.adam = std::make_unique<Adam>(named_parameters(*run.model), options.adam);
  return run_loop(run);
}

TrainResult train_resume(const std::string& checkpoint, int64_t epochs, const std::string& out, bool progress) {
  LoadedCheckpoint ck = checkpoint_load(checkpoint);
  Run run;
  run.info = ck.info;
  run.model = ck.model;
  run.opt = TrainOptions::from_json(ck.info.train);
  if (epochs > 0) run.opt.epochs = epochs;
  run.opt.out = out.empty() ? std::filesystem::path(checkpoint).parent_path().string() : out;
  if (run.opt.out.empty()) run.opt.out = ".";
  run.opt.progress = progress;
  run.info.train = run.opt.to_json();
  set_num_threads(run.opt.threads);
  run.data = load_data(run.info.data);
  if (run.opt.limit > 0) run.data.train = run.data.train.head(run.opt.limit);
  if (run.data.train.example_shape() != run.info.data_shape)
    throw Error(checkpoint + ": the data's example shape no longer matches the checkpoint's");
  check_data_fits(run);
  run.checkpoint_path = run.opt.out + "/model.safetensors";
  if (ck.vq) return train_vq(run.info, ck.vq, run.data, run.opt, run.checkpoint_path, &ck.file);
  run.adam = std::make_unique<Adam>(named_parameters(*run.model), run.opt.adam);
  run.adam->load_state(ck.file);
  return run_loop(run);
}

}  // namespace latent
