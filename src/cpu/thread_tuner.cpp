#include "cpu/thread_tuner.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <thread>

namespace latent::cpu {
namespace {

// Jiffies the whole machine spent busy (everything but idle and iowait, guests counted in user), and
// this process's own (user + system), from /proc; {-1, -1} where /proc cannot tell.
struct Busy {
  double machine = -1, self = -1;
};
Busy busy_now() {
  Busy b;
  if (FILE* f = std::fopen("/proc/stat", "r")) {
    unsigned long long v[10] = {};
    if (std::fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6],
                    &v[7], &v[8], &v[9]) >= 8)
      b.machine = static_cast<double>(v[0] + v[1] + v[2] + v[5] + v[6] + v[7]);
    std::fclose(f);
  }
  if (FILE* f = std::fopen("/proc/self/stat", "r")) {
    // Fields 14 and 15 (utime, stime) come after the command name, which may hold spaces: start after its ')'.
    char line[1024] = {};
    if (std::fgets(line, sizeof line, f)) {
      const char* p = std::strrchr(line, ')');
      unsigned long long utime = 0, stime = 0;
      if (p && std::sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &utime, &stime) == 2)
        b.self = static_cast<double>(utime + stime);
    }
    std::fclose(f);
  }
  return b;
}

// The cores other processes keep busy, measured over 100 ms (0 where /proc cannot tell): where a core
// is taken, the tuner starts with one thread fewer instead of learning it over its first probes.
int cores_taken() {
  const Busy a = busy_now();
  if (a.machine < 0 || a.self < 0) return 0;
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  const Busy b = busy_now();
  const double hz = 100.0;  // USER_HZ: the unit of /proc/stat's counters on Linux
  const double others = ((b.machine - a.machine) - (b.self - a.self)) / (hz * 0.1);  // cores' worth
  return std::max(0, static_cast<int>(std::lround(others)));
}

}  // namespace

ThreadTuner::ThreadTuner(int max_threads, const TunerSettings& settings)
    : max_(std::max(1, max_threads)),
      s_(settings),
      current_(max_),
      running_(max_),
      until_probe_(settings.first_probe),
      interval_(settings.min_interval) {
  if (max_ > 1) current_ = running_ = std::clamp(max_ - cores_taken(), 1, max_);
  at::set_num_threads(running_);
}

ThreadTuner::~ThreadTuner() { at::set_num_threads(max_); }

void ThreadTuner::set(int threads) {
  if (threads != running_) since_switch_ = 0;
  running_ = threads;
  if (at::get_num_threads() != threads) at::set_num_threads(threads);
}

void ThreadTuner::begin() {
  set(running_);  // (the loop may have run other work at another count in between)
  start_ = std::chrono::steady_clock::now();
}

void ThreadTuner::end(double work) {
  record(work, std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count());
}

void ThreadTuner::record(double work, double seconds) {
  const bool timed = since_switch_++ >= s_.warmup && work > 0;
  switch (phase_) {
    case Phase::kRun:
      if (timed) {
        ++run_timed_;
        const double spw = seconds / work, weight = 1.0 / static_cast<double>(std::min<int64_t>(run_timed_, s_.window));
        seconds_per_work_ += weight * (spw - seconds_per_work_);
      }
      if (max_ > 1 && --until_probe_ <= 0 && run_timed_ >= s_.early) {
        if (current_ + direction_ < 1 || current_ + direction_ > max_) direction_ = -direction_;
        phase_ = Phase::kProbe;
        timed_ = 0;
        work_ = seconds_ = 0;
        set(current_ + direction_);
      }
      return;
    case Phase::kProbe:
    case Phase::kAfter:
      if (!timed) return;
      ++timed_;
      work_ += work;
      seconds_ += seconds;
      break;
  }
  const double rate = work_ / std::max(seconds_, 1e-12), current_rate = 1.0 / std::max(seconds_per_work_, 1e-12);
  if (phase_ == Phase::kProbe) {
    if (timed_ == s_.early && (rate * s_.far < current_rate || rate > s_.far * current_rate)) return decide(rate > current_rate);
    if (timed_ < s_.window) return;
    rate_probe_ = rate;
    phase_ = Phase::kAfter;
    timed_ = 0;
    work_ = seconds_ = 0;
    set(current_);
    return;
  }
  if (timed_ < s_.window) return;
  decide(rate_probe_ > s_.margin * 0.5 * (current_rate + rate));
}

void ThreadTuner::decide(bool move) {
  if (move) {
    current_ += direction_;
    ++moves_;
    interval_ = s_.min_interval;
    run_timed_ = 0;  // a new count: a new average
    seconds_per_work_ = 0;
  } else {
    interval_ = std::min(2 * interval_, s_.max_interval);
    direction_ = -direction_;
  }
  set(current_);
  until_probe_ = interval_;
  phase_ = Phase::kRun;
}

}  // namespace latent::cpu
