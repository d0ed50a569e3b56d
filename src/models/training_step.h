// A family's part of the one training loop (src/train/trainer.cpp). The loop shuffles, batches,
// binarizes, steps Adam, follows the load with its thread count, checkpoints (mid-epoch too),
// prints progress and writes metrics.jsonl; the family computes each batch's loss and gradients,
// does its own per-step updates, and adds its own keys to each epoch's record.
#pragma once

#include <ATen/Tensor.h>
#include <ATen/core/Generator.h>

#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "latent/data.h"
#include "latent/distributed.h"

namespace latent {

struct BatchLoss {
  double loss = 0;  // the objective minimized, mean over the batch
  /// Its terms (means over the batch) in the order the progress bar shows them: the loop keeps
  /// running sums ("sum_<name>" in the checkpoint's state) and writes "train_<name>" each epoch.
  std::vector<std::pair<std::string, double>> terms;
};

class TrainingStep {
 public:
  virtual ~TrainingStep() = default;

  /// Once, before the first step of a new run: `first` holds the first examples of the first
  /// epoch's order (up to first_examples() of them). The VQ-VAE seeds its codebook here.
  virtual int64_t first_examples() const { return 0; }
  virtual void begin(const at::Tensor& /*first*/, bool /*progress*/) {}

  /// Once, before training: the training split the loop's batches come from (the SMILES VAE
  /// reads each example's properties and SMILES there by index).
  virtual void set_training_data(const Dataset& /*train*/) {}

  /// Forward and backward on x [n, D...], the rows `rows` names of a batch (all of it in one
  /// process; in a job of several ranks, this rank's rows), which are the training split's examples
  /// `index` (int64 [n]): leaves every parameter's gradient of
  /// the mean loss over x. Noise comes from `gen`, drawn for the whole batch and taken with
  /// rows.take(), so every rank's rows see the noise one process would give them. `kl_weight` is
  /// the schedule's weight of the KL term at this step (VAEs).
  virtual BatchLoss run(const at::Tensor& x, const at::Tensor& index, const BatchRows& rows, at::Generator& gen,
                        double kl_weight) = 0;
  /// After the optimizer's update; `steps_done` counts the run's steps including this one.
  virtual void after_update(int64_t /*steps_done*/) {}
  /// In a job of several ranks, before the first step: what after_update() may use to see the
  /// whole batch (the VQ-VAE's codebook statistics).
  virtual void distribute(Communicator* /*comm*/) {}
  /// Whether run()'s results are the same on any thread count (then the loop may follow the load).
  virtual bool thread_invariant() const { return false; }

  /// Adds the family's keys to epoch record `m` (which holds epoch, train_loss, train_<term>,
  /// samples_per_s, threads, wall_s): its test metrics on `test` (already binarized as in
  /// training) and anything else it tracks; prints its test line when `progress`. `last` marks the
  /// run's last epoch; `data` is the whole split (the VQ-VAE fits its priors to its codes).
  virtual void end_epoch(nlohmann::json& m, const Dataset& test, uint64_t eval_seed, bool last, const DataSplit& data,
                         bool progress) = 0;

  /// Family state carried in checkpoints so that a resumed run continues exactly (merged into the
  /// loop's "state" metadata; keys must not collide with the loop's).
  virtual nlohmann::json state() const { return nlohmann::json::object(); }
  virtual void restore(const nlohmann::json& /*state*/) {}
};

}  // namespace latent
