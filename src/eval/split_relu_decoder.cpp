#include "eval/split_relu_decoder.h"

#include <algorithm>

#include "latent/error.h"

namespace latent {
namespace {

using cpu::Part;

// Rows that share one choice of units: one register tile of the kernels (Kernels::tile_rows: 8 on
// AVX-512, 4 on AVX2). On the Fashion-MNIST decoder (784-400-20, k = 5000) the last layer's
// multiply-adds come to 0.31 of the dense layer's in blocks of 8 rows, 0.35 in 16 and 0.40 in 32;
// the AVX-512 kernel does fewer of them per second on 8 rows (each B panel serves one tile: 134-138
// GFLOP/s alone against 150-168 on 32) but the whole pass ran fastest there (7.7 ms per image on one
// core, 8.3-8.9 in blocks of 16, 9.0-9.9 in 32). Its 4-row tiles ran 23% slower per multiply-add
// than 8-row ones while leaving out only 14% more; AVX2's 16 registers hold a tile of 4 rows.// Rows whose hidden layers are
// computed together (their pre-activations kept: 400 KB at H = 400).
constexpr int64_t kSpanRows = 256;

int64_t round_up(int64_t n, int64_t m) { return (n + m - 1) / m * m; }

// The units whose bit is set in `mask` and in `select` (in its complement when `invert`), ascending.
void units_of(const uint16_t* mask, const uint16_t* select, bool invert, int64_t groups, std::vector<int32_t>& out) {
  out.clear();
  for (int64_t g = 0; g < groups; ++g) {
    uint32_t bits = mask[g] & (invert ? ~select[g] : select[g]) & 0xffffu;
    for (; bits; bits &= bits - 1) out.push_back(static_cast<int32_t>(16 * g + __builtin_ctz(bits)));
  }
}

// c = init + A B through the kernel, B's row k given by row_of(k).
template <class RowOf>
void product(const cpu::Kernels& k, const float* a, int64_t rows, int64_t K, int64_t N, RowOf row_of, const float* init,
             bool relu, float* c, int64_t ldc) {
  thread_local std::vector<const float*> b;
  b.resize(K);
  for (int64_t i = 0; i < K; ++i) b[i] = row_of(i);
  k.tile_gemm(a, rows, K, N, b.data(), init, relu, c, ldc);
}

}  // namespace

std::unique_ptr<SplitReluDecoder> SplitReluDecoder::make(std::vector<Layer> layers, const cpu::Kernels* kernels) {
  if (!kernels && cpu::kernels().isa == cpu::Isa::kPortable) return nullptr;
  if (layers.size() < 2) return nullptr;
  for (size_t j = 0; j < layers.size(); ++j) {
    const Layer& l = layers[j];
    if (l.wt.dim() != 2 || l.wt.scalar_type() != at::kFloat || !l.wt.is_contiguous() || l.b.scalar_type() != at::kFloat ||
        !l.b.is_contiguous() || l.b.numel() != l.wt.size(1) || (j > 0 && l.wt.size(0) != layers[j - 1].wt.size(1)))
      throw Error("SplitReluDecoder: layer " + std::to_string(j) + " is not a float32 [in, out] weight chained to the last");
  }
  return std::unique_ptr<SplitReluDecoder>(new SplitReluDecoder(std::move(layers), kernels ? *kernels : cpu::kernels()));
}

void SplitReluDecoder::log_likelihood_one(const float* z, int64_t R, const float* x, double* out, Work* work) const {
  const cpu::Kernels& k = k_;
  const int64_t tile = k.tile_rows;  // rows per register tile, and per block of rows that share one choice of units
  const size_t L = layers_.size();
  const Layer &hidden = layers_[L - 2], &last = layers_[L - 1];
  const int64_t d = layers_.front().wt.size(0);
  const int64_t du = hidden.wt.size(0);  // the last hidden layer's inputs: u
  const int64_t H = hidden.wt.size(1), D = last.wt.size(1);
  const float *wh = hidden.wt.data_ptr<float>(), *bh = hidden.b.data_ptr<float>();  // [du, H], [H]
  const float *wl = last.wt.data_ptr<float>(), *bl = last.b.data_ptr<float>();      // [H, D], [D]
  const int64_t folded_rows = round_up(du + 1, tile);                               // u's columns and the constant 1
  const int64_t groups = (H + 15) / 16;

  thread_local std::vector<std::vector<float>> acts;  // each hidden layer's output on a span [S, out]
  thread_local std::vector<float> a, mt, logits;
  thread_local std::vector<uint16_t> folded, above, below;
  thread_local std::vector<int32_t> count, folded_units, positive, negative, iota;
  int64_t widest = 0;
  for (const Layer& l : layers_) widest = std::max(widest, l.wt.size(0));
  iota.resize(widest);  // 0, 1, ...: every column, for packing whole rows
  for (int64_t i = 0; i < widest; ++i) iota[i] = static_cast<int32_t>(i);
  acts.resize(L - 1);
  const std::vector<const float*> x_rows(tile, x);
  int64_t lead = 0;  // the folded map's rows in each block's product: du + 1, or 0 without one

  for (int64_t s0 = 0; s0 < R; s0 += kSpanRows) {
    const int64_t rows = std::min(kSpanRows, R - s0), padded = round_up(rows, tile);
    // The hidden layers on the span's rows (padded rows are zero inputs, computed and ignored); the
    // last keeps its pre-activation, whose sign tells each unit's part.
    const float* in = z + s0 * d;
    int64_t ld = d, valid = rows;
    for (size_t j = 0; j + 1 < L; ++j) {
      const int64_t n_in = layers_[j].wt.size(0), n_out = layers_[j].wt.size(1);
      a.resize(static_cast<size_t>(padded * n_in));
      for (int64_t t = 0; t < padded; t += tile)
        k.pack_columns(in + t * ld, ld, valid - t, iota.data(), n_in, Part::kAll, a.data() + t * n_in);
      const float* wt = layers_[j].wt.data_ptr<float>();
      acts[j].resize(static_cast<size_t>(padded * n_out));
      product(
          k, a.data(), padded, n_in, n_out, [&](int64_t i) { return wt + i * n_out; }, layers_[j].b.data_ptr<float>(), j + 2 < L,
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
      k.mark_signs(pre, rows, H, above.data(), below.data(), count.data());
      folded.assign(groups, 0);
      folded_units.clear();
      for (int64_t j = 0; j < H; ++j)
        if (2 * count[j] > rows) {
          folded[j / 16] |= static_cast<uint16_t>(1u << (j % 16));
          folded_units.push_back(static_cast<int32_t>(j));
        }
      const int64_t n_f = static_cast<int64_t>(folded_units.size());
      lead = n_f > du + 1 && folded_rows * n_f < R * (n_f - du - 1) ? du + 1 : 0;
      if (lead) {
        // mt[i] = sum over folded units j of wh[i, j] wl[j] (i < du) and bh[j] wl[j] (i = du), plus bl.
        a.resize(static_cast<size_t>(folded_rows * n_f));
        for (int64_t q = 0; q < folded_rows; ++q)
          for (int64_t f = 0; f < n_f; ++f) {
            const int32_t j = folded_units[f];
            a[(q / tile) * n_f * tile + f * tile + q % tile] = q < du ? wh[q * H + j] : q == du ? bh[j] : 0.0f;
          }
        mt.resize(static_cast<size_t>(folded_rows * D));
        product(
            k, a.data(), folded_rows, n_f, D, [&](int64_t f) { return wl + folded_units[f] * D; }, nullptr, false, mt.data(), D);
        for (int64_t i = 0; i < D; ++i) mt[du * D + i] += bl[i];
        if (work) work->multiply_adds += folded_rows * n_f * D;
      } else {
        std::fill(folded.begin(), folded.end(), 0);
      }
    }
    for (int64_t c0 = 0; c0 < rows; c0 += tile) {
      const int64_t n = std::min(tile, rows - c0), np = round_up(n, tile);
      const float* pc = pre + c0 * H;
      // A unit's part that is not zero on some row of the block goes into its product: ReLU(pre) of
      // the units not folded, ReLU(-pre) of the folded ones (their ReLU is the folded pre minus it).
      above.assign(groups, 0);
      below.assign(groups, 0);
      k.mark_signs(pc, n, H, above.data(), below.data(), nullptr);
      units_of(above.data(), folded.data(), /*invert=*/true, groups, positive);
      units_of(below.data(), folded.data(), /*invert=*/false, groups, negative);
      const int64_t n_pos = static_cast<int64_t>(positive.size()), n_neg = static_cast<int64_t>(negative.size());
      const int64_t K = lead + n_pos + n_neg;
      // A: [u, 1, ReLU(pre) of `positive`, ReLU(-pre) of `negative`] for each row (zeros past the block's rows).
      a.resize(static_cast<size_t>(np * K));
      for (int64_t t = 0; t < np; t += tile) {
        float* at = a.data() + t * K;
        const int64_t live = n - t;
        if (lead) {
          k.pack_columns(u + (c0 + t) * du, du, live, iota.data(), du, Part::kAll, at);
          for (int64_t r = 0; r < tile; ++r) at[du * tile + r] = r < live ? 1.0f : 0.0f;
        }
        k.pack_columns(pc + t * H, H, live, positive.data(), n_pos, Part::kPositive, at + lead * tile);
        k.pack_columns(pc + t * H, H, live, negative.data(), n_neg, Part::kNegative, at + (lead + n_pos) * tile);
      }
      logits.resize(static_cast<size_t>(np * D));
      const float* map = mt.data();
      product(
          k, a.data(), np, K, D,
          [&](int64_t i) {
            return i < lead ? map + i * D : wl + (i < lead + n_pos ? positive[i - lead] : negative[i - lead - n_pos]) * D;
          },
          lead ? nullptr : bl, false, logits.data(), D);
      k.bernoulli_log_prob_rows(logits.data(), x_rows.data(), out + s0 + c0, 0, n, D);
      if (work) {
        work->rows += n;
        work->multiply_adds += np * K * D;
        work->dense_multiply_adds += n * H * D;
      }
    }
  }
}

}  // namespace latent
