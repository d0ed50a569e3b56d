// Helpers of the unit tests: temporary folders and tensor comparison with a stated tolerance.
#pragma once

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <string>

#include "cpu/features.h"
#include "latent/cpu.h"

namespace latent::test {

/// A fresh folder under the system temp dir, removed with the object.
class TempDir {
 public:
  TempDir() {
    std::random_device rd;
    path_ = std::filesystem::temp_directory_path() / ("latent-test-" + std::to_string(rd()) + std::to_string(rd()));
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  std::string operator/(const std::string& name) const { return (path_ / name).string(); }
  std::string str() const { return path_.string(); }

 private:
  std::filesystem::path path_;
};

inline void write_bytes(const std::string& path, const std::string& bytes) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  std::ofstream(path, std::ios::binary) << bytes;
}

/// |a - b| <= atol + rtol |b| elementwise, with the worst element in the failure message.
inline ::testing::AssertionResult all_close(const at::Tensor& a, const at::Tensor& b, double rtol, double atol) {
  if (a.sizes() != b.sizes()) return ::testing::AssertionFailure() << "shapes differ: " << a.sizes() << " vs " << b.sizes();
  at::Tensor ad = a.to(at::kDouble), bd = b.to(at::kDouble);
  at::Tensor excess = (ad - bd).abs() - (atol + rtol * bd.abs());
  const double worst = excess.numel() ? excess.max().item<double>() : -1;
  if (worst <= 0) return ::testing::AssertionSuccess();
  const int64_t i = excess.reshape(-1).argmax().item<int64_t>();
  return ::testing::AssertionFailure() << "element " << i << ": " << ad.reshape(-1)[i].item<double>() << " vs "
                                       << bd.reshape(-1)[i].item<double>() << " (rtol " << rtol << ", atol " << atol << ")";
}

/// Expects `fn` to throw latent::Error whose message contains `needle`.
#define EXPECT_ERROR_WITH(stmt, needle)                                                            \
  do {                                                                                             \
    try {                                                                                          \
      stmt;                                                                                        \
      ADD_FAILURE() << "expected an error containing '" << (needle) << "'";                        \
    } catch (const latent::Error& e) {                                                             \
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << "message: " << e.what(); \
    }                                                                                              \
  } while (0)

/// Skips the test, naming what is missing, where oneDNN cannot run bfloat16 products on bfloat16
/// instructions here (no AVX512-BF16 or AMX, a cap, or no oneDNN in the build).
#define LATENT_SKIP_WITHOUT_BF16()                                                                                         \
  do {                                                                                                                     \
    if (!latent::cpu::features().bf16)                                                                                     \
      GTEST_SKIP() << "needs bfloat16 dot products (AVX512-BF16 or AMX), which this CPU lacks: " << latent::cpu_summary(); \
  } while (0)

}  // namespace latent::test
