#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <optional>
#include <thread>

#include "cpu/thread_tuner.h"
#include "latent/atomic_file.h"
#include "latent/checkpoint.h"
#include "latent/cpu.h"
#include "latent/image.h"
#include "latent/json.h"
#include "latent/objective.h"
#include "latent/progress.h"
#include "latent/train.h"
#include "models/registry.h"
#include "models/training_step.h"

namespace latent {
namespace {

std::atomic<bool> g_stop{false};

constexpr uint64_t kEvalSeedSalt = 0xe7a1ull;
constexpr uint64_t kShuffleSeedSalt = 0x50000000ull;  // epoch e shuffles with mix_seed(seed, salt + e)
constexpr uint64_t kSampleSeedSalt = 0x5a3b1eull;     // samples.png's draws

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

std::string diverged_message(int64_t epoch, int64_t step, double loss, const std::string& checkpoint) {
  return "training diverged at epoch " + std::to_string(epoch + 1) + ", step " + std::to_string(step + 1) + ": the loss is " +
         (std::isnan(loss) ? "NaN" : "infinite") + "; the last good checkpoint is " +
         (std::filesystem::exists(checkpoint) ? checkpoint : std::string("(none yet)")) + "; try a lower --lr";
}

// Everything a run needs, whether new or resumed.
struct Run {
  CheckpointInfo info;
  Model model;
  std::unique_ptr<Adam> adam;
  DataSplit data;
  TrainOptions opt;
  std::string checkpoint_path;
  std::unique_ptr<Communicator> comm;  // a job of several ranks; null in one process
};

// A fingerprint of the training examples' bytes (FNV-1a over 64-bit words): ranks must hold the same data.
std::string data_fingerprint(const at::Tensor& x) {
  const at::Tensor c = x.contiguous();
  const auto* p = static_cast<const unsigned char*>(c.data_ptr());
  const size_t bytes = static_cast<size_t>(c.numel()) * c.element_size();
  uint64_t h = 0xcbf29ce484222325ull;
  size_t i = 0;
  for (; i + 8 <= bytes; i += 8) {
    uint64_t w;
    std::memcpy(&w, p + i, 8);
    h = (h ^ w) * 0x100000001b3ull;
  }
  for (; i < bytes; ++i) h = (h ^ p[i]) * 0x100000001b3ull;
  char buf[24];
  std::snprintf(buf, sizeof(buf), "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

// Joins the job when there is one: every rank must train the same model on the same data with the
// same options from the same point; rank 0's parameters are then everyone's.
void join_job(Run& run) {
  if (!run.opt.ranks.distributed()) return;
  nlohmann::json options = run.opt.to_json();
  for (const char* local : {"threads"}) options.erase(local);
  const nlohmann::json agreement = {{"model", run.info.model.to_json()},
                                    {"data",
                                     {{"shape", run.info.data_shape},
                                      {"train_examples", run.data.train.size()},
                                      {"test_examples", run.data.test.size()},
                                      {"train_bytes", data_fingerprint(run.data.train.x)}}},
                                    {"options", options},
                                    {"resumed_at_step", run.info.state.value("global_step", int64_t{0})}};
  run.comm = Communicator::join(run.opt.ranks, run.opt.dist, agreement);
  at::NoGradGuard no_grad;
  for (auto& p : run.model->parameters()) run.comm->broadcast(p.detach());
  for (auto& b : run.model->buffers()) run.comm->broadcast(b.detach());
}

// This process's thread count: every core, shared by the ranks on this machine, unless given.
int threads_for(const TrainOptions& o) {
  if (o.threads > 0 || !o.ranks.distributed()) return o.threads;
  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  return std::max(1, cores / std::max(1, o.ranks.local_world));
}

void write_pictures(Run& run) {
  if (!is_image_shape(run.info.data_shape)) return;  // samples and reconstructions as PNG grids
  at::NoGradGuard no_grad;
  run.model->eval();
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(mix_seed(run.opt.seed, kSampleSeedSalt));
  png_save_grid(run.opt.out + "/samples.png", run.model->sample(64, gen), 8);
  const Dataset& src = run.data.test.size() > 0 ? run.data.test : run.data.train;
  at::Tensor x = src.x.narrow(0, 0, std::min<int64_t>(16, src.size()));
  png_save_grid(run.opt.out + "/reconstructions.png", interleave_rows(x, run.model->reconstruct(x), 8), 8);
}

// The running sums of the loss and of the family's terms ("sum_<name>" in the checkpoint's state).
struct RunningSums {
  double loss = 0;
  std::vector<std::pair<std::string, double>> terms;  // in the family's order, named by its first batch
  int64_t seen = 0;
  nlohmann::json restored = nlohmann::json::object();  // a resumed run's sums, read as the terms are named

  void add(const BatchLoss& l, int64_t n) {
    if (terms.empty())
      for (const auto& t : l.terms) terms.emplace_back(t.first, restored.value("sum_" + t.first, 0.0));
    loss += l.loss * static_cast<double>(n);
    for (size_t i = 0; i < l.terms.size() && i < terms.size(); ++i) terms[i].second += l.terms[i].second * static_cast<double>(n);
    seen += n;
  }
  std::string means() const {
    const double n = static_cast<double>(std::max<int64_t>(1, seen));
    std::string s = "loss " + fmt("%.2f", loss / n);
    for (const auto& [name, sum] : terms) s += " " + name + " " + fmt("%.2f", sum / n);
    return s;
  }
  void save(nlohmann::json& state) const {
    state["sum_loss"] = loss;
    state["seen"] = seen;
    for (const auto& [name, sum] : terms) state["sum_" + name] = sum;
  }
  void restore(const nlohmann::json& state) {
    loss = state.value("sum_loss", 0.0);
    seen = state.value("seen", int64_t{0});
    restored = state;
  }
};

// The batch's loss and terms from every rank's share, and whether any rank was asked to stop: they
// ride with the last gradient bucket (one collective per step; float32 sums, ~1e-7 relative).
bool finish_step(GradientSync& sync, BatchLoss& l, double share, bool stop) {
  if (l.terms.size() + 2 > static_cast<size_t>(GradientSync::kExtra)) throw Error("a training step reported too many loss terms");
  std::vector<double> v(GradientSync::kExtra, 0.0);  // a fixed length: a rank whose loss is not finite may name no terms
  v[0] = l.loss * share;
  v[1] = stop ? 1 : 0;
  for (size_t i = 0; i < l.terms.size(); ++i) v[2 + i] = l.terms[i].second * share;
  v = sync.finish(v);
  l.loss = v[0];
  for (size_t i = 0; i < l.terms.size(); ++i) l.terms[i].second = v[2 + i];
  return v[1] > 0;
}

TrainResult run_loop(Run& run) {
  TrainOptions& opt = run.opt;
  ModelImpl& model = *run.model;
  const Dataset& train = run.data.train;
  const int64_t n = train.size();
  const int64_t bs = std::min(opt.batch_size, n);
  const int64_t batches = (n + bs - 1) / bs;
  const double beta = opt.beta >= 0 ? opt.beta : run.info.model.beta;
  Communicator* comm = run.comm.get();
  const int rank = comm ? comm->rank() : 0, world = comm ? comm->world() : 1;
  const bool writer = rank == 0;  // rank 0 alone writes checkpoints, metrics and pictures
  if (!writer) opt.progress = false;
  // The gradient buckets come first: the steps write into the .grad() views they set.
  std::unique_ptr<GradientSync> sync;
  if (comm) {
    std::vector<at::Tensor> params;
    for (auto& [name, p] : named_parameters(model)) params.push_back(p);
    sync = std::make_unique<GradientSync>(*comm, params);
    comm->set_loss_hint("the last checkpoint is " + run.checkpoint_path + "; run the same command again to resume from it");
  }
  std::unique_ptr<TrainingStep> step = model.training_step(opt);
  step->set_training_data(train);
  if (comm) step->distribute(comm);

  Dataset test = run.data.test;
  if (opt.binarize && test.size() > 0) test.x = binarize_fixed(test.x, kTestBinarizeSeed);

  nlohmann::json& state = run.info.state;
  int64_t epoch = state.value("epoch", int64_t{0});
  int64_t step_in_epoch = state.value("step_in_epoch", int64_t{0});
  int64_t global_step = state.value("global_step", int64_t{0});
  double wall = state.value("wall_s", 0.0);
  RunningSums sums;
  sums.restore(state);
  step->restore(state);
  TrainResult result;
  result.checkpoint = run.checkpoint_path;
  if (!run.info.metrics.empty()) result.last_metrics = run.info.metrics.back();
  const std::string metrics_path = opt.out + "/metrics.jsonl";
  if (writer) write_metrics_jsonl(metrics_path, run.info.metrics);

  // epochs_done counts finished epochs; step_in_epoch > 0 marks a checkpoint taken mid-epoch.
  auto save_state = [&](int64_t epochs_done) {
    if (!writer) return;
    state = step->state();
    state["epoch"] = epochs_done;
    state["step_in_epoch"] = step_in_epoch;
    state["global_step"] = global_step;
    state["wall_s"] = wall;
    sums.save(state);
    SafetensorsFile optimizer;
    run.adam->save_state(optimizer);
    checkpoint_save(run.checkpoint_path, run.info, model, &optimizer);
  };

  // With the thread count left to latent (--threads 0) and a step whose numbers do not depend on it,
  // the count follows the load (cpu/thread_tuner.h); evaluation runs on every core.
  std::optional<cpu::ThreadTuner> tuner;
  bool observer_stop = false;
  if (opt.threads == 0 && step->thread_invariant()) tuner.emplace(at::get_num_threads());

  for (; epoch < opt.epochs; ++epoch) {
    model.train();
    at::Generator shuffle_gen =
        at::make_generator<at::CPUGeneratorImpl>(mix_seed(opt.seed, kShuffleSeedSalt + static_cast<uint64_t>(epoch)));
    at::Tensor perm = at::randperm(n, shuffle_gen, at::TensorOptions().dtype(at::kLong));
    if (global_step == 0 && step->first_examples() > 0) {
      step->begin(train.x.index_select(0, perm.narrow(0, 0, std::min(n, step->first_examples()))), opt.progress);
      if (comm) {
        at::NoGradGuard no_grad;
        for (auto& b : model.buffers()) comm->broadcast(b.detach());  // the same codebook everywhere, bit for bit
      }
    }
    ProgressBar bar("epoch " + std::to_string(epoch + 1) + "/" + std::to_string(opt.epochs), n, "samples", opt.progress);
    const auto t0 = std::chrono::steady_clock::now();
    int64_t seen_now = 0;
    const double comm_at_start = comm ? comm->comm_seconds() : 0;
    for (int64_t b = step_in_epoch; b < batches; ++b) {
      const int64_t start = b * bs, len = std::min(bs, n - start);
      if (len < world) {  // too few rows left for every rank: dropped, as DistributedSampler(drop_last) would
        step_in_epoch = b + 1;
        continue;
      }
      if (tuner) tuner->begin();
      const BatchRows rows{rank, world, len};
      const at::Tensor index = perm.narrow(0, start, len);
      at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(mix_seed(opt.seed, static_cast<uint64_t>(global_step)));
      // Binarization draws for the whole batch, so every rank's rows get one process's draws.
      const at::Tensor mine = rows.take(index);
      at::Tensor x = opt.binarize ? rows.take(at::bernoulli(train.x.index_select(0, index), gen)).contiguous()
                                  : train.x.index_select(0, mine);
      const double beta_t = kl_weight(beta, static_cast<double>(epoch) + static_cast<double>(b) / static_cast<double>(batches),
                                      opt.kl_warmup, opt.kl_cycle, opt.kl_cycle_ratio);
      const double share = static_cast<double>(rows.count()) / static_cast<double>(len);
      if (sync) sync->begin(share);
      BatchLoss l = step->run(x, mine, rows, gen, beta_t);
      bool stop = g_stop.load() || observer_stop;
      if (sync) stop = finish_step(*sync, l, share, stop);
      if (!std::isfinite(l.loss)) throw TrainingDiverged(diverged_message(epoch, b, l.loss, run.checkpoint_path));
      run.adam->step();
      ++global_step;
      step->after_update(global_step);
      if (tuner) tuner->end(static_cast<double>(len));
      sums.add(l, len);
      seen_now += len;
      step_in_epoch = b + 1;
      bar.update(start + len, sums.means());
      if (opt.observer && writer) {
        const StepReport report{epoch, b + 1, batches, global_step, l.loss, l.terms};
        // Alone, the loop stops at once; in a job, with the next step's collective (every rank stops there).
        observer_stop = !opt.observer->on_step(report, model);
        stop = stop || (observer_stop && !comm);
      }
      if (stop) {
        wall += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        save_state(epoch);
        if (comm) comm->close();
        result.interrupted = true;
        return result;
      }
    }
    const double train_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const int threads_used = tuner ? tuner->threads() : at::get_num_threads();
    if (tuner) at::set_num_threads(tuner->max_threads());
    wall += train_seconds;
    bar.finish(sums.means());
    const double seen = static_cast<double>(std::max<int64_t>(1, sums.seen));
    nlohmann::json m = {{"epoch", epoch + 1},
                        {"cpu", cpu_info()},
                        {"train_loss", sums.loss / seen},
                        {"samples_per_s", seen_now / std::max(train_seconds, 1e-9)},
                        {"threads", threads_used},
                        {"wall_s", wall}};
    if (comm) {
      m["world_size"] = world;
      m["comm_s"] = comm->comm_seconds() - comm_at_start;  // rank 0's wait on communication this epoch
      m["allreduce_bytes_per_step"] = sync->bytes_per_step();
    }
    for (const auto& [name, sum] : sums.terms) m["train_" + name] = sum / seen;
    // Held-out metrics on rank 0; the other ranks close their epoch and wait at the next step.
    step->end_epoch(m, writer ? test : Dataset{}, mix_seed(opt.seed, kEvalSeedSalt + static_cast<uint64_t>(epoch)),
                    writer && epoch + 1 == opt.epochs, run.data, opt.progress);
    run.info.metrics.push_back(m);
    result.last_metrics = m;
    sums = RunningSums{};
    step_in_epoch = 0;
    save_state(epoch + 1);
    if (writer) write_metrics_jsonl(metrics_path, run.info.metrics);
    if (opt.observer && writer) opt.observer->on_epoch(m, model);
  }
  if (writer) write_pictures(run);
  if (comm) comm->close();
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
  for (const auto& [name, v] : {std::pair<const char*, double>{"--beta", run.opt.beta},
                                {"--kl-warmup", run.opt.kl_warmup},
                                {"--kl-cycle", run.opt.kl_cycle},
                                {"--kl-cycle-ratio", run.opt.kl_cycle_ratio},
                                {"--free-bits", run.opt.free_bits},
                                {"--lr", run.opt.adam.lr},
                                {"--beta1", run.opt.adam.beta1},
                                {"--beta2", run.opt.adam.beta2},
                                {"--adam-eps", run.opt.adam.eps}})
    if (!std::isfinite(v)) throw Error(std::string(name) + " must be a finite number");
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
}

}  // namespace

void set_num_threads(int threads) {
  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  const int most = std::max(16, 4 * cores);  // more only adds switching; 100,000 threads were once created
  if (threads < 0 || threads > most)
    throw Error("--threads " + std::to_string(threads) + ": must be 0 (every core) to " + std::to_string(most) +
                " on this machine");
  at::set_num_threads(threads > 0 ? threads : cores);
}

void request_stop() { g_stop.store(true); }
void clear_stop_request() { g_stop.store(false); }
bool stop_requested() { return g_stop.load(); }

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
  if (!j.is_object()) throw Error("training options must be a JSON object, got " + json_excerpt(j, 60));
  TrainOptions o;
  try {
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
  } catch (const nlohmann::json::exception& e) {  // found by fuzz_checkpoint: {"lr": "0.001"} escaped as a type_error
    throw Error("training options hold a value of the wrong type (" + text_excerpt(e.what(), 120) + ")");
  }
  return o;
}

TrainResult train(const ModelConfig& model, const DataSpec& data, const TrainOptions& options) {
  if (options.out.empty()) throw Error("no output folder given (--out)");
  if (options.epochs < 1) throw Error("--epochs must be at least 1 for a new run");
  set_num_threads(threads_for(options));
  Run run;
  run.opt = options;
  run.data = load_data(data);
  if (options.limit > 0) run.data.train = run.data.train.head(options.limit);
  run.info.model = model;
  prepare_model_data(run.info.model, run.data.train, /*fit=*/true);
  prepare_model_data(run.info.model, run.data.test, /*fit=*/false);
  run.info.data = data;
  run.info.data_shape = run.data.train.example_shape();
  run.info.classes = run.data.train.classes;
  run.info.train = options.to_json();
  run.info.data_mean = run.data.mean;
  run.info.data_std = run.data.std;
  check_data_fits(run);
  at::manual_seed(options.seed);  // parameter initialization
  run.checkpoint_path = options.out + "/model.safetensors";
  run.model = make_model(run.info.model, run.info.data_shape);
  run.adam = std::make_unique<Adam>(named_parameters(*run.model), options.adam);
  join_job(run);
  return run_loop(run);
}

TrainResult train_resume(const std::string& checkpoint, int64_t epochs, const std::string& out, bool progress,
                         const RankInfo& ranks, const DistOptions& dist) {
  LoadedCheckpoint ck = checkpoint_load(checkpoint);
  Run run;
  run.info = ck.info;
  run.model = ck.model;
  try {
    run.opt = TrainOptions::from_json(ck.info.train);
    for (const char* key : {"epoch", "step_in_epoch", "global_step", "seen"})
      if (ck.info.state.contains(key)) (void)ck.info.state[key].get<int64_t>();
  } catch (const nlohmann::json::exception& e) {
    throw Error(checkpoint + ": metadata 'train' or 'state' holds a value of the wrong type (" + text_excerpt(e.what(), 120) +
                ")");
  } catch (const Error& e) {
    throw Error(checkpoint + ": metadata 'train' or 'state' holds a value of the wrong type (" + text_excerpt(e.what(), 160) +
                ")");
  }
  if (epochs > 0) run.opt.epochs = epochs;
  run.opt.out = out.empty() ? std::filesystem::path(checkpoint).parent_path().string() : out;
  if (run.opt.out.empty()) run.opt.out = ".";
  run.opt.progress = progress;
  run.opt.ranks = ranks;
  run.opt.dist = dist;
  run.info.train = run.opt.to_json();
  set_num_threads(threads_for(run.opt));
  run.data = load_data(run.info.data);
  if (run.opt.limit > 0) run.data.train = run.data.train.head(run.opt.limit);
  prepare_model_data(run.info.model, run.data.train, /*fit=*/false);
  prepare_model_data(run.info.model, run.data.test, /*fit=*/false);
  if (run.data.train.example_shape() != run.info.data_shape)
    throw Error(checkpoint + ": the data's example shape no longer matches the checkpoint's");
  check_data_fits(run);
  run.checkpoint_path = run.opt.out + "/model.safetensors";
  run.adam = std::make_unique<Adam>(named_parameters(*run.model), run.opt.adam);
  run.adam->load_state(ck.file);
  join_job(run);
  return run_loop(run);
}

}  // namespace latent
