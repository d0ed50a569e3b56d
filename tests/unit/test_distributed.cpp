// Where a process stands in a job (torchrun's and Slurm's variables), the rows of a batch each
// rank takes, and how evaluation splits its examples. The collectives themselves are tested by
// tests/cli/test_distributed.sh, with real processes.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <map>

#include "latent/distributed.h"
#include "test_util.h"

namespace latent {
namespace {

// Sets the given variables (and clears every other launcher variable) for one scope.
class Environment {
 public:
  explicit Environment(const std::map<std::string, std::string>& vars) {
    for (const char* name :
         {"WORLD_SIZE", "RANK", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT", "LATENT_LAUNCHER",
          "TORCHELASTIC_RUN_ID", "SLURM_NTASKS", "SLURM_PROCID", "SLURM_LOCALID", "SLURM_NTASKS_PER_NODE", "SLURM_TASKS_PER_NODE",
          "SLURM_STEP_ID", "SLURM_STEPID", "SLURM_NODELIST"}) {
      if (const char* v = std::getenv(name)) saved_[name] = v;
      unsetenv(name);
    }
    for (const auto& [k, v] : vars) setenv(k.c_str(), v.c_str(), 1);
  }
  ~Environment() {
    for (const char* name : {"WORLD_SIZE", "RANK", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT",
                             "LATENT_LAUNCHER", "TORCHELASTIC_RUN_ID", "SLURM_NTASKS", "SLURM_PROCID", "SLURM_LOCALID",
                             "SLURM_NTASKS_PER_NODE", "SLURM_TASKS_PER_NODE", "SLURM_STEP_ID", "SLURM_STEPID", "SLURM_NODELIST"})
      unsetenv(name);
    for (const auto& [k, v] : saved_) setenv(k.c_str(), v.c_str(), 1);
  }

 private:
  std::map<std::string, std::string> saved_;
};

TEST(RankInfo, OneProcessWithoutALauncher) {
  Environment env({});
  const RankInfo r = rank_info_from_environment();
  EXPECT_FALSE(r.distributed());
  EXPECT_EQ(r.world, 1);
  EXPECT_EQ(r.launcher, "");
}

TEST(RankInfo, TorchrunVariables) {
  Environment env({{"WORLD_SIZE", "4"},
                   {"RANK", "3"},
                   {"LOCAL_RANK", "1"},
                   {"LOCAL_WORLD_SIZE", "2"},
                   {"MASTER_ADDR", "10.0.0.7"},
                   {"MASTER_PORT", "29511"},
                   {"TORCHELASTIC_RUN_ID", "x"}});
  const RankInfo r = rank_info_from_environment();
  EXPECT_TRUE(r.distributed());
  EXPECT_EQ(r.rank, 3);
  EXPECT_EQ(r.world, 4);
  EXPECT_EQ(r.local_rank, 1);
  EXPECT_EQ(r.local_world, 2);
  EXPECT_EQ(r.master_addr, "10.0.0.7");
  EXPECT_EQ(r.master_port, 29511);
  EXPECT_EQ(r.launcher, "torchrun");
}

TEST(RankInfo, SlurmVariablesUnderSrun) {
  Environment env({{"SLURM_NTASKS", "6"},
                   {"SLURM_PROCID", "5"},
                   {"SLURM_LOCALID", "2"},
                   {"SLURM_TASKS_PER_NODE", "3(x2)"},
                   {"SLURM_STEP_ID", "0"},
                   {"SLURM_NODELIST", "node07"}});
  const RankInfo r = rank_info_from_environment();
  EXPECT_EQ(r.rank, 5);
  EXPECT_EQ(r.world, 6);
  EXPECT_EQ(r.local_rank, 2);
  EXPECT_EQ(r.local_world, 3);
  EXPECT_EQ(r.master_addr, "node07");
  EXPECT_EQ(r.launcher, "slurm");
}

TEST(RankInfo, SlurmAllocationWithoutSrunIsOneProcess) {
  Environment env({{"SLURM_NTASKS", "6"}, {"SLURM_PROCID", "0"}});  // an salloc shell
  EXPECT_FALSE(rank_info_from_environment().distributed());
}

TEST(RankInfo, BadValuesAreOneErrorNamingTheVariable) {
  {
    Environment env({{"WORLD_SIZE", "2"}, {"RANK", "2"}});
    EXPECT_ERROR_WITH(rank_info_from_environment(), "RANK=2: must be an integer from 0 to 1");
  }
  {
    Environment env({{"WORLD_SIZE", "two"}, {"RANK", "0"}});
    EXPECT_ERROR_WITH(rank_info_from_environment(), "WORLD_SIZE=two: must be an integer");
  }
  {
    Environment env(std::map<std::string, std::string>{{"WORLD_SIZE", "2"}});
    EXPECT_ERROR_WITH(rank_info_from_environment(), "WORLD_SIZE is set but RANK is not");
  }
  {
    Environment env({{"WORLD_SIZE", "2"}, {"RANK", "0"}, {"MASTER_PORT", "70000"}});
    EXPECT_ERROR_WITH(rank_info_from_environment(), "MASTER_PORT=70000");
  }
  {
    Environment env({{"SLURM_NTASKS", "4"}, {"SLURM_PROCID", "1"}, {"SLURM_STEP_ID", "0"}, {"SLURM_NODELIST", "n[1-2]"}});
    EXPECT_ERROR_WITH(rank_info_from_environment(), "set MASTER_ADDR to the first host");
  }
}

TEST(BatchRows, RanksTakeInterleavedRowsThatCoverTheBatchOnce) {
  const at::Tensor batch = at::arange(10);
  std::vector<int64_t> seen;
  int64_t total = 0;
  for (int r = 0; r < 3; ++r) {
    const BatchRows rows{r, 3, 10};
    const at::Tensor mine = rows.take(batch);
    EXPECT_EQ(mine.size(0), rows.count());
    total += rows.count();
    for (int64_t i = 0; i < mine.size(0); ++i) {
      EXPECT_EQ(mine[i].item<int64_t>() % 3, r);
      seen.push_back(mine[i].item<int64_t>());
    }
  }
  EXPECT_EQ(total, 10);
  std::sort(seen.begin(), seen.end());
  for (int64_t i = 0; i < 10; ++i) EXPECT_EQ(seen[i], i);
  // Noise drawn for the whole batch along another dimension (IWAE's [k, B, d]).
  const at::Tensor eps = at::arange(2 * 10).view({2, 10});
  EXPECT_TRUE(at::equal(BatchRows{1, 3, 10}.take(eps, 1), eps.index_select(1, at::tensor({1, 4, 7}))));
  EXPECT_TRUE(at::equal(BatchRows{0, 1, 10}.take(eps, 1), eps));
  EXPECT_EQ((BatchRows{2, 3, 2}.count()), 0);
}

TEST(SplitExamples, WholeChunksInOrderCoveringEverything) {
  EXPECT_EQ(split_examples(1100, 500, 2), (std::vector<int64_t>{1000, 100}));
  EXPECT_EQ(split_examples(1100, 500, 3), (std::vector<int64_t>{500, 500, 100}));
  EXPECT_EQ(split_examples(300, 1, 3), (std::vector<int64_t>{100, 100, 100}));
  EXPECT_EQ(split_examples(2, 500, 3), (std::vector<int64_t>{2, 0, 0}));
  EXPECT_EQ(split_examples(0, 7, 2), (std::vector<int64_t>{0, 0}));
}

}  // namespace
}  // namespace latent
