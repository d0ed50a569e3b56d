#include "cpu/kernels.h"

#include <algorithm>
#include <cmath>

#include "cpu/build_config.h"
#include "cpu/softplus_table.h"

namespace latent::cpu {

const Kernels* portable_kernels();
#if LATENT_CPU_X86
const Kernels* avx2_kernels();
const Kernels* avx512_kernels();
#endif

std::vector<const Kernels*> variants() {
  std::vector<const Kernels*> out{portable_kernels()};
#if LATENT_CPU_X86
  const Isa isa = features().isa;
  if (isa >= Isa::kAvx2) out.push_back(avx2_kernels());
  if (isa >= Isa::kAvx512) out.push_back(avx512_kernels());
#endif
  return out;
}

const Kernels& kernels() {
  static const Kernels* chosen = variants().back();
  return *chosen;
}

const SoftplusTable& softplus_table() {
  static const SoftplusTable table = [] {
    SoftplusTable t;
    constexpr int n = SoftplusTable::kDegree + 1;
    for (int i = 0; i < SoftplusTable::kIntervals; ++i) {
      double v[n][n + 1];  // the Vandermonde system at the Chebyshev nodes of [-0.5, 0.5], augmented
      for (int j = 0; j < n; ++j) {
        const double s = 0.5 * std::cos(M_PI * (j + 0.5) / n), a = i + 0.5 + s;
        double p = 1;
        for (int k = 0; k < n; ++k, p *= s) v[j][k] = p;
        v[j][n] = std::log1p(std::exp(-a));
      }
      for (int col = 0; col < n; ++col) {  // Gauss-Jordan elimination with partial pivoting
        int pivot = col;
        for (int r = col + 1; r < n; ++r)
          if (std::fabs(v[r][col]) > std::fabs(v[pivot][col])) pivot = r;
        for (int k = 0; k <= n; ++k) std::swap(v[col][k], v[pivot][k]);
        for (int r = 0; r < n; ++r)
          if (r != col) {
            const double f = v[r][col] / v[col][col];
            for (int k = col; k <= n; ++k) v[r][k] -= f * v[col][k];
          }
      }
      for (int k = 0; k < n; ++k) t.c[k][i] = static_cast<float>(v[k][n] / v[k][k]);
    }
    return t;
  }();
  return table;
}

float softplus_of_nonnegative(float a) {
  const SoftplusTable& table = softplus_table();
  if (!(a < 32.0f)) return 0.0f;
  const int i = static_cast<int>(std::min(a, 31.5f));
  const float t = a - (static_cast<float>(i) + 0.5f);
  float p = table.c[SoftplusTable::kDegree][i];
  for (int c = SoftplusTable::kDegree - 1; c >= 0; --c) p = p * t + table.c[c][i];
  return p;
}

}  // namespace latent::cpu
