#include "models/registry.h"

#include "latent/error.h"

namespace latent {

const std::vector<Family>& families() {
  static const std::vector<Family> list = {
      mlp_vae_family(),
      conv_vae_family(),
      vq_vae_family(),
      smiles_vae_family(),
  };
  return list;
}

const Family& family(const std::string& type) {
  std::string names;
  for (const Family& f : families()) {
    if (f.type == type) return f;
    names += (names.empty() ? "" : ", ") + f.type;
  }
  throw Error("model config: 'type' must be one of " + names + ", got \"" + type + "\"");
}

void prepare_model_data(ModelConfig& c, Dataset& d, bool fit) {
  const Family& f = family(c.type);
  if (f.prepare_data) return f.prepare_data(c, d, fit);
  if (!d.smiles.empty()) throw Error("molecules are read by a smiles_vae model; a " + c.type + " reads arrays and images");
}

std::string families_with_gaussian_latent() {
  std::string names;
  for (const Family& f : families())
    if (f.gaussian_latent) names += (names.empty() ? "" : ", ") + f.type;
  return names;
}

}  // namespace latent
