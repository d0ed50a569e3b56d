/// @brief Data-parallel jobs across processes and machines, on c10d's Gloo process group (the
/// engine PyTorch's DistributedDataParallel runs on).
///
/// A job is launched as PyTorch users launch theirs: torchrun (RANK, WORLD_SIZE, LOCAL_RANK,
/// LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT), Slurm (SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID,
/// SLURM_NTASKS_PER_NODE, MASTER_ADDR/MASTER_PORT or the first host of SLURM_NODELIST) or
/// `latent train --nproc N`, which sets the same variables for N local workers.
///
/// Rank 0 hosts the rendezvous (a c10d TCPStore on MASTER_ADDR:MASTER_PORT). Every rank beats a
/// heartbeat there; a rank whose heartbeat stops is named, and every other rank stops within
/// seconds with one line saying so.
#pragma once

#include <ATen/Tensor.h>

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace latent {

/// Where this process stands in its job.
struct RankInfo {
  int rank = 0, world = 1;                // RANK, WORLD_SIZE
  int local_rank = 0, local_world = 1;    // LOCAL_RANK, LOCAL_WORLD_SIZE: the ranks on this machine
  std::string master_addr = "127.0.0.1";  // MASTER_ADDR: rank 0's host
  int master_port = 29500;                // MASTER_PORT
  std::string launcher;                   // "torchrun", "slurm", "latent" or "" (one process)
  bool distributed() const { return world > 1; }
};

/// Reads the launcher's variables (torchrun's first, then Slurm's); one process when neither is
/// set. Throws latent::Error naming the variable when one is malformed or out of range.
RankInfo rank_info_from_environment();

/// Whether this build can run distributed jobs (LibTorch with c10d and Gloo).
bool distributed_available();

struct DistOptions {
  std::string iface;           // network interface Gloo uses (else GLOO_SOCKET_IFNAME, else the master's route)
  double join_timeout_s = 60;  // every rank must arrive within this (LATENT_DIST_JOIN_TIMEOUT)
  double lost_after_s = 10;    // a rank whose heartbeat stops this long is lost (LATENT_DIST_LOST_AFTER)
};

/// Which rows of a batch a rank trains on: rows rank, rank + world, rank + 2 world, ... of the
/// batch's `rows` (the batch one process would train on). take() picks them from a tensor that
/// holds the whole batch along `dim` (its noise, drawn for the whole batch).
struct BatchRows {
  int rank = 0, world = 1;
  int64_t rows = 0;
  int64_t count() const { return rows > rank ? (rows - rank + world - 1) / world : 0; }
  at::Tensor take(const at::Tensor& whole, int64_t dim = 0) const;
};

/// How a job's ranks split n examples for evaluation: contiguous ranges whose boundaries fall on
/// multiples of `chunk` (so every chunk is computed as one process computes it); returns each
/// rank's count (rank r starts after the counts of ranks < r).
std::vector<int64_t> split_examples(int64_t n, int64_t chunk, int world);

/// One rank's end of a job: collectives over every rank, timed.
class Communicator {
 public:
  virtual ~Communicator() = default;

  /// Joins the job described by `me`. Every rank must arrive within the join timeout (else an
  /// error naming the ranks that did not) and hold the same `agreement` (model, data, options)
  /// as rank 0 (else an error naming the rank and the first difference).
  static std::unique_ptr<Communicator> join(const RankInfo& me, const DistOptions& options, const nlohmann::json& agreement);

  virtual int rank() const = 0;
  virtual int world() const = 0;
  virtual const RankInfo& info() const = 0;

  /// In place on every rank; every rank ends with the same bits.
  virtual void broadcast(const at::Tensor& t, int root = 0) = 0;
  virtual void allreduce_sum(const at::Tensor& t) = 0;
  /// Rows [counts[r], ...] from each rank r, in rank order: [sum counts, ...].
  virtual at::Tensor allgather_rows(const at::Tensor& local, const std::vector<int64_t>& counts) = 0;
  /// The rows each rank took with `rows`, put back in the batch's order.
  at::Tensor gather_batch(const at::Tensor& local, const BatchRows& rows);
  virtual void barrier() = 0;

  /// Gradient buckets, launched as the backward pass finishes them (see GradientSync).
  virtual void allreduce_async(const at::Tensor& t) = 0;
  virtual void wait_all() = 0;

  /// Seconds spent waiting on communication, and bytes all-reduced, since the start.
  virtual double comm_seconds() const = 0;
  virtual int64_t bytes_reduced() const = 0;
  /// Appended to the message that names a lost rank (the last checkpoint, how to resume).
  virtual void set_loss_hint(const std::string& hint) = 0;
  /// The end of a job that went well: waits for every rank, then stops the heartbeat.
  virtual void close() = 0;
};

/// Averages gradients over the ranks like DistributedDataParallel: each parameter's .grad() is
/// made a view into flat buckets (last parameters first, as the backward pass produces them);
/// autograd hooks launch a bucket's all-reduce as soon as its last gradient is in, so the
/// communication overlaps the rest of the backward pass. Steps that write .grad() themselves
/// (the fused MLP step) find the same views; finish() launches whatever is still pending.
class GradientSync {
 public:
  GradientSync(Communicator& comm, const std::vector<at::Tensor>& params, int64_t bucket_bytes = int64_t{1} << 20);
  ~GradientSync();
  /// Before the backward pass: this rank's share of the batch (its rows over the batch's rows).
  void begin(double share);
  /// After it: every rank holds the gradient of the whole batch's mean loss. `extra` (at most
  /// kExtra numbers: the loss and its terms, already weighted by the share) are summed over the
  /// ranks in the same all-reduce as the last bucket, in float32, and returned.
  std::vector<double> finish(const std::vector<double>& extra = {});
  static constexpr int64_t kExtra = 16;
  int64_t bytes_per_step() const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace latent
