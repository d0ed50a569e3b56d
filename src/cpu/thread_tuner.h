// @brief Chooses, while a loop runs, the thread count that gets through its work fastest.
//
// With another process keeping one of two cores busy, a team of two threads ran latent's training
// 2.4x slower than one thread (11.2k against 27.0k samples/s, AMD EPYC, bench/contention.sh), and
// SD's decode 1.5x slower. The cause: every parallel region (an OpenMP team running a product or a
// band of a convolution, ~0.1-10 ms) ends at a barrier, and the thread that shares its core with the
// other process runs only in the scheduler's time slices of a few milliseconds, so most regions wait
// a slice for it while its partner spins. Fewer threads than cores avoid the wait; no thread count
// is right for every load, and loads change.
//
// The tuner starts with as many threads as cores are free (measured over 100 ms) and times every unit of the loop (training
// steps, convolution bands) and keeps a moving average at the current count; now and then it runs a few at a neighbouring count
// (one fewer, one more, in turn). A probe far behind or ahead (1.4x) is decided after 4 timed units, so that probing costs little
// and the first move under load comes soon; otherwise it moves when the neighbour got through more work per second by a tenth
// than the mean of the current count's rates before and after the probe (so that a change of load during the probe does not
// decide alone). It probes every 128 units after a move and twice as rarely after each probe that confirms the count, up to every
// 4,096 (measured cost: bench/contention.sh). Only
// loops whose results do not depend on the thread count use it (cpu::gemm, latent's kernels, the
// SD convolutions), so the numbers never depend on the load.
#pragma once

#include <chrono>
#include <cstdint>

namespace latent::cpu {

/// How the tuner probes, in units of the loop. The defaults suit units of a few milliseconds
/// (training steps); long units (convolution bands) probe with fewer.
struct TunerSettings {
  int64_t warmup = 4;           // units after a change of count that are not timed (caches, a new team)
  int64_t early = 4;            // timed units after which a probe far behind or ahead is decided
  double far = 1.4;             // ... "far": this much slower or faster than the current count
  int64_t window = 28;          // timed units of a probe, and of the window after it, otherwise
  int64_t first_probe = 128;    // units before the first probe
  int64_t min_interval = 128;   // units between probes after a move
  int64_t max_interval = 4096;  // ... at most, while probes confirm the count
  double margin = 1.1;          // a neighbour must be this much faster to win
};

class ThreadTuner {
 public:
  /// Tunes between 1 and `max_threads` threads, starting at max_threads less the cores that other
  /// processes kept busy over 100 ms (/proc/stat; it waits that long).
  explicit ThreadTuner(int max_threads, const TunerSettings& settings = TunerSettings{});
  /// Restores max_threads (at::set_num_threads).
  ~ThreadTuner();
  ThreadTuner(const ThreadTuner&) = delete;
  ThreadTuner& operator=(const ThreadTuner&) = delete;

  /// Before a unit of work: sets the thread count it runs with.
  void begin();
  /// After it: `work` done in it (samples, pixels; any measure proportional to its cost).
  void end(double work);
  /// What end() does with the unit's time: tests give it times of their own.
  void record(double work, double seconds);

  int threads() const { return current_; }
  int max_threads() const { return max_; }
  /// The count the last unit ran with (the current one, or a neighbour being probed).
  int running() const { return running_; }
  /// Moves made so far (for tests and benchmarks).
  int64_t moves() const { return moves_; }

 private:
  enum class Phase { kRun, kProbe, kAfter };
  void set(int threads);
  void decide(bool move);  // ends a probe: moves to its count, or stays and probes later

  const int max_;
  const TunerSettings s_;
  int current_, running_;
  Phase phase_ = Phase::kRun;
  int64_t since_switch_ = 0, timed_ = 0, until_probe_, interval_, moves_ = 0;
  int direction_ = -1;           // the next probe's neighbour: -1 one fewer, +1 one more
  double seconds_per_work_ = 0;  // at the current count: the mean of its first timed units, then a moving average
  int64_t run_timed_ = 0;        // timed units in that average
  double work_ = 0, seconds_ = 0, rate_probe_ = 0;  // the probe's or the window's sums
  std::chrono::steady_clock::time_point start_;
};

}  // namespace latent::cpu
