// The fused training step of mlp_vae with ReLU: forward and backward written out by hand over
// buffers allocated once, in the manner of llm.c. Shapes: B batch, D data, h_i hidden, d latent.
//   forward:  h_{i+1} = relu(h_i W_i^T + b_i)            (encoder, h_0 = x)      [B, h_i]
//             mu = h W_mu^T + b_mu, lv = h W_lv^T + b_lv                          [B, d]
//             z = mu + exp(lv/2) eps                                              [B, d]
//             g_{j+1} = relu(g_j V_j^T + c_j), logits = g V_last^T + c_last      [B, D]
//   loss:     mean_B( -log p(x|z) + beta KL(q || N(0, I)) )
//   backward: the same chain in reverse; weight gradients are (dA)^T H products.
// The matrix products go to cpu::gemm() (oneDNN sgemm, or at::mm) into the preallocated buffers; the elementwise work (likelihood
// and its gradient, reparameterization, KL, ReLU backward) is fused into single passes (cpu::kernels()). The result matches
// autograd to float rounding (tests/unit/test_fused_mlp.cpp).
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <map>

#include "cpu/gemm.h"
#include "cpu/kernels.h"
#include "latent/model.h"
#include "models/vae/steps.h"

namespace latent {
namespace {

struct Linear {
  at::Tensor W, b, gW, gb;  // W [out, in]
};

class FusedMlpStep : public VaeStep {
 public:
  FusedMlpStep(VaeImpl& model, std::map<std::string, at::Tensor> params, Precision precision) : model_(model) {
    if (precision == Precision::kBFloat16) bf16_ = std::make_unique<cpu::Bf16Gemm>();
    const ModelConfig& c = model.config();
    auto linear = [&](const std::string& name) {
      Linear l{params.at(name + ".weight"), params.at(name + ".bias"), {}, {}};
      l.gW = grad_of(l.W);
      l.gb = grad_of(l.b);
      return l;
    };
    for (size_t i = 0; i < c.hidden.size(); ++i) enc_.push_back(linear("encoder." + std::to_string(2 * i)));
    mu_ = linear("fc_mu");
    lv_ = linear("fc_logvar");
    for (size_t j = 0; j <= c.hidden.size(); ++j) dec_.push_back(linear("decoder." + std::to_string(2 * j)));
    if (params.count("decoder_logvar")) {
      dec_logvar_ = params.at("decoder_logvar");
      g_dec_logvar_ = grad_of(dec_logvar_);
    }
  }

  // cpu::gemm's products, latent's kernels and the bias gradients' sums are; oneDNN's bfloat16 matmul may not be.
  bool thread_invariant() const override { return !bf16_; }

