#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>

#include <atomic>
#include <chrono>
#include <cmath>

#include "eval/fused_decoder.h"
#include "latent/cpu.h"
#include "latent/eval.h"
#include "latent/objective.h"
#include "latent/progress.h"
#include "latent/train.h"

namespace latent {

nlohmann::json EvalResult::to_json() const {
  nlohmann::json j = {
      {"examples", examples},     {"elbo", elbo},       {"recon", recon},   {"kl", kl}, {"active_units", active_units},
      {"kl_per_dim", kl_per_dim}, {"seconds", seconds}, {"cpu", cpu_info()}};
  if (iwae_k > 0) {
    j["iwae_k"] = iwae_k;
    j["iwae_nll"] = iwae_nll;
    j["iwae_precision"] = precision_name(iwae_precision);
  }
  return j;
}

namespace {

// Decoder rows per product in the per-image path: on 500 images, one thread, bf16x3, the decoder's
// products took 5.5 ms per image at 128 rows, 6.0 at 256 and 6.7-7.4 at 64.
constexpr int64_t kRowsPerProduct = 128;

/// Adds the log-weights lw[0..n) to a running float64 log-sum-exp (max, sum of exp(lw - max)).
void accumulate_log_sum_exp(const double* lw, int64_t n, double& max, double& sum) {
  for (int64_t r = 0; r < n; ++r) {
    if (lw[r] > max) {
      sum = sum * std::exp(max - lw[r]) + 1.0;
      max = lw[r];
    } else {
      sum += std::exp(lw[r] - max);
    }
  }
}

/// log p(x) of one image on the fused decoder: k samples (the noise from the image's own generator,
/// drawn in chunks of `chunk` as the generic path draws it). Runs on the calling thread.
double iwae_one_image(const FusedMlpDecoder& decoder, const float* x, const float* mu, const float* logvar, int64_t d, int64_t k,
                      int64_t chunk, at::Generator& gen) {
  std::vector<float> z(static_cast<size_t>(k * d)), sigma(d);
  std::vector<double> log_px(k), lw(k);
  for (int64_t j = 0; j < d; ++j) sigma[j] = std::exp(0.5f * logvar[j]);
  for (int64_t k0 = 0; k0 < k; k0 += chunk) {
    const int64_t c = std::min(chunk, k - k0);
    const at::Tensor eps = at::randn({c, d}, gen, at::kFloat);
    const float* e = eps.data_ptr<float>();
    for (int64_t r = 0; r < c; ++r) {
      // log p(z) - log q(z | x) = 0.5 * sum_j (eps_j^2 - z_j^2 + logvar_j), the log(2 pi) terms cancelling.
      double ratio = 0;
      for (int64_t j = 0; j < d; ++j) {
        const float e_rj = e[r * d + j], z_rj = mu[j] + sigma[j] * e_rj;
        z[(k0 + r) * d + j] = z_rj;
        ratio += static_cast<double>(e_rj) * e_rj - static_cast<double>(z_rj) * z_rj + logvar[j];
      }
      lw[k0 + r] = 0.5 * ratio;
    }
  }
  decoder.log_likelihood_one(z.data(), k, x, kRowsPerProduct, log_px.data());
  for (int64_t r = 0; r < k; ++r) lw[r] += log_px[r];
  double max = -INFINITY, sum = 0;
  accumulate_log_sum_exp(lw.data(), k, max, sum);
  return max + std::log(sum) - std::log(static_cast<double>(k));
}

}  // namespace

int64_t iwae_images_per_batch(int64_t k, int64_t rows_per_batch) {
  const int64_t k_chunk = std::max<int64_t>(1, std::min(k, rows_per_batch));
  return std::max<int64_t>(1, rows_per_batch / k_chunk);
}

at::Tensor iwae_log_likelihood(VaeImpl& model, const at::Tensor& x, int64_t k, uint64_t seed, int64_t rows_per_batch,
                               bool progress, Precision precision, Precision* used, int64_t first_index) {
  at::NoGradGuard no_grad;
  const int64_t n = x.size(0), d = model.latent_dim();
  const int64_t k_chunk = std::max<int64_t>(1, std::min(k, rows_per_batch));
  at::Tensor out = at::empty({n}, at::kDouble);
  double* outp = out.data_ptr<double>();
  // Each image draws its samples from its own generator, so the estimate does not depend on how
  // images are batched or spread over threads.
  auto generator_of = [seed, first_index](int64_t i) {
    return at::make_generator<at::CPUGeneratorImpl>(mix_seed(seed, first_index + i));
  };
  ProgressBar bar("iwae k=" + std::to_string(k), n, "images", progress);
  const at::Tensor xc = x.contiguous();
  std::unique_ptr<FusedMlpDecoder> fused = x.scalar_type() == at::kFloat ? FusedMlpDecoder::make(model, precision) : nullptr;
  if (used) *used = fused ? fused->precision() : Precision::kFloat32;
  if (fused) {
    // mlp_vae with ReLU and Bernoulli: one image per thread at a time, its k samples through the
    // fused decoder on that thread (no hand-over between threads inside a product).
    // The encoder runs on the estimate's own batches of images: a rank's share of a job is whole
    // batches, so every image is encoded in the same product as in one process (a product's rows
    // can round differently with its row count).
    at::Tensor mu = at::empty({n, d}), logvar = at::empty({n, d});
    const int64_t per_batch = iwae_images_per_batch(k, rows_per_batch);
    for (int64_t start = 0; start < n; start += per_batch) {
      const int64_t b = std::min<int64_t>(per_batch, n - start);
      Posterior q = model.encode(xc.narrow(0, start, b));
      mu.narrow(0, start, b).copy_(q.mu);
      logvar.narrow(0, start, b).copy_(q.logvar);
    }
    const int64_t D = model.data_dim();
    const float *xp = xc.data_ptr<float>(), *mup = mu.data_ptr<float>(), *lvp = logvar.data_ptr<float>();
    // Images are handed out one at a time: their cost varies with the hidden units their samples
    // use, and with equal halves one thread sat idle for ~2% of a 4,000-image run at the end.
    std::atomic<int64_t> next{0}, done{0};
    at::parallel_for(0, at::get_num_threads(), 1, [&](int64_t, int64_t) {
      for (int64_t i = next++; i < n; i = next++) {
        at::Generator gen = generator_of(i);
        outp[i] = iwae_one_image(*fused, xp + i * D, mup + i * d, lvp + i * d, d, k, k_chunk, gen);
        const int64_t now = ++done;
        if (at::get_thread_num() == 0) bar.update(now);
      }
    });
    bar.finish();
    return out;
  }
  // Any other model: many images and samples share each decoder pass (rows = images * k_chunk).
  const int64_t images = iwae_images_per_batch(k, rows_per_batch);
  for (int64_t start = 0; start < n; start += images) {
    const int64_t b = std::min(images, n - start);
    at::Tensor xb = xc.narrow(0, start, b);
    Posterior q = model.encode(xb);  // [b, d]
    std::vector<at::Generator> gens;
    for (int64_t i = 0; i < b; ++i) gens.push_back(generator_of(start + i));
    std::vector<double> max(b, -INFINITY), sum(b, 0.0);
    for (int64_t k0 = 0; k0 < k; k0 += k_chunk) {
      const int64_t kc = std::min(k_chunk, k - k0);
      std::vector<at::Tensor> per_image;
      for (auto& gen : gens) per_image.push_back(at::randn({kc, d}, gen, x.options()));
      at::Tensor eps = at::stack(per_image, 1);                                              // [kc, b, d]
      at::Tensor lw = iwae_log_weights(model, xb, q, eps).to(at::kDouble).t().contiguous();  // [b, kc]
      for (int64_t i = 0; i < b; ++i) accumulate_log_sum_exp(lw.data_ptr<double>() + i * kc, kc, max[i], sum[i]);
    }
    for (int64_t i = 0; i < b; ++i) outp[start + i] = max[i] + std::log(sum[i]) - std::log(static_cast<double>(k));
    bar.update(start + b);
  }
  bar.finish();
  return out;
}

EvalResult evaluate(VaeImpl& model, const Dataset& data, const EvalOptions& options) {
  const auto t0 = std::chrono::steady_clock::now();
  EvalResult r;
  r.examples = data.size();
  if (r.examples == 0) return r;
  const nlohmann::json m = model.evaluate(data, options.seed, options.batch_size);
  r.elbo = m["elbo"];
  r.recon = m["recon"];
  r.kl = m["kl"];
  r.active_units = m["active_units"];
  r.kl_per_dim = m["kl_per_dim"].get<std::vector<double>>();
  r.mu_variance = m["mu_variance"].get<std::vector<double>>();
  if (options.iwae_k > 0) {
    r.iwae_k = options.iwae_k;
    Communicator* comm = options.comm;
    const int world = comm ? comm->world() : 1, rank = comm ? comm->rank() : 0;
    const std::vector<int64_t> counts =
        split_examples(data.size(), iwae_images_per_batch(options.iwae_k, options.iwae_rows), world);
    int64_t first = 0;
    for (int i = 0; i < rank; ++i) first += counts[i];
    at::Tensor ll =
        iwae_log_likelihood(model, data.x.narrow(0, first, counts[rank]), options.iwae_k, mix_seed(options.seed, 1),
                            options.iwae_rows, options.progress && rank == 0, options.iwae_precision, &r.iwae_precision, first);
    if (comm) ll = comm->allgather_rows(ll, counts);
    r.iwae_nll = -ll.mean().item<double>();
  }
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

}  // namespace latent
