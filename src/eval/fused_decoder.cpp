#include "eval/fused_decoder.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <cstring>

#include "latent/checkpoint.h"
#include "train/fused_kernels.h"
#include "train/gemm.h"

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
  std::vector<PackedMlp::Layer> packed;
  for (size_t j = 0; j < decoder->layers_.size(); ++j)
    packed.push_back({decoder->layers_[j].Wt.t(), decoder->layers_[j].b, j + 1 < decoder->layers_.size()});
  decoder->packed_ = PackedMlp::make(packed, precision);
  decoder->data_dim_ = model.data_dim();
  decoder->data_shape_ = model.data_shape();
  return decoder;
}

void FusedMlpDecoder::log_likelihood(const at::Tensor& z, const std::vector<const float*>& x_rows, double* out) {
  const int64_t R = z.size(0), D = data_dim_;
  if (R > capacity_) {
    capacity_ = R;
    buffers_.clear();
    for (const auto& l : layers_) buffers_.push_back(at::empty({R, l.Wt.size(1)}, at::kFloat));
  }
  std::vector<at::Tensor> outs;
  for (auto& b : buffers_) outs.push_back(b.narrow(0, 0, R));
  const float* logits = forward(z, outs).data_ptr<float>();  // [R, D]
  at::parallel_for(0, R, 32, [&](int64_t r0, int64_t r1) {
    std::vector<float> scratch(D);
    kernels::bernoulli_log_prob_rows(logits, x_rows.data(), out, scratch.data(), r0, r1, D);
  });
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
    gemm(h, false, layers_[j].Wt, false, o);
    const bool relu = j + 1 < layers_.size();
    at::parallel_for(0, R, 64, [&](int64_t r0, int64_t r1) {
      kernels::bias_act(o.data_ptr<float>() + r0 * o.size(1), layers_[j].b.data_ptr<float>(), r1 - r0, o.size(1), relu);
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
