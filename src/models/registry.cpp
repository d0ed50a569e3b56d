#include "models/registry.h"

#include "latent/error.h"

namespace latent {

const std::vector<Family>& families() {
  static const std::vector<Family> list = {
      mlp_vae_family(),
      conv_vae_family(),
      vq_vae_family(),
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

std::string families_with_gaussian_latent() {
  std::string names;
  for (const Family& f : families())
    if (f.gaussian_latent) names += (names.empty() ? "" : ", ") + f.type;
  return names;
}

}  // namespace latent
