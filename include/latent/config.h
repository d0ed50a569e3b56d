/// @brief Model configuration: JSON data, validated on load.
///
/// Keys (defaults in brackets):
///   type        "mlp_vae" | "conv_vae" | "vq_vae"                   (required)
///   latent      latent size d >= 1                                    (required)
///   hidden      dense layer sizes; mlp_vae: the encoder's layers (the decoder mirrors them);
///               conv_vae: dense layers between the conv stack and the latent   [mlp: required, conv: []]
///   channels    conv_vae: output channels of each stride-2 conv (kernel 4, padding 1)  (conv: required)
///   activation  "relu" | "elu" | "tanh" | "leaky_relu"                ["relu"]
///   likelihood  "bernoulli" (decoder gives logits) | "gaussian" (decoder gives the mean)  ["bernoulli"]
///   variance    gaussian only: "fixed" (sigma below) | "learned" (one log-variance per data dimension) ["fixed"]
///   sigma       gaussian fixed variance: the standard deviation        [0.1]
///   beta        weight of the KL term in the objective                 [1.0]
/// vq_vae (include/latent/vq_vae.h) takes channels (required), activation, likelihood, sigma
/// (gaussian: fixed variance only) and:
///   codebook    number of codes K                                      [512]
///   code_dim    size D of each code vector                             [64]
///   commitment  weight of ||z_e - sg(z_q)||^2                          [0.25]
///   decay       of the codebook's exponential moving averages          [0.99]
/// smiles_vae (include/latent/smiles_vae.h) takes latent [56], beta and:
///   embedding, encoder_hidden (per direction), decoder_hidden, decoder_layers   [64, 256, 256, 3]
///   max_length  tokens of the longest SMILES it reads or writes           [120]
///   vocabulary  its tokens (SmilesVocabulary); filled from the training data when absent
///   properties  what its property head on z predicts, from logp, qed, sa, plogp, mw, tpsa or a
///               CSV column (empty: no head)                  [["logp", "qed", "sa", "plogp"]]
///   property_weight  weight of the head's squared error (standardized units)  [1.0]
///   property_mean, property_std  the standardization, filled from the training data
///   augment     the encoder reads randomized SMILES (a new atom order each time), the decoder
///               writes the canonical one                                        [true]
/// Unknown keys, keys that do not belong to the type, and bad values are errors naming the key.
/// Caps (a checkpoint's config comes from a file): every size from 1 to 65536, at most 32 layers per
/// list, and a model of at most 2^28 numbers for its data shape (refused before it is allocated).
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace latent {

enum class Likelihood { kBernoulli, kGaussian, kCategorical };

/// smiles_vae's keys.
struct SmilesConfig {
  int64_t embedding = 64;
  int64_t encoder_hidden = 256;
  int64_t decoder_hidden = 256;
  int64_t decoder_layers = 3;
  int64_t max_length = 120;
  std::vector<std::string> vocabulary;
  std::vector<std::string> properties = {"logp", "qed", "sa", "plogp"};
  double property_weight = 1.0;
  std::vector<double> property_mean, property_std;
  bool augment = true;
  /// Word dropout (Bowman et al. 2016): in training, each token the decoder reads (not kBos) is
  /// replaced by kUnk with this probability, so the next token must come from z more often.
  double word_dropout = 0;
};

struct ModelConfig {
  std::string type;
  int64_t latent = 0;
  std::vector<int64_t> hidden;
  std::vector<int64_t> channels;
  std::string activation = "relu";
  Likelihood likelihood = Likelihood::kBernoulli;
  bool learned_variance = false;
  double sigma = 0.1;
  double beta = 1.0;
  int64_t codebook = 512;    // vq_vae
  int64_t code_dim = 64;     // vq_vae (latent is set to it)
  double commitment = 0.25;  // vq_vae
  double decay = 0.99;       // vq_vae
  SmilesConfig smiles;       // smiles_vae

  /// Validates and converts; throws latent::Error naming the offending key.
  static ModelConfig from_json(const nlohmann::json& j);
  /// Parses JSON text or, when `text_or_path` names a file, that file's JSON.
  static ModelConfig from_text_or_file(const std::string& text_or_path);
  nlohmann::json to_json() const;
};

}  // namespace latent
