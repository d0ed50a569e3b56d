#include "models/config_keys.h"

#include <cmath>

#include "latent/error.h"
#include "latent/json.h"

namespace latent {

void only_keys(const nlohmann::json& j, const std::set<std::string>& allowed, const std::string& type) {
  for (auto it = j.begin(); it != j.end(); ++it)
    if (!allowed.count(it.key())) throw Error("model config: unknown key '" + it.key() + "' for type " + type);
}

int64_t positive_int(const nlohmann::json& v, const std::string& key) {
  if (!v.is_number_integer() || v.get<int64_t>() < 1 || v.get<int64_t>() > kMaxConfigSize)
    throw Error("model config: '" + key + "' must be an integer from 1 to " + std::to_string(kMaxConfigSize) + ", got " +
                json_excerpt(v));
  return v.get<int64_t>();
}

std::vector<int64_t> int_list(const nlohmann::json& v, const std::string& key) {
  if (!v.is_array()) throw Error("model config: '" + key + "' must be a list of integers, got " + json_excerpt(v));
  if (v.size() > static_cast<size_t>(kMaxConfigLayers))
    throw Error("model config: '" + key + "' lists " + std::to_string(v.size()) + " layers, at most " +
                std::to_string(kMaxConfigLayers));
  std::vector<int64_t> out;
  for (const auto& e : v) out.push_back(positive_int(e, key));
  return out;
}

std::string one_of(const nlohmann::json& v, const std::string& key, const std::set<std::string>& allowed) {
  std::string names;
  for (const auto& a : allowed) names += (names.empty() ? "" : ", ") + a;
  if (!v.is_string() || !allowed.count(v.get<std::string>()))
    throw Error("model config: '" + key + "' must be one of " + names + ", got " + json_excerpt(v));
  return v.get<std::string>();
}

double positive_number(const nlohmann::json& v, const std::string& key, bool allow_zero) {
  if (!v.is_number() || !std::isfinite(v.get<double>()) || v.get<double>() < 0 || (!allow_zero && v.get<double>() == 0))
    throw Error("model config: '" + key + "' must be a " + (allow_zero ? "non-negative" : "positive") + " number, got " +
                json_excerpt(v));
  return v.get<double>();
}

void activation_and_likelihood(const nlohmann::json& j, ModelConfig& c) {
  if (j.contains("activation")) c.activation = one_of(j["activation"], "activation", {"relu", "elu", "tanh", "leaky_relu"});
  if (j.contains("likelihood"))
    c.likelihood = one_of(j["likelihood"], "likelihood", {"bernoulli", "gaussian"}) == "gaussian" ? Likelihood::kGaussian
                                                                                                  : Likelihood::kBernoulli;
}

std::vector<int64_t> conv_channels(const nlohmann::json& j, const std::string& type) {
  if (!j.contains("channels")) throw Error("model config: " + type + " needs 'channels', e.g. [32, 64]");
  std::vector<int64_t> c = int_list(j["channels"], "channels");
  if (c.empty()) throw Error("model config: 'channels' must list at least one conv layer");
  return c;
}

const char* likelihood_name(Likelihood l) {
  return l == Likelihood::kGaussian ? "gaussian" : l == Likelihood::kCategorical ? "categorical" : "bernoulli";
}

}  // namespace latent
