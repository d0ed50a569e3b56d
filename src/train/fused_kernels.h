// Elementwise kernels of the fused MLP training step. Plain loops that the compiler vectorizes
// (this file's translation unit is built with -fno-trapping-math; target_clones adds AVX-512
// and AVX2 versions, picked at run time). Each processes a range of rows so callers can split work across
// threads; per-row results are summed in a fixed order, so results do not depend on the split.
#pragma once

#include <cstdint>

namespace latent::kernels {

/// Bernoulli on logits, rows [r0, r1) of [B, D]:
///   nll[r] = sum_k softplus(l) - x l;   grad = (sigmoid(l) - x) * scale.
/// `scratch` holds D floats for the calling thread.
void bernoulli_nll_grad(const float* logits, const float* x, float* grad, double* nll, float* scratch, int64_t r0, int64_t r1,
                        int64_t D, float scale);

/// Gaussian N(x | mean, exp(logvar)) with logvar per dimension [D], rows [r0, r1):
///   nll[r] = 0.5 sum_k (log 2pi + logvar_k + (x - m)^2 exp(-logvar_k));
///   grad_mean = (m - x) exp(-logvar) * scale; grad_logvar_rows (if not null) = 0.5 (1 - (x - m)^2 exp(-logvar)) * scale.
void gaussian_nll_grad(const float* mean, const float* x, const float* logvar, float* grad_mean, float* grad_logvar_rows,
                       double* nll, float* scratch, int64_t r0, int64_t r1, int64_t D, float scale);

/// z = mu + exp(lv / 2) eps and KL per row, for rows [r0, r1) of [B, d]; writes sigma too.
void reparam_forward(const float* mu, const float* lv, const float* eps, float* z, float* sigma, double* kl, int64_t r0,
                     int64_t r1, int64_t d);

/// Gradients through the reparameterization and beta * KL (KL scaled by `kl_scale`):
///   dmu = dz + kl_scale mu;  dlv = 0.5 dz eps sigma + 0.5 kl_scale (exp(lv) - 1).
void reparam_backward(const float* dz, const float* mu, const float* eps, const float* sigma, float* dmu, float* dlv, int64_t n,
                      float kl_scale);

/// dg *= (h > 0), the ReLU backward on the layer's output h.
void relu_backward(float* dg, const float* h, int64_t n);

/// exp(x) for x <= 0 and log(1 + e) for e in [0, 1]: exposed for the accuracy test.
float exp_nonpositive(float x);
float log1p_unit(float e);

/// The bf16x3 split of x [rows, stride] into hi [rows, padded] and lo [rows, padded]: each row's
/// columns cols[0..width) (its first `width` when cols is null) as hi = bf16(v) and lo = bf16(v - hi),
/// both rounded to nearest even, so that hi + lo holds v to ~2^-17 relative; columns [width, padded) are 0.
void split_bf16x3(const float* x, int64_t rows, int64_t stride, const int32_t* cols, int64_t width, int64_t padded, uint16_t* hi,
                  uint16_t* lo);

/// out [rows, padded] = the columns cols[0..width) of x [rows, stride], then zeros.
void gather_columns(const float* x, int64_t rows, int64_t stride, const int32_t* cols, int64_t width, int64_t padded, float* out);

/// out[i] = x[i] rounded to bfloat16 (nearest even; finite values).
void to_bf16(const float* x, int64_t n, uint16_t* out);

/// used[i] |= x[r, i] > 0 for every row r of x [rows, cols].
void mark_positive(const float* x, int64_t rows, int64_t cols, uint8_t* used);

/// One Adam update of n elements (PyTorch's rule):
///   m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;  p -= step_size m / (sqrt(v) inv_sqrt_bias2 + eps)
void adam_update(float* p, const float* g, float* m, float* v, int64_t n, float b1, float b2, float step_size,
                 float inv_sqrt_bias2, float eps);

/// dst[k] += src[k]
void add_into(float* dst, const float* src, int64_t n);

/// c[r, :] += bias, then ReLU when `relu`; c is [rows, cols].
void bias_act(float* c, const float* bias, int64_t rows, int64_t cols, bool relu);

/// log(1 + exp(-a)) for a >= 0 from the table the AVX-512 likelihood pass uses (absolute error < 1e-7).
float softplus_of_nonnegative(float a);

/// log Bernoulli(x | sigmoid(l)) summed per row for rows [r0, r1) of logits [R, D]; row r's
/// target is x_rows[r] (rows may share one image).
void bernoulli_log_prob_rows(const float* logits, const float* const* x_rows, double* out, int64_t r0, int64_t r1, int64_t D);

/// out[i] = round(255 x[i]) with x clamped to [0, 1] (NaN -> 0): image values to 8-bit pixels.
void to_u8(const float* x, int64_t n, uint8_t* out);

/// out[i] = round(255 sigmoid(logits[i])): a Bernoulli decoder's means as 8-bit pixels, in one pass.
void sigmoid_to_u8(const float* logits, int64_t n, uint8_t* out);

/// Per-lane sums of x and x^2 over `pixels` rows of 16 floats (one channel block of oneDNN's
/// nChw16c layout), added into sum[16] and sumsq[16] (float partial sums of 64 rows, double across).
void block16_moments(const float* x, int64_t pixels, double* sum, double* sumsq);

/// y = SiLU(x a + b) per lane (a, b: 16 per-channel factors), or y = x when `a` is null, over `pixels`
/// pixels of 16 lanes; with `twice` every pixel is written twice side by side (nearest-neighbour 2x
/// upsampling of a row). `y_bf16` (when not null) receives the result as bfloat16 instead of y.
void block16_fill(const float* x, int64_t pixels, const float* a, const float* b, bool twice, float* y, uint16_t* y_bf16);

}  // namespace latent::kernels
