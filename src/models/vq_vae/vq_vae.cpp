// vq_vae: strided conv encoder, nearest-code quantizer with an EMA codebook, transposed conv decoder.
//   encoder: Conv2d(C, c1, 4, stride 2, padding 1) act ... Conv2d(c_{L-1}, c_L, ...) act
//   pre_quant: Conv2d(c_L, D, 1)                          -> z_e [B, D, H/2^L, W/2^L]
//   decoder: Conv2d(D, c_L, 1) act ConvTranspose2d(c_L, c_{L-1}, 4, stride 2, padding 1) act ...
//            ConvTranspose2d(c_1, C, ...)
#include "models/vq_vae/vq_vae.h"

#include <ATen/ATen.h>
#include <torch/nn/modules/container/functional.h>

#include <cmath>

#include "latent/error.h"
#include "latent/json.h"
#include "latent/objective.h"
#include "models/config_keys.h"
#include "models/layers.h"
#include "models/registry.h"

namespace latent {
namespace {

struct Buffers : torch::nn::Module {};  // holds named tensors under a prefix ("quantizer.", "prior.")

constexpr int64_t kPriorEmbed = 32;    // E: size of each neighbour code's embedding
constexpr int64_t kPriorHidden = 256;  // hidden units of the autoregressive prior

at::Tensor flat_vectors(const at::Tensor& z_e) {  // [B, D, h, w] -> [B h w, D]
  return z_e.permute({0, 2, 3, 1}).reshape({-1, z_e.size(1)});
}

at::Tensor nearest_rows(const at::Tensor& v, const at::Tensor& embed) {        // v [N, D], embed [K, D] -> [N]
  at::Tensor dist = embed.square().sum(1).unsqueeze(0) - 2 * v.mm(embed.t());  // ||v||^2 is the same for every code
  return dist.argmin(1);
}

}  // namespace

VqVaeImpl::VqVaeImpl(ModelConfig config, std::vector<int64_t> data_shape) : ModelImpl(std::move(config), std::move(data_shape)) {
  const auto& s = data_shape_;
  if (s.size() != 3 || (s[0] != 1 && s[0] != 3))
    throw Error("vq_vae needs images [C, H, W] with 1 or 3 channels; the data has shape " + shape_text(s));
  const int64_t levels = static_cast<int64_t>(config_.channels.size()), factor = int64_t{1} << levels;
  if (s[1] % factor != 0 || s[2] % factor != 0)
    throw Error("vq_vae with " + std::to_string(levels) + " stride-2 layers needs H and W divisible by " +
                std::to_string(factor) + "; the images are " + std::to_string(s[1]) + "x" + std::to_string(s[2]));
  grid_h_ = s[1] / factor;
  grid_w_ = s[2] / factor;
  const int64_t K = config_.codebook, D = config_.code_dim;

  register_module("encoder", encoder_);
  int64_t c_in = s[0];
  for (int64_t c : config_.channels) {
    encoder_->push_back(torch::nn::Conv2d(torch::nn::Conv2dOptions(c_in, c, 4).stride(2).padding(1)));
    encoder_->push_back(activation_module(config_.activation));
    c_in = c;
  }
  pre_quant_ = register_module("pre_quant", torch::nn::Conv2d(torch::nn::Conv2dOptions(c_in, D, 1)));
  auto quantizer = register_module("quantizer", std::make_shared<Buffers>());
  embed_ = quantizer->register_buffer("embed", at::randn({K, D}) * 0.1);
  ema_count_ = quantizer->register_buffer("ema_count", at::ones({K}));
  ema_sum_ = quantizer->register_buffer("ema_sum", embed_.clone());
  register_module("decoder", decoder_);
  decoder_->push_back(torch::nn::Conv2d(torch::nn::Conv2dOptions(D, c_in, 1)));
  decoder_->push_back(activation_module(config_.activation));
  for (int64_t i = levels - 1; i >= 0; --i) {
    const int64_t c_out = i > 0 ? config_.channels[i - 1] : s[0];
    decoder_->push_back(
        torch::nn::ConvTranspose2d(torch::nn::ConvTranspose2dOptions(config_.channels[i], c_out, 4).stride(2).padding(1)));
    if (i > 0) decoder_->push_back(activation_module(config_.activation));
  }
  auto prior = register_module("prior", std::make_shared<Buffers>());
  prior_counts_ = prior->register_buffer("counts", at::zeros({grid_h_ * grid_w_, K}));
  prior_trained_ = prior->register_buffer("trained", at::zeros({}));
  prior_embed_ = prior->register_module("embed", torch::nn::Embedding(K + 1, kPriorEmbed));  // K: outside the grid
  prior_position_ = prior->register_parameter("position", at::randn({grid_h_ * grid_w_, 4 * kPriorEmbed}) * 0.02);
  prior_hidden_ = prior->register_module("hidden", torch::nn::Linear(4 * kPriorEmbed, kPriorHidden));
  prior_out_ = prior->register_module("out", torch::nn::Linear(kPriorHidden, K));
}

at::Tensor VqVaeImpl::encode(const at::Tensor& x) { return pre_quant_->forward(encoder_->forward(x)); }

at::Tensor VqVaeImpl::nearest(const at::Tensor& z_e) const {
  at::NoGradGuard no_grad;
  return nearest_rows(flat_vectors(z_e), embed_).view({z_e.size(0), z_e.size(2), z_e.size(3)});
}

at::Tensor VqVaeImpl::lookup(const at::Tensor& indices) const {
  if (indices.numel() > 0 && (indices.min().item<int64_t>() < 0 || indices.max().item<int64_t>() >= config_.codebook))
    throw Error("code indices must be in [0, " + std::to_string(config_.codebook) + ")");
  return embed_.index_select(0, indices.reshape({-1}))
      .view({indices.size(0), indices.size(1), indices.size(2), -1})
      .permute({0, 3, 1, 2});
}

at::Tensor VqVaeImpl::decode(const at::Tensor& z_q) { return decoder_->forward(z_q); }

VqForward VqVaeImpl::forward(const at::Tensor& x) {
  VqForward f;
  f.z_e = encode(x);                                 // [B, D, h, w]
  f.indices = nearest(f.z_e);                        // [B, h, w]
  at::Tensor z_q = lookup(f.indices);                // [B, D, h, w], no gradient to the codebook (EMA updates it)
  at::Tensor z_st = f.z_e + (z_q - f.z_e).detach();  // straight through: forward z_q, backward identity
  f.params = decode(z_st);
  f.recon = -log_likelihood(f.params, x);
  f.commitment = (f.z_e - z_q).square().sum({1, 2, 3});
  return f;
}

void VqVaeImpl::ema_update(const at::Tensor& z_e, const at::Tensor& indices) {
  at::NoGradGuard no_grad;
  const double decay = config_.decay, eps = 1e-5;
  at::Tensor v = flat_vectors(z_e.detach()), idx = indices.reshape({-1});  // [N, D], [N]
  at::Tensor counts = at::zeros({config_.codebook}, v.options()).index_add_(0, idx, at::ones({idx.size(0)}, v.options()));
  at::Tensor sums = at::zeros_like(embed_).index_add_(0, idx, v);
  ema_count_.mul_(decay).add_(counts, 1 - decay);
  ema_sum_.mul_(decay).add_(sums, 1 - decay);
  const at::Tensor total = ema_count_.sum();
  const at::Tensor smoothed = (ema_count_ + eps) / (total + config_.codebook * eps) * total;  // [K]
  embed_.copy_(ema_sum_ / smoothed.unsqueeze(1));
}

void VqVaeImpl::set_codebook(const at::Tensor& vectors) {
  at::NoGradGuard no_grad;
  if (vectors.sizes() != embed_.sizes())
    throw Error("a codebook of " + std::to_string(config_.codebook) + " x " + std::to_string(config_.code_dim) +
                " was expected, got " + shape_text(vectors.sizes().vec()));
  embed_.copy_(vectors);
  ema_sum_.copy_(vectors);
  ema_count_.fill_(1.0);
}

double VqVaeImpl::init_codebook_kmeans(const at::Tensor& vectors, int iterations, at::Generator& gen) {
  at::NoGradGuard no_grad;
  const int64_t K = config_.codebook, N = vectors.size(0);
  if (N == 0) throw Error("k-means needs at least one vector");
  at::Tensor v = vectors.detach().contiguous();
  // k-means++ seeding: each next centre drawn with probability proportional to the squared distance
  // to the nearest centre so far (a plain random start often puts two centres in one cluster).
  at::Tensor centres = at::empty({K, v.size(1)}, v.options());
  centres[0].copy_(v[at::randint(N, {1}, gen, at::kLong).item<int64_t>()]);
  at::Tensor d2 = (v - centres[0]).square().sum(1);  // [N]
  for (int64_t k = 1; k < K; ++k) {
    const int64_t pick = d2.sum().item<double>() > 0 ? at::multinomial(d2, 1, false, gen).item<int64_t>()
                                                     : at::randint(N, {1}, gen, at::kLong).item<int64_t>();
    centres[k].copy_(v[pick]);
    d2 = at::minimum(d2, (v - centres[k]).square().sum(1));
  }
  at::Tensor assign;
  for (int it = 0; it < iterations; ++it) {
    assign = nearest_rows(v, centres);
    at::Tensor counts = at::zeros({K}, v.options()).index_add_(0, assign, at::ones({N}, v.options()));
    at::Tensor sums = at::zeros_like(centres).index_add_(0, assign, v);
    at::Tensor empty = counts == 0;
    centres = at::where(empty.unsqueeze(1), v.index_select(0, at::randint(N, {K}, gen, at::kLong)),
                        sums / counts.clamp_min(1).unsqueeze(1));
  }
  assign = nearest_rows(v, centres);
  set_codebook(centres);
  return (v - centres.index_select(0, assign)).square().sum(1).mean().item<double>();
}

int64_t VqVaeImpl::restart_codes(const at::Tensor& used, const at::Tensor& vectors, at::Generator& gen) {
  at::NoGradGuard no_grad;
  at::Tensor dead = (~used.to(at::kBool)).nonzero().reshape({-1});  // [n]
  const int64_t n = dead.size(0);
  if (n == 0 || vectors.size(0) == 0) return 0;
  at::Tensor picks = vectors.detach().index_select(0, at::randint(vectors.size(0), {n}, gen, at::kLong));
  embed_.index_copy_(0, dead, picks);
  ema_sum_.index_copy_(0, dead, picks);
  ema_count_.index_fill_(0, dead, 1.0);
  return n;
}

void VqVaeImpl::fit_prior(const at::Tensor& indices, bool reset) {
  at::NoGradGuard no_grad;
  const int64_t P = grid_h_ * grid_w_, K = config_.codebook;
  if (reset) prior_counts_.zero_();
  at::Tensor flat = indices.reshape({-1, P}) + at::arange(P, at::kLong).unsqueeze(0) * K;  // position-major bins
  prior_counts_.view({-1}).index_add_(0, flat.reshape({-1}), at::ones({flat.numel()}, prior_counts_.options()));
}

at::Tensor VqVaeImpl::causal_context(const at::Tensor& indices) const {
  using at::indexing::Slice;
  const int64_t h = grid_h_, w = grid_w_;
  // One row of K above, one column of K on each side: grid (i, j) sits at padded (i + 1, j + 1).
  at::Tensor p = at::constant_pad_nd(indices, {1, 1, 1, 0}, static_cast<double>(config_.codebook));  // [N, h + 1, w + 2]
  at::Tensor left = p.index({Slice(), Slice(1, h + 1), Slice(0, w)}), up_left = p.index({Slice(), Slice(0, h), Slice(0, w)});
  at::Tensor up = p.index({Slice(), Slice(0, h), Slice(1, w + 1)}), up_right = p.index({Slice(), Slice(0, h), Slice(2, w + 2)});
  return at::stack({left, up_left, up, up_right}, -1).reshape({indices.size(0), h * w, 4});
}

at::Tensor VqVaeImpl::prior_logits(const at::Tensor& context, const at::Tensor& pos) {
  at::Tensor e = prior_embed_->forward(context).flatten(2) + prior_position_.index_select(0, pos).unsqueeze(0);  // [N, P', 4E]
  return prior_out_->forward(at::relu(prior_hidden_->forward(e)));                                               // [N, P', K]
}

double VqVaeImpl::train_prior(const at::Tensor& indices, int epochs, double lr, at::Generator& gen) {
  const int64_t N = indices.size(0), P = grid_h_ * grid_w_, K = config_.codebook, bs = 256;
  at::Tensor context = causal_context(indices), target = indices.reshape({N, P});  // [N, P, 4], [N, P]
  at::Tensor all = at::arange(P, at::kLong);
  std::vector<at::Tensor> params;
  for (auto& p : named_parameters(/*recurse=*/true))
    if (p.key().rfind("prior.", 0) == 0) params.push_back(p.value());
  // Adam by hand on the prior's few parameters (the model's Adam holds the encoder and decoder).
  std::vector<at::Tensor> m, v;
  for (auto& p : params) {
    m.push_back(at::zeros_like(p));
    v.push_back(at::zeros_like(p));
  }
  int64_t t = 0;
  double last = 0;
  for (int e = 0; e < epochs; ++e) {
    at::Tensor perm = at::randperm(N, gen, at::kLong);
    double total = 0;
    for (int64_t i = 0; i < N; i += bs) {
      at::Tensor rows = perm.narrow(0, i, std::min(bs, N - i));
      for (auto& p : params) p.mutable_grad() = at::Tensor();
      at::Tensor logits = prior_logits(context.index_select(0, rows), all);  // [B, P, K]
      at::Tensor nll =
          at::cross_entropy_loss(logits.reshape({-1, K}), target.index_select(0, rows).reshape({-1}), {}, at::Reduction::Sum) /
          static_cast<double>(rows.size(0));
      nll.backward();
      ++t;
      at::NoGradGuard no_grad;
      const double c1 = 1 - std::pow(0.9, static_cast<double>(t)), c2 = 1 - std::pow(0.999, static_cast<double>(t));
      for (size_t k = 0; k < params.size(); ++k) {
        const at::Tensor& g = params[k].grad();
        if (!g.defined()) continue;
        m[k].mul_(0.9).add_(g, 0.1);
        v[k].mul_(0.999).addcmul_(g, g, 0.001);
        params[k].addcdiv_(m[k], (v[k] / c2).sqrt_().add_(1e-8), -lr / c1);
      }
      total += nll.item<double>() * static_cast<double>(rows.size(0));
    }
    last = total / static_cast<double>(N);
  }
  for (auto& p : params) p.mutable_grad() = at::Tensor();
  prior_trained_.fill_(1.0);
  return last;
}

double VqVaeImpl::prior_nll(const at::Tensor& indices, bool autoregressive) {
  at::NoGradGuard no_grad;
  const int64_t N = indices.size(0), P = grid_h_ * grid_w_, K = config_.codebook;
  at::Tensor target = indices.reshape({N, P});
  at::Tensor log_p;  // [N, P, K]
  if (autoregressive) {
    log_p = at::log_softmax(prior_logits(causal_context(indices), at::arange(P, at::kLong)), -1);
  } else {
    at::Tensor c = prior_counts_ + 0.5;
    log_p = (c / c.sum(1, true)).log().unsqueeze(0).expand({N, P, K});
  }
  return -log_p.gather(2, target.unsqueeze(2)).sum().item<double>() / static_cast<double>(std::max<int64_t>(1, N));
}

bool VqVaeImpl::prior_trained() const { return prior_trained_.item<double>() > 0; }

at::Tensor VqVaeImpl::sample_indices(int64_t n, at::Generator& gen) {
  at::NoGradGuard no_grad;
  if (prior_trained()) {  // raster order: each position given the codes already drawn
    const int64_t P = grid_h_ * grid_w_;
    at::Tensor grid = at::full({n, grid_h_, grid_w_}, config_.codebook, at::kLong);
    for (int64_t t = 0; t < P; ++t) {
      at::Tensor ctx = causal_context(grid).narrow(1, t, 1);                                          // [n, 1, 4]
      at::Tensor probs = at::softmax(prior_logits(ctx, at::full({1}, t, at::kLong)).squeeze(1), -1);  // [n, K]
      grid.view({n, P}).select(1, t).copy_(at::multinomial(probs, 1, false, gen).squeeze(1));
    }
    return grid;
  }
  at::Tensor weights = prior_counts_.clone();  // [P, K]
  at::Tensor empty = weights.sum(1) == 0;
  weights.masked_fill_(empty.unsqueeze(1), 1.0);
  at::Tensor draws = at::multinomial(weights, n, /*replacement=*/true, gen);  // [P, n]
  return draws.t().contiguous().view({n, grid_h_, grid_w_});
}

VqVae make_vq_vae(const ModelConfig& config, const std::vector<int64_t>& data_shape) {
  return std::make_shared<VqVaeImpl>(config, data_shape);
}

namespace {

// vq_vae's keys: channels, codebook, code_dim, commitment, decay, activation, likelihood, sigma.
ModelConfig parse_vq_config(const nlohmann::json& j) {
  only_keys(j, {"type", "channels", "codebook", "code_dim", "commitment", "decay", "activation", "likelihood", "sigma"},
            "vq_vae");
  ModelConfig c;
  c.channels = conv_channels(j, "vq_vae");
  if (j.contains("codebook")) c.codebook = positive_int(j["codebook"], "codebook");
  if (c.codebook < 2) throw Error("model config: 'codebook' must be at least 2");
  if (j.contains("code_dim")) c.code_dim = positive_int(j["code_dim"], "code_dim");
  c.latent = c.code_dim;
  if (j.contains("commitment")) c.commitment = positive_number(j["commitment"], "commitment", true);
  if (j.contains("decay")) {
    c.decay = positive_number(j["decay"], "decay", true);
    if (c.decay >= 1) throw Error("model config: 'decay' must be in [0, 1), got " + json_excerpt(j["decay"]));
  }
  activation_and_likelihood(j, c);
  if (j.contains("sigma")) {
    if (c.likelihood != Likelihood::kGaussian) throw Error("model config: 'sigma' applies only to likelihood gaussian");
    c.sigma = positive_number(j["sigma"], "sigma", false);
  }
  return c;
}

nlohmann::json vq_config_json(const ModelConfig& c) {
  nlohmann::json v = {{"type", c.type},
                      {"channels", c.channels},
                      {"codebook", c.codebook},
                      {"code_dim", c.code_dim},
                      {"commitment", c.commitment},
                      {"decay", c.decay},
                      {"activation", c.activation}};
  v["likelihood"] = likelihood_name(c.likelihood);
  if (c.likelihood == Likelihood::kGaussian) v["sigma"] = c.sigma;
  return v;
}

}  // namespace

// The conv stack and its mirror, the 1x1 convs, the codebook with its EMA state, and the priors.
double vq_numbers(const ModelConfig& c, const std::vector<int64_t>& shape) {
  if (shape.size() != 3) return 0;  // the constructor names what is wrong with the shape
  double c_in = static_cast<double>(shape[0]), pixels = static_cast<double>(shape[1]) * static_cast<double>(shape[2]);
  const double n = conv_stack_numbers(c.channels, c_in, pixels);
  const double K = static_cast<double>(c.codebook), D = static_cast<double>(c.code_dim);
  return n + 2 * (c_in + 1) * D + 3 * K * D + K + pixels * K + (K + 1) * kPriorEmbed + pixels * 4 * kPriorEmbed +
         4 * kPriorEmbed * kPriorHidden + kPriorHidden * K;
}

Family vq_vae_family() {
  return {"vq_vae",
          false,
          parse_vq_config,
          vq_config_json,
          [](const ModelConfig& c, const std::vector<int64_t>& shape) -> Model { return make_vq_vae(c, shape); },
          vq_numbers};
}

double perplexity(const at::Tensor& counts) {
  at::Tensor c = counts.to(at::kDouble);
  const double total = c.sum().item<double>();
  if (total <= 0) return 0;
  at::Tensor p = c / total;
  return std::exp(-(p * at::log(p.clamp_min(1e-300))).sum().item<double>());
}

}  // namespace latent
