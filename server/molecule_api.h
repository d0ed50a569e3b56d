/// @brief The explorer's "Molecules" view: a SMILES VAE (`latent serve runs/molecules/model.safetensors`)
/// behind JSON routes. Structures come as RDKit's SVG depictions; an invalid decoding is returned as
/// such (its string, "valid": false), never hidden.
///
/// Routes (POST bodies are JSON objects; a bad field or an invalid SMILES is a 400 naming it):
///   GET  /api/info                -> {"kind": "molecules", model, properties, test_size, latent, last_epoch, ...}
///   GET  /api/molecules/plane?property=qed&limit=N
///                                 -> the test molecules' mu on their principal plane, coloured by a property
///   POST /api/molecules/encode    {"smiles"} -> the molecule, its properties, mu on the plane, its decoding
///   POST /api/molecules/decode    {"x", "y"} (a point of the plane) or {"z": [d numbers]} -> the decoding
///   POST /api/molecules/sample    {"n" (1..64), "seed"} -> n prior samples with their points on the plane
///   POST /api/molecules/walk      {"from", "to", "steps" (2..16)} -> the decoded path
///   POST /api/molecules/optimize  {"smiles", "property", "steps" (1..100), "similarity"} -> the trajectory
#pragma once

#include <ATen/Tensor.h>

#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "latent/checkpoint.h"
#include "latent/smiles_vae.h"

namespace latent::server {

class MoleculeApi {
 public:
  /// Encodes the checkpoint's test split; throws latent::Error when the model is not a smiles_vae.
  MoleculeApi(LoadedCheckpoint checkpoint, std::string checkpoint_path);

  nlohmann::json info() const;
  nlohmann::json plane(const std::string& property, int64_t limit) const;
  nlohmann::json encode(const nlohmann::json& body) const;
  nlohmann::json decode(const nlohmann::json& body) const;
  nlohmann::json sample(const nlohmann::json& body) const;
  nlohmann::json walk(const nlohmann::json& body) const;
  nlohmann::json optimize(const nlohmann::json& body) const;

  static constexpr int64_t kMaxSamples = 64, kMaxWalk = 16, kMaxSteps = 100;

 private:
  std::string canonical(const nlohmann::json& body, const std::string& key) const;  // 400 unless a valid molecule
  nlohmann::json molecule_json(const std::string& smiles) const;                    // {smiles, valid, svg, properties?}
  nlohmann::json point_json(const at::Tensor& z) const;                             // z [d] -> [x, y] on the plane
  at::Tensor encode_one(const std::string& smiles) const;                           // mu [d]

  LoadedCheckpoint ck_;
  SmilesVaeImpl* model_;
  std::string path_;
  std::vector<std::string> smiles_;  // the test split
  at::Tensor properties_;            // [N, P] the model's properties of each test molecule (double)
  at::Tensor mu_;                    // [N, d]
  at::Tensor axes_, mean_;           // [2, d] the principal plane, [d] the centre of the encodings
  mutable std::mutex mutex_;         // one model call at a time (the GRUs use every core)
};

}  // namespace latent::server
