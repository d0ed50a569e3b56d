// The AVX2 variant (AVX2, FMA, F16C): the generic loops compiled for 256-bit vectors, and
// hand-written kernels where those were slower: the split ReLU decoder's register-tiled product,
// its column packing and sign marking, and the blocked activations' copy with streaming stores.
// Built only on x86-64; nothing here runs unless features() says the CPU (as capped) has AVX2.
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#include "cpu/kernels.h"

// Every function from here on is compiled for AVX2; the headers above keep the default target, so
// no inline function they define is emitted with AVX2 instructions for other files to pick up.
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma,f16c"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")
#endif

namespace latent::cpu::avx2 {

#include "cpu/kernels_generic.inc"

constexpr int64_t kRows = 4;  // this variant's tile_rows: one register tile, 4 rows x 24 columns

// The lanes [0, n) of 8 set, as maskload and maskstore take them.
inline __m256i first_lanes(int64_t n) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int32_t>(n)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

// One register tile: c[4, 8 Z] = init + sum_k a[k][0..4) (outer) b[k][off, off + 8 Z), ReLU'd when
// `relu`; `a` is the tile's [K][4] packing. With kMasked the last 8 columns
// are those under `mask` (columns past it are neither read nor written). Z = 3 keeps 12
// accumulators, 3 B vectors and a broadcast in the 16 registers: per k, 3 loads and 4 broadcasts
// feed 12 multiply-adds.
template <int Z, bool kMasked>
inline void tile(const float* __restrict a, const float* const* __restrict b, int64_t K, int64_t off, __m256i mask,
                 const float* __restrict init, bool relu, float* __restrict c, int64_t ldc) {
  __m256 acc[kRows][Z];
  auto load = [&](const float* p, int z) {
    return kMasked && z + 1 == Z ? _mm256_maskload_ps(p + 8 * z, mask) : _mm256_loadu_ps(p + 8 * z);
  };
#pragma GCC unroll 4
  for (int z = 0; z < Z; ++z) {
    const __m256 v = init ? load(init + off, z) : _mm256_setzero_ps();
#pragma GCC unroll 4
    for (int r = 0; r < kRows; ++r) acc[r][z] = v;
  }
  for (int64_t k = 0; k < K; ++k) {
    const float* bk = b[k] + off;
    __m256 bv[Z];
#pragma GCC unroll 4
    for (int z = 0; z < Z; ++z) bv[z] = load(bk, z);
    const float* ak = a + kRows * k;
#pragma GCC unroll 4
    for (int r = 0; r < kRows; ++r) {
      const __m256 av = _mm256_broadcast_ss(ak + r);
#pragma GCC unroll 4
      for (int z = 0; z < Z; ++z) acc[r][z] = _mm256_fmadd_ps(av, bv[z], acc[r][z]);
    }
  }
  const __m256 zero = _mm256_setzero_ps();
#pragma GCC unroll 4
  for (int r = 0; r < kRows; ++r)
#pragma GCC unroll 4
    for (int z = 0; z < Z; ++z) {
      // (max(0, v) with v second: x86's max returns its second operand when either is NaN)
      const __m256 v = relu ? _mm256_max_ps(zero, acc[r][z]) : acc[r][z];
      float* p = c + r * ldc + off + 8 * z;
      if (kMasked && z + 1 == Z)
        _mm256_maskstore_ps(p, mask, v);
      else
        _mm256_storeu_ps(p, v);
    }
}

// Column panels of 24 outside, row tiles inside, so each panel of B (K x 24 floats) is read from L1
// by every tile after the first.
void tile_gemm_256(const float* a, int64_t rows, int64_t K, int64_t N, const float* const* b, const float* init, bool relu,
                   float* c, int64_t ldc) {
  constexpr int64_t kPanel = 24;
  const __m256i all = _mm256_set1_epi32(-1);
  for (int64_t col = 0; col < N; col += kPanel)
    for (int64_t t = 0; t < rows; t += kRows) {
      const float* at = a + t * K;
      float* ct = c + t * ldc;
      if (N - col >= kPanel) {
        tile<3, false>(at, b, K, col, all, init, relu, ct, ldc);
        continue;
      }
      for (int64_t off = col; off < N; off += 8) {
        if (N - off >= 8)
          tile<1, false>(at, b, K, off, all, init, relu, ct, ldc);
        else
          tile<1, true>(at, b, K, off, first_lanes(N - off), init, relu, ct, ldc);
      }
    }
}

// (max(0, v) with v second passes a NaN on)
inline __m256 part_of(__m256 v, Part part) {
  const __m256 zero = _mm256_setzero_ps();
  if (part == Part::kAll) return v;
  return _mm256_max_ps(zero, part == Part::kPositive ? v : _mm256_sub_ps(zero, v));
}

// Two columns (4 rows each) per gather.
void pack_columns_256(const float* x, int64_t ldx, int64_t valid, const int32_t* cols, int64_t K, Part part, float* a) {
  const __m256i rows =
      _mm256_mullo_epi32(_mm256_setr_epi32(0, 1, 2, 3, 0, 1, 2, 3), _mm256_set1_epi32(static_cast<int32_t>(ldx)));
  const int64_t live_rows = std::min<int64_t>(std::max<int64_t>(valid, 0), kRows);
  const __m256i live =
      _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int32_t>(live_rows)), _mm256_setr_epi32(0, 1, 2, 3, 0, 1, 2, 3));
  const __m256 zero = _mm256_setzero_ps();
  int64_t k = 0;
  for (; k + 2 <= K; k += 2) {
    const __m256i idx = _mm256_add_epi32(
        rows, _mm256_setr_epi32(cols[k], cols[k], cols[k], cols[k], cols[k + 1], cols[k + 1], cols[k + 1], cols[k + 1]));
    const __m256 v = _mm256_mask_i32gather_ps(zero, x, idx, _mm256_castsi256_ps(live), 4);
    _mm256_storeu_ps(a + k * kRows, part_of(v, part));
  }
  if (k < K) {  // the last column alone: lanes 4-7 neither read nor written
    const __m256i idx = _mm256_add_epi32(rows, _mm256_set1_epi32(cols[k]));
    const __m256i low = _mm256_and_si256(live, _mm256_setr_epi32(-1, -1, -1, -1, 0, 0, 0, 0));
    const __m256 v = _mm256_mask_i32gather_ps(zero, x, idx, _mm256_castsi256_ps(low), 4);
    _mm_storeu_ps(a + k * kRows, _mm256_castps256_ps128(part_of(v, part)));
  }
}

