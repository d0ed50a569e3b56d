#include "latent/adam.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <charconv>
#include <cmath>

#include "cpu/kernels.h"
#include "latent/error.h"
#include "latent/json.h"

namespace latent {

Adam::Adam(std::vector<std::pair<std::string, at::Tensor>> params, AdamOptions options)
    : params_(std::move(params)), options_(options) {
  for (const auto& [name, p] : params_) {
    exp_avg_.push_back(at::zeros_like(p));
    exp_avg_sq_.push_back(at::zeros_like(p));
  }
}

void Adam::zero_grad() {
  for (auto& [name, p] : params_)
    if (p.grad().defined()) p.mutable_grad().zero_();
}

void Adam::step() {
  ++step_;
  const double b1 = options_.beta1, b2 = options_.beta2, eps = options_.eps;
  const double bias1 = 1.0 - std::pow(b1, static_cast<double>(step_));
  const double bias2 = 1.0 - std::pow(b2, static_cast<double>(step_));
  const double step_size = options_.lr / bias1;
  const double inv_sqrt_bias2 = 1.0 / std::sqrt(bias2);
  at::NoGradGuard no_grad;
  // Contiguous float32 CPU tensors: one pass over all of them as if concatenated, split evenly
  // across threads. Anything else: tensor ops.
  std::vector<size_t> fused;
  std::vector<int64_t> offsets{0};
  for (size_t i = 0; i < params_.size(); ++i) {
    at::Tensor& p = params_[i].second;
    const at::Tensor& g = p.grad();
    if (!g.defined()) continue;
    if (p.device().is_cpu() && p.scalar_type() == at::kFloat && p.is_contiguous() && g.is_contiguous() &&
        g.scalar_type() == at::kFloat) {
      fused.push_back(i);
      offsets.push_back(offsets.back() + p.numel());
      continue;
    }
    at::Tensor& m = exp_avg_[i];
    at::Tensor& v = exp_avg_sq_[i];
    m.mul_(b1).add_(g, 1.0 - b1);
    v.mul_(b2).addcmul_(g, g, 1.0 - b2);
    p.addcdiv_(m, v.sqrt().mul_(inv_sqrt_bias2).add_(eps), -step_size);
  }
  const cpu::Kernels& k = cpu::kernels();
  at::parallel_for(0, offsets.back(), 32768, [&](int64_t begin, int64_t end) {
    for (size_t j = 0; j < fused.size(); ++j) {
      const int64_t lo = std::max(begin, offsets[j]), hi = std::min(end, offsets[j + 1]);
      if (lo >= hi) continue;
      const size_t i = fused[j];
      const int64_t at = lo - offsets[j];
      k.adam_update(params_[i].second.data_ptr<float>() + at, params_[i].second.grad().data_ptr<float>() + at,
                    exp_avg_[i].data_ptr<float>() + at, exp_avg_sq_[i].data_ptr<float>() + at, hi - lo, static_cast<float>(b1),
                    static_cast<float>(b2), static_cast<float>(step_size), static_cast<float>(inv_sqrt_bias2),
                    static_cast<float>(eps));
    }
  });
}

void Adam::save_state(SafetensorsFile& file) const {
  for (size_t i = 0; i < params_.size(); ++i) {
    file.tensors.emplace_back("optimizer.exp_avg." + params_[i].first, exp_avg_[i]);
    file.tensors.emplace_back("optimizer.exp_avg_sq." + params_[i].first, exp_avg_sq_[i]);
  }
  file.metadata["optimizer"] = "adam";
  file.metadata["optimizer.step"] = std::to_string(step_);
}

void Adam::load_state(const SafetensorsFile& file) {
  auto it = file.metadata.find("optimizer.step");
  if (it == file.metadata.end()) throw Error("checkpoint has no optimizer state");
  for (size_t i = 0; i < params_.size(); ++i) {
    for (auto [prefix, dst] :
         {std::pair{"optimizer.exp_avg.", &exp_avg_[i]}, std::pair{"optimizer.exp_avg_sq.", &exp_avg_sq_[i]}}) {
      at::Tensor t = file.find(prefix + params_[i].first);
      if (!t.defined()) throw Error("checkpoint is missing optimizer tensor " + std::string(prefix) + params_[i].first);
      if (t.sizes() != dst->sizes())
        throw Error("checkpoint optimizer tensor " + std::string(prefix) + params_[i].first + " has the wrong shape");
      dst->copy_(t);
    }
  }
  const std::string& text = it->second;
  int64_t step = -1;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), step);
  if (ec != std::errc() || end != text.data() + text.size() || step < 0)
    throw Error("checkpoint metadata 'optimizer.step' is not a step count: '" + text_excerpt(text, 30) + "'");
  step_ = step;
}

}  // namespace latent
