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
// than 8-row ones while leaving out only 14% more; AVX2's 16 registers hold a tile of 4 rows.

// Rows whose hidden layers are computed together (their pre-activations kept: 400 KB at H = 400).
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

// One thread's buffers, reused across calls.
struct SplitReluDecoder::Scratch {
  std::vector<std::vector<float>> acts;        // each hidden layer's output on a span [S, out]
  std::vector<float> a;                        // a product's packed left operand
  std::vector<float> map;                      // the folded map [M^T; m^T] ([u_dim + 1, D]), tile-padded
  std::vector<float> logits;                   // a block's [rows, D]
  std::vector<uint16_t> folded, above, below;  // unit bit masks: folded, > 0 or < 0 on some row
  std::vector<int32_t> count, folded_units, positive, negative, columns;  // columns: 0, 1, ... (whole rows)
  int64_t map_rows = 0;  // rows of `map` in each block's product: u_dim + 1, or 0 without a map
};

void SplitReluDecoder::hidden_layers(Scratch& w, const float* z, int64_t rows, int64_t padded) const {
  const cpu::Kernels& k = k_;
  const size_t L = layers_.size();
  const int64_t tile = k.tile_rows;
  const float* in = z;
  int64_t ld = layers_.front().wt.size(0), valid = rows;
  for (size_t j = 0; j + 1 < L; ++j) {
    const int64_t n_in = layers_[j].wt.size(0), n_out = layers_[j].wt.size(1);
    w.a.resize(static_cast<size_t>(padded * n_in));
    for (int64_t t = 0; t < padded; t += tile)
      k.pack_columns(in + t * ld, ld, valid - t, w.columns.data(), n_in, Part::kAll, w.a.data() + t * n_in);
    const float* wt = layers_[j].wt.data_ptr<float>();
    w.acts[j].resize(static_cast<size_t>(padded * n_out));
    product(
        k, w.a.data(), padded, n_in, n_out, [&](int64_t i) { return wt + i * n_out; }, layers_[j].b.data_ptr<float>(), j + 2 < L,
        w.acts[j].data(), n_out);
    in = w.acts[j].data();
    ld = n_out;
    valid = padded;
  }
}

void SplitReluDecoder::fold(Scratch& w, const float* pre, int64_t rows, int64_t R, Work* work) const {
  const cpu::Kernels& k = k_;
  const int64_t tile = k.tile_rows;
  const Layer &hidden = layers_[layers_.size() - 2], &last = layers_.back();
  const int64_t u_dim = hidden.wt.size(0), H = hidden.wt.size(1), D = last.wt.size(1), groups = (H + 15) / 16;
  const float *wh = hidden.wt.data_ptr<float>(), *bh = hidden.b.data_ptr<float>();  // [u_dim, H], [H]
  const float *wl = last.wt.data_ptr<float>(), *bl = last.b.data_ptr<float>();      // [H, D], [D]
  w.count.assign(groups * 16, 0);
  w.above.assign(groups, 0);
  w.below.assign(groups, 0);
  k.mark_signs(pre, rows, H, w.above.data(), w.below.data(), w.count.data());
  w.folded.assign(groups, 0);
  w.folded_units.clear();
  for (int64_t j = 0; j < H; ++j)
    if (2 * w.count[j] > rows) {
      w.folded[j / 16] |= static_cast<uint16_t>(1u << (j % 16));
      w.folded_units.push_back(static_cast<int32_t>(j));
    }
  // Folding pays where the map's rows cost fewer multiply-adds than the folded units would in every block.
  const int64_t n_f = static_cast<int64_t>(w.folded_units.size()), map_padded = round_up(u_dim + 1, tile);
  w.map_rows = n_f > u_dim + 1 && map_padded * n_f < R * (n_f - u_dim - 1) ? u_dim + 1 : 0;
  if (!w.map_rows) {
    std::fill(w.folded.begin(), w.folded.end(), 0);
    return;
  }
  // map[i] = sum over folded units j of wh[i, j] wl[j] (i < u_dim) and bh[j] wl[j] (i = u_dim), plus bl.
  w.a.resize(static_cast<size_t>(map_padded * n_f));
  for (int64_t q = 0; q < map_padded; ++q)
    for (int64_t f = 0; f < n_f; ++f) {
      const int32_t j = w.folded_units[f];
      w.a[(q / tile) * n_f * tile + f * tile + q % tile] = q < u_dim ? wh[q * H + j] : q == u_dim ? bh[j] : 0.0f;
    }
  w.map.resize(static_cast<size_t>(map_padded * D));
  product(
      k, w.a.data(), map_padded, n_f, D, [&](int64_t f) { return wl + w.folded_units[f] * D; }, nullptr, false, w.map.data(), D);
  for (int64_t i = 0; i < D; ++i) w.map[u_dim * D + i] += bl[i];
  if (work) work->multiply_adds += map_padded * n_f * D;
}

