/// @brief Training: the loop that turns data and a model config into a checkpoint.
///
/// Determinism: the shuffle of epoch e comes from (seed, e) and the noise of global step s
/// (eps, binarization) from (seed, s), so the same seed and thread count give the same numbers,
/// and a run resumed from any checkpoint (end of epoch or Ctrl-C mid-epoch) continues exactly as
/// the uninterrupted run would have.
///
/// Output folder: model.safetensors (latest checkpoint, rewritten atomically after every epoch),
/// metrics.jsonl (one JSON object per epoch), samples.png and reconstructions.png (image data).
#pragma once

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "latent/adam.h"
#include "latent/config.h"
#include "latent/data.h"
#include "latent/distributed.h"
#include "latent/error.h"

namespace latent {

class ModelImpl;

/// One optimizer step as a watcher sees it.
struct StepReport {
  int64_t epoch = 0;          // the epoch the step belongs to (0-based)
  int64_t step_in_epoch = 0;  // steps done in this epoch, this one included
  int64_t steps_per_epoch = 0;
  int64_t global_step = 0;                            // steps done in the run, this one included
  double loss = 0;                                    // the step's batch loss
  std::vector<std::pair<std::string, double>> terms;  // its terms ("recon", "kl", ...)
};

/// Watches a run from its training thread (the explorer's live training): called after every
/// optimizer step and after every epoch's record, with the model as the step left it. It may read
/// the model (in eval mode and without gradients, restoring train mode before it returns), block
/// (a pause), or ask the loop to stop: then, as on Ctrl-C, the loop saves a checkpoint and returns
/// with TrainResult::interrupted. Rank 0 alone calls it.
class TrainObserver {
 public:
  virtual ~TrainObserver() = default;
  /// Returns false to stop the run.
  virtual bool on_step(const StepReport& report, ModelImpl& model) = 0;
  virtual void on_epoch(const nlohmann::json& /*record*/, ModelImpl& /*model*/) {}
};

struct TrainOptions {
  int64_t epochs = 10;
  int64_t batch_size = 128;
  AdamOptions adam;
  uint64_t seed = 0;
  int threads = 0;                 // 0: every core
  bool binarize = false;           // dynamic binarization: each batch draws x ~ Bernoulli(pixel)
  double beta = -1;                // KL weight; < 0: the model config's beta
  double kl_warmup = 0;            // epochs over which the KL weight rises linearly from 0 to beta
  double kl_cycle = 0;             // cyclical annealing: cycle length in epochs (0: off)
  double kl_cycle_ratio = 0.5;     // fraction of each cycle spent rising from 0 to beta
  double free_bits = 0;            // KL floor per latent dimension in nats (0: off)
  std::string objective = "elbo";  // "elbo", or "iwae": the k-sample importance-weighted bound
  int64_t iwae_k = 5;              // samples per example for objective "iwae"
  int64_t limit = 0;               // train on the first `limit` training examples only (0: all)
  bool fused = true;               // the fused step for mlp_vae models when it applies (same numbers, faster)
  std::string precision = "fp32";  // or "bf16": mixed precision, bfloat16 products in the fused step
  bool progress = true;            // progress bar on stderr
  std::string out;                 // output folder
  /// A job of several ranks (rank_info_from_environment()): each trains on its share of every
  /// batch (--batch-size is the whole job's), gradients are averaged over the ranks, rank 0 alone
  /// writes. The numbers match one process's to float rounding. Not saved in checkpoints.
  RankInfo ranks;
  DistOptions dist;
  /// Watches the run (not saved in checkpoints).
  std::shared_ptr<TrainObserver> observer;

  nlohmann::json to_json() const;
  static TrainOptions from_json(const nlohmann::json& j);
};

struct TrainResult {
  std::string checkpoint;
  nlohmann::json last_metrics;  // the last epoch's record (null if no epoch finished)
  bool interrupted = false;
};

/// Thrown when the loss becomes NaN or infinite; the message names the epoch, the step and the
/// last good checkpoint, which stays untouched.
class TrainingDiverged : public Error {
 public:
  using Error::Error;
};

/// Trains a new model. Throws latent::Error on bad input, TrainingDiverged on divergence.
TrainResult train(const ModelConfig& model, const DataSpec& data, const TrainOptions& options);

/// Continues training from `checkpoint` up to `epochs` total epochs (0: the original count),
/// writing to `out` (empty: the checkpoint's own folder), in one process or as rank `ranks.rank`
/// of a job (any number of ranks: the numbers do not depend on it).
TrainResult train_resume(const std::string& checkpoint, int64_t epochs, const std::string& out, bool progress,
                         const RankInfo& ranks = {}, const DistOptions& dist = {});

/// Asks a running training loop to save a checkpoint and return (safe from a signal handler).
void request_stop();
void clear_stop_request();
bool stop_requested();

/// Sets LibTorch's (and so oneDNN's and BLAS's) thread count; 0 means every core.
void set_num_threads(int threads);

/// The seed of step `step` of a run seeded with `seed` (splitmix64 mixing).
inline uint64_t mix_seed(uint64_t seed, uint64_t step) {
  auto splitmix = [](uint64_t x) {
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
  };
  return splitmix(seed ^ splitmix(step));
}

}  // namespace latent
