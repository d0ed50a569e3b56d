// Gloo's own all-reduce time for a given number of bytes, through the process group latent
// trains on (Communicator::allreduce_sum: one ProcessGroupGloo::allreduce per call, no buckets,
// no overlap). Run as every rank of a job (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT, as
// bench/distributed.sh sets them); rank 0 prints one JSON line per size:
//   {"bytes": B, "ms_mean": ..., "ms_median": ..., "world_size": N}
//   allreduce_time BYTES [BYTES...]   (iterations: 300 after 20 of warm-up)
#include <ATen/ATen.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "latent/distributed.h"

int main(int argc, char** argv) {
  using namespace latent;
  const RankInfo me = rank_info_from_environment();
  auto comm = Communicator::join(me, DistOptions{}, nlohmann::json::object());
  for (int a = 1; a < argc; ++a) {
    const int64_t bytes = std::atoll(argv[a]);
    at::Tensor t = at::ones({std::max<int64_t>(1, bytes / 4)}, at::kFloat);
    std::vector<double> ms;
    for (int i = 0; i < 320; ++i) {
      comm->barrier();
      const auto t0 = std::chrono::steady_clock::now();
      comm->allreduce_sum(t);
      const double d = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
      if (i >= 20) ms.push_back(d);
    }
    std::sort(ms.begin(), ms.end());
    double sum = 0;
    for (double d : ms) sum += d;
    if (me.rank == 0)
      std::printf("{\"bytes\": %lld, \"ms_mean\": %.4f, \"ms_median\": %.4f, \"world_size\": %d}\n",
                  static_cast<long long>(bytes), sum / ms.size(), ms[ms.size() / 2], me.world);
  }
  comm->close();
  return 0;
}
