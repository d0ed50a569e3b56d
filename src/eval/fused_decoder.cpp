#include "eval/fused_decoder.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <cstring>

#include "cpu/gemm.h"
#include "cpu/kernels.h"
#include "latent/checkpoint.h"

namespace latent {

std::unique_ptr<FusedMlpDecoder> FusedMlpDecoder::make(VaeImpl& model, Precision precision) {
  const ModelConfig& c = model.config();
  if (c.type != "mlp_vae" || c.activation != "relu" || c.likelihood != Likelihood::kBernoulli) return nullptr;
  std::map<std::string, at::Tensor> params;
  for (auto& [name, p] : named_parameters(model)) {
    if (!p.device().is_cpu() || p.scalar_type() != at::kFloat || !p.is_contiguous()) return nullptr;
    params[name] = p;
  }
  auto decoder = std::make_unique<FusedMlpDecoder>();
  for (size_t j = 0; j <= c.hidden.size(); ++j) {
    const std::string name = "decoder." + std::to_string(2 * j);
    decoder->layers_.push_back({params.at(name + ".weight").detach().t().contiguous(), params.at(name + ".bias").detach()});
  }
  std::vector<cpu::PackedMlp::Layer> packed;
  for (size_t j = 0; j < decoder->layers_.size(); ++j)
    packed.push_back({decoder->layers_[j].Wt.t(), decoder->layers_[j].b, j + 1 < decoder->layers_.size()});
  decoder->packed_ = cpu::PackedMlp::make(packed, precision);
  if (precision == Precision::kFloat32) {
    std::vector<SplitReluDecoder::Layer> split;
    for (const Layer& l : decoder->layers_) split.push_back({l.Wt, l.b});
    decoder->split_ = SplitReluDecoder::make(std::move(split));
  }
  decoder->data_dim_ = model.data_dim();
  decoder->data_shape_ = model.data_shape();
  return decoder;
}

void FusedMlpDecoder::log_likelihood(const float* z, int64_t R, const float* const* x_rows, double* out) const {
  const int64_t D = data_dim_;
  thread_local std::vector<float> logits;  // [R, D]
  logits.resize(static_cast<size_t>(R * D));
  logits_into(z, R, logits.data());
  const float* l = logits.data();
  at::parallel_for(0, R, 32, [&](int64_t r0, int64_t r1) { cpu::kernels().bernoulli_log_prob_rows(l, x_rows, out, r0, r1, D); });
}

void FusedMlpDecoder::log_likelihood_one(const float* z, int64_t R, const float* x, int64_t chunk, double* out) const {
  const int64_t d = layers_.front().Wt.size(0), D = data_dim_;
  if (split_) return split_->log_likelihood_one(z, R, x, out);
  chunk = std::max<int64_t>(1, std::min(chunk, R));
  const std::vector<const float*> x_rows(chunk, x);
  const bool restrictable = packed_ && layers_.size() >= 2 && packed_->precision() != Precision::kBFloat16;
  if (!restrictable) {
    for (int64_t r0 = 0; r0 < R; r0 += chunk) log_likelihood(z + r0 * d, std::min(chunk, R - r0), x_rows.data(), out + r0);
    return;
  }
  // Pass 1: the last layer's inputs (ReLU units) that any row uses.
  const int64_t H = layers_.back().Wt.size(0);
  thread_local std::vector<float> h, logits;
  h.resize(static_cast<size_t>(chunk * H));
  std::vector<uint8_t> used(H, 0);
  for (int64_t r0 = 0; r0 < R; r0 += chunk) {
    const int64_t c = std::min(chunk, R - r0);
    packed_->hidden(z + r0 * d, c, h.data());
    cpu::kernels().mark_positive(h.data(), c, H, used.data());
  }
  std::vector<int32_t> active;
  for (int64_t i = 0; i < H; ++i)
    if (used[i]) active.push_back(static_cast<int32_t>(i));
  // Pass 2: the decoder again (its hidden layers are cheap beside the last), on the active units of
  // its last hidden layer only where that leaves out a tenth or more of the last layer's products.
  std::unique_ptr<cpu::PackedMlp::Restricted> restricted;
  if (!active.empty() && active.size() * 10 <= static_cast<size_t>(H) * 9) restricted = packed_->restrict_last(active);
  logits.resize(static_cast<size_t>(chunk * D));
  for (int64_t r0 = 0; r0 < R; r0 += chunk) {
    const int64_t c = std::min(chunk, R - r0);
    if (restricted)
      restricted->forward(z + r0 * d, c, logits.data());
    else
      packed_->forward(z + r0 * d, c, logits.data());
    cpu::kernels().bernoulli_log_prob_rows(logits.data(), x_rows.data(), out + r0, 0, c, D);
  }
}

const at::Tensor& FusedMlpDecoder::forward(const at::Tensor& z, std::vector<at::Tensor>& outs) const {
  const int64_t R = z.size(0);
  at::Tensor h = z.contiguous();  // [R, d]
  if (packed_) {
    packed_->forward(h.data_ptr<float>(), R, outs.back().data_ptr<float>());
    return outs.back();
  }
  for (size_t j = 0; j < layers_.size(); ++j) {
    at::Tensor& o = outs[j];  // [R, out]
    cpu::gemm(h, false, layers_[j].Wt, false, o);
    const bool relu = j + 1 < layers_.size();
    at::parallel_for(0, R, 64, [&](int64_t r0, int64_t r1) {
      cpu::kernels().bias_act(o.data_ptr<float>() + r0 * o.size(1), layers_[j].b.data_ptr<float>(), r1 - r0, o.size(1), relu);
    });
    h = o;
  }
  return outs.back();
}

void FusedMlpDecoder::logits_into(const float* z, int64_t R, float* out) const {
  if (packed_) return packed_->forward(z, R, out);
  const int64_t d = layers_.front().Wt.size(0);
  at::Tensor l = logits(at::from_blob(const_cast<float*>(z), {R, d}, at::kFloat));
  std::memcpy(out, l.data_ptr<float>(), static_cast<size_t>(R * data_dim_) * sizeof(float));
}

at::Tensor FusedMlpDecoder::logits(const at::Tensor& z) const {
  std::vector<at::Tensor> outs;  // [R, out] per layer; with packed_ only the last is written
  for (const auto& l : layers_)
    outs.push_back(at::empty({packed_ && &l != &layers_.back() ? 0 : z.size(0), l.Wt.size(1)}, at::kFloat));
  std::vector<int64_t> shape{z.size(0)};
  shape.insert(shape.end(), data_shape_.begin(), data_shape_.end());
  return forward(z, outs).view(shape);  // [R, D...]
}

}  // namespace latent
