#include "train/fused_kernels.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <type_traits>

#if defined(__SSE__)
#include <xmmintrin.h>
#endif
#if defined(__x86_64__)
#include <immintrin.h>
#endif

#define LATENT_VECTORIZED __attribute__((target_clones("arch=x86-64-v4", "avx2", "default")))

namespace latent::kernels {
namespace {

constexpr float kLog2Pi = 1.8378770664093453f;

// exp(x), x <= 0: x = n ln2 + r with n = round(x log2 e); r = x - n ln2 in two parts (Cody-Waite,
// so r keeps full precision for large |x|), |r| <= ln2 / 2; exp(r) by its Taylor series to degree
// 7 (truncation < 2e-8); 2^n built in the exponent bits.
inline float exp_np(float x) {
  x = std::max(x, -87.0f);
  const float n = std::floor(x * 1.4426950408889634f + 0.5f);
  const float r = (x - n * 0.693359375f) + n * 2.12194440e-4f;
  float p = 1.0f / 5040;
  p = p * r + 1.0f / 720;
  p = p * r + 1.0f / 120;
  p = p * r + 1.0f / 24;
  p = p * r + 1.0f / 6;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof(scale));
  return p * scale;
}

// log(1 + e), e in [0, 1]: a degree-9 polynomial (Chebyshev fit, tests/unit/test_fused_mlp.cpp
// checks it), absolute error ~1e-7 in float32 and no division.
inline float log1p_u(float e) {
  float p = 0.003752624150365591f;
  p = p * e - 0.02303827926516533f;
  p = p * e + 0.06651248037815094f;
  p = p * e - 0.12526661157608032f;
  p = p * e + 0.1846884787082672f;
  p = p * e - 0.24635660648345947f;
  p = p * e + 0.3328184187412262f;
  p = p * e - 0.4999622404575348f;
  p = p * e + 0.999998927116394f;
  return p * e + 5.239402689483086e-09f;
}

// Sum of n floats in 8 lanes, then in double: vectorizable and independent of threads.
inline double lane_sum(const float* v, int64_t n) {
  float lanes[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t k = 0;
  for (; k + 8 <= n; k += 8)
    for (int j = 0; j < 8; ++j) lanes[j] += v[k + j];
  double s = 0;
  for (; k < n; ++k) s += v[k];
  for (float l : lanes) s += l;
  return s;
}

LATENT_VECTORIZED void bernoulli_row(const float* __restrict l, const float* __restrict x, float* __restrict g,
                                     float* __restrict r, int64_t D, float scale) {
  for (int64_t k = 0; k < D; ++k) {
    const float lk = l[k];
    const float e = exp_np(-std::fabs(lk));
    r[k] = std::max(lk, 0.0f) + log1p_u(e) - x[k] * lk;
    const float q = 1.0f / (1.0f + e);  // sigmoid(|l|)
    g[k] = (0.5f + std::copysign(q - 0.5f, lk) - x[k]) * scale;
  }
}

// sum_k x_k l_k - softplus(l_k), in 16 float lanes (one 512-bit register) and then in double.
LATENT_VECTORIZED double bernoulli_log_prob_row(const float* __restrict l, const float* __restrict x, int64_t D) {
  float lanes[16] = {};
  int64_t k = 0;
  for (; k + 16 <= D; k += 16)
    for (int j = 0; j < 16; ++j) {
      const float lk = l[k + j];
      lanes[j] += x[k + j] * lk - (std::max(lk, 0.0f) + log1p_u(exp_np(-std::fabs(lk))));
    }
  double s = 0;
  for (; k < D; ++k) s += x[k] * l[k] - (std::max(l[k], 0.0f) + log1p_u(exp_np(-std::fabs(l[k]))));
  for (float v : lanes) s += v;
  return s;
}

LATENT_VECTORIZED void gaussian_row(const float* __restrict m, const float* __restrict x, const float* __restrict lv,
                                    const float* __restrict inv_var, float* __restrict g, float* __restrict glv,
                                    float* __restrict r, int64_t D, float scale) {
  for (int64_t k = 0; k < D; ++k) {
    const float diff = m[k] - x[k];
    const float sq = diff * diff * inv_var[k];
    r[k] = 0.5f * (kLog2Pi + lv[k] + sq);
    g[k] = diff * inv_var[k] * scale;
    if (glv) glv[k] = 0.5f * (1.0f - sq) * scale;
  }
}

}  // namespace

float exp_nonpositive(float x) { return exp_np(x); }
float log1p_unit(float e) { return log1p_u(e); }

void bernoulli_nll_grad(const float* logits, const float* x, float* grad, double* nll, float* scratch, int64_t r0, int64_t r1,
                        int64_t D, float scale) {
  for (int64_t r = r0; r < r1; ++r) {
    bernoulli_row(logits + r * D, x + r * D, grad + r * D, scratch, D, scale);
    nll[r] = lane_sum(scratch, D);
  }
}

namespace {

// log(1 + exp(-a)) for a >= 0 as a degree-7 polynomial in t = a - (i + 0.5) on each interval
// [i, i + 1), i < 32 (Chebyshev interpolation, fitted in double at start-up); 0 from a = 32 on,
// where the function is below 1.3e-14. 32 intervals make one two-register lookup per coefficient.
struct SoftplusTable {
  static constexpr int kDegree = 7, kIntervals = 32;
  alignas(64) float c[kDegree + 1][kIntervals];  // c[k][i]: the coefficient of t^k on interval i