  StepLoss run(const at::Tensor& x_in, const at::Tensor& eps_in, double beta) override {
    at::NoGradGuard no_grad;
    const int64_t B = x_in.size(0), D = model_.data_dim(), d = model_.latent_dim();
    reserve(B);
    if (bf16_) bf16_->clear();  // the weights changed since the last step
    const at::Tensor x = x_in.reshape({B, D}).contiguous();
    const at::Tensor eps = eps_in.contiguous();
    auto rows = [B](const at::Tensor& t) { return t.narrow(0, 0, B); };

    // Forward.
    at::Tensor h = x;  // [B, D]
    for (size_t i = 0; i < enc_.size(); ++i) {
      at::Tensor out = rows(enc_h_[i]);
      linear_act(h, enc_[i], out, true);  // [B, h_i]
      h = out;
    }
    at::Tensor mu = rows(mu_buf_), lv = rows(lv_buf_), z = rows(z_buf_), sigma = rows(sigma_buf_);
    linear_act(h, mu_, mu, false);  // [B, d]
    linear_act(h, lv_, lv, false);  // [B, d]
    double* kl_rows = kl_rows_.data_ptr<double>();
    const cpu::Kernels& k = cpu::kernels();
    k.reparam_forward(mu.data_ptr<float>(), lv.data_ptr<float>(), eps.data_ptr<float>(), z.data_ptr<float>(),
                      sigma.data_ptr<float>(), kl_rows, 0, B, d);
    at::Tensor g = z;  // [B, d]
    for (size_t j = 0; j + 1 < dec_.size(); ++j) {
      at::Tensor out = rows(dec_h_[j]);
      linear_act(g, dec_[j], out, true);  // [B, h]
      g = out;
    }
    at::Tensor out = rows(out_buf_), dout = rows(dout_buf_);
    linear_act(g, dec_.back(), out, false);  // [B, D]

    // Likelihood, and its gradient with respect to the decoder output.
    const float scale = 1.0f / static_cast<float>(B);
    double* nll = nll_rows_.data_ptr<double>();
    const float* op = out.data_ptr<float>();
    const float* xp = x.data_ptr<float>();
    float* dp = dout.data_ptr<float>();
    const bool bernoulli = model_.config().likelihood == Likelihood::kBernoulli;
    at::Tensor glv_rows = dec_logvar_.defined() ? rows(glv_rows_buf_) : at::Tensor();
    const float* lvp = dec_logvar_.defined() ? dec_logvar_.data_ptr<float>() : fixed_logvar_.data_ptr<float>();
    at::parallel_for(0, B, 16, [&](int64_t r0, int64_t r1) {
      std::vector<float> scratch(2 * D);
      if (bernoulli)
        k.bernoulli_nll_grad(op, xp, dp, nll, scratch.data(), r0, r1, D, scale);
      else
        k.gaussian_nll_grad(op, xp, lvp, dp, glv_rows.defined() ? glv_rows.data_ptr<float>() : nullptr, nll, scratch.data(), r0,
                            r1, D, scale);
    });
    if (glv_rows.defined()) {
      column_sums(glv_rows, g_dec_logvar_);  // [D]
    }
    StepLoss loss;
    for (int64_t r = 0; r < B; ++r) {
      loss.recon += nll[r];
      loss.kl += kl_rows[r];
    }
    loss.recon /= B;
    loss.kl /= B;
    loss.loss = loss.recon + beta * loss.kl;

    // Backward through the decoder.
    at::Tensor dg = dout;
    for (size_t j = dec_.size(); j-- > 0;) {
      const at::Tensor& in = j == 0 ? z : rows(dec_h_[j - 1]);
      product(dg, true, in, false, dec_[j].gW);  // [out, in]
      column_sums(dg, dec_[j].gb);
      at::Tensor din = rows(j == 0 ? dz_buf_ : dec_dh_[j - 1]);
      product(dg, false, dec_[j].W, false, din);  // [B, in]
      if (j > 0) k.relu_backward(din.data_ptr<float>(), in.data_ptr<float>(), din.numel());
      dg = din;
    }
    // Through the reparameterization and the KL.
    at::Tensor dmu = rows(dmu_buf_), dlv = rows(dlv_buf_);
    k.reparam_backward(dg.data_ptr<float>(), mu.data_ptr<float>(), eps.data_ptr<float>(), sigma.data_ptr<float>(),
                       dmu.data_ptr<float>(), dlv.data_ptr<float>(), B * d, static_cast<float>(beta) * scale);
    at::Tensor henc = enc_.empty() ? x : rows(enc_h_.back());
    product(dmu, true, henc, false, mu_.gW);  // [d, h]
    column_sums(dmu, mu_.gb);
    product(dlv, true, henc, false, lv_.gW);
    column_sums(dlv, lv_.gb);
    if (enc_.empty()) return loss;
    at::Tensor dh = rows(enc_dh_.back());
    product(dmu, false, mu_.W, false, dh);  // [B, h]
    product(dlv, false, lv_.W, false, dh, /*accumulate=*/true);
    // Through the encoder.
    for (size_t i = enc_.size(); i-- > 0;) {
      const at::Tensor hout = rows(enc_h_[i]);
      k.relu_backward(dh.data_ptr<float>(), hout.data_ptr<float>(), dh.numel());
      const at::Tensor in = i == 0 ? x : rows(enc_h_[i - 1]);
      product(dh, true, in, false, enc_[i].gW);  // [h_i, in]
      column_sums(dh, enc_[i].gb);
      if (i == 0) break;
      at::Tensor din = rows(enc_dh_[i - 1]);
      product(dh, false, enc_[i].W, false, din);  // [B, in]
      dh = din;
    }
    return loss;
  }

