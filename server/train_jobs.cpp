#include "train_jobs.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <deque>
#include <filesystem>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include "api_fields.h"
#include "explorer_api.h"
#include "latent/checkpoint.h"
#include "latent/data.h"
#include "latent/error.h"
#include "latent/model.h"
#include "latent/train.h"

namespace latent::server {
namespace {

using json = nlohmann::json;

// A run's name: its folder under the run folder, so nothing a client sends reaches outside it.
std::string run_name(const json& body, const std::string& key = "name") {
  const std::string name = string_field(body, key, "");
  if (name.empty() || name.size() > 64) throw ApiError(400, "'" + key + "' must be 1 to 64 characters");
  for (char c : name)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_')
      throw ApiError(400, "'" + key + "' may hold only letters, digits, '-' and '_', got '" + name + "'");
  return name;
}

std::vector<int64_t> hidden_sizes(const json& body, const std::vector<int64_t>& fallback) {
  if (!body.contains("hidden")) return fallback;
  const json& v = body["hidden"];
  if (!v.is_array() || v.empty() || v.size() > 4) throw ApiError(400, "'hidden' must be a list of 1 to 4 layer sizes");
  std::vector<int64_t> out;
  for (const json& h : v) {
    if (!h.is_number_integer() || h.get<int64_t>() < 1 || h.get<int64_t>() > 2048)
      throw ApiError(400, "'hidden' sizes must be integers in [1, 2048]");
    out.push_back(h.get<int64_t>());
  }
  return out;
}

// body[key] or `fallback`; 400 unless a finite number in [0, hi].
double at_least_zero(const json& body, const std::string& key, double fallback, double hi) {
  const double v = number_field(body, key, fallback, -1.0, hi);
  if (v < 0) throw ApiError(400, "'" + key + "' must be >= 0");
  return v;
}

}  // namespace

struct TrainJobs::Impl {
  TrainJobOptions options;
  mutable std::mutex mutex;
  mutable std::condition_variable changed;
  // The events of the current (or last) run; numbers go on across runs, from 1. A new run drops the
  // last run's events (a long run's steps and snapshots are tens of MB).
  std::vector<json> log;
  int64_t dropped = 0;  // events of earlier runs
  int64_t next_seq() const { return dropped + static_cast<int64_t>(log.size()) + 1; }
  bool running = false, paused = false, stopping = false;
  std::string run;  // the current (or last) run's name
  int64_t snapshot_every = 200;
  std::thread worker;

  void push(json event) {
    std::lock_guard<std::mutex> lock(mutex);
    push_locked(std::move(event));
  }
  void push_locked(json event) {  // with `mutex` held
    event["seq"] = next_seq();
    log.push_back(std::move(event));
    changed.notify_all();
  }
  json state_event(const std::string& state, json extra) const {
    extra["type"] = "state";
    extra["state"] = state;
    extra["run"] = run;
    return extra;
  }
  void push_state(const std::string& state, json extra = json::object()) {
    std::lock_guard<std::mutex> lock(mutex);
    push_locked(state_event(state, std::move(extra)));
  }
};

namespace {

// The job's watcher: every step and epoch into the log, a snapshot every so many steps, and the
// page's pause and stop (a paused run waits inside the step).
class Watcher : public TrainObserver {
 public:
  Watcher(std::shared_ptr<TrainJobs::Impl> jobs, at::Tensor scatter_x, at::Tensor scatter_y)
      : jobs_(std::move(jobs)), x_(std::move(scatter_x)), y_(std::move(scatter_y)) {}

  bool on_step(const StepReport& r, ModelImpl& model) override {
    json e = {{"type", "step"},
              {"epoch", r.epoch},
              {"step", r.step_in_epoch},
              {"steps_per_epoch", r.steps_per_epoch},
              {"global_step", r.global_step},
              {"loss", r.loss}};
    for (const auto& [name, value] : r.terms) e[name] = value;
    jobs_->push(std::move(e));
    if (r.global_step % jobs_->snapshot_every == 0) snapshot(model, r.global_step);
    last_step_ = r.global_step;
    std::unique_lock<std::mutex> lock(jobs_->mutex);
    if (jobs_->paused && !jobs_->stopping) {
      lock.unlock();
      jobs_->push_state("paused");
      lock.lock();
      jobs_->changed.wait(lock, [&] { return !jobs_->paused || jobs_->stopping; });
      if (!jobs_->stopping) {
        lock.unlock();
        jobs_->push_state("running");
        lock.lock();
      }
    }
    return !jobs_->stopping;
  }

