// The AVX-512 variant (F, BW, DQ, VL): the generic loops compiled for 512-bit vectors, and
// hand-written kernels where those were slower: the likelihood's softplus from a table, the split
// ReLU decoder's register-tiled product, its column packing and sign marking, and the blocked
// activations' copy with streaming stores. Built only on x86-64; nothing here runs unless
// features() says the CPU (as capped) has AVX-512.
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#include "cpu/kernels.h"
#include "cpu/softplus_table.h"

// Every function from here on is compiled for AVX-512; the headers above keep the default target,
// so no inline function they define is emitted with AVX-512 instructions for other files to pick up.
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx2,fma,f16c"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512dq,avx512vl,avx2,fma,f16c")
#endif

namespace latent::cpu::avx512 {

#include "cpu/kernels_generic.inc"
// (kTileRows, 8, comes from there: one AVX-512 register tile is 8 rows)

// bernoulli_log_prob_row on the softplus table: 8 lookups and 7 FMAs per 16 logits in place of the
// exp and log1p polynomials.
double log_prob_row_table(const float* l, const float* x, int64_t D) {
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

void log_prob_rows_table(const float* logits, const float* const* x_rows, double* out, int64_t r0, int64_t r1, int64_t D) {
  for (int64_t r = r0; r < r1; ++r) out[r] = log_prob_row_table(logits + r * D, x_rows[r], D);
}

// One register tile: c[8, 16 Z] = init + sum_k a[k][0..8) (outer) b[k][off, off + 16 Z), ReLU'd when
// `relu`, with the tile's last 16 columns under `mask` (columns past it are neither read nor
// written). Z = 3 keeps 24 accumulators and 3 B vectors in the 32 registers: per k, 3 loads and 8
// broadcasts feed 24 multiply-adds (two per cycle).
template <int Z>
inline void tile(const float* __restrict a, const float* const* __restrict b, int64_t K, int64_t off, __mmask16 mask,
                 const float* __restrict init, bool relu, float* __restrict c, int64_t ldc) {
  __m512 acc[kTileRows][Z];
#pragma GCC unroll 4
  for (int z = 0; z < Z; ++z) {
    const __m512 v = init ? _mm512_maskz_loadu_ps(z + 1 == Z ? mask : 0xffff, init + off + 16 * z) : _mm512_setzero_ps();
#pragma GCC unroll 8
    for (int r = 0; r < kTileRows; ++r) acc[r][z] = v;
  }
  for (int64_t k = 0; k < K; ++k) {
    const float* bk = b[k] + off;
    __m512 bv[Z];
#pragma GCC unroll 4
    for (int z = 0; z < Z; ++z) bv[z] = _mm512_maskz_loadu_ps(z + 1 == Z ? mask : 0xffff, bk + 16 * z);
    const float* ak = a + kTileRows * k;
#pragma GCC unroll 8
    for (int r = 0; r < kTileRows; ++r) {
      const __m512 av = _mm512_set1_ps(ak[r]);
#pragma GCC unroll 4
      for (int z = 0; z < Z; ++z) acc[r][z] = _mm512_fmadd_ps(av, bv[z], acc[r][z]);
    }
  }
  const __m512 zero = _mm512_setzero_ps();
#pragma GCC unroll 8
  for (int r = 0; r < kTileRows; ++r)
#pragma GCC unroll 4
    for (int z = 0; z < Z; ++z)
      _mm512_mask_storeu_ps(c + r * ldc + off + 16 * z, z + 1 == Z ? mask : 0xffff,
                            relu ? _mm512_maskz_max_ps(0xffff, zero, acc[r][z]) : acc[r][z]);
}

// Column panels of 48 outside, row tiles inside, so each panel of B (K x 48 floats) is read from L1
// by every tile after the first.
void tile_gemm_512(const float* a, int64_t rows, int64_t K, int64_t N, const float* const* b, const float* init, bool relu,
                   float* c, int64_t ldc) {
  constexpr int64_t kPanel = 48;
  const int64_t tiles = rows / kTileRows;
  for (int64_t col = 0; col < N; col += kPanel) {
    if (N - col >= kPanel) {
      for (int64_t i = 0; i < tiles; ++i)
        tile<3>(a + i * K * kTileRows, b, K, col, 0xffff, init, relu, c + i * kTileRows * ldc, ldc);
      continue;
    }
    for (int64_t off = col; off < N; off += 16) {
      const __mmask16 mask = N - off >= 16 ? 0xffff : static_cast<__mmask16>((1u << (N - off)) - 1);
      for (int64_t i = 0; i < tiles; ++i)
        tile<1>(a + i * K * kTileRows, b, K, off, mask, init, relu, c + i * kTileRows * ldc, ldc);
    }
  }
}

// (max(0, v) with v second: x86's max returns its second operand when either is NaN, so a NaN
// passes on, as it does through ReLU in the dense decoder.)
inline __m512 part_of(__m512 v, Part part) {
  const __m512 zero = _mm512_setzero_ps();
  if (part == Part::kAll) return v;
  return _mm512_maskz_max_ps(0xffff, zero, part == Part::kPositive ? v : _mm512_sub_ps(zero, v));
}

// Two columns (16 floats) per gather.
void pack_columns_512(const float* x, int64_t ldx, int64_t valid, const int32_t* cols, int64_t K, Part part, float* a) {
  const __m512i rows = _mm512_mullo_epi32(_mm512_set_epi32(7, 6, 5, 4, 3, 2, 1, 0, 7, 6, 5, 4, 3, 2, 1, 0),
                                          _mm512_set1_epi32(static_cast<int32_t>(ldx)));
  const int64_t live_rows = std::min<int64_t>(std::max<int64_t>(valid, 0), kTileRows);
  const __mmask16 live = static_cast<__mmask16>(((1u << live_rows) - 1) * 0x101u);
  const __m512 zero = _mm512_setzero_ps();
  int64_t k = 0;
  for (; k + 2 <= K; k += 2) {
    const __m512i idx =
        _mm512_add_epi32(rows, _mm512_mask_blend_epi32(0xff00, _mm512_set1_epi32(cols[k]), _mm512_set1_epi32(cols[k + 1])));
    const __m512 v = _mm512_mask_i32gather_ps(zero, live, idx, x, 4);
    _mm512_storeu_ps(a + k * kTileRows, part_of(v, part));
  }
  if (k < K) {
    const __m512i idx = _mm512_add_epi32(rows, _mm512_set1_epi32(cols[k]));
    const __m512 v = _mm512_mask_i32gather_ps(zero, live & 0x00ff, idx, x, 4);
    _mm512_mask_storeu_ps(a + k * kTileRows, 0x00ff, part_of(v, part));
  }
}

void mark_signs_512(const float* pre, int64_t rows, int64_t H, uint16_t* above, uint16_t* below, int32_t* count) {
  const __m512 zero = _mm512_setzero_ps();
  const __m512i one = _mm512_set1_epi32(1);
  for (int64_t r = 0; r < rows; ++r) {
    const float* pr = pre + r * H;
    for (int64_t j = 0, g = 0; j < H; j += 16, ++g) {
      const __mmask16 in = H - j >= 16 ? 0xffff : static_cast<__mmask16>((1u << (H - j)) - 1);
      const __m512 v = _mm512_maskz_loadu_ps(in, pr + j);
      above[g] |= _mm512_mask_cmp_ps_mask(in, v, zero, _CMP_NLE_UQ);
      below[g] |= _mm512_mask_cmp_ps_mask(in, v, zero, _CMP_NGE_UQ);
      if (count) {
        const __mmask16 pos = _mm512_mask_cmp_ps_mask(in, v, zero, _CMP_GT_OQ);
        const __m512i c = _mm512_maskz_loadu_epi32(in, count + j);
        _mm512_mask_storeu_epi32(count + j, in, _mm512_mask_add_epi32(c, pos, c, one));
      }
    }
  }
}

// Streaming stores: y is not read again soon, and they save reading y's lines before writing them.
void block_copy_moments_512(const float* x, int64_t pixels, int64_t lanes, float* y, double* sum, double* sumsq) {
  if (lanes % 16 || reinterpret_cast<uintptr_t>(x) % 64 || reinterpret_cast<uintptr_t>(y) % 64)
    return block_copy_moments(x, pixels, lanes, y, sum, sumsq);
  for (int64_t l0 = 0; l0 < lanes; l0 += 16)
    for (int64_t p0 = 0; p0 < pixels; p0 += 64) {
      __m512 s = _mm512_setzero_ps(), q = _mm512_setzero_ps();
      const int64_t p1 = std::min<int64_t>(pixels, p0 + 64);
      for (int64_t p = p0; p < p1; ++p) {
        const __m512 v = _mm512_load_ps(x + p * lanes + l0);
        _mm512_stream_ps(y + p * lanes + l0, v);
        s = _mm512_add_ps(s, v);
        q = _mm512_fmadd_ps(v, v, q);
      }
      alignas(64) float ss[16], qq[16];
      _mm512_store_ps(ss, s);
      _mm512_store_ps(qq, q);
      for (int l = 0; l < 16; ++l) {
        sum[l0 + l] += ss[l];
        sumsq[l0 + l] += qq[l];
      }
    }
  _mm_sfence();  // the streaming stores visible before any later store (other threads read y next)
}

}  // namespace latent::cpu::avx512

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

namespace latent::cpu {

const Kernels* avx512_kernels() {
  static const Kernels table = [] {
    Kernels k = avx512::generic_table(Isa::kAvx512);
    k.bernoulli_log_prob_rows = avx512::log_prob_rows_table;
    k.tile_gemm = avx512::tile_gemm_512;
    k.pack_columns = avx512::pack_columns_512;
    k.mark_signs = avx512::mark_signs_512;
    k.block_copy_moments = avx512::block_copy_moments_512;
    return k;
  }();
  return &table;
}

}  // namespace latent::cpu
