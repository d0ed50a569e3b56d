#include "explorer_api.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <c10/core/InferenceMode.h>
#include <torch/csrc/autograd/autograd.h>

#include <algorithm>
#include <cmath>
#include <random>

#include "api_fields.h"
#include "base64.h"
#include "code_parser.h"
#include "latent/anomaly.h"
#include "latent/checkpoint_data.h"
#include "latent/cpu.h"
#include "latent/error.h"
#include "latent/image.h"
#include "latent/interpolate.h"
#include "latent/json.h"
#include "latent/objective.h"
#include "latent/serving_decoder.h"

namespace latent::server {

using nlohmann::json;

namespace {

// The encoded means of x [N, D...], in batches of 1,000.
at::Tensor encoded_means(VaeImpl& vae, const at::Tensor& x) {
  std::vector<at::Tensor> mus;
  for (int64_t i = 0; i < x.size(0); i += 1000)
    mus.push_back(vae.encode(x.narrow(0, i, std::min<int64_t>(1000, x.size(0) - i))).mu);
  return at::cat(mus);  // [N, d]
}

}  // namespace

ExplorerApi::ExplorerApi(LoadedCheckpoint checkpoint, std::string checkpoint_path, ApiLimits limits, const std::string& precision)
    : ck_(std::move(checkpoint)),
      vae_(&ck_.vae(checkpoint_path + ": the explorer")),
      path_(std::move(checkpoint_path)),
      limits_(limits) {
  if (!is_image_model(ck_))
    throw Error(path_ + ": the explorer shows image models; this model's examples are not images ([C, H, W], C = 1 or 3)");
  if (vae_->latent_dim() < 2) throw Error(path_ + ": the explorer needs a latent space of at least 2 dimensions");
  vae_->eval();
  Dataset test = checkpoint_data(ck_, "", "test", 0);
  x_ = test.x;
  y_ = test.y;
  c10::InferenceMode guard;
  mu_ = encoded_means(*vae_, x_);
  PrincipalPlane plane = principal_plane(mu_);
  pca_axes_ = plane.axes;
  pca_explained_ = plane.explained;
  // auto: bfloat16 where the CPU has bfloat16 dot products, float32 elsewhere (never what it cannot run).
  decoder_ = std::make_unique<ServingDecoder>(*vae_, precision == "auto" ? pixel_precision() : parse_precision(precision));
  if (!decoder_->packed() && precision != "fp32" && precision != "auto")
    throw Error("--precision " + precision + " needs an mlp_vae with a Bernoulli likelihood");
}

ExplorerApi::~ExplorerApi() = default;

at::Tensor ExplorerApi::decoder_params(const at::Tensor& z) const { return decoder_->params(z); }

int64_t ExplorerApi::latent_dim() const { return vae_->latent_dim(); }

std::string ExplorerApi::precision() const { return precision_name(decoder_->precision()); }

json ExplorerApi::info() const {
  const auto& s = ck_.info.data_shape;
  json last = ck_.info.metrics.empty() ? json(nullptr) : ck_.info.metrics.back();
  return {{"checkpoint", path_},
          {"model", ck_.info.model.to_json()},
          {"latent", latent_dim()},
          {"data_shape", s},
          {"data", ck_.info.data.to_json()},
          {"classes", ck_.info.classes},
          {"test_size", x_.size(0)},
          {"labelled", y_.defined()},
          {"binarized", ck_.info.train.value("binarize", false)},
          {"epochs", ck_.info.metrics.size()},
          {"last_epoch", last},
          {"precision", precision()},
          {"cpu", cpu_info()},
          {"pca", {{"axes", rows_json(pca_axes_)}, {"explained", vector_json(pca_explained_)}}},
          {"limits",
           {{"decode", limits_.max_decode},
            {"items", limits_.max_items},
            {"kl_steps", limits_.max_kl_steps},
            {"scatter", limits_.scatter}}}};
}

std::string ExplorerApi::pixels_of(const at::Tensor& x) const { return u8_pixels(to_data_space(ck_, x)); }

json ExplorerApi::images_json(const at::Tensor& x) const {
  return {{"shape", x.sizes().vec()}, {"pixels", base64_encode(pixels_of(x))}};
}

std::string ExplorerApi::decoded_pixels(const float* z, int64_t n) const {
  if (!ck_.info.data_mean.defined()) {  // the model's space is the data's: pixels straight from the decoder
    std::string bytes(static_cast<size_t>(n * vae_->data_dim()), '\0');
    decoder_->pixels(z, n, reinterpret_cast<uint8_t*>(bytes.data()));
    return bytes;
  }
  c10::InferenceMode guard;
  return pixels_of(decoder_->means(at::from_blob(const_cast<float*>(z), {n, latent_dim()}, at::kFloat)));
}

json ExplorerApi::images_of(const at::Tensor& z) const {
  at::Tensor zc = z.to(at::kFloat).contiguous();  // [N, d]
  std::vector<int64_t> shape{zc.size(0)};
  for (int64_t s : ck_.info.data_shape) shape.push_back(s);
  return {{"shape", shape}, {"pixels", base64_encode(decoded_pixels(zc.data_ptr<float>(), zc.size(0)))}};
}

std::optional<std::string> ExplorerApi::decode_text(std::string_view body) const {
  thread_local std::vector<float> codes;
  const int64_t d = latent_dim();
  if (!parse_code_rows(body, "z", d, limits_.max_decode, kMaxCode, codes)) return std::nullopt;
  const int64_t n = static_cast<int64_t>(codes.size()) / d;
  const std::string pixels = decoded_pixels(codes.data(), n);
  std::string shape = std::to_string(n);
  for (int64_t s : ck_.info.data_shape) shape += "," + std::to_string(s);
  // As json::dump() writes decode()'s reply: members in key order, no spaces.
  std::string out = "{\"count\":" + std::to_string(n) + ",\"images\":{\"pixels\":\"";
  out.reserve(out.size() + pixels.size() / 3 * 4 + 64);
  base64_append(reinterpret_cast<const uint8_t*>(pixels.data()), pixels.size(), out);
  return out.append("\",\"shape\":[").append(shape).append("]}}");
}

json ExplorerApi::items(int64_t offset, int64_t limit) const {
  const int64_t n = x_.size(0);
  if (offset < 0 || offset >= n)
    throw ApiError(
        404, "offset " + std::to_string(offset) + " is out of range: the test split has " + std::to_string(n) + " examples");
  if (limit < 1 || limit > limits_.max_items)
    throw ApiError(400, "limit must be between 1 and " + std::to_string(limits_.max_items) + ", got " + std::to_string(limit));
  limit = std::min(limit, n - offset);
  json labels = y_.defined()
                    ? json(std::vector<int64_t>(y_.data_ptr<int64_t>() + offset, y_.data_ptr<int64_t>() + offset + limit))
                    : json(nullptr);
  return {{"offset", offset},
          {"count", limit},
          {"total", n},
          {"labels", labels},
          {"images", images_json(x_.narrow(0, offset, limit))}};
}

json ExplorerApi::scatter(int64_t limit) const {
  if (limit < 1 || limit > x_.size(0))
    throw ApiError(400, "limit must be between 1 and " + std::to_string(x_.size(0)) + ", got " + std::to_string(limit));
  json labels = y_.defined() ? json(std::vector<int64_t>(y_.data_ptr<int64_t>(), y_.data_ptr<int64_t>() + limit)) : json(nullptr);
  return {{"count", limit}, {"labels", labels}, {"mu", rows_json(mu_.narrow(0, 0, limit))}};
}

namespace {

// The distribution of scores s (float64 [N], N >= 1): 1001 quantiles and a 60-bin histogram.
json score_distribution(const at::Tensor& s) {
  const at::Tensor sorted = std::get<0>(s.sort()).contiguous();
  const double* v = sorted.data_ptr<double>();
  const int64_t n = sorted.size(0);
  std::vector<double> quantiles;
  for (int64_t q = 0; q <= 1000; ++q) quantiles.push_back(v[std::min(n - 1, q * (n - 1) / 1000)]);
  const at::Tensor counts = at::histc(s, 60, v[0], v[n - 1]).to(at::kDouble).contiguous();
  return {{"quantiles", quantiles},
          {"histogram",
           {{"lo", v[0]},
            {"hi", v[n - 1]},
            {"counts", std::vector<double>(counts.data_ptr<double>(), counts.data_ptr<double>() + 60)}}}};
}

}  // namespace

const at::Tensor& ExplorerApi::anomaly_score(const std::string& score) const {
  std::call_once(anomaly_once_, [this] {
    c10::InferenceMode guard;
    const EncodingStats stats = encoding_stats(*vae_, checkpoint_data(ck_, "", "train", 10000).x);
    anomaly_scores_ = anomaly_scores(*vae_, x_, stats, ScoreOptions{}).scores;
  });
  auto it = anomaly_scores_.find(score);
  if (it != anomaly_scores_.end()) return it->second;
  std::string names;
  for (const auto& [name, v] : anomaly_scores_) names += (names.empty() ? "" : ", ") + name;
  throw ApiError(400, "unknown score '" + score + "' (" + names + ")");
}

json ExplorerApi::anomaly(const std::string& score) const {
  const at::Tensor s = anomaly_score(score).contiguous();  // [N]
  json out = score_distribution(s);
  json names = json::array();
  for (const auto& [name, v] : anomaly_scores_) names.push_back(name);
  json calibration = nullptr;
  if (auto m = ck_.file.metadata.find("anomaly"); m != ck_.file.metadata.end())
    calibration = parse_json(m->second, "the checkpoint's anomaly calibration");
  // The highest-scoring test images, with their squared-error maps (each scaled to its own maximum).
  const at::Tensor top = std::get<1>(s.topk(std::min<int64_t>(12, s.size(0)))).contiguous();  // [T]
  json top_items = json::array();
  for (int64_t i = 0; i < top.size(0); ++i) {
    const int64_t k = top.data_ptr<int64_t>()[i];
    json item = {{"index", k}, {"score", s.data_ptr<double>()[k]}};
    if (y_.defined()) item["label"] = y_[k].item<int64_t>();
    top_items.push_back(item);
  }
  c10::InferenceMode guard;
  const at::Tensor x = x_.index_select(0, top);
  const at::Tensor err = (x - vae_->reconstruct(x)).square();
  const at::Tensor maps = err / err.flatten(1).amax(1).clamp_min(1e-12).view({-1, 1, 1, 1});
  out["score"] = score;
  out["names"] = names;
  out["examples"] = s.size(0);
  out["calibration"] = calibration;
  out["top"] = top_items;
  out["inputs"] = images_json(x);
  out["error_maps"] = images_json(maps);
  return out;
}

json ExplorerApi::metrics() const { return {{"epochs", ck_.info.metrics}, {"train", ck_.info.train}}; }

at::Tensor ExplorerApi::input_of(const json& body) const {
  if (!body.is_object()) throw ApiError(400, "the request body must be a JSON object");
  const bool has_index = body.contains("index"), has_png = body.contains("png");
  if (has_index == has_png)
    throw ApiError(400, "give exactly one of 'index' (a test example) or 'png' (an uploaded image, base64)");
  if (has_index) {
    const json& v = body.at("index");
    if (!v.is_number_integer()) throw ApiError(400, "'index' must be an integer");
    const int64_t i = v.get<int64_t>();
    if (i < 0 || i >= x_.size(0))
      throw ApiError(
          404, "index " + std::to_string(i) + " is out of range: the test split has " + std::to_string(x_.size(0)) + " examples");
    return x_.narrow(0, i, 1);
  }
  const json& v = body.at("png");
  if (!v.is_string()) throw ApiError(400, "'png' must be a base64 string");
  const auto& s = ck_.info.data_shape;
  at::Tensor x;
  try {
    x = image_decode(base64_decode(v.get<std::string>(), "uploaded image"), "uploaded image", static_cast<int>(s[0]),
                     static_cast<int>(s[1]), static_cast<int>(s[2]), limits_.max_upload_pixels);
  } catch (const Error& e) {
    throw ApiError(400, e.what());
  }
  x = x.unsqueeze(0);  // [1, C, H, W]
  if (ck_.info.data_mean.defined()) x = (x - ck_.info.data_mean) / ck_.info.data_std;
  return x;
}

at::Tensor ExplorerApi::codes_of(const json& value, const std::string& key, int64_t max_rows) const {
  if (!value.is_array() || value.empty()) throw ApiError(400, "'" + key + "' must be a non-empty array of codes");
  if (static_cast<int64_t>(value.size()) > max_rows)
    throw ApiError(400, "'" + key + "' has " + std::to_string(value.size()) + " codes; at most " + std::to_string(max_rows) +
                            " per request");
  const int64_t d = latent_dim();
  at::Tensor z = at::empty({static_cast<int64_t>(value.size()), d}, at::kFloat);  // [N, d]
  float* p = z.data_ptr<float>();
  for (size_t i = 0; i < value.size(); ++i) code_json(value[i], key + "[" + std::to_string(i) + "]", d, p + i * d);
  return z;
}

json ExplorerApi::encode(const json& body) const {
  at::Tensor x = input_of(body);  // [1, D...]
  c10::InferenceMode guard;
  Posterior q = vae_->encode(x);                                  // [1, d]
  at::Tensor params = vae_->decode(q.mu);                         // [1, D...]
  at::Tensor kl = kl_standard_normal_per_dim(q.mu, q.logvar)[0];  // [d]
  const double recon = -vae_->log_likelihood(params, x).item<double>();
  json out = {{"mu", vector_json(q.mu[0])},
              {"logvar", vector_json(q.logvar[0])},
              {"kl", kl.sum().item<double>()},
              {"kl_per_dim", vector_json(kl)},
              {"recon_nats", recon},
              {"input", images_json(x)},
              {"reconstruction", images_json(vae_->likelihood_mean(params))}};
  if (body.contains("index") && y_.defined()) out["label"] = y_[body.at("index").get<int64_t>()].item<int64_t>();
  return out;
}

json ExplorerApi::decode(const json& body) const {
  at::Tensor z = codes_of(field(body, "z"), "z", limits_.max_decode);  // [N, d]
  return {{"count", z.size(0)}, {"images", images_of(z)}};
}

json ExplorerApi::sample(const json& body) const {
  const int64_t count = integer_field(body, "count", 8, 1, limits_.max_decode);
  const int64_t seed = integer_field(body, "seed", static_cast<int64_t>(std::random_device{}() >> 1), 0, INT64_MAX);
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(static_cast<uint64_t>(seed));
  at::Tensor z = at::randn({count, latent_dim()}, gen, at::kFloat);  // [count, d] ~ N(0, I)
  return {{"seed", seed}, {"z", rows_json(z)}, {"images", images_of(z)}};
}

json ExplorerApi::kl_steps(const json& body) const {
  at::Tensor x = input_of(body);  // [1, D...]
  const int64_t steps = integer_field(body, "steps", 100, 1, limits_.max_kl_steps);
  const double lr = number_field(body, "lr", 0.1, 0.0, 1.0);
  Posterior q0;
  {
    c10::InferenceMode guard;
    q0 = vae_->encode(x);
  }
  // Plain gradient descent on KL(q || N(0, I)) with respect to the encoder's outputs (mu, logvar):
  // only the KL term acts, so the trajectory shows what the KL alone asks of q.
  at::Tensor mu = q0.mu.clone().requires_grad_(true), logvar = q0.logvar.clone().requires_grad_(true);  // [1, d]
  std::vector<at::Tensor> mus{mu.detach().clone()}, logvars{logvar.detach().clone()};
  for (int64_t s = 0; s < steps; ++s) {
    at::Tensor kl = kl_standard_normal(mu, logvar).sum();
    auto grads = torch::autograd::grad({kl}, {mu, logvar});
    {
      at::NoGradGuard no_grad;
      mu.sub_(grads[0] * lr);
      logvar.sub_(grads[1] * lr);
    }
    mus.push_back(mu.detach().clone());
    logvars.push_back(logvar.detach().clone());
  }
  c10::InferenceMode guard;
  at::Tensor all_mu = at::cat(mus), all_logvar = at::cat(logvars);        // [S + 1, d]
  at::Tensor params = vae_->decode(all_mu);                               // [S + 1, D...]
  at::Tensor recon = -vae_->log_likelihood(params, x.expand_as(params));  // [S + 1]
  at::Tensor kl = kl_standard_normal_per_dim(all_mu, all_logvar);         // [S + 1, d]
  json trajectory = json::array();
  for (int64_t s = 0; s <= steps; ++s)
    trajectory.push_back({{"step", s},
                          {"mu", vector_json(all_mu[s])},
                          {"logvar", vector_json(all_logvar[s])},
                          {"kl", kl[s].sum().item<double>()},
                          {"kl_per_dim", vector_json(kl[s])},
                          {"recon_nats", recon[s].item<double>()}});
  return {{"lr", lr}, {"trajectory", trajectory}, {"images", images_json(vae_->likelihood_mean(params))}};
}

json ExplorerApi::interpolate(const json& body) const {
  const int64_t d = latent_dim();
  at::Tensor a = at::empty({d}, at::kFloat), b = at::empty({d}, at::kFloat);
  code_json(field(body, "a"), "'a'", d, a.data_ptr<float>());
  code_json(field(body, "b"), "'b'", d, b.data_ptr<float>());
  const std::string method = interpolation_method(body);
  const at::Tensor t = interpolation_positions(body, limits_.max_decode);  // [T]
  at::Tensor z = interpolate_at(a, b, t, method);                          // [T, d]
  return {{"method", method}, {"t", vector_json(t)}, {"z", rows_json(z)}, {"images", images_of(z)}};
}

}  // namespace latent::server
