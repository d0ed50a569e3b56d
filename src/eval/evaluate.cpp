#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include <chrono>
#include <cmath>

#include "eval/fused_decoder.h"
#include "latent/eval.h"
#include "latent/objective.h"
#include "latent/progress.h"
#include "latent/train.h"

namespace latent {

nlohmann::json EvalResult::to_json() const {
  nlohmann::json j = {
      {"examples", examples},     {"elbo", elbo},      {"recon", recon}, {"kl", kl}, {"active_units", active_units},
      {"kl_per_dim", kl_per_dim}, {"seconds", seconds}};
  if (iwae_k > 0) {
    j["iwae_k"] = iwae_k;
    j["iwae_nll"] = iwae_nll;
  }
  return j;
}

at::Tensor binarize_fixed(const at::Tensor& x, uint64_t seed) {
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  return at::bernoulli(x, gen);
}

at::Tensor iwae_log_likelihood(VaeImpl& model, const at::Tensor& x, int64_t k, uint64_t seed, int64_t rows_per_batch,
                               bool progress) {
  at::NoGradGuard no_grad;
  const int64_t n = x.size(0), d = model.latent_dim();
  // Many images and samples share each decoder product: rows = images_per_batch * k_chunk.
  const int64_t k_chunk = std::max<int64_t>(1, std::min(k, rows_per_batch));
  const int64_t images = std::max<int64_t>(1, rows_per_batch / k_chunk);
  at::Tensor out = at::empty({n}, at::kDouble);
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  ProgressBar bar("iwae k=" + std::to_string(k), n, "images", progress);
  // mlp_vae with ReLU and Bernoulli: the decoder as fused products and kernels (no temporaries).
  std::unique_ptr<FusedMlpDecoder> fused = x.scalar_type() == at::kFloat ? FusedMlpDecoder::make(model) : nullptr;
  const at::Tensor xc = x.contiguous();
  const int64_t D = model.data_dim();
  std::vector<const float*> x_rows;
  for (int64_t start = 0; start < n; start += images) {
    const int64_t b = std::min(images, n - start);
    at::Tensor xb = xc.narrow(0, start, b);
    Posterior q = model.encode(xb);  // [b, d]
    at::Tensor running_max = at::full({b}, -INFINITY, at::kDouble);
    at::Tensor running_sum = at::zeros({b}, at::kDouble);
    for (int64_t k0 = 0; k0 < k; k0 += k_chunk) {
      const int64_t kc = std::min(k_chunk, k - k0);
      at::Tensor eps = at::randn({kc, b, d}, gen, x.options());
      at::Tensor lw;  // [kc, b] float64
      if (fused) {
        at::Tensor z = reparameterize(q.mu.unsqueeze(0), q.logvar.unsqueeze(0), eps).contiguous();  // [kc, b, d]
        at::Tensor log_px = at::empty({kc, b}, at::kDouble);
        const float* xp = xb.data_ptr<float>();
        x_rows.resize(kc * b);
        for (int64_t j = 0; j < kc; ++j)
          for (int64_t i = 0; i < b; ++i) x_rows[j * b + i] = xp + i * D;
        fused->log_likelihood(z.view({kc * b, d}), x_rows, log_px.data_ptr<double>());
        lw = log_px + log_prior_ratio(q, z, eps).to(at::kDouble);
      } else {
        lw = iwae_log_weights(model, xb, q, eps).to(at::kDouble);
      }
      at::Tensor chunk_max = std::get<0>(lw.max(0));  // [b]
      at::Tensor new_max = at::maximum(running_max, chunk_max);
      running_sum = running_sum * at::exp(running_max - new_max) + at::exp(lw - new_max).sum(0);
      running_max = new_max;
    }
    out.narrow(0, start, b).copy_(running_max + at::log(running_sum) - std::log(static_cast<double>(k)));
    bar.update(start + b);
  }
  bar.finish();
  return out;
}

EvalResult evaluate(VaeImpl& model, const Dataset& data, const EvalOptions& options) {
  const auto t0 = std::chrono::steady_clock::now();
  at::NoGradGuard no_grad;
  model.eval();
  EvalResult r;
  r.examples = data.size();
  if (r.examples == 0) return r;
  const int64_t d = model.latent_dim();
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(options.seed);
  double recon = 0, kl = 0;
  at::Tensor kl_dims = at::zeros({d}, at::kDouble);
  at::Tensor mu_sum = at::zeros({d}, at::kDouble), mu_sq = at::zeros({d}, at::kDouble);
  for (int64_t start = 0; start < r.examples; start += options.batch_size) {
    const int64_t b = std::min(options.batch_size, r.examples - start);
    at::Tensor x = data.x.narrow(0, start, b);
    at::Tensor eps = at::randn({b, d}, gen, x.options());
    ElboTerms t = elbo_terms(model, x, eps);
    recon += t.recon.sum().item<double>();
    kl += t.kl.sum().item<double>();
    kl_dims += kl_standard_normal_per_dim(t.q.mu, t.q.logvar).to(at::kDouble).sum(0);
    at::Tensor mu = t.q.mu.to(at::kDouble);
    mu_sum += mu.sum(0);
    mu_sq += mu.square().sum(0);
  }
  const double n = static_cast<double>(r.examples);
  r.recon = recon / n;
  r.kl = kl / n;
  r.elbo = -(r.recon + r.kl);
  at::Tensor mean = mu_sum / n;
  at::Tensor var = (mu_sq / n - mean.square()).clamp_min(0);
  kl_dims /= n;
  for (int64_t i = 0; i < d; ++i) {
    r.kl_per_dim.push_back(kl_dims[i].item<double>());
    r.mu_variance.push_back(var[i].item<double>());
    if (r.mu_variance.back() > 0.01) ++r.active_units;
  }
  if (options.iwae_k > 0) {
    r.iwae_k = options.iwae_k;
    at::Tensor ll =
        iwae_log_likelihood(model, data.x, options.iwae_k, mix_seed(options.seed, 1), options.iwae_rows, options.progress);
    r.iwae_nll = -ll.mean().item<double>();
  }
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

}  // namespace latent