  SoftplusTable() {
    constexpr int n = kDegree + 1;
    for (int i = 0; i < kIntervals; ++i) {
      double v[n][n + 1];  // the Vandermonde system at the Chebyshev nodes of [-0.5, 0.5], augmented
      for (int j = 0; j < n; ++j) {
        const double t = 0.5 * std::cos(M_PI * (j + 0.5) / n), a = i + 0.5 + t;
        double p = 1;
        for (int k = 0; k < n; ++k, p *= t) v[j][k] = p;
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
      for (int k = 0; k < n; ++k) c[k][i] = static_cast<float>(v[k][n] / v[k][k]);
    }
  }
};

const SoftplusTable& softplus_table() {
  static const SoftplusTable table;
  return table;
}

#if defined(__x86_64__)
// bernoulli_log_prob_row on the table: 8 lookups and 7 FMAs per 16 logits in place of the exp and
// log1p polynomials.
__attribute__((target("avx512f"))) double bernoulli_log_prob_row_avx512(const float* l, const float* x, int64_t D) {
  const SoftplusTable& table = softplus_table();
  __m512 lo[SoftplusTable::kDegree + 1], hi[SoftplusTable::kDegree + 1];
  for (int k = 0; k <= SoftplusTable::kDegree; ++k) {
    lo[k] = _mm512_load_ps(table.c[k]);
    hi[k] = _mm512_load_ps(table.c[k] + 16);
  }
  const __m512 zero = _mm512_setzero_ps(), half = _mm512_set1_ps(0.5f), top = _mm512_set1_ps(32.0f);
  __m512 acc = zero;
  for (int64_t k = 0; k < D; k += 16) {
    const __mmask16 m = D - k >= 16 ? static_cast<__mmask16>(0xffff) : static_cast<__mmask16>((1u << (D - k)) - 1);
    const __m512 lk = _mm512_maskz_loadu_ps(m, l + k), xk = _mm512_maskz_loadu_ps(m, x + k);
    const __m512 a = _mm512_abs_ps(lk);
    const __mmask16 inside = _mm512_cmp_ps_mask(a, top, _CMP_LT_OQ);
    // (the zero-masked forms: GCC 12 warns about the unmasked ones' undefined pass-through operand)
    const __m512i idx = _mm512_maskz_cvttps_epi32(0xffff, _mm512_maskz_min_ps(0xffff, a, _mm512_set1_ps(31.5f)));
    const __m512 t = _mm512_sub_ps(a, _mm512_add_ps(_mm512_maskz_cvtepi32_ps(0xffff, idx), half));
    __m512 p = _mm512_permutex2var_ps(lo[SoftplusTable::kDegree], idx, hi[SoftplusTable::kDegree]);
    for (int c = SoftplusTable::kDegree - 1; c >= 0; --c) p = _mm512_fmadd_ps(p, t, _mm512_permutex2var_ps(lo[c], idx, hi[c]));
    const __m512 softplus = _mm512_add_ps(_mm512_maskz_max_ps(0xffff, lk, zero), _mm512_maskz_mov_ps(inside, p));
    acc = _mm512_add_ps(acc, _mm512_maskz_mov_ps(m, _mm512_fmsub_ps(xk, lk, softplus)));
  }
  alignas(64) float lanes[16];
  _mm512_store_ps(lanes, acc);
  double s = 0;
  for (float v : lanes) s += v;
  return s;
}
#endif

}  // namespace

float softplus_of_nonnegative(float a) {
  const SoftplusTable& table = softplus_table();
  if (!(a < 32.0f)) return 0.0f;
  const int i = static_cast<int>(std::min(a, 31.5f));
  const float t = a - (static_cast<float>(i) + 0.5f);
  float p = table.c[SoftplusTable::kDegree][i];
  for (int c = SoftplusTable::kDegree - 1; c >= 0; --c) p = p * t + table.c[c][i];
  return p;
}

void bernoulli_log_prob_rows(const float* logits, const float* const* x_rows, double* out, int64_t r0, int64_t r1, int64_t D) {
#if defined(__x86_64__)
  static const bool avx512 = __builtin_cpu_supports("avx512f");
  if (avx512) {
    for (int64_t r = r0; r < r1; ++r) out[r] = bernoulli_log_prob_row_avx512(logits + r * D, x_rows[r], D);
    return;
  }
#endif
  for (int64_t r = r0; r < r1; ++r) {
    out[r] = bernoulli_log_prob_row(logits + r * D, x_rows[r], D);
  }
}

void gaussian_nll_grad(const float* mean, const float* x, const float* logvar, float* grad_mean, float* grad_logvar_rows,
                       double* nll, float* scratch, int64_t r0, int64_t r1, int64_t D, float scale) {
  float* inv_var = scratch + D;
  for (int64_t k = 0; k < D; ++k) inv_var[k] = std::exp(-logvar[k]);
  for (int64_t r = r0; r < r1; ++r) {
    gaussian_row(mean + r * D, x + r * D, logvar, inv_var, grad_mean + r * D,
                 grad_logvar_rows ? grad_logvar_rows + r * D : nullptr, scratch, D, scale);
    nll[r] = lane_sum(scratch, D);
  }
}

void reparam_forward(const float* mu, const float* lv, const float* eps, float* z, float* sigma, double* kl, int64_t r0,
                     int64_t r1, int64_t d) {
  for (int64_t r = r0; r < r1; ++r) {
    double s = 0;
    for (int64_t k = r * d; k < (r + 1) * d; ++k) {
      const float var = std::exp(lv[k]);
      sigma[k] = std::sqrt(var);
      z[k] = mu[k] + sigma[k] * eps[k];
      s += 0.5 * (static_cast<double>(mu[k]) * mu[k] + var - 1.0 - lv[k]);
    }
    kl[r] = s;
  }
}

void reparam_backward(const float* dz, const float* mu, const float* eps, const float* sigma, float* dmu, float* dlv, int64_t n,
                      float kl_scale) {
  for (int64_t k = 0; k < n; ++k) {
    dmu[k] = dz[k] + kl_scale * mu[k];
    dlv[k] = 0.5f * dz[k] * eps[k] * sigma[k] + 0.5f * kl_scale * (sigma[k] * sigma[k] - 1.0f);
  }
}

LATENT_VECTORIZED void relu_backward(float* __restrict dg, const float* __restrict h, int64_t n) {
  for (int64_t k = 0; k < n; ++k) dg[k] = h[k] > 0.0f ? dg[k] : 0.0f;
}

}  // namespace latent::kernels

namespace latent::kernels {

namespace {

LATENT_VECTORIZED void adam_loop(float* __restrict p, const float* __restrict g, float* __restrict m, float* __restrict v,
                                 int64_t n, float b1, float b2, float step_size, float inv_sqrt_bias2, float eps) {
  for (int64_t k = 0; k < n; ++k) {
    const float gk = g[k];
    const float mk = b1 * m[k] + (1.0f - b1) * gk;
    const float vk = b2 * v[k] + (1.0f - b2) * gk * gk;
    m[k] = mk;
    v[k] = vk;
    p[k] -= step_size * mk / (std::sqrt(vk) * inv_sqrt_bias2 + eps);
  }
}

}  // namespace

// Denormals are flushed to zero during the update (FTZ/DAZ in this thread's MXCSR, restored after).
// The moments of a parameter whose gradient is exactly zero (a dead ReLU unit) decay by 0.9 and
// 0.999 per step into the denormal range, where m sticks at the smallest denormal (0.9 of it rounds
// back to it); denormal arithmetic then made each update ~7x slower after ~800 steps of
// Fashion-MNIST training. Flushed values are below 1.2e-38, so the update changes by < 1e-30.
void adam_update(float* p, const float* g, float* m, float* v, int64_t n, float b1, float b2, float step_size,
                 float inv_sqrt_bias2, float eps) {
#if defined(__SSE__)
  const unsigned int csr = _mm_getcsr();
  _mm_setcsr(csr | 0x8040);  // FTZ | DAZ
  adam_loop(p, g, m, v, n, b1, b2, step_size, inv_sqrt_bias2, eps);
  _mm_setcsr(csr);
#else
  adam_loop(p, g, m, v, n, b1, b2, step_size, inv_sqrt_bias2, eps);
#endif
}

LATENT_VECTORIZED void add_into(float* __restrict dst, const float* __restrict src, int64_t n) {
  for (int64_t k = 0; k < n; ++k) dst[k] += src[k];
}

}  // namespace latent::kernels

namespace latent::kernels {

LATENT_VECTORIZED void bias_act(float* __restrict c, const float* __restrict bias, int64_t rows, int64_t cols, bool relu) {
  for (int64_t r = 0; r < rows; ++r) {
    float* row = c + r * cols;
    if (relu)
      for (int64_t k = 0; k < cols; ++k) row[k] = std::max(row[k] + bias[k], 0.0f);
    else
      for (int64_t k = 0; k < cols; ++k) row[k] += bias[k];
  }
}

}  // namespace latent::kernels

namespace latent::kernels {

namespace {
inline uint8_t u8_of(float x) {
  float v = x * 255.0f;
  v = v > 0.0f ? v : 0.0f;  // NaN compares false: 0
  v = v < 255.0f ? v : 255.0f;
  return static_cast<uint8_t>(static_cast<int32_t>(v + 0.5f));
}
}  // namespace

LATENT_VECTORIZED void to_u8(const float* __restrict x, int64_t n, uint8_t* __restrict out) {
  for (int64_t i = 0; i < n; ++i) out[i] = u8_of(x[i]);
}

LATENT_VECTORIZED void sigmoid_to_u8(const float* __restrict logits, int64_t n, uint8_t* __restrict out) {
  for (int64_t i = 0; i < n; ++i) {
    const float l = logits[i];
    // Beyond |l| = 80 the pixel is 0 or 255 either way, and exp(-87) would make a subnormal
    // (each one a microcode assist: a sharp decoder's background is full of such logits).
    const float e = exp_np(std::max(-std::fabs(l), -80.0f));
    const float q = 1.0f / (1.0f + e);  // sigmoid(|l|)
    out[i] = u8_of(l >= 0.0f ? q : 1.0f - q);
  }
}

}  // namespace latent::kernels

namespace latent::kernels {

LATENT_VECTORIZED void block16_moments(const float* __restrict x, int64_t pixels, double* __restrict sum,
                                       double* __restrict sumsq) {
  for (int64_t p0 = 0; p0 < pixels; p0 += 64) {
    float s[16] = {}, q[16] = {};
    const int64_t p1 = std::min<int64_t>(pixels, p0 + 64);
    for (int64_t p = p0; p < p1; ++p)
      for (int l = 0; l < 16; ++l) {
        const float v = x[p * 16 + l];
        s[l] += v;
        q[l] += v * v;
      }
    for (int l = 0; l < 16; ++l) {
      sum[l] += s[l];
      sumsq[l] += q[l];
    }
  }
}

namespace {
// SiLU(v) = v sigmoid(v), with e = exp(-|v|) (never overflows) and the clamp keeping e normal.
inline float silu(float v) {
  const float e = exp_np(std::max(-std::fabs(v), -80.0f));
  const float q = 1.0f / (1.0f + e);
  return v * (v >= 0.0f ? q : 1.0f - q);
}
inline uint16_t bf16_of(float v) {  // round to nearest even (finite values)
  uint32_t u;
  std::memcpy(&u, &v, 4);
  return static_cast<uint16_t>((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}
}  // namespace

namespace {
// One row of block16_fill, with its choices fixed so each variant vectorizes on its own.
template <bool kAffine, bool kTwice, typename Out>
__attribute__((always_inline)) inline void fill_row(const float* __restrict x, int64_t pixels, const float* __restrict a,
                                                    const float* __restrict b, Out* __restrict y) {
  for (int64_t p = 0; p < pixels; ++p)
    for (int l = 0; l < 16; ++l) {
      const float v = kAffine ? silu(x[p * 16 + l] * a[l] + b[l]) : x[p * 16 + l];
      Out o;
      if constexpr (std::is_same_v<Out, uint16_t>)
        o = bf16_of(v);
      else
        o = v;
      if (kTwice) {
        y[p * 32 + l] = o;
        y[p * 32 + 16 + l] = o;
      } else {
        y[p * 16 + l] = o;
      }
    }
}
template <typename Out>
__attribute__((always_inline)) inline void fill_any(const float* x, int64_t pixels, const float* a, const float* b, bool twice,
                                                    Out* y) {
  if (a)
    twice ? fill_row<true, true>(x, pixels, a, b, y) : fill_row<true, false>(x, pixels, a, b, y);
  else
    twice ? fill_row<false, true>(x, pixels, a, b, y) : fill_row<false, false>(x, pixels, a, b, y);
}
}  // namespace

LATENT_VECTORIZED void block16_fill(const float* x, int64_t pixels, const float* a, const float* b, bool twice, float* y,
                                    uint16_t* y_bf16) {
  if (y_bf16)
    fill_any(x, pixels, a, b, twice, y_bf16);
  else
    fill_any(x, pixels, a, b, twice, y);
}

LATENT_VECTORIZED void split_bf16x3(const float* x, int64_t rows, int64_t stride, const int32_t* cols, int64_t width,
                                    int64_t padded, uint16_t* hi, uint16_t* lo) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* __restrict xr = x + r * stride;
    uint16_t* __restrict h = hi + r * padded;
    uint16_t* __restrict l = lo + r * padded;
    for (int64_t i = 0; i < width; ++i) {
      const float v = cols ? xr[cols[i]] : xr[i];
      const uint16_t top = bf16_of(v);
      const uint32_t top_bits = static_cast<uint32_t>(top) << 16;
      float top_value;
      std::memcpy(&top_value, &top_bits, 4);
      h[i] = top;
      l[i] = bf16_of(v - top_value);
    }
    std::fill(h + width, h + padded, uint16_t{0});
    std::fill(l + width, l + padded, uint16_t{0});
  }
}

LATENT_VECTORIZED void gather_columns(const float* x, int64_t rows, int64_t stride, const int32_t* cols, int64_t width,
                                      int64_t padded, float* out) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* __restrict xr = x + r * stride;
    float* __restrict o = out + r * padded;
    for (int64_t i = 0; i < width; ++i) o[i] = xr[cols[i]];
    std::fill(o + width, o + padded, 0.0f);
  }
}

LATENT_VECTORIZED void mark_positive(const float* x, int64_t rows, int64_t cols, uint8_t* used) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* __restrict xr = x + r * cols;
    uint8_t* __restrict u = used;
    for (int64_t i = 0; i < cols; ++i) u[i] |= xr[i] > 0.0f;
  }
}

LATENT_VECTORIZED void to_bf16(const float* x, int64_t n, uint16_t* out) {
  for (int64_t i = 0; i < n; ++i) out[i] = bf16_of(x[i]);
}

}  // namespace latent::kernels
