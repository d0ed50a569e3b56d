#include "api_fields.h"

#include <ATen/ATen.h>

#include <cmath>
#include <vector>

#include "base64.h"
#include "explorer_api.h"
#include "latent/image.h"
#include "latent/json.h"

namespace latent::server {

using nlohmann::json;

namespace {
double rounded(float v) { return std::round(static_cast<double>(v) * 1e4) / 1e4; }

}  // namespace

json vector_json(const at::Tensor& v) {  // [d] -> [..]
  at::Tensor c = v.detach().to(at::kFloat).contiguous();
  json out = json::array();
  const float* p = c.data_ptr<float>();
  for (int64_t i = 0; i < c.numel(); ++i) out.push_back(rounded(p[i]));
  return out;
}

json rows_json(const at::Tensor& m) {  // [N, d] -> [[..], ..]
  json out = json::array();
  for (int64_t i = 0; i < m.size(0); ++i) out.push_back(vector_json(m[i]));
  return out;
}

std::string u8_pixels(const at::Tensor& x) {
  const at::Tensor v = x.to(at::kFloat).contiguous();
  std::string bytes(static_cast<size_t>(v.numel()), '\0');
  to_u8_pixels(v.data_ptr<float>(), v.numel(), reinterpret_cast<uint8_t*>(bytes.data()));
  return bytes;
}

json pixels_json(const at::Tensor& x) { return {{"shape", x.sizes().vec()}, {"pixels", base64_encode(u8_pixels(x))}}; }

const json& field(const json& body, const std::string& key) {
  if (!body.is_object()) throw ApiError(400, "the request body must be a JSON object");
  if (!body.contains(key)) throw ApiError(400, "missing field '" + key + "'");
  return body.at(key);
}

int64_t integer_field(const json& body, const std::string& key, int64_t fallback, int64_t lo, int64_t hi) {
  if (!body.is_object()) throw ApiError(400, "the request body must be a JSON object");
  if (!body.contains(key)) return fallback;
  const json& v = body.at(key);
  if (!v.is_number_integer()) throw ApiError(400, "'" + key + "' must be an integer");
  const int64_t n = v.get<int64_t>();
  if (n < lo || n > hi)
    throw ApiError(
        400, "'" + key + "' must be between " + std::to_string(lo) + " and " + std::to_string(hi) + ", got " + std::to_string(n));
  return n;
}

double number_field(const json& body, const std::string& key, double fallback, double lo, double hi) {
  if (!body.contains(key)) return fallback;
  const json& v = body.at(key);
  if (!v.is_number() || !std::isfinite(v.get<double>())) throw ApiError(400, "'" + key + "' must be a finite number");
  const double x = v.get<double>();
  if (x <= lo || x > hi)
    throw ApiError(400,
                   "'" + key + "' must be in (" + std::to_string(lo) + ", " + std::to_string(hi) + "], got " + json_excerpt(v));
  return x;
}

std::string string_field(const json& body, const std::string& key, const std::string& fallback) {
  if (!body.contains(key)) return fallback;
  if (!body.at(key).is_string()) throw ApiError(400, "'" + key + "' must be a string");
  return body.at(key).get<std::string>();
}

void code_json(const json& v, const std::string& where, int64_t d, float* p) {
  if (!v.is_array()) throw ApiError(400, where + " must be an array of " + std::to_string(d) + " numbers");
  if (static_cast<int64_t>(v.size()) != d)
    throw ApiError(400, where + " has " + std::to_string(v.size()) + " values; this model's latent size is " + std::to_string(d));
  for (int64_t i = 0; i < d; ++i) {
    const json& x = v[i];
    if (!x.is_number() || !std::isfinite(x.get<double>()) || std::abs(x.get<double>()) > kMaxCode)
      throw ApiError(400, where + "[" + std::to_string(i) + "] must be a finite number of magnitude at most 1e6");
    p[i] = static_cast<float>(x.get<double>());
  }
}

at::Tensor interpolation_positions(const json& body, int64_t max) {
  if (!body.contains("t")) return at::linspace(0, 1, integer_field(body, "steps", 8, 2, max), at::kFloat);
  if (body.contains("steps")) throw ApiError(400, "give 'steps' or 't', not both");
  const json& v = body.at("t");
  if (!v.is_array() || v.empty() || static_cast<int64_t>(v.size()) > max)
    throw ApiError(400, "'t' must be an array of 1 to " + std::to_string(max) + " numbers in [0, 1]");
  std::vector<float> ts;
  for (const json& x : v) {
    if (!x.is_number() || !(x.get<double>() >= 0 && x.get<double>() <= 1))
      throw ApiError(400, "every 't' must be a number in [0, 1]");
    ts.push_back(static_cast<float>(x.get<double>()));
  }
  return at::tensor(ts);
}

std::string interpolation_method(const json& body) {
  const std::string method = string_field(body, "method", "linear");
  if (method != "linear" && method != "slerp") throw ApiError(400, "'method' must be linear or slerp, got '" + method + "'");
  return method;
}

// The principal plane of encoded means mu [N, d]: the two leading eigenvectors of their covariance.
PrincipalPlane principal_plane(const at::Tensor& mu) {
  at::Tensor centered = (mu - mu.mean(0, true)).to(at::kDouble);                      // [N, d]
  at::Tensor cov = centered.t().mm(centered) / std::max<int64_t>(1, mu.size(0) - 1);  // [d, d]
  auto [values, vectors] = at::linalg_eigh(cov);                                      // ascending
  const int64_t d = mu.size(1);
  at::Tensor axes = vectors.narrow(1, d - 2, 2).flip({1}).t().contiguous();  // [2, d], leading first
  // An eigenvector's sign is arbitrary: make each axis's largest component positive, so the plane
  // is the same on every start.
  at::Tensor largest = axes.abs().argmax(1, true);
  axes = axes * axes.gather(1, largest).sign();
  return {axes.to(at::kFloat), (values.flip({0}).narrow(0, 0, 2) / values.sum().clamp_min(1e-30)).to(at::kFloat)};
}

}  // namespace latent::server
