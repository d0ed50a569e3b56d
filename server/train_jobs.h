// The explorer's live training (the Train tab), apart from HTTP: one job at a time trains a VAE on
// its own thread while the rest of the server answers; what it does is kept as a numbered list of
// events that any number of pages read (and read again after a reload) from any point of the
// current run (a new run drops the last run's events; the numbers go on).
//
// Events: {"seq": n, "type": ...} with type
//   "state"    {"state": "running" | "paused" | "stopped" | "finished" | "failed", "run", "message"?,
//               "checkpoint"?}
//   "step"     {"epoch", "step", "steps_per_epoch", "global_step", "loss", "recon", "kl"} every step
//   "snapshot" {"global_step", "scatter": {"points": [[z0, z1], ...], "labels": [...]}, "samples":
//               images, "grid"?: images (2-D models: a 10 x 10 grid over [-3, 3]^2)} every
//               `snapshot_every` steps and at the end (images as ExplorerApi's: shape + base64 uint8)
//   "epoch"    the epoch's metrics record
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

namespace latent::server {

struct TrainJobOptions {
  std::string run_folder;                       // every run's checkpoint goes under it, in a folder of its name
  std::map<std::string, std::string> datasets;  // what a job may train on: name -> data source (DataSpec::source)
  int threads = 1;                              // the job's threads (the rest answer requests)
  int64_t snapshot_every = 200;                 // steps between snapshots (a run may ask for another)
  int64_t scatter = 500;                        // encoded test examples per snapshot
};

class TrainJobs {
 public:
  explicit TrainJobs(TrainJobOptions options);
  /// Stops a running job (it saves its checkpoint) and waits for it.
  ~TrainJobs();
  TrainJobs(const TrainJobs&) = delete;
  TrainJobs& operator=(const TrainJobs&) = delete;

  /// POST /api/train/start: {"name", "data", "model": "mlp" | "conv", "hidden": [..], "latent": 2..64,
  /// "beta", "kl_warmup", "free_bits", "epochs", "batch_size", "lr", "limit", "snapshot_every"} (all but
  /// "name" optional).
  /// ApiError 400 for a bad parameter, 409 while another job runs.
  nlohmann::json start(const nlohmann::json& body);
  /// POST /api/train/pause, /resume, /stop (stop saves the checkpoint). ApiError 409 when no job runs.
  nlohmann::json control(const std::string& action);
  /// The events after number `after`, waiting up to `wait_ms` for one when there are none yet:
  /// {"events": [...], "next": the number to ask after next time}.
  nlohmann::json events(int64_t after, int wait_ms) const;
  /// The checkpoint of a finished or stopped run, body {"run": name}: 400 for a bad name, 404 when
  /// it has none, 409 while it trains.
  std::string checkpoint_of(const nlohmann::json& body) const;
  /// GET /api/train: the job's state and the datasets it may use.
  nlohmann::json status() const;

  struct Impl;  // the job's state, shared with its thread (train_jobs.cpp)

 private:
  std::shared_ptr<Impl> impl_;
};

}  // namespace latent::server
