// `latent train --nproc N`: N local workers of one job, started as torchrun would start them.
#pragma once

#include <string>
#include <vector>

namespace latent::cli {

/// The command line main() was given (the workers rerun it without --nproc).
std::vector<std::string>& command_line();

/// Starts N copies of this program with `args` (argv without --nproc) and torchrun's variables
/// (RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR=127.0.0.1, MASTER_PORT: a free
/// port), waits for them, and returns the job's exit status: 0 when every worker succeeded, else
/// the first failure's. Ctrl-C or SIGTERM to this process reaches each worker once (they save a
/// checkpoint and stop); workers still running some seconds after another failed are killed.
int launch_local_workers(int nproc, const std::vector<std::string>& args);

}  // namespace latent::cli
