#include "eval/split_relu_decoder.h"

#include <algorithm>

#include "latent/error.h"
#include "train/fused_kernels.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace latent {
namespace {

constexpr int64_t kTileRows = 8;  // rows of one register tile
constexpr int64_t kPanel = 48;    // columns of one register tile
// Rows that share one choice of units: one register tile. On the Fashion-MNIST decoder (784-400-20,
// k = 5000) the last layer's multiply-adds come to 0.31 of the dense layer's in blocks of 8 rows,
// 0.35 in 16 and 0.40 in 32; the kernel does fewer of them per second on 8 rows (each B panel
// serves one tile: 134-138 GFLOP/s alone against 150-168 on 32) but the whole pass ran fastest there
// (7.7 ms per image on one core, 8.3-8.9 in blocks of 16, 9.0-9.9 in 32). 4-row tiles ran 23% slower
// per multiply-add than 8-row ones while leaving out only 14% more.
constexpr int64_t kBlockRows = kTileRows;
// Rows whose hidden layers are computed together (their pre-activations kept: 400 KB at H = 400).
constexpr int64_t kSpanRows = 256;

int64_t round_up(int64_t n, int64_t m) { return (n + m - 1) / m * m; }

#if defined(__x86_64__)
#define LATENT_AVX512 __attribute__((target("avx512f")))

// One register tile: c[8, 16 Z] = init + sum_k a[k][0..8) (outer) b[k][off, off + 16 Z), ReLU'd when
// `relu`, with the tile's last 16 columns under `mask` (columns past it are neither read nor
// written). `a` is [K][8] (the tile's rows side by side for each k); b[k] points into row k of B;
// init (null: zeros) is one row added to every row. Z = 3 keeps 24 accumulators and 3 B vectors in
// the 32 registers: per k, 3 loads and 8 broadcasts feed 24 multiply-adds (two per cycle).
template <int Z>
LATENT_AVX512 inline void tile(const float* __restrict a, const float* const* __restrict b, int64_t K, int64_t off,
                               __mmask16 mask, const float* __restrict init, bool relu, float* __restrict c, int64_t ldc) {
  __m512 acc[kTileRows][Z];
#pragma GCC unroll 4
  for (int z = 0; z < Z; ++z) {
    const __m512 v = init ? _mm512_maskz_loadu_ps(z + 1 == Z ? mask : 0xffff, init + 16 * z) : _mm512_setzero_ps();
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
      _mm512_mask_storeu_ps(c + r * ldc + 16 * z, z + 1 == Z ? mask : 0xffff,
                            relu ? _mm512_maskz_max_ps(0xffff, zero, acc[r][z]) : acc[r][z]);
}

// c [rows, N] (row stride ldc) = init + A B, ReLU'd when `relu`: A packed as pack_columns does
// ([rows / 8][K][8]), rows a multiple of 8; row_of(k) points at row k of B (N floats). Column panels
// outside, row tiles inside, so each panel of B (K x 48 floats) is read from L1 by every tile after
// the first.
template <class RowOf>
LATENT_AVX512 void gemm(const float* a, int64_t rows, int64_t K, int64_t N, RowOf row_of, const float* init, bool relu, float* c,
                        int64_t ldc) {
  thread_local std::vector<const float*> b;
  b.resize(K);
  for (int64_t k = 0; k < K; ++k) b[k] = row_of(k);
  const int64_t tiles = rows / kTileRows;
  for (int64_t col = 0; col < N; col += kPanel) {
    if (N - col >= kPanel) {
      for (int64_t i = 0; i < tiles; ++i)
        tile<3>(a + i * K * kTileRows, b.data(), K, col, 0xffff, init ? init + col : nullptr, relu, c + i * kTileRows * ldc + col,
                ldc);
      continue;
    }
    for (int64_t off = col; off < N; off += 16) {
      const __mmask16 mask = N - off >= 16 ? 0xffff : static_cast<__mmask16>((1u << (N - off)) - 1);
      for (int64_t i = 0; i < tiles; ++i)
        tile<1>(a + i * K * kTileRows, b.data(), K, off, mask, init ? init + off : nullptr, relu, c + i * kTileRows * ldc + off,
                ldc);
    }
  }
}

// How pack_columns passes values on: as they are, ReLU(x) or ReLU(-x).
enum class Part { kAll, kPositive, kNegative };

// (max(0, v) with v second: x86's max returns its second operand when either is NaN, so a NaN
// passes on, as it does through ReLU in the dense decoder.)
LATENT_AVX512 inline __m512 part_of(__m512 v, Part part) {
  const __m512 zero = _mm512_setzero_ps();
  if (part == Part::kAll) return v;
  return _mm512_maskz_max_ps(0xffff, zero, part == Part::kPositive ? v : _mm512_sub_ps(zero, v));
}

// The columns cols[0..K) of 8 rows of x (row stride ldx; rows from `valid` on read as zeros), or
// their positive or negative part, into a [K][8], two columns (16 floats) per gather.
LATENT_AVX512 void pack_columns(const float* x, int64_t ldx, int64_t valid, const int32_t* cols, int64_t K, Part part, float* a) {
  const __m512i rows = _mm512_mullo_epi32(_mm512_set_epi32(7, 6, 5, 4, 3, 2, 1, 0, 7, 6, 5, 4, 3, 2, 1, 0),
                                          _mm512_set1_epi32(static_cast<int32_t>(ldx)));
  const __mmask16 live = static_cast<__mmask16>(((1u << std::min<int64_t>(valid, kTileRows)) - 1) * 0x101u);
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

// For each 16 units g of pre [rows, H] (bit i: unit 16 g + i; units past H stay 0): above[g] |= the
// units > 0 on some row, below[g] |= the units < 0 on some row (NaN counts as both, so that it
// reaches the product), and count[16 g + i] += the rows on which unit 16 g + i is > 0 (when count is
// not null).
LATENT_AVX512 void mark_signs(const float* pre, int64_t rows, int64_t H, __mmask16* above, __mmask16* below, int32_t* count) {
  const __m512 zero = _mm512_setzero_ps();
  const __m512i one = _mm512_set1_epi32(1);
  for (int64_t r = 0; r < rows; ++r) {
    const float* pr = pre + r * H;
    for (int64_t j = 0, g = 0; j < H; j += 16, ++g) {
      const __mmask16 in = H - j >= 16 ? 0xffff : static_cast<__mmask16>((1u << (H - j)) - 1);
      const __m512 v = _mm512_maskz_loadu_ps(in, pr + j);
      const __mmask16 pos = _mm512_mask_cmp_ps_mask(in, v, zero, _CMP_GT_OQ);
      above[g] |= _mm512_mask_cmp_ps_mask(in, v, zero, _CMP_NLE_UQ);
      below[g] |= _mm512_mask_cmp_ps_mask(in, v, zero, _CMP_NGE_UQ);
      if (count) {
        const __m512i c = _mm512_loadu_si512(count + j);
        _mm512_storeu_si512(count + j, _mm512_mask_add_epi32(c, pos, c, one));
      }
    }
  }
}

// The units whose bit is set in `mask` and in `select` (in its complement when `invert`), ascending.
void units_of(const __mmask16* mask, const __mmask16* select, bool invert, int64_t groups, std::vector<int32_t>& out) {
  out.clear();
  for (int64_t g = 0; g < groups; ++g) {
    uint32_t bits = mask[g] & (invert ? ~select[g] : select[g]) & 0xffffu;
    for (; bits; bits &= bits - 1) out.push_back(static_cast<int32_t>(16 * g + __builtin_ctz(bits)));
  }
}
#endif

}  // namespace

std::unique_ptr<SplitReluDecoder> SplitReluDecoder::make(std::vector<Layer> layers) {
#if defined(__x86_64__)
  if (!__builtin_cpu_supports("avx512f") || layers.size() < 2) return nullptr;
  for (size_t j = 0; j < layers.size(); ++j) {
    const Layer& l = layers[j];
    if (l.wt.dim() != 2 || l.wt.scalar_type() != at::kFloat || !l.wt.is_contiguous() || l.b.scalar_type() != at::kFloat ||
        !l.b.is_contiguous() || l.b.numel() != l.wt.size(1) || (j > 0 && l.wt.size(0) != layers[j - 1].wt.size(1)))
      throw Error("SplitReluDecoder: layer " + std::to_string(j) + " is not a float32 [in, out] weight chained to the last");
  }
  return std::unique_ptr<SplitReluDecoder>(new SplitReluDecoder(std::move(layers)));
#else
  (void)layers;
  return nullptr;
#endif
}

void SplitReluDecoder::log_likelihood_one(const float* z, int64_t R, const float* x, double* out, Work* work) const {
#if defined(__x86_64__)
  const size_t L = layers_.size();
  const Layer &hidden = layers_[L - 2], &last = layers_[L - 1];
  const int64_t d = layers_.front().wt.size(0);
  const int64_t du = hidden.wt.size(0);  // the last hidden layer's inputs: u
  const int64_t H = hidden.wt.size(1), D = last.wt.size(1);
  const float *wh = hidden.wt.data_ptr<float>(), *bh = hidden.b.data_ptr<float>();  // [du, H], [H]
  const float *wl = last.wt.data_ptr<float>(), *bl = last.b.data_ptr<float>();      // [H, D], [D]
  const int64_t folded_rows = round_up(du + 1, kTileRows);                          // u's columns and the constant 1
  const int64_t groups = (H + 15) / 16;

  thread_local std::vector<std::vector<float>> acts;  // each hidden layer's output on a span [S, out]
  thread_local std::vector<float> a, mt, logits;
  thread_local std::vector<__mmask16> folded, above, below;
  thread_local std::vector<int32_t> count, folded_units, positive, negative, iota;
  int64_t widest = 0;
  for (const Layer& l : layers_) widest = std::max(widest, l.wt.size(0));
  iota.resize(widest);  // 0, 1, ...: every column, for packing whole rows
  for (int64_t i = 0; i < widest; ++i) iota[i] = static_cast<int32_t>(i);
  acts.resize(L - 1);
  const std::vector<const float*> x_rows(kBlockRows, x);
  int64_t lead = 0;  // the folded map's rows in each block's product: du + 1, or 0 without one

  for (int64_t s0 = 0; s0 < R; s0 += kSpanRows) {
    const int64_t rows = std::min(kSpanRows, R - s0), padded = round_up(rows, kTileRows);
    // The hidden layers on the span's rows (padded rows are zero inputs, computed and ignored); the
    // last keeps its pre-activation, whose sign tells each unit's part.
    const float* in = z + s0 * d;
    int64_t ld = d, valid = rows;
    for (size_t j = 0; j + 1 < L; ++j) {
      const int64_t n_in = layers_[j].wt.size(0), n_out = layers_[j].wt.size(1);
      a.resize(static_cast<size_t>(padded * n_in));
      for (int64_t t = 0; t < padded; t += kTileRows)
        pack_columns(in + t * ld, ld, valid - t, iota.data(), n_in, Part::kAll, a.data() + t * n_in);
      const float* wt = layers_[j].wt.data_ptr<float>();
      acts[j].resize(static_cast<size_t>(padded * n_out));
      gemm(
          a.data(), padded, n_in, n_out, [&](int64_t k) { return wt + k * n_out; }, layers_[j].b.data_ptr<float>(), j + 2 < L,
          acts[j].data(), n_out);
      in = acts[j].data();
      ld = n_out;
      valid = padded;
    }
    const float* u = L == 2 ? z + s0 * d : acts[L - 3].data();  // [rows, du]
    const float* pre = acts[L - 2].data();                      // [padded, H]
    if (s0 == 0) {
      // The units that fire on more than half of the first span's rows are folded, for the whole
      // call, into mt = [M^T; m^T] ([du + 1, D]) where that takes fewer multiply-adds than leaving
      // them in each block's product.
      count.assign(groups * 16, 0);
      above.assign(groups, 0);
      below.assign(groups, 0);
      mark_signs(pre, rows, H, above.data(), below.data(), count.data());
      folded.assign(groups, 0);
      folded_units.clear();
      for (int64_t j = 0; j < H; ++j)
        if (2 * count[j] > rows) {
          folded[j / 16] |= static_cast<__mmask16>(1u << (j % 16));
          folded_units.push_back(static_cast<int32_t>(j));
        }
      const int64_t n_f = static_cast<int64_t>(folded_units.size());
      lead = n_f > du + 1 && folded_rows * n_f < R * (n_f - du - 1) ? du + 1 : 0;
      if (lead) {
        // mt[i] = sum over folded units j of wh[i, j] wl[j] (i < du) and bh[j] wl[j] (i = du), plus bl.
        a.resize(static_cast<size_t>(folded_rows * n_f));
        for (int64_t q = 0; q < folded_rows; ++q)
          for (int64_t k = 0; k < n_f; ++k) {
            const int32_t j = folded_units[k];
            a[(q / kTileRows) * n_f * kTileRows + k * kTileRows + q % kTileRows] = q < du    ? wh[q * H + j]
                                                                                   : q == du ? bh[j]
                                                                                             : 0.0f;
          }
        mt.resize(static_cast<size_t>(folded_rows * D));
        gemm(
            a.data(), folded_rows, n_f, D, [&](int64_t k) { return wl + folded_units[k] * D; }, nullptr, false, mt.data(), D);
        for (int64_t i = 0; i < D; ++i) mt[du * D + i] += bl[i];
        if (work) work->multiply_adds += folded_rows * n_f * D;
      } else {
        std::fill(folded.begin(), folded.end(), 0);
      }
    }
    for (int64_t c0 = 0; c0 < rows; c0 += kBlockRows) {
      const int64_t n = std::min(kBlockRows, rows - c0), np = round_up(n, kTileRows);
      const float* pc = pre + c0 * H;
      // A unit's part that is not zero on some row of the block goes into its product: ReLU(pre) of
      // the units not folded, ReLU(-pre) of the folded ones (their ReLU is the folded pre minus it).
      above.assign(groups, 0);
      below.assign(groups, 0);
      mark_signs(pc, n, H, above.data(), below.data(), nullptr);
      units_of(above.data(), folded.data(), /*invert=*/true, groups, positive);
      units_of(below.data(), folded.data(), /*invert=*/false, groups, negative);
      const int64_t n_pos = static_cast<int64_t>(positive.size()), n_neg = static_cast<int64_t>(negative.size());
      const int64_t K = lead + n_pos + n_neg;
      // A: [u, 1, ReLU(pre) of `positive`, ReLU(-pre) of `negative`] for each row (zeros past the block's rows).
      a.resize(static_cast<size_t>(np * K));
      for (int64_t t = 0; t < np; t += kTileRows) {
        float* at = a.data() + t * K;
        const int64_t live = n - t;
        if (lead) {
          pack_columns(u + (c0 + t) * du, du, live, iota.data(), du, Part::kAll, at);
          for (int64_t r = 0; r < kTileRows; ++r) at[du * kTileRows + r] = r < live ? 1.0f : 0.0f;
        }
        pack_columns(pc + t * H, H, live, positive.data(), n_pos, Part::kPositive, at + lead * kTileRows);
        pack_columns(pc + t * H, H, live, negative.data(), n_neg, Part::kNegative, at + (lead + n_pos) * kTileRows);
      }
      logits.resize(static_cast<size_t>(np * D));
      const float* map = mt.data();
      gemm(
          a.data(), np, K, D,
          [&](int64_t k) {
            return k < lead ? map + k * D : wl + (k < lead + n_pos ? positive[k - lead] : negative[k - lead - n_pos]) * D;
          },
          lead ? nullptr : bl, false, logits.data(), D);
      kernels::bernoulli_log_prob_rows(logits.data(), x_rows.data(), out + s0 + c0, 0, n, D);
      if (work) {
        work->rows += n;
        work->multiply_adds += np * K * D;
        work->dense_multiply_adds += n * H * D;
      }
    }
  }
#else
  (void)z, (void)R, (void)x, (void)out, (void)work;
  throw Error("SplitReluDecoder needs an x86-64 CPU with AVX-512");
#endif
}

}  // namespace latent