  void on_epoch(const json& record, ModelImpl&) override {
    json e = record;
    e["type"] = "epoch";
    jobs_->push(std::move(e));
  }

  // The test examples' means on the first two latent axes, prior samples, and for a 2-D model the
  // decoded grid over [-3, 3]^2.
  void snapshot(ModelImpl& model, int64_t step) {
    VaeImpl* vae = model.gaussian_latent();
    if (!vae) return;
    at::NoGradGuard no_grad;
    model.eval();
    const Posterior q = vae->encode(x_);
    const at::Tensor mu = q.mu.narrow(1, 0, std::min<int64_t>(2, q.mu.size(1)));
    json e = {{"type", "snapshot"}, {"global_step", step}};
    e["scatter"] = {{"points", rows_json(mu)}};
    if (y_.defined()) e["scatter"]["labels"] = std::vector<int64_t>(y_.data_ptr<int64_t>(), y_.data_ptr<int64_t>() + y_.numel());
    at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(7);  // the same codes every time: watch them sharpen
    const at::Tensor z = at::randn({8, vae->latent_dim()}, gen, at::kFloat);
    auto images = [&](const at::Tensor& codes) { return pixels_json(vae->likelihood_mean(vae->decode(codes))); };
    e["samples"] = images(z);
    if (vae->latent_dim() == 2) {
      const at::Tensor t = at::linspace(-3, 3, 10);
      e["grid"] = images(at::stack({t.repeat(10), t.flip(0).repeat_interleave(10)}, 1));  // rows from z1 = 3 down
    }
    model.train();
    jobs_->push(std::move(e));
  }
  int64_t last_step() const { return last_step_; }

