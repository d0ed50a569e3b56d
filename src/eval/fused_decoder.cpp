#include "eval/fused_decoder.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include "latent/checkpoint.h"
#include "train/fused_kernels.h"
#include "train/gemm.h"

namespace latent {

std::unique_ptr<FusedMlpDecoder> FusedMlpDecoder::make(VaeImpl& model) {
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

at::Tensor FusedMlpDecoder::logits(const at::Tensor& z) const {
  std::vector<at::Tensor> outs;
  for (const auto& l : layers_) outs.push_back(at::empty({z.size(0), l.Wt.size(1)}, at::kFloat));  // [R, out]
  std::vector<int64_t> shape{z.size(0)};
  shape.insert(shape.end(), data_shape_.begin(), data_shape_.end());
  return forward(z, outs).view(shape);  // [R, D...]
}

}  // namespace latent
