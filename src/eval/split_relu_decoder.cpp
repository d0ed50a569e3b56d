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
// Rows that share one choice of units, and rows that share one folded map. On the Fashion-MNIST
// decoder (784-400-20, k = 5000) the last layer's multiply-adds, folded maps included, come to 0.46
// of the dense layer's at blocks of 16 in spans of 256, 0.48 at 32 and 0.51 at 64; the kernel runs
// ~25% slower on 16-row blocks than on 32 (each B panel serves fewer rows), so 32.
constexpr int64_t kBlockRows = 32;
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
                            relu ? _mm512_maskz_max_ps(0xffff, acc[r][z], zero) : acc[r][z]);
}

// c [rows, N] (row stride ldc) = init + A B, ReLU'd when `relu`: A packed as pack_columns does
// ([rows / 8][K][8]), rows a multiple of 8; row_of(k, p) points at B[k, 48 p] (the start of row k
// in column panel p, wherever B keeps it). Panels outside, row tiles inside, so each panel of B
// (K x 48 floats) is read from L1 by every tile after the first.
template <class RowOf>
LATENT_AVX512 void gemm(const float* a, int64_t rows, int64_t K, int64_t N, RowOf row_of, const float* init, bool relu, float* c,
                        int64_t ldc) {
  thread_local std::vector<const float*> b;
  b.resize(K);
  const int64_t tiles = rows / kTileRows;
  for (int64_t col = 0; col < N; col += kPanel) {
    for (int64_t k = 0; k < K; ++k) b[k] = row_of(k, col / kPanel);
    if (N - col >= kPanel) {
      for (int64_t i = 0; i < tiles; ++i)
        tile<3>(a + i * K * kTileRows, b.data(), K, 0, 0xffff, init ? init + col : nullptr, relu, c + i * kTileRows * ldc + col,
                ldc);
      continue;
    }
    for (int64_t off = 0; col + off < N; off += 16) {
      const int64_t left = N - col - off;
      const __mmask16 mask = left >= 16 ? 0xffff : static_cast<__mmask16>((1u << left) - 1);
      for (int64_t i = 0; i < tiles; ++i)
        tile<1>(a + i * K * kTileRows, b.data(), K, off, mask, init ? init + col + off : nullptr, relu,
                c + i * kTileRows * ldc + col + off, ldc);
    }
  }
}

// Columns cols[0..K) of 8 rows of x (row stride ldx; rows from `valid` on read as zeros) into a
// [K][8], two columns (16 floats) per gather.
LATENT_AVX512 void pack_columns(const float* x, int64_t ldx, int64_t valid, const int32_t* cols, int64_t K, float* a) {
  const __m512i rows = _mm512_mullo_epi32(_mm512_set_epi32(7, 6, 5, 4, 3, 2, 1, 0, 7, 6, 5, 4, 3, 2, 1, 0),
                                          _mm512_set1_epi32(static_cast<int32_t>(ldx)));
  const __mmask16 live = static_cast<__mmask16>(((1u << std::min<int64_t>(valid, kTileRows)) - 1) * 0x101u);
  const __m512 zero = _mm512_setzero_ps();
  int64_t k = 0;
  for (; k + 2 <= K; k += 2) {
    const __m512i idx =
        _mm512_add_epi32(rows, _mm512_mask_blend_epi32(0xff00, _mm512_set1_epi32(cols[k]), _mm512_set1_epi32(cols[k + 1])));
    _mm512_storeu_ps(a + k * kTileRows, _mm512_mask_i32gather_ps(zero, live, idx, x, 4));
  }
  if (k < K) {
    const __m512i idx = _mm512_add_epi32(rows, _mm512_set1_epi32(cols[k]));
    _mm512_mask_storeu_ps(a + k * kTileRows, 0x00ff, _mm512_mask_i32gather_ps(zero, live & 0x00ff, idx, x, 4));
  }
}

// For each 16 units g of h [rows, H]: fires[g] |= the units > 0 on some row, and all[g] &= the units
// > 0 on every row (bit i: unit 16 g + i; units past H stay 0).
LATENT_AVX512 void mark_firing(const float* h, int64_t rows, int64_t H, __mmask16* fires, __mmask16* all) {
  const __m512 zero = _mm512_setzero_ps();
  for (int64_t r = 0; r < rows; ++r) {
    const float* hr = h + r * H;
    for (int64_t j = 0, g = 0; j < H; j += 16, ++g) {
      const __mmask16 in = H - j >= 16 ? 0xffff : static_cast<__mmask16>((1u << (H - j)) - 1);
      const __mmask16 m = _mm512_mask_cmp_ps_mask(in, _mm512_maskz_loadu_ps(in, hr + j), zero, _CMP_GT_OQ);
      if (fires) fires[g] |= m;
      if (all) all[g] &= m;
    }
  }
}

