// The model families, found by their config's "type". Adding one: a folder under src/models/ with
// its class (deriving ModelImpl, or VaeImpl for a Gaussian latent), its config keys, and a
// `Family <name>_family()`, then one line in registry.cpp.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "latent/model.h"

namespace latent {

struct Family {
  std::string type;      // the config's "type"
  bool gaussian_latent;  // whether its models are VAEs (ModelImpl::gaussian_latent() is non-null)
  /// A validated config of this type (the JSON object's "type" already checked); throws
  /// latent::Error naming the key. Unknown keys are errors.
  ModelConfig (*parse)(const nlohmann::json& j);
  /// The config's JSON: every key this type uses, none it does not.
  nlohmann::json (*to_json)(const ModelConfig& c);
  /// A freshly initialized model for data of shape `data_shape`; throws latent::Error when it does not fit.
  Model (*build)(const ModelConfig& c, const std::vector<int64_t>& data_shape);
  /// How many numbers (parameters and buffers) the model holds, computed without building it, so that
  /// make_model can refuse one past kMaxModelNumbers (a checkpoint's config comes from a file). An
  /// estimate within a few percent is enough.
  double (*numbers)(const ModelConfig& c, const std::vector<int64_t>& data_shape);
  /// For a family that reads data other than plain arrays (smiles_vae: molecules), or null: rewrites
  /// d's examples as its models read them, per the config; with `fit`, first fills the config's
  /// data-dependent keys from d (the training split of a new run).
  void (*prepare_data)(ModelConfig& c, Dataset& d, bool fit) = nullptr;
};

/// Family::prepare_data where the family has one; refuses molecule data for the others.
void prepare_model_data(ModelConfig& c, Dataset& d, bool fit);

/// 2^28 numbers (1 GB of float32, twice that with Adam's state): more is refused before allocation.
constexpr double kMaxModelNumbers = 268435456.0;

const std::vector<Family>& families();
/// The family of `type`; throws latent::Error listing the known types.
const Family& family(const std::string& type);
/// "mlp_vae, conv_vae": for messages.
std::string families_with_gaussian_latent();

Family mlp_vae_family();
Family conv_vae_family();
Family vq_vae_family();
Family smiles_vae_family();

}  // namespace latent