 private:
  // c = op(a) op(b) (+ c): in bfloat16 for mixed precision where every dimension is 64 or more (the
  // products with the latent code's width stay float32), else in float32.
  void product(const at::Tensor& a, bool trans_a, const at::Tensor& b, bool trans_b, const at::Tensor& c,
               bool accumulate = false) {
    const int64_t K = trans_a ? a.size(0) : a.size(1);
    if (bf16_ && std::min({c.size(0), c.size(1), K}) >= 64)
      bf16_->run(a, trans_a, b, trans_b, c, accumulate);
    else
      cpu::gemm(a, trans_a, b, trans_b, c, accumulate);
  }

  // out [cols] = the sum of x's rows [rows, cols] (a bias gradient), in a fixed order.
  static void column_sums(const at::Tensor& x, const at::Tensor& out) {
    cpu::kernels().column_sums(x.data_ptr<float>(), x.size(0), x.size(1), out.data_ptr<float>());
  }

  // out = act(in W^T + b): the product, then bias and activation in one pass.
  void linear_act(const at::Tensor& in, const Linear& l, const at::Tensor& out, bool relu) {
    product(in, false, l.W, true, out);
    cpu::kernels().bias_act(out.data_ptr<float>(), l.b.data_ptr<float>(), out.size(0), out.size(1), relu);
  }

  static at::Tensor grad_of(at::Tensor& p) {
    if (!p.grad().defined()) p.mutable_grad() = at::zeros_like(p);
    return p.grad();
  }

  void reserve(int64_t B) {
    if (B <= capacity_) return;
    capacity_ = B;
    const int64_t D = model_.data_dim(), d = model_.latent_dim();
    auto f = [&](int64_t cols) { return at::empty({B, cols}, at::kFloat); };
    enc_h_.clear();
    enc_dh_.clear();
    dec_h_.clear();
    dec_dh_.clear();
    for (const auto& l : enc_) {
      enc_h_.push_back(f(l.W.size(0)));
      enc_dh_.push_back(f(l.W.size(0)));
    }
    for (size_t j = 0; j + 1 < dec_.size(); ++j) {
      dec_h_.push_back(f(dec_[j].W.size(0)));
      dec_dh_.push_back(f(dec_[j].W.size(0)));
    }
    mu_buf_ = f(d);
    lv_buf_ = f(d);
    z_buf_ = f(d);
    sigma_buf_ = f(d);
    dz_buf_ = f(d);
    dmu_buf_ = f(d);
    dlv_buf_ = f(d);
    out_buf_ = f(D);
    dout_buf_ = f(D);
    if (dec_logvar_.defined()) glv_rows_buf_ = f(D);
    fixed_logvar_ = at::full({D}, 2.0 * std::log(model_.config().sigma), at::kFloat);  // Gaussian, fixed variance
    nll_rows_ = at::empty({B}, at::kDouble);
    kl_rows_ = at::empty({B}, at::kDouble);
  }

  VaeImpl& model_;
  std::unique_ptr<cpu::Bf16Gemm> bf16_;  // mixed precision: bfloat16 products
  std::vector<Linear> enc_, dec_;
  Linear mu_, lv_;
  at::Tensor dec_logvar_, g_dec_logvar_;
  int64_t capacity_ = 0;
  std::vector<at::Tensor> enc_h_, enc_dh_, dec_h_, dec_dh_;
  at::Tensor mu_buf_, lv_buf_, z_buf_, sigma_buf_, dz_buf_, dmu_buf_, dlv_buf_, out_buf_, dout_buf_, glv_rows_buf_;
  at::Tensor fixed_logvar_, nll_rows_, kl_rows_;
};

}  // namespace

std::unique_ptr<VaeStep> make_fused_mlp_step(VaeImpl& model, Precision precision) {
  const ModelConfig& c = model.config();
  if (c.type != "mlp_vae" || c.activation != "relu") return nullptr;
  std::map<std::string, at::Tensor> params;
  for (auto& [name, p] : named_parameters(model)) {
    if (!p.device().is_cpu() || p.scalar_type() != at::kFloat || !p.is_contiguous()) return nullptr;
    params[name] = p;
  }
  return std::make_unique<FusedMlpStep>(model, std::move(params), precision);
}

}  // namespace latent
