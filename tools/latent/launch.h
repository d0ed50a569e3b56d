// `latent train --nproc N`: N local workers of one job, started as torchrun would start them.
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "latent/distributed.h"

namespace latent::cli {

/// The command line main() was given (the workers rerun it without --nproc).
std::vector<std::string>& command_line();

/// Starts N copies of this program with `args` (argv without --nproc) and torchrun's variables
/// (RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR=127.0.0.1, MASTER_PORT: a free
/// port), waits for them, and returns the job's exit status: 0 when every worker succeeded, else
/// the first failure's. Ctrl-C or SIGTERM to this process reaches each worker once (they save a
/// checkpoint and stop); workers still running some seconds after another failed are killed.
int launch_local_workers(int nproc, const std::vector<std::string>& args);

/// `--nproc N` of any command: reruns this command line without it as N local workers and sets
/// the exit status. Refused inside another launcher or in a build without c10d.
void run_as_workers(int nproc);

/// When a launcher started this process (torchrun, Slurm, --nproc): the job, joined, every rank
/// agreeing on `agreement`, and the thread count set (this machine's cores shared by its ranks,
/// unless `threads` says). In one process: null, and the thread count set from `threads`.
std::unique_ptr<Communicator> join_job_if_launched(const nlohmann::json& agreement, int threads);

}  // namespace latent::cli