// The units whose bit is set in `mask` and not in `except` (when not null), ascending.
void units_of(const __mmask16* mask, const __mmask16* except, int64_t groups, std::vector<int32_t>& out) {
  out.clear();
  for (int64_t g = 0; g < groups; ++g) {
    uint32_t bits = mask[g] & ~(except ? except[g] : 0u) & 0xffffu;
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
  // Row j of the last layer's weight from column panel p on. (A panel-major copy of the weight, each
  // panel's rows together, measured no faster: 11.2 against 11.0 ms per image.)
  auto last_row = [&](int64_t j, int64_t p) { return wl + j * D + p * kPanel; };
  const int64_t folded_rows = round_up(du + 1, kTileRows);  // u's columns and the constant 1

  thread_local std::vector<std::vector<float>> acts;  // each hidden layer's output on a span [S, out]
  thread_local std::vector<float> a, mt, logits;
  thread_local std::vector<__mmask16> on, any;
  thread_local std::vector<int32_t> on_units, units, iota;
  int64_t widest = 0;
  for (const Layer& l : layers_) widest = std::max(widest, l.wt.size(0));
  iota.resize(widest);  // 0, 1, ...: every column, for packing whole rows
  for (int64_t i = 0; i < widest; ++i) iota[i] = static_cast<int32_t>(i);
  acts.resize(L - 1);
  const std::vector<const float*> x_rows(kBlockRows, x);

  for (int64_t s0 = 0; s0 < R; s0 += kSpanRows) {
    const int64_t rows = std::min(kSpanRows, R - s0), padded = round_up(rows, kTileRows);
    // The hidden layers on the span's rows (padded rows are zero inputs, computed and ignored).
    const float* in = z + s0 * d;
    int64_t ld = d, valid = rows;
    for (size_t j = 0; j + 1 < L; ++j) {
      const int64_t n_in = layers_[j].wt.size(0), n_out = layers_[j].wt.size(1);
      a.resize(static_cast<size_t>(padded * n_in));
      for (int64_t t = 0; t < padded; t += kTileRows)
        pack_columns(in + t * ld, ld, valid - t, iota.data(), n_in, a.data() + t * n_in);
      const float* wt = layers_[j].wt.data_ptr<float>();
      acts[j].resize(static_cast<size_t>(padded * n_out));
      gemm(
          a.data(), padded, n_in, n_out, [&](int64_t k, int64_t p) { return wt + k * n_out + p * kPanel; },
          layers_[j].b.data_ptr<float>(), true, acts[j].data(), n_out);
      in = acts[j].data();
      ld = n_out;
      valid = padded;
    }
    const float* u = L == 2 ? z + s0 * d : acts[L - 3].data();  // [rows, du]
    const float* h = acts[L - 2].data();                        // [padded, H], ReLU'd
    // The units that fire on every row of the span: folded into mt = [M^T; m^T] ([du + 1, D]) where
    // that takes fewer multiply-adds than leaving them in each block's product.
    const int64_t groups = (H + 15) / 16;
    on.assign(groups, 0xffff);
    mark_firing(h, rows, H, nullptr, on.data());
    units_of(on.data(), nullptr, groups, on_units);
    const int64_t n_on = static_cast<int64_t>(on_units.size());
    const bool fold = n_on > du + 1 && folded_rows * n_on < rows * (n_on - du - 1);
    if (fold) {
      // mt[i] = sum over firing units j of wh[i, j] wl[j] (i < du) and bh[j] wl[j] (i = du), plus bl.
      a.resize(static_cast<size_t>(folded_rows * n_on));
      for (int64_t q = 0; q < folded_rows; ++q)
        for (int64_t k = 0; k < n_on; ++k) {
          const int32_t j = on_units[k];
          a[(q / kTileRows) * n_on * kTileRows + k * kTileRows + q % kTileRows] = q < du ? wh[q * H + j] : q == du ? bh[j] : 0.0f;
        }
      mt.resize(static_cast<size_t>(folded_rows * D));
      gemm(
          a.data(), folded_rows, n_on, D, [&](int64_t k, int64_t p) { return last_row(on_units[k], p); }, nullptr, false,
          mt.data(), D);
      for (int64_t i = 0; i < D; ++i) mt[du * D + i] += bl[i];
      if (work) work->multiply_adds += folded_rows * n_on * D;
    }
    for (int64_t c0 = 0; c0 < rows; c0 += kBlockRows) {
      const int64_t n = std::min(kBlockRows, rows - c0), np = round_up(n, kTileRows);
      const float* hc = h + c0 * H;
      any.assign(groups, 0);
      mark_firing(hc, n, H, any.data(), nullptr);
      units_of(any.data(), fold ? on.data() : nullptr, groups, units);
      const int64_t lead = fold ? du + 1 : 0, K = lead + static_cast<int64_t>(units.size());
      // A: [u, 1, h of the block's units] for each row (zeros past the block's rows).
      a.resize(static_cast<size_t>(np * K));
      for (int64_t t = 0; t < np; t += kTileRows) {
        float* at = a.data() + t * K;
        const int64_t live = n - t;
        if (fold) {
          pack_columns(u + (c0 + t) * du, du, live, iota.data(), du, at);
          for (int64_t r = 0; r < kTileRows; ++r) at[du * kTileRows + r] = r < live ? 1.0f : 0.0f;
        }
        pack_columns(hc + t * H, H, live, units.data(), K - lead, at + lead * kTileRows);
      }
      logits.resize(static_cast<size_t>(np * D));
      const float* folded = mt.data();
      gemm(
          a.data(), np, K, D,
          [&](int64_t k, int64_t p) { return k < lead ? folded + k * D + p * kPanel : last_row(units[k - lead], p); },
          fold ? nullptr : bl, false, logits.data(), D);
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
