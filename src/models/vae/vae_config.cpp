// The config keys of the VAE families (mlp_vae, conv_vae): see latent/config.h.
#include "models/vae/vae_config.h"

#include "latent/error.h"
#include "models/config_keys.h"

namespace latent {

ModelConfig parse_vae_config(const nlohmann::json& j, const std::string& type, bool conv) {
  std::set<std::string> allowed = {"type", "latent", "hidden", "activation", "likelihood", "variance", "sigma", "beta"};
  if (conv) allowed.insert("channels");
  only_keys(j, allowed, type);
  ModelConfig c;
  if (!j.contains("latent")) throw Error("model config: missing 'latent' (the latent size)");
  c.latent = positive_int(j["latent"], "latent");
  if (j.contains("hidden"))
    c.hidden = int_list(j["hidden"], "hidden");
  else if (!conv)
    throw Error("model config: " + type + " needs 'hidden', e.g. [400]");
  if (conv) c.channels = conv_channels(j, type);
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

nlohmann::json vae_config_json(const ModelConfig& c, bool conv) {
  nlohmann::json j = {{"type", c.type}, {"latent", c.latent}, {"hidden", c.hidden}, {"activation", c.activation}};
  if (conv) j["channels"] = c.channels;
  j["likelihood"] = likelihood_name(c.likelihood);
  if (c.likelihood == Likelihood::kGaussian) {
    j["variance"] = c.learned_variance ? "learned" : "fixed";
    if (!c.learned_variance) j["sigma"] = c.sigma;
  }
  j["beta"] = c.beta;
  return j;
}

}  // namespace latent
