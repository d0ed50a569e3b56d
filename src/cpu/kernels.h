// @brief latent's compute kernels: one table of functions, in one variant per instruction-set level.
//
// Every kernel has a portable twin (kernels_portable.cpp: plain C++, built on any architecture)
// and, on x86-64, AVX2 and AVX-512 variants: the same loops compiled for those targets
// (kernels_generic.inc), with hand-written intrinsics where the compiler's code was slower. The rest
// of latent calls kernels(), the variant cpu::features() chose; tests call every variant this CPU
// can run (variants()) and compare each with the portable twin, as llama.cpp's test-backend-ops
// compares backends. Each kernel processes a range, so callers split work across threads; per-row
// sums are taken in a fixed order, so results do not depend on the split.
#pragma once

#include <cstdint>
#include <vector>

#include "cpu/features.h"

namespace latent::cpu {

/// How pack_columns passes values on: as they are, ReLU(x) or ReLU(-x).
enum class Part { kAll, kPositive, kNegative };

struct Kernels {
  Isa isa = Isa::kPortable;
  /// Rows of tile_gemm's register tile, and of the blocks the split ReLU decoder chooses units for
  /// (8 with AVX-512's 32 registers, 4 with AVX2's 16).
  int64_t tile_rows = 8;

  // --- The fused MLP training step. Shapes: B rows, D data dimensions, d latent.

  /// Bernoulli on logits, rows [r0, r1) of [B, D]: nll[r] = sum_k softplus(l) - x l;
  /// grad = (sigmoid(l) - x) * scale. `scratch` holds D floats for the calling thread.
  void (*bernoulli_nll_grad)(const float* logits, const float* x, float* grad, double* nll, float* scratch, int64_t r0,
                             int64_t r1, int64_t D, float scale);
  /// Gaussian N(x | mean, exp(logvar)) with logvar per dimension [D], rows [r0, r1):
  ///   nll[r] = 0.5 sum_k (log 2pi + logvar_k + (x - m)^2 exp(-logvar_k));
  ///   grad_mean = (m - x) exp(-logvar) * scale; grad_logvar_rows (if not null) = 0.5 (1 - (x - m)^2 exp(-logvar)) * scale.
  /// `scratch` holds 2 D floats.
  void (*gaussian_nll_grad)(const float* mean, const float* x, const float* logvar, float* grad_mean, float* grad_logvar_rows,
                            double* nll, float* scratch, int64_t r0, int64_t r1, int64_t D, float scale);
  /// z = mu + exp(lv / 2) eps and KL per row, rows [r0, r1) of [B, d]; writes sigma too.
  void (*reparam_forward)(const float* mu, const float* lv, const float* eps, float* z, float* sigma, double* kl, int64_t r0,
                          int64_t r1, int64_t d);
  /// Gradients through the reparameterization and beta * KL (KL scaled by `kl_scale`):
  ///   dmu = dz + kl_scale mu;  dlv = 0.5 dz eps sigma + 0.5 kl_scale (sigma^2 - 1).
  void (*reparam_backward)(const float* dz, const float* mu, const float* eps, const float* sigma, float* dmu, float* dlv,
                           int64_t n, float kl_scale);
  /// dg *= (h > 0), the ReLU backward on the layer's output h.
  void (*relu_backward)(float* dg, const float* h, int64_t n);
  /// c[r, :] += bias, then ReLU when `relu`; c is [rows, cols].
  void (*bias_act)(float* c, const float* bias, int64_t rows, int64_t cols, bool relu);
  /// out[j] = sum over rows r, in order, of x[r, j] (a bias gradient): the same sums on any thread count.
  void (*column_sums)(const float* x, int64_t rows, int64_t cols, float* out);
  /// One Adam update of n elements (PyTorch's rule), moments below float's normal range flushed to 0:
  ///   m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;  p -= step_size m / (sqrt(v) inv_sqrt_bias2 + eps)
  void (*adam_update)(float* p, const float* g, float* m, float* v, int64_t n, float b1, float b2, float step_size,
                      float inv_sqrt_bias2, float eps);

  // --- GRU cells (torch.nn.GRU's), rows [r0, r1) of a batch; H hidden units, gates in the order r, u, n.

  /// h = n + u (h_prev - n) with r = sigmoid(gi_r + gh_r), u = sigmoid(gi_u + gh_u),
  /// n = tanh(gi_n + r gh_n); gi and gh [B, 3H] hold both products with their biases. When `saved` is
  /// not null it receives [B, 4H]: r, u, n and gh_n, what gru_backward reads.
  void (*gru_forward)(const float* gi, const float* gh, const float* h_prev, float* h, float* saved, int64_t r0, int64_t r1,
                      int64_t H);
  /// From dh [B, H] (the loss's gradient at h): dgi and dgh [B, 3H] (at gi and gh) and dh_prev [B, H]
  /// = dh u, the gradient that reaches h_prev directly (gh's product adds dgh W_hh to it).
  void (*gru_backward)(const float* dh, const float* saved, const float* h_prev, float* dgi, float* dgh, float* dh_prev,
                       int64_t r0, int64_t r1, int64_t H);

  // --- Evaluation (IWAE) and packed decoders.

