// The thread tuner's choices on made-up unit times (no clock is read: ThreadTuner::record), and the
// property that lets the training loop use it: the fused step's numbers do not depend on the
// thread count (cpu::gemm cuts its products into pieces fixed by the shape alone).
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <gtest/gtest.h>

#include <functional>

#include "cpu/gemm.h"
#include "cpu/thread_tuner.h"
#include "latent/adam.h"
#include "latent/checkpoint.h"
#include "models/vae/steps.h"

namespace latent {
namespace {

using cpu::ThreadTuner;

// Runs `units` units through the tuner, each taking 1 / rate(threads it ran with) seconds.
void drive(ThreadTuner& t, int64_t units, const std::function<double(int)>& rate) {
  for (int64_t i = 0; i < units; ++i) {
    t.begin();
    t.record(1.0, 1.0 / rate(t.running()));
  }
}

// The tuner starts from the cores free now (another test process may hold one): start it at max.
void settle_at(ThreadTuner& t, int threads, const std::function<double(int)>& rate) {
  for (int i = 0; i < 10 && t.threads() != threads; ++i) drive(t, cpu::TunerSettings{}.max_interval, rate);
  ASSERT_EQ(t.threads(), threads);
}

TEST(ThreadTuner, MovesToFewerThreadsWhenACoreIsTakenAndBackWhenItIsFree) {
  const int threads = at::get_num_threads();
  {
    ThreadTuner t(2);
    const auto quiet = [](int n) { return n == 2 ? 1.7 : 1.0; };  // two threads 1.7x one (measured 1.5-1.8x)
    const auto busy = [](int n) { return n == 2 ? 0.4 : 1.0; };   // a core taken: two threads 2.5x slower
    settle_at(t, 2, quiet);
    drive(t, 2 * cpu::TunerSettings{}.max_interval, quiet);
    EXPECT_EQ(t.threads(), 2) << "stayed on two threads on a quiet machine";
    const int64_t moves = t.moves();
    drive(t, cpu::TunerSettings{}.max_interval + 2 * cpu::TunerSettings{}.window, busy);
    EXPECT_EQ(t.threads(), 1) << "a taken core is noticed within one probe interval";
    EXPECT_EQ(t.moves(), moves + 1);
    drive(t, cpu::TunerSettings{}.max_interval + 2 * cpu::TunerSettings{}.window, quiet);
    EXPECT_EQ(t.threads(), 2) << "back to two threads within one probe interval after the core is free";
  }
  EXPECT_EQ(at::get_num_threads(), threads < 2 ? 2 : threads) << "the destructor restores the most threads";
  at::set_num_threads(threads);
}

TEST(ThreadTuner, ProbesRarelyWhileItsChoiceHoldsAndNeedsATenthToMove) {
  ThreadTuner t(2);
  const auto close = [](int n) { return n == 2 ? 1.0 : 1.05; };  // one thread 5% faster: not enough to move
  settle_at(t, 2, [](int n) { return n == 2 ? 1.7 : 1.0; });
  drive(t, 20000, close);  // the interval between probes grows to its most
  int64_t probe_units = 0;
  for (int64_t i = 0; i < 20000; ++i) {
    t.begin();
    probe_units += t.running() != t.threads();
    t.record(1.0, 1.0 / close(t.running()));
  }
  EXPECT_EQ(t.threads(), 2);
  // Probes every 4,096 units once settled, each a warm-up and a window (32 units): under 1%.
  EXPECT_LT(probe_units, 200) << probe_units << " of 20,000 units ran at the probed count";
}

TEST(ThreadTuner, HillClimbsOnMoreCores) {
  ThreadTuner t(8);
  const auto six_free = [](int n) { return n <= 6 ? n : 6.0 / (1 + (n - 6)); };  // two cores taken
  drive(t, 40000, six_free);
  EXPECT_EQ(t.threads(), 6);
}

TEST(ThreadTuner, FusedStepGivesTheSameNumbersOnAnyThreadCount) {
  // Bitwise: the parameters after three steps and Adam updates on 1 and on 2 threads.
  const int threads = at::get_num_threads();
  std::vector<std::vector<at::Tensor>> after;
  for (int n : {1, 2}) {
    at::set_num_threads(n);
    at::manual_seed(3);
    Vae m = make_vae(ModelConfig::from_text_or_file(R"({"type": "mlp_vae", "hidden": [200, 96], "latent": 7})"), {150});
    auto step = make_fused_mlp_step(*m);
    ASSERT_TRUE(step->thread_invariant());
    Adam adam(named_parameters(*m), {});
    for (int i = 0; i < 3; ++i) {
      step->run(at::bernoulli(at::full({130, 150}, 0.3)), at::randn({130, 7}), 1.0);
      adam.step();
    }
    after.emplace_back();
    for (auto& [name, p] : named_parameters(*m)) after.back().push_back(p.clone());
  }
  at::set_num_threads(threads);
  for (size_t i = 0; i < after[0].size(); ++i) EXPECT_TRUE(after[0][i].equal(after[1][i])) << "parameter " << i;
}

TEST(Gemm, SameResultOnAnyThreadCountAndMatchesATen) {
  const int threads = at::get_num_threads();
  at::manual_seed(2);
  for (auto [M, N, K] :
       {std::tuple<int64_t, int64_t, int64_t>{128, 400, 784}, {400, 784, 128}, {20, 400, 128}, {7, 9, 5}, {130, 33, 300}}) {
    for (bool ta : {false, true})
      for (bool tb : {false, true}) {
        const at::Tensor a = ta ? at::randn({K, M}) : at::randn({M, K}), b = tb ? at::randn({N, K}) : at::randn({K, N});
        at::Tensor c1 = at::randn({M, N}), c2 = c1.clone();
        const at::Tensor want = c1.to(at::kDouble) + (ta ? a.t() : a).to(at::kDouble).mm((tb ? b.t() : b).to(at::kDouble));
        at::set_num_threads(1);
        cpu::gemm(a, ta, b, tb, c1, /*accumulate=*/true);
        at::set_num_threads(2);
        cpu::gemm(a, ta, b, tb, c2, /*accumulate=*/true);
        EXPECT_TRUE(c1.equal(c2)) << M << "x" << N << "x" << K << " " << ta << tb;
        // float32 sums of K products of N(0, 1) values: within 1e-4 sqrt(K) of float64.
        EXPECT_LT((c1.to(at::kDouble) - want).abs().max().item<double>(), 1e-4 * std::sqrt(double(K))) << M << "x" << N;
      }
  }
  at::set_num_threads(threads);
}

}  // namespace
}  // namespace latent
