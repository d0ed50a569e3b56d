#include "latent/progress.h"

#include <unistd.h>

#include <cmath>
#include <cstdio>

namespace latent {

ProgressBar::ProgressBar(std::string label, int64_t total, std::string unit, bool enabled)
    : label_(std::move(label)), unit_(std::move(unit)), total_(total), enabled_(enabled), tty_(::isatty(STDERR_FILENO) != 0) {
  start_ = std::chrono::steady_clock::now();
  last_draw_ = start_ - std::chrono::seconds(1);
}

double ProgressBar::elapsed_seconds() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

std::string ProgressBar::format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  const long s = std::lround(seconds);
  char buf[32];
  if (s >= 3600)
    std::snprintf(buf, sizeof(buf), "%ld:%02ld:%02ld", s / 3600, (s / 60) % 60, s % 60);
  else
    std::snprintf(buf, sizeof(buf), "%ld:%02ld", s / 60, s % 60);
  return buf;
}

void ProgressBar::update(int64_t done, const std::string& postfix) {
  if (!enabled_ || !tty_) return;
  const auto now = std::chrono::steady_clock::now();
  if (now - last_draw_ < std::chrono::milliseconds(100)) return;
  last_draw_ = now;
  draw(done, postfix, false);
}

void ProgressBar::finish(const std::string& postfix) {
  if (!enabled_) return;
  draw(total_ > 0 ? total_ : 0, postfix, true);
}

void ProgressBar::draw(int64_t done, const std::string& postfix, bool final) {
  const double elapsed = elapsed_seconds();
  const double rate = elapsed > 0 ? static_cast<double>(done) / elapsed : 0.0;
  std::string bar;
  if (total_ > 0) {
    const int width = 24;
    const double frac = std::min(1.0, static_cast<double>(done) / static_cast<double>(total_));
    const int fill = static_cast<int>(frac * width);
    bar =
        "[" + std::string(fill, '=') + (fill < width ? ">" : "") + std::string(width - fill - (fill < width ? 1 : 0), ' ') + "] ";
    char pct[16];
    std::snprintf(pct, sizeof(pct), "%3d%% ", static_cast<int>(frac * 100));
    bar += pct;
  }
  char rate_text[48];
  if (rate >= 1000)
    std::snprintf(rate_text, sizeof(rate_text), "%.1fk %s/s", rate / 1000, unit_.c_str());
  else
    std::snprintf(rate_text, sizeof(rate_text), "%.1f %s/s", rate, unit_.c_str());
  std::string timing =
      final ? "in " + format_duration(elapsed)
            : "ETA " + (rate > 0 && total_ > 0 ? format_duration(static_cast<double>(total_ - done) / rate) : std::string("?"));
  std::string line = label_ + " " + bar + postfix + (postfix.empty() ? "" : "  ") + rate_text + "  " + timing;
  if (tty_)
    std::fprintf(stderr, "\r\033[K%s%s", line.c_str(), final ? "\n" : "");
  else
    std::fprintf(stderr, "%s\n", line.c_str());
  std::fflush(stderr);
}

}  // namespace latent
