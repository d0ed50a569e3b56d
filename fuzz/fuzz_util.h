// What every fuzz target shares: the input as a file where the reader takes a path (in a RAM-backed
// folder, one per process), and the rule that a reader may refuse an input only with latent::Error.
#pragma once

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <string>

namespace latent::fuzz {

/// Writes the input to a file of this process and returns its path (`suffix`: the extension the
/// reader goes by).
inline std::string as_file(const uint8_t* data, size_t size, const std::string& suffix) {
  static const std::string dir = [] {
    const char* shm = "/dev/shm";
    return std::string(access(shm, W_OK) == 0 ? shm : "/tmp");
  }();
  const std::string path = dir + "/latent-fuzz-" + std::to_string(getpid()) + suffix;
  FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) __builtin_trap();
  if (size > 0 && std::fwrite(data, 1, size, f) != size) __builtin_trap();
  std::fclose(f);
  return path;
}

}  // namespace latent::fuzz
