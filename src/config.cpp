#include "latent/config.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <set>

#include "latent/atomic_file.h"
#include "latent/error.h"

namespace latent {
namespace {

// Function-local statics: safe to use from other translation units' static initializers.
const std::set<std::string>& common_keys() {
  static const std::set<std::string> keys = {"type", "latent", "hidden", "activation", "likelihood", "variance", "sigma", "beta"};
  return keys;
}
const std::set<std::string>& activations() {
  static const std::set<std::string> names = {"relu", "elu", "tanh", "leaky_relu"};
  return names;
}

int64_t positive_int(const nlohmann::json& v, const std::string& key) {
  if (!v.is_number_integer() || v.get<int64_t>() < 1)
    throw Error("model config: '" + key + "' must be an integer >= 1, got " + v.dump());
  return v.get<int64_t>();
}

std::vector<int64_t> int_list(const nlohmann::json& v, const std::string& key) {
  if (!v.is_array()) throw Error("model config: '" + key + "' must be a list of integers, got " + v.dump());
  std::vector<int64_t> out;
  for (const auto& e : v) out.push_back(positive_int(e, key));
  return out;
}

std::string one_of(const nlohmann::json& v, const std::string& key, const std::set<std::string>& allowed) {
  std::string names;
  for (const auto& a : allowed) names += (names.empty() ? "" : ", ") + a;
  if (!v.is_string() || !allowed.count(v.get<std::string>()))
    throw Error("model config: '" + key + "' must be one of " + names + ", got " + v.dump());
  return v.get<std::string>();
}

double positive_number(const nlohmann::json& v, const std::string& key, bool allow_zero) {
  if (!v.is_number() || !std::isfinite(v.get<double>()) || v.get<double>() < 0 || (!allow_zero && v.get<double>() == 0))
    throw Error("model config: '" + key + "' must be a " + (allow_zero ? "non-negative" : "positive") + " number, got " +
                v.dump());
  return v.get<double>();
}

void activation_and_likelihood(const nlohmann::json& j, ModelConfig& c) {
  if (j.contains("activation")) c.activation = one_of(j["activation"], "activation", activations());
  if (j.contains("likelihood"))
    c.likelihood = one_of(j["likelihood"], "likelihood", {"bernoulli", "gaussian"}) == "gaussian" ? Likelihood::kGaussian
                                                                                                  : Likelihood::kBernoulli;
}

// vq_vae: channels, codebook, code_dim, commitment, decay, activation, likelihood, sigma.
ModelConfig vq_from_json(const nlohmann::json& j) {
  static const std::set<std::string> allowed = {"type",  "channels",   "codebook",   "code_dim", "commitment",
                                                "decay", "activation", "likelihood", "sigma"};
  for (auto it = j.begin(); it != j.end(); ++it)
    if (!allowed.count(it.key())) throw Error("model config: unknown key '" + it.key() + "' for type vq_vae");
  ModelConfig c;
  c.type = "vq_vae";
  if (!j.contains("channels")) throw Error("model config: vq_vae needs 'channels', e.g. [32, 64]");
  c.channels = int_list(j["channels"], "channels");
  if (c.channels.empty()) throw Error("model config: 'channels' must list at least one conv layer");
  if (j.contains("codebook")) c.codebook = positive_int(j["codebook"], "codebook");
  if (c.codebook < 2) throw Error("model config: 'codebook' must be at least 2");
  if (j.contains("code_dim")) c.code_dim = positive_int(j["code_dim"], "code_dim");
  c.latent = c.code_dim;
  if (j.contains("commitment")) c.commitment = positive_number(j["commitment"], "commitment", true);
  if (j.contains("decay")) {
    c.decay = positive_number(j["decay"], "decay", true);
    if (c.decay >= 1) throw Error("model config: 'decay' must be in [0, 1), got " + j["decay"].dump());
  }
  activation_and_likelihood(j, c);
  if (j.contains("sigma")) {
    if (c.likelihood != Likelihood::kGaussian) throw Error("model config: 'sigma' applies only to likelihood gaussian");
    c.sigma = positive_number(j["sigma"], "sigma", false);
  }
  return c;
}

}  // namespace

ModelConfig ModelConfig::from_json(const nlohmann::json& j) {
  if (!j.is_object()) throw Error("model config: expected a JSON object, got " + j.dump());
  ModelConfig c;
  if (!j.contains("type")) throw Error("model config: missing 'type' (mlp_vae, conv_vae or vq_vae)");
  c.type = one_of(j["type"], "type", {"mlp_vae", "conv_vae", "vq_vae"});
  if (c.type == "vq_vae") return vq_from_json(j);
  std::set<std::string> allowed = common_keys();
  if (c.type == "conv_vae") allowed.insert("channels");
  for (auto it = j.begin(); it != j.end(); ++it)
    if (!allowed.count(it.key())) throw Error("model config: unknown key '" + it.key() + "' for type " + c.type);

  if (!j.contains("latent")) throw Error("model config: missing 'latent' (the latent size)");
  c.latent = positive_int(j["latent"], "latent");
  if (j.contains("hidden"))
    c.hidden = int_list(j["hidden"], "hidden");
  else if (c.type == "mlp_vae")
    throw Error("model config: mlp_vae needs 'hidden', e.g. [400]");
  if (c.type == "conv_vae") {
    if (!j.contains("channels")) throw Error("model config: conv_vae needs 'channels', e.g. [32, 64]");
    c.channels = int_list(j["channels"], "channels");
    if (c.channels.empty()) throw Error("model config: 'channels' must list at least one conv layer");
  }
  activation_and_likelihood(j, c);
  if (j.contains("variance")) {
    if (c.likelihood != Likelihood::kGaussian) throw Error("model config: 'variance' applies only to likelihood gaussian");
    c.learned_variance = one_of(j["variance"], "variance", {"fixed", "learned"}) == "learned";
  }
  if (j.contains("sigma")) {
    if (c.likelihood != Likelihood::kGaussian || c.learned_variance)
      throw Error("model config: 'sigma' applies only to likelihood gaussian with fixed variance");
    c.sigma = positive_number(j["sigma"], "sigma", false);
  }
  if (j.contains("beta")) c.beta = positive_number(j["beta"], "beta", true);
  return c;
}

ModelConfig ModelConfig::from_text_or_file(const std::string& text_or_path) {
  std::string text = text_or_path;
  std::string origin = "model config";
  std::error_code ec;
  const bool looks_inline = text.find('{') != std::string::npos;
  if (!looks_inline) {
    if (!std::filesystem::exists(text_or_path, ec)) throw Error("model config: no such file: " + text_or_path);
    text = read_file(text_or_path);
    origin = text_or_path;
  }
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    throw Error(origin + ": invalid JSON (" + e.what() + ")");
  }
  return from_json(j);
}

nlohmann::json ModelConfig::to_json() const {
  if (type == "vq_vae") {
    nlohmann::json v = {
        {"type", type},   {"channels", channels},    {"codebook", codebook}, {"code_dim", code_dim}, {"commitment", commitment},
        {"decay", decay}, {"activation", activation}};
    v["likelihood"] = likelihood == Likelihood::kGaussian ? "gaussian" : "bernoulli";
    if (likelihood == Likelihood::kGaussian) v["sigma"] = sigma;
    return v;
  }
  nlohmann::json j = {{"type", type}, {"latent", latent}, {"hidden", hidden}, {"activation", activation}};
  if (type == "conv_vae") j["channels"] = channels;
  j["likelihood"] = likelihood == Likelihood::kGaussian ? "gaussian" : "bernoulli";
  if (likelihood == Likelihood::kGaussian) {
    j["variance"] = learned_variance ? "learned" : "fixed";
    if (!learned_variance) j["sigma"] = sigma;
  }
  j["beta"] = beta;
  return j;
}

}  // namespace latent