  /// log Bernoulli(x | sigmoid(l)) summed per row for rows [r0, r1) of logits [R, D]; row r's target
  /// is x_rows[r] (rows may share one image).
  void (*bernoulli_log_prob_rows)(const float* logits, const float* const* x_rows, double* out, int64_t r0, int64_t r1,
                                  int64_t D);
  /// used[i] |= x[r, i] > 0 for every row r of x [rows, cols].
  void (*mark_positive)(const float* x, int64_t rows, int64_t cols, uint8_t* used);
  /// The bf16x3 split of x [rows, stride] into hi and lo [rows, padded]: each row's columns cols[0..width)
  /// (its first `width` when cols is null) as hi = bf16(v) and lo = bf16(v - hi), rounded to nearest
  /// even, so hi + lo holds v to ~2^-17 relative; columns [width, padded) are 0.
  void (*split_bf16x3)(const float* x, int64_t rows, int64_t stride, const int32_t* cols, int64_t width, int64_t padded,
                       uint16_t* hi, uint16_t* lo);
  /// out [rows, padded] = the columns cols[0..width) of x [rows, stride] (its first `width` when cols
  /// is null), then zeros.
  void (*gather_columns)(const float* x, int64_t rows, int64_t stride, const int32_t* cols, int64_t width, int64_t padded,
                         float* out);
  /// out[i] = x[i] rounded to bfloat16 (nearest even; finite values).
  void (*to_bf16)(const float* x, int64_t n, uint16_t* out);

  // --- The split ReLU decoder's products (eval/split_relu_decoder.h).

  /// c [rows, N] (row stride ldc) = init + A B, ReLU'd when `relu`: A packed as pack_columns writes it
  /// ([rows / T][K][T], T = tile_rows), rows a multiple of T; b[k] points at row k of B (N floats); init
  /// (null: zeros) is one row added to every row.
  void (*tile_gemm)(const float* a, int64_t rows, int64_t K, int64_t N, const float* const* b, const float* init, bool relu,
                    float* c, int64_t ldc);
  /// The columns cols[0..K) of tile_rows rows of x (row stride ldx; rows from `valid` on read as
  /// zeros), or their part, into a [K][tile_rows]. A NaN passes through either part (as through ReLU
  /// in a dense decoder).
  void (*pack_columns)(const float* x, int64_t ldx, int64_t valid, const int32_t* cols, int64_t K, Part part, float* a);
  /// For each 16 units g of pre [rows, H] (bit i: unit 16 g + i): above[g] |= the units > 0 on some
  /// row, below[g] |= the units < 0 on some row (NaN counts as both), and, when count is not null,
  /// count[16 g + i] += the rows on which unit 16 g + i is > 0 (count has 16 per group).
  void (*mark_signs)(const float* pre, int64_t rows, int64_t H, uint16_t* above, uint16_t* below, int32_t* count);

  // --- Pixels.

  /// out[i] = round(255 x[i]) with x clamped to [0, 1] (NaN -> 0).
  void (*to_u8)(const float* x, int64_t n, uint8_t* out);
  /// out[i] = round(255 sigmoid(logits[i])): a Bernoulli decoder's means as 8-bit pixels, in one pass.
  void (*sigmoid_to_u8)(const float* logits, int64_t n, uint8_t* out);

  // --- oneDNN's channel-blocked activations ([N, C / L, H, W, L], L = lanes: 8 or 16).

  /// Per-lane sums of x and x^2 over `pixels` rows of `lanes` floats, added into sum[lanes] and sumsq[lanes].
  void (*block_moments)(const float* x, int64_t pixels, int64_t lanes, double* sum, double* sumsq);
  /// y = x over `pixels` rows of `lanes` floats, with block_moments' sums taken in the same pass
  /// (x and y 64-byte aligned; y is written past the cache).
  void (*block_copy_moments)(const float* x, int64_t pixels, int64_t lanes, float* y, double* sum, double* sumsq);
  /// y = SiLU(x a + b) per lane (a, b: `lanes` per-channel factors), or y = x when `a` is null; with
  /// `twice` every pixel is written twice side by side (nearest-neighbour 2x upsampling of a row).
  /// `y_bf16` (when not null) receives the result as bfloat16 instead of y.
  void (*block_fill)(const float* x, int64_t pixels, int64_t lanes, const float* a, const float* b, bool twice, float* y,
                     uint16_t* y_bf16);

  // --- Winograd F(4x4, 3x3) on channel-blocked activations (the SD convolutions where oneDNN has
  // none: below AVX-512). Tile t of a band is output rows [4 (t / tiles_w), +4) and columns
  // [4 (t % tiles_w), +4); position e of its 6x6 transform is at v[e * stride_e + t * stride_t + lane].

  /// B^T d B of the input tiles [t0, t1) of one channel block's band [band_rows][width][lanes]; the
  /// tile's first input row is band row first_row + 4 (t / tiles_w) (-1 above the image); rows and
  /// columns outside the band or the image read as 0.
  void (*wino_input)(const float* band, int64_t band_rows, int64_t first_row, int64_t width, int64_t lanes, int64_t tiles_w,
                     int64_t t0, int64_t t1, float* v, int64_t stride_e, int64_t stride_t);
  /// y = A^T m A (+ bias per lane, + y's values when `accumulate`, then ReLU when `relu`) for the
  /// tiles [t0, t1), into one channel block's band y [out_rows][width][lanes] (outputs past
  /// out_rows or width are not written).
  void (*wino_output)(const float* m, int64_t stride_e, int64_t stride_t, int64_t tiles_w, int64_t t0, int64_t t1,
                      int64_t out_rows, int64_t width, int64_t lanes, const float* bias, bool accumulate, bool relu, float* y);
};

/// The variant features() chose.
const Kernels& kernels();

/// Every variant this build has and this CPU (as capped) can run, the portable twin first.
std::vector<const Kernels*> variants();

/// Scalar references of the approximations the kernels use, for the accuracy tests:
/// exp(x) for x <= 0; log(1 + e) for e in [0, 1]; log(1 + exp(-a)) for a >= 0 from the table the
/// AVX-512 likelihood reads (absolute error < 1e-7).
float exp_nonpositive(float x);
float log1p_unit(float e);
float softplus_of_nonnegative(float a);

}  // namespace latent::cpu
