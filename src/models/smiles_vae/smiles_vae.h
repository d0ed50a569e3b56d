// The SMILES VAE's network (Gomez-Bombarelli et al. 2018, in the form MOSES's VAE gives it): tokens
// are embedded, read by a bidirectional GRU whose two final states give q(z | x) = N(mu, sigma^2);
// a GRU decoder starts from a state computed from z and reads the previous token's embedding
// beside z at every step (teacher forcing in training), giving each next token's logits.
//
// Shapes: B molecules, T tokens per row (kBos, the SMILES's tokens, kEos, then kPad), V vocabulary,
// E embedding, H hidden sizes, L decoder layers, d latent. Parameter names are the state-dict names
// of the same torch.nn.Module (tests/smiles_vae_reference.py).
#pragma once

#include <ATen/core/Generator.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/rnn.h>
#include <torch/nn/pimpl.h>

#include <utility>

#include "models/smiles_vae/smiles_grammar.h"

namespace latent {

/// One layer and direction of an nn::GRU's parameters (views of them).
struct GruWeights {
  at::Tensor w_ih, w_hh, b_ih, b_hh;
};

struct SmilesVaeSizes {
  int64_t vocabulary = 0;  // V, with the four specials of SmilesVocabulary
  int64_t latent = 56;
  int64_t embedding = 64;
  int64_t encoder_hidden = 256;  // per direction
  int64_t decoder_hidden = 512;
  int64_t decoder_layers = 3;
};

class SmilesVaeNetImpl : public torch::nn::Module {
 public:
  explicit SmilesVaeNetImpl(const SmilesVaeSizes& sizes);

  /// mu and logvar [B, d] of q(z | tokens); `lengths` [B] counts each row's tokens up to its kEos.
  std::pair<at::Tensor, at::Tensor> encode(const at::Tensor& tokens, const at::Tensor& lengths);
  /// Logits [B, T-1, V] of tokens[:, 1:] given the tokens before each and z [B, d], up to each row's
  /// kEos; the steps after it are not run (their logits are 0).
  at::Tensor decode(const at::Tensor& z, const at::Tensor& tokens);
  /// -log p(tokens | z) per molecule [B]: the cross entropy of every token after kBos up to and
  /// including kEos (kPad positions do not count), in nats.
  static at::Tensor reconstruction_nll(const at::Tensor& logits, const at::Tensor& tokens);
  /// Token rows [B, max_length + 1] decoded from z [B, d], starting with kBos: argmax tokens when
  /// `temperature` is 0, else drawn from softmax(logits / temperature) with `gen`. A row is kPad
  /// after its kEos; a row that reaches max_length tokens without kEos is cut there. With `grammar`,
  /// each step chooses only among the tokens it allows (a row with none left ends there).
  at::Tensor generate(const at::Tensor& z, int64_t max_length, double temperature, at::Generator* gen,
                      const SmilesGrammar* grammar = nullptr);

  const SmilesVaeSizes& sizes() const { return sizes_; }

 private:
  at::Tensor initial_state(const at::Tensor& z);  // [L, B, H]
  static GruWeights gru_weights(const torch::nn::GRU& gru, int64_t layer, bool reverse);

  SmilesVaeSizes sizes_;
  torch::nn::Embedding embedding{nullptr};
  torch::nn::GRU encoder{nullptr};
  torch::nn::Linear fc_mu{nullptr}, fc_logvar{nullptr}, decoder_init{nullptr};
  torch::nn::GRU decoder{nullptr};
  torch::nn::Linear output{nullptr};
};
TORCH_MODULE(SmilesVaeNet);

/// Word dropout's input: `tokens` [B, T] with every SMILES token (not kBos, kEos or kPad) whose
/// `uniform` [B, T] draw is below `p` replaced by kUnk. The targets stay `tokens`.
at::Tensor drop_words(const at::Tensor& tokens, const at::Tensor& uniform, double p);

}  // namespace latent
