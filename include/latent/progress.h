/// @brief A terminal progress bar with rate and ETA.
///
/// On a terminal it redraws one line (at most 10 times a second); when stderr is not a terminal
/// (logs, CI) it prints one line when the work finishes, so logs stay readable.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace latent {

class ProgressBar {
 public:
  /// `unit` names what is counted ("samples"); total <= 0 means unknown.
  ProgressBar(std::string label, int64_t total, std::string unit, bool enabled = true);
  void update(int64_t done, const std::string& postfix = "");
  void finish(const std::string& postfix = "");
  double elapsed_seconds() const;

  /// "1:05" / "2:03:10"
  static std::string format_duration(double seconds);

 private:
  void draw(int64_t done, const std::string& postfix, bool final);

  std::string label_, unit_;
  int64_t total_;
  bool enabled_, tty_;
  std::chrono::steady_clock::time_point start_, last_draw_;
};

}  // namespace latent
