// A GRU layer over a whole sequence in one piece, as cuDNN and oneDNN run one: the input's
// products for every step are one matrix product (the caller's, with autograd), then each step is
// one product with W_hh and one pass over the gates (cpu::kernels().gru_forward); backward walks the
// steps in reverse the same way and takes W_hh's gradient as one product over all steps at the end.
// The cell is torch.nn.GRU's (gates r, u, n; n = tanh(W_in x + b_in + r (W_hn h + b_hn))), so its
// parameters are an nn::GRU's; ATen's own GRU runs ~10 operators and autograd nodes per step.
//
// Batches of sequences of different lengths are packed step by step, as PyTorch's PackedSequence
// packs them: rows sorted longest first, step t holding the rows still running (a prefix of the
// batch) one after another. SMILES batches padded to their longest row spend about half their
// positions on padding; packed, neither the GRU nor the products around it compute them.
#pragma once

#include <ATen/Tensor.h>

#include <vector>

namespace latent {

/// The layout of a packed batch: B rows sorted longest first; step t holds rows [0, running[t])
/// at positions [offsets[t], offsets[t] + running[t]) of a [total, *] tensor.
struct PackedSteps {
  int64_t rows = 0, total = 0;
  std::vector<int64_t> running, offsets;  // per step, while some row runs

  /// The layout of rows that run `lengths` steps each (int64 [B], non-increasing: checked; each >= 1).
  static PackedSteps of_lengths(const at::Tensor& lengths);
  /// Every step of every row: `steps` steps of `rows` rows.
  static PackedSteps full(int64_t steps, int64_t rows);
  /// [total] int64: each packed position's index t * B + r in a time-major [T, B] layout (to pack
  /// a [T, B, ...] tensor with index_select, or to place packed values back).
  at::Tensor positions() const;
  /// [B] int64: the packed position of each row's last step.
  at::Tensor last_positions() const;
};

/// Every running step's state Y [total, H] of a GRU layer from h0 [B, H], given gi [total, 3H] (the
/// input's products W_ih x + b_ih at every position), w_hh [3H, H] and b_hh [3H]. Differentiable in
/// all four when grad mode is on; float32 CPU tensors.
at::Tensor gru_packed(const at::Tensor& gi, const at::Tensor& h0, const at::Tensor& w_hh, const at::Tensor& b_hh,
                      const PackedSteps& steps);

/// The same for a batch whose rows all run T steps: gi [T, B, 3H] -> Y [T, B, H].
at::Tensor gru_sequence(const at::Tensor& gi, const at::Tensor& h0, const at::Tensor& w_hh, const at::Tensor& b_hh);

/// One step without autograd: h [B, H] = the cell's new state from h_prev [B, H] and gi [B, 3H].
at::Tensor gru_step(const at::Tensor& gi, const at::Tensor& h_prev, const at::Tensor& w_hh, const at::Tensor& b_hh);

}  // namespace latent
