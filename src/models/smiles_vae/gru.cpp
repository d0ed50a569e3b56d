#include "models/smiles_vae/gru.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/csrc/autograd/custom_function.h>

#include "cpu/gemm.h"
#include "cpu/kernels.h"
#include "latent/error.h"

namespace latent {
namespace {

constexpr int64_t kRowsPerTask = 8;  // rows of the gates' pass per thread task

void check_inputs(const at::Tensor& gi, const at::Tensor& h0, const at::Tensor& w_hh, const at::Tensor& b_hh,
                  const PackedSteps& steps) {
  const int64_t H = h0.size(-1);
  for (const at::Tensor* t : {&gi, &h0, &w_hh, &b_hh})
    if (!t->device().is_cpu() || t->scalar_type() != at::kFloat) throw Error("gru: float32 CPU tensors only");
  if (gi.dim() != 2 || h0.dim() != 2 || gi.size(1) != 3 * H || w_hh.size(0) != 3 * H || w_hh.size(1) != H ||
      b_hh.numel() != 3 * H || gi.size(0) != steps.total || h0.size(0) != steps.rows)
    throw Error("gru: mismatched shapes");
}

// The state before each packed position: h0's row at step 0, the row's previous state after.
at::Tensor states_before(const at::Tensor& y, const at::Tensor& h0, const PackedSteps& steps) {
  std::vector<at::Tensor> parts;
  for (size_t t = 0; t < steps.running.size(); ++t)
    parts.push_back(t == 0 ? h0.narrow(0, 0, steps.running[0]) : y.narrow(0, steps.offsets[t - 1], steps.running[t]));
  return at::cat(parts);
}

// The steps forward. `saved` [total, 4H] receives what backward reads (undefined: nothing kept).
at::Tensor run_forward(const at::Tensor& gi, const at::Tensor& h0, const at::Tensor& w_hh, const at::Tensor& b_hh,
                       const PackedSteps& steps, const at::Tensor& saved) {
  const int64_t H = h0.size(1);
  const at::Tensor w = w_hh.contiguous(), x = gi.contiguous(), first = h0.contiguous();
  const at::Tensor bias = b_hh.contiguous().view({1, 3 * H});
  at::Tensor y = at::empty({steps.total, H}, h0.options());
  at::Tensor gh = at::empty({steps.rows, 3 * H}, h0.options());
  const auto& k = cpu::kernels();
  for (size_t t = 0; t < steps.running.size(); ++t) {
    const int64_t n = steps.running[t], at_t = steps.offsets[t];
    const at::Tensor h_prev = t == 0 ? first.narrow(0, 0, n) : y.narrow(0, steps.offsets[t - 1], n);
    const at::Tensor g = gh.narrow(0, 0, n);
    g.copy_(bias.expand({n, 3 * H}));
    cpu::gemm(h_prev, false, w, true, g, /*accumulate=*/true);
    const float* a = x.data_ptr<float>() + at_t * 3 * H;
    const float* b = g.data_ptr<float>();
    const float* hp = h_prev.data_ptr<float>();
    float* out = y.data_ptr<float>() + at_t * H;
    float* s = saved.defined() ? saved.data_ptr<float>() + at_t * 4 * H : nullptr;
    at::parallel_for(0, n, kRowsPerTask, [&](int64_t r0, int64_t r1) { k.gru_forward(a, b, hp, out, s, r0, r1, H); });
  }
  return y;
}

class GruFunction : public torch::autograd::Function<GruFunction> {
 public:
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& gi, const at::Tensor& h0,
                            const at::Tensor& w_hh, const at::Tensor& b_hh, const PackedSteps& steps) {
    const at::Tensor saved = at::empty({steps.total, 4 * h0.size(1)}, gi.options());
    at::Tensor y = run_forward(gi, h0, w_hh, b_hh, steps, saved);
    ctx->save_for_backward({h0, w_hh, y});
    ctx->saved_data["gates"] = saved;
    ctx->saved_data["rows"] = steps.rows;
    ctx->saved_data["running"] = c10::IValue(steps.running);
    ctx->saved_data["offsets"] = c10::IValue(steps.offsets);
    return y;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx, torch::autograd::variable_list grads) {
    const auto vars = ctx->get_saved_variables();
    const at::Tensor h0 = vars[0].contiguous(), w = vars[1].contiguous(), y = vars[2];
    const at::Tensor saved = ctx->saved_data["gates"].toTensor();
    PackedSteps steps;
    steps.rows = ctx->saved_data["rows"].toInt();
    steps.running = ctx->saved_data["running"].toIntVector();
    steps.offsets = ctx->saved_data["offsets"].toIntVector();
    steps.total = y.size(0);
    const at::Tensor dy = grads[0].contiguous();
    const int64_t N = y.size(0), B = steps.rows, H = y.size(1);
    at::Tensor dgi = at::empty({N, 3 * H}, y.options());
    at::Tensor dgh = at::empty({N, 3 * H}, y.options());
    at::Tensor carry = at::zeros({B, H}, y.options());  // the gradient reaching each row's state from later steps
    at::Tensor dh = at::empty({B, H}, y.options());
    const auto& k = cpu::kernels();
    for (size_t t = steps.running.size(); t-- > 0;) {
      const int64_t n = steps.running[t], at_t = steps.offsets[t];
      const at::Tensor c = carry.narrow(0, 0, n);
      at::Tensor dh_n = dh.narrow(0, 0, n);
      at::add_out(dh_n, dy.narrow(0, at_t, n), c);
      const at::Tensor hp = t == 0 ? h0 : y.narrow(0, steps.offsets[t - 1], n);
      const float* d = dh.data_ptr<float>();
      const float* s = saved.data_ptr<float>() + at_t * 4 * H;
      const float* hpp = hp.data_ptr<float>();
      float* gi = dgi.data_ptr<float>() + at_t * 3 * H;
      float* gh = dgh.data_ptr<float>() + at_t * 3 * H;
      float* direct = carry.data_ptr<float>();
      at::parallel_for(0, n, kRowsPerTask, [&](int64_t r0, int64_t r1) { k.gru_backward(d, s, hpp, gi, gh, direct, r0, r1, H); });
      cpu::gemm(dgh.narrow(0, at_t, n), false, w, false, c, /*accumulate=*/true);  // + dgh W_hh
    }
    // W_hh's gradient: the sum over positions of dgh^T h_before, as one product.
    at::Tensor dw = at::empty({3 * H, H}, y.options());
    cpu::gemm(dgh, true, states_before(y, h0, steps), false, dw);
    at::Tensor db = at::empty({3 * H}, y.options());
    k.column_sums(dgh.data_ptr<float>(), N, 3 * H, db.data_ptr<float>());
    return {dgi, carry, dw, db, at::Tensor()};
  }
};

}  // namespace

