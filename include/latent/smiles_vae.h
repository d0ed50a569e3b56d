/// @brief The SMILES VAE: a VAE over molecules written as SMILES (Gomez-Bombarelli et al. 2018).
///
/// Tokens (include/latent/smiles_tokens.h) are read by a bidirectional GRU into q(z | x) =
/// N(mu, sigma^2); a GRU decoder given z writes the tokens back one at a time. An optional property
/// head on z predicts molecular properties (logP, QED, SA, ...) so that latent space can be searched
/// for better molecules. Model config keys: include/latent/config.h.
///
/// Its examples (molecule data, include/latent/data.h) are token rows [N, T] (T = max_length + 2:
/// kBos, the tokens, kEos, then kPad), as float32 in a Dataset or int64 here.
#pragma once

#include <ATen/Tensor.h>
#include <ATen/core/Generator.h>

#include <string>
#include <vector>

#include "latent/model.h"
#include "latent/smiles_tokens.h"

namespace latent {

class SmilesVaeImpl : public ModelImpl {
 public:
  using ModelImpl::ModelImpl;

  virtual const SmilesVocabulary& vocabulary() const = 0;
  int64_t latent_dim() const { return config_.latent; }
  int64_t max_length() const { return config_.smiles.max_length; }
  /// The names of the property head's outputs (empty: no head).
  const std::vector<std::string>& property_names() const { return config_.smiles.properties; }

  /// Token rows [N, max_length + 2] (int64) of SMILES as written; throws latent::Error naming a
  /// SMILES that the tokenizer refuses or that is longer than max_length tokens.
  at::Tensor tokens_of(const std::vector<std::string>& smiles) const;
  /// The SMILES of token rows [N, T] (any kEos ends a row; kUnk writes "?").
  std::vector<std::string> smiles_of(const at::Tensor& rows) const;

  /// mu and logvar [N, d] of q(z | tokens), tokens [N, T] (float or int64).
  virtual Posterior encode(const at::Tensor& tokens) = 0;
  /// Token rows [N, max_length + 1] decoded from z [N, d], in batches: the most likely token at each
  /// step when `temperature` is 0, else drawn from softmax(logits / temperature) with `gen`.
  /// `constrained`: each step chooses only among tokens that keep the SMILES syntactically whole and
  /// every atom's valence legal, with room left to close what is open (aromaticity is not checked).
  virtual at::Tensor generate(const at::Tensor& z, double temperature, at::Generator* gen, bool constrained = false) = 0;
  /// -log p(tokens | z) per molecule [N] in nats (teacher forcing), tokens [N, T].
  virtual at::Tensor token_nll(const at::Tensor& z, const at::Tensor& tokens) = 0;
  /// The property head's predictions [N, P] for z [N, d], in each property's own units;
  /// differentiable in z. Throws latent::Error when the model has no head.
  virtual at::Tensor predict_properties(const at::Tensor& z) = 0;

  /// SMILES decoded from z (generate() then smiles_of()).
  std::vector<std::string> decode_smiles(const at::Tensor& z, double temperature = 0, at::Generator* gen = nullptr,
                                         bool constrained = false);
};

/// The model as a SMILES VAE, or latent::Error saying that `what` needs one.
SmilesVaeImpl& require_smiles_vae(ModelImpl& model, const std::string& what);

}  // namespace latent