void SplitReluDecoder::block(Scratch& w, const float* u, const float* pre, int64_t n, const float* x, double* out,
                             Work* work) const {
  const cpu::Kernels& k = k_;
  const int64_t tile = k.tile_rows;
  const Layer &hidden = layers_[layers_.size() - 2], &last = layers_.back();
  const int64_t u_dim = hidden.wt.size(0), H = hidden.wt.size(1), D = last.wt.size(1), groups = (H + 15) / 16;
  const float *wl = last.wt.data_ptr<float>(), *bl = last.b.data_ptr<float>();  // [H, D], [D]
  const int64_t padded = round_up(n, tile), map_rows = w.map_rows;
  // A unit's part that is not zero on some row of the block goes into its product: ReLU(pre) of
  // the units not folded, ReLU(-pre) of the folded ones (their ReLU is the folded pre minus it).
  w.above.assign(groups, 0);
  w.below.assign(groups, 0);
  k.mark_signs(pre, n, H, w.above.data(), w.below.data(), nullptr);
  units_of(w.above.data(), w.folded.data(), /*invert=*/true, groups, w.positive);
  units_of(w.below.data(), w.folded.data(), /*invert=*/false, groups, w.negative);
  const int64_t n_pos = static_cast<int64_t>(w.positive.size()), n_neg = static_cast<int64_t>(w.negative.size());
  const int64_t K = map_rows + n_pos + n_neg;
  // A: [u, 1, ReLU(pre) of `positive`, ReLU(-pre) of `negative`] for each row (zeros past the block's rows).
  w.a.resize(static_cast<size_t>(padded * K));
  for (int64_t t = 0; t < padded; t += tile) {
    float* at = w.a.data() + t * K;
    const int64_t live = n - t;
    if (map_rows) {
      k.pack_columns(u + t * u_dim, u_dim, live, w.columns.data(), u_dim, Part::kAll, at);
      for (int64_t r = 0; r < tile; ++r) at[u_dim * tile + r] = r < live ? 1.0f : 0.0f;
    }
    k.pack_columns(pre + t * H, H, live, w.positive.data(), n_pos, Part::kPositive, at + map_rows * tile);
    k.pack_columns(pre + t * H, H, live, w.negative.data(), n_neg, Part::kNegative, at + (map_rows + n_pos) * tile);
  }
  w.logits.resize(static_cast<size_t>(padded * D));
  const float* map = w.map.data();
  const int32_t *pos = w.positive.data(), *neg = w.negative.data();
  product(
      k, w.a.data(), padded, K, D,
      [&](int64_t i) {
        return i < map_rows ? map + i * D : wl + (i < map_rows + n_pos ? pos[i - map_rows] : neg[i - map_rows - n_pos]) * D;
      },
      map_rows ? nullptr : bl, false, w.logits.data(), D);
  thread_local std::vector<const float*> x_rows;
  x_rows.assign(tile, x);
  k.bernoulli_log_prob_rows(w.logits.data(), x_rows.data(), out, 0, n, D);
  if (work) {
    work->rows += n;
    work->multiply_adds += padded * K * D;
    work->dense_multiply_adds += n * H * D;
  }
}

void SplitReluDecoder::log_likelihood_one(const float* z, int64_t R, const float* x, double* out, Work* work) const {
  thread_local Scratch w;
  const size_t L = layers_.size();
  const int64_t tile = k_.tile_rows, d = layers_.front().wt.size(0), u_dim = layers_[L - 2].wt.size(0);
  const int64_t H = layers_[L - 2].wt.size(1);
  int64_t widest = 0;
  for (const Layer& l : layers_) widest = std::max(widest, l.wt.size(0));
  w.columns.resize(widest);
  for (int64_t i = 0; i < widest; ++i) w.columns[i] = static_cast<int32_t>(i);
  w.acts.resize(L - 1);
  for (int64_t s0 = 0; s0 < R; s0 += kSpanRows) {
    const int64_t rows = std::min(kSpanRows, R - s0);
    // The hidden layers on the span's rows (padded rows are zero inputs, computed and ignored); the
    // last keeps its pre-activation, whose sign tells each unit's part.
    hidden_layers(w, z + s0 * d, rows, round_up(rows, tile));
    const float* u = L == 2 ? z + s0 * d : w.acts[L - 3].data();  // [rows, u_dim]
    const float* pre = w.acts[L - 2].data();                      // [padded, H]
    // The units that fire on more than half of the first span's rows are folded, for the whole call.
    if (s0 == 0) fold(w, pre, rows, R, work);
    for (int64_t c0 = 0; c0 < rows; c0 += tile)
      block(w, u + c0 * u_dim, pre + c0 * H, std::min(tile, rows - c0), x, out + s0 + c0, work);
  }
}

}  // namespace latent