PackedSteps PackedSteps::of_lengths(const at::Tensor& lengths) {
  const at::Tensor len = lengths.to(at::kLong).contiguous();
  const int64_t* l = len.data_ptr<int64_t>();
  PackedSteps s;
  s.rows = len.numel();
  for (int64_t b = 0; b < s.rows; ++b)
    if (l[b] < 1 || (b > 0 && l[b] > l[b - 1])) throw Error("gru: lengths must be >= 1 and sorted longest first");
  int64_t n = s.rows;
  for (int64_t t = 0; n > 0; ++t) {
    while (n > 0 && l[n - 1] <= t) --n;
    if (n == 0) break;
    s.offsets.push_back(s.total);
    s.running.push_back(n);
    s.total += n;
  }
  return s;
}

PackedSteps PackedSteps::full(int64_t steps, int64_t rows) {
  PackedSteps s;
  s.rows = rows;
  for (int64_t t = 0; t < steps && rows > 0; ++t) {
    s.offsets.push_back(t * rows);
    s.running.push_back(rows);
  }
  s.total = static_cast<int64_t>(s.running.size()) * rows;
  return s;
}

at::Tensor PackedSteps::positions() const {
  at::Tensor out = at::empty({total}, at::kLong);
  int64_t* p = out.data_ptr<int64_t>();
  for (size_t t = 0; t < running.size(); ++t)
    for (int64_t r = 0; r < running[t]; ++r) *p++ = static_cast<int64_t>(t) * rows + r;
  return out;
}

at::Tensor PackedSteps::last_positions() const {
  at::Tensor out = at::empty({rows}, at::kLong);
  int64_t* p = out.data_ptr<int64_t>();
  for (size_t t = 0; t < running.size(); ++t) {
    const int64_t ending = t + 1 < running.size() ? running[t + 1] : 0;  // rows [ending, running[t]) end at t
    for (int64_t r = ending; r < running[t]; ++r) p[r] = offsets[t] + r;
  }
  return out;
}

at::Tensor gru_packed(const at::Tensor& gi, const at::Tensor& h0, const at::Tensor& w_hh, const at::Tensor& b_hh,
                      const PackedSteps& steps) {
  check_inputs(gi, h0, w_hh, b_hh, steps);
  if (steps.total == 0) return at::empty({0, h0.size(1)}, h0.options());
  const bool grad =
      at::GradMode::is_enabled() && (gi.requires_grad() || h0.requires_grad() || w_hh.requires_grad() || b_hh.requires_grad());
  if (grad) return GruFunction::apply(gi, h0, w_hh, b_hh, steps);
  return run_forward(gi, h0, w_hh, b_hh, steps, at::Tensor());
}

at::Tensor gru_sequence(const at::Tensor& gi, const at::Tensor& h0, const at::Tensor& w_hh, const at::Tensor& b_hh) {
  const int64_t T = gi.size(0), B = gi.size(1);
  return gru_packed(gi.reshape({T * B, gi.size(2)}), h0, w_hh, b_hh, PackedSteps::full(T, B)).view({T, B, h0.size(1)});
}

at::Tensor gru_step(const at::Tensor& gi, const at::Tensor& h_prev, const at::Tensor& w_hh, const at::Tensor& b_hh) {
  at::NoGradGuard no_grad;
  return gru_packed(gi, h_prev, w_hh, b_hh, PackedSteps::full(1, h_prev.size(0)));
}

}  // namespace latent