 private:
  std::shared_ptr<TrainJobs::Impl> jobs_;
  at::Tensor x_, y_;
  int64_t last_step_ = 0;
};

}  // namespace

TrainJobs::TrainJobs(TrainJobOptions options) : impl_(std::make_shared<Impl>()) { impl_->options = std::move(options); }

TrainJobs::~TrainJobs() {
  {
    std::lock_guard<std::mutex> lock(impl_->mutex);
    impl_->stopping = true;
    impl_->changed.notify_all();
  }
  if (impl_->worker.joinable()) impl_->worker.join();
}

json TrainJobs::start(const json& body) {
  if (!body.is_object()) throw ApiError(400, "the request body must be a JSON object");
  static const std::vector<std::string> keys = {"name",   "data",      "model",         "hidden",     "latent",
                                                "beta",   "kl_warmup", "free_bits",     "batch_size", "lr",
                                                "epochs", "limit",     "snapshot_every"};
  for (const auto& [key, value] : body.items())
    if (std::find(keys.begin(), keys.end(), key) == keys.end()) throw ApiError(400, "unknown parameter '" + key + "'");
  const std::string name = run_name(body);
  const std::string data = string_field(body, "data", "fashion-mnist");
  const auto source = impl_->options.datasets.find(data);
  if (source == impl_->options.datasets.end()) throw ApiError(400, "unknown data '" + data + "'");
  const std::string family = string_field(body, "model", "mlp");
  if (family != "mlp" && family != "conv") throw ApiError(400, "'model' must be \"mlp\" or \"conv\", got '" + family + "'");
  json config = {{"type", family == "mlp" ? "mlp_vae" : "conv_vae"},
                 {"latent", integer_field(body, "latent", 2, 2, 64)},
                 {"hidden", hidden_sizes(body, family == "mlp" ? std::vector<int64_t>{400} : std::vector<int64_t>{256})}};
  TrainOptions o;
  o.beta = at_least_zero(body, "beta", 1.0, 100.0);
  o.kl_warmup = at_least_zero(body, "kl_warmup", 0.0, 1000.0);
  o.free_bits = at_least_zero(body, "free_bits", 0.0, 10.0);
  o.batch_size = integer_field(body, "batch_size", 128, 1, 4096);
  o.adam.lr = number_field(body, "lr", 1e-3, 0.0, 1.0);
  o.epochs = integer_field(body, "epochs", 10, 1, 1000);
  o.limit = integer_field(body, "limit", 0, 0, int64_t{1} << 40);
  const int64_t snapshot_every = integer_field(body, "snapshot_every", impl_->options.snapshot_every, 1, 1000000);
  o.threads = impl_->options.threads;
  o.progress = false;
  o.out = (std::filesystem::path(impl_->options.run_folder) / name).string();
  DataSpec spec;
  spec.source = source->second;
  ModelConfig model;
  try {
    model = ModelConfig::from_json(config);
  } catch (const Error& e) {
    throw ApiError(400, e.what());
  }
  std::lock_guard<std::mutex> lock(impl_->mutex);
  if (impl_->running) throw ApiError(409, "a run is training ('" + impl_->run + "'): stop it first");
  if (impl_->worker.joinable()) impl_->worker.join();  // the last run's thread has finished
  impl_->running = true;
  impl_->paused = impl_->stopping = false;
  impl_->dropped += static_cast<int64_t>(impl_->log.size());
  impl_->log.clear();
  impl_->run = name;
  impl_->snapshot_every = snapshot_every;
  std::shared_ptr<Impl> jobs = impl_;
  const int64_t scatter = impl_->options.scatter;
  impl_->worker = std::thread([jobs, model, spec, o, scatter]() mutable {
    // The thread's last touch of the shared state, in one piece: start() may join it holding the lock.
    auto finish = [&](const std::string& state, json extra) {
      std::lock_guard<std::mutex> lock(jobs->mutex);
      jobs->running = false;
      jobs->push_locked(jobs->state_event(state, std::move(extra)));
    };
    try {
      jobs->push_state("running", {{"config", model.to_json()}});
      const DataSplit split = load_data(spec);
      const Dataset shown = split.test.size() > 0 ? split.test.head(scatter) : split.train.head(scatter);
      auto watcher = std::make_shared<Watcher>(jobs, shown.x, shown.y.defined() ? shown.y.to(at::kLong) : at::Tensor());
      o.observer = watcher;
      const TrainResult r = train(model, spec, o);
      const LoadedCheckpoint ck = checkpoint_load(r.checkpoint);
      watcher->snapshot(*ck.model, watcher->last_step());
      finish(r.interrupted ? "stopped" : "finished", {{"checkpoint", r.checkpoint}});
    } catch (const std::exception& e) {
      finish("failed", {{"message", e.what()}});
    }
  });
  return {{"run", name}, {"config", model.to_json()}, {"checkpoint", o.out + "/model.safetensors"}};
}

json TrainJobs::control(const std::string& action) {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  if (!impl_->running) throw ApiError(409, "no run is training");
  if (action == "pause")
    impl_->paused = true;
  else if (action == "resume")
    impl_->paused = false;
  else if (action == "stop")
    impl_->stopping = true;
  else
    throw ApiError(404, "unknown action '" + action + "'");
  impl_->changed.notify_all();
  return {{"run", impl_->run}, {"action", action}};
}

json TrainJobs::events(int64_t after, int wait_ms) const {
  std::unique_lock<std::mutex> lock(impl_->mutex);
  const auto ready = [&] { return impl_->next_seq() - 1 > after; };
  if (!ready() && wait_ms > 0) impl_->changed.wait_for(lock, std::chrono::milliseconds(wait_ms), ready);
  json out = json::array();
  for (int64_t i = std::max<int64_t>(after - impl_->dropped, 0); i < static_cast<int64_t>(impl_->log.size()); ++i)
    out.push_back(impl_->log[static_cast<size_t>(i)]);
  return {{"events", out}, {"next", impl_->next_seq() - 1}};
}

std::string TrainJobs::checkpoint_of(const json& body) const {
  if (!body.is_object()) throw ApiError(400, "the request body must be a JSON object");
  const std::string name = run_name(body, "run");
  {
    std::lock_guard<std::mutex> lock(impl_->mutex);
    if (impl_->running && impl_->run == name) throw ApiError(409, "'" + name + "' is still training: stop it first");
  }
  const std::string path = (std::filesystem::path(impl_->options.run_folder) / name / "model.safetensors").string();
  if (!std::filesystem::exists(path)) throw ApiError(404, "no run named '" + name + "' has a checkpoint");
  return path;
}

json TrainJobs::status() const {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  json datasets = json::array();
  for (const auto& [name, source] : impl_->options.datasets) datasets.push_back(name);
  return {{"running", impl_->running},
          {"paused", impl_->paused},
          {"run", impl_->run},
          {"events", impl_->next_seq() - 1},
          {"datasets", datasets}};
}

}  // namespace latent::server