void mark_signs_256(const float* pre, int64_t rows, int64_t H, uint16_t* above, uint16_t* below, int32_t* count) {
  const __m256 zero = _mm256_setzero_ps();
  for (int64_t r = 0; r < rows; ++r) {
    const float* pr = pre + r * H;
    for (int64_t j = 0; j < H; j += 8) {
      const bool tail = H - j < 8;
      const __m256i in = tail ? first_lanes(H - j) : _mm256_set1_epi32(-1);
      const __m256 v = tail ? _mm256_maskload_ps(pr + j, in) : _mm256_loadu_ps(pr + j);  // zeros past H mark nothing
      const int shift = static_cast<int>(j % 16);
      above[j / 16] |= static_cast<uint16_t>(_mm256_movemask_ps(_mm256_cmp_ps(v, zero, _CMP_NLE_UQ)) << shift);
      below[j / 16] |= static_cast<uint16_t>(_mm256_movemask_ps(_mm256_cmp_ps(v, zero, _CMP_NGE_UQ)) << shift);
      if (count) {
        const __m256i pos = _mm256_castps_si256(_mm256_cmp_ps(v, zero, _CMP_GT_OQ));  // -1 where > 0
        const __m256i c = tail ? _mm256_maskload_epi32(count + j, in) : _mm256_loadu_si256(reinterpret_cast<__m256i*>(count + j));
        const __m256i sum = _mm256_sub_epi32(c, pos);
        if (tail)
          _mm256_maskstore_epi32(count + j, in, sum);
        else
          _mm256_storeu_si256(reinterpret_cast<__m256i*>(count + j), sum);
      }
    }
  }
}

// Streaming stores: y is not read again soon, and they save reading y's lines before writing them.
void block_copy_moments_256(const float* x, int64_t pixels, int64_t lanes, float* y, double* sum, double* sumsq) {
  if (lanes % 8 || reinterpret_cast<uintptr_t>(x) % 32 || reinterpret_cast<uintptr_t>(y) % 32)
    return block_copy_moments(x, pixels, lanes, y, sum, sumsq);
  for (int64_t l0 = 0; l0 < lanes; l0 += 8)
    for (int64_t p0 = 0; p0 < pixels; p0 += 64) {
      __m256 s = _mm256_setzero_ps(), q = _mm256_setzero_ps();
      const int64_t p1 = std::min<int64_t>(pixels, p0 + 64);
      for (int64_t p = p0; p < p1; ++p) {
        const __m256 v = _mm256_load_ps(x + p * lanes + l0);
        _mm256_stream_ps(y + p * lanes + l0, v);
        s = _mm256_add_ps(s, v);
        q = _mm256_fmadd_ps(v, v, q);
      }
      alignas(32) float ss[8], qq[8];
      _mm256_store_ps(ss, s);
      _mm256_store_ps(qq, q);
      for (int l = 0; l < 8; ++l) {
        sum[l0 + l] += ss[l];
        sumsq[l0 + l] += qq[l];
      }
    }
  _mm_sfence();  // the streaming stores visible before any later store (other threads read y next)
}

}  // namespace latent::cpu::avx2

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

namespace latent::cpu {

const Kernels* avx2_kernels() {
  static const Kernels table = [] {
    Kernels k = avx2::generic_table(Isa::kAvx2);
    k.tile_rows = avx2::kRows;
    k.tile_gemm = avx2::tile_gemm_256;
    k.pack_columns = avx2::pack_columns_256;
    k.mark_signs = avx2::mark_signs_256;
    k.block_copy_moments = avx2::block_copy_moments_256;
    return k;
  }();
  return &table;
}

}  // namespace latent::cpu
