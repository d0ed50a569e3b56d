// log(1 + exp(-a)) for a >= 0 as a degree-7 polynomial in t = a - (i + 0.5) on each interval
// [i, i + 1), i < 32 (Chebyshev interpolation, fitted in double on first use); 0 from a = 32 on,
// where the function is below 1.3e-14. 32 intervals make one two-register lookup per coefficient
// in the AVX-512 likelihood (kernels_avx512.cpp).
#pragma once

namespace latent::cpu {

struct SoftplusTable {
  static constexpr int kDegree = 7, kIntervals = 32;
  alignas(64) float c[kDegree + 1][kIntervals];  // c[k][i]: the coefficient of t^k on interval i
};

const SoftplusTable& softplus_table();

}  // namespace latent::cpu
