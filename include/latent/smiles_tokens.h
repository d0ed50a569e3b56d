/// @brief SMILES as token sequences: the tokenizer and the vocabulary a SMILES VAE reads and writes.
///
/// Tokens follow the regular expression of Schwaller et al. (Molecular Transformer, 2019): a
/// bracket atom ("[nH]", "[C@@H]", "[N+]") is one token, so are the two-letter atoms "Br" and
/// "Cl" and a two-digit ring closure ("%12"); every other character is a token of its own. Plain
/// C++, no RDKit.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace latent {

/// The tokens of `smiles`; throws latent::Error naming the position of a character SMILES does
/// not use, an unclosed "[" or a "%" without two digits.
std::vector<std::string> smiles_tokens(const std::string& smiles);

class SmilesVocabulary {
 public:
  static constexpr int64_t kPad = 0, kBos = 1, kEos = 2, kUnk = 3;
  static constexpr int kSpecials = 4;

  /// Every token of `smiles`, after the four specials, in byte order (so the same data gives the
  /// same ids on every machine).
  static SmilesVocabulary build(const std::vector<std::string>& smiles);
  /// From the token list a checkpoint stores (to_json()); checks it.
  static SmilesVocabulary from_json(const nlohmann::json& j);
  nlohmann::json to_json() const;

  int64_t size() const { return static_cast<int64_t>(tokens_.size()); }
  const std::string& token(int64_t id) const;
  /// kBos, the ids of the tokens, kEos; a token the vocabulary lacks is kUnk.
  std::vector<int64_t> encode(const std::string& smiles) const;
  /// The string of `ids` up to the first kEos, without kBos and kPad (kUnk writes "?").
  std::string decode(const std::vector<int64_t>& ids) const;

 private:
  explicit SmilesVocabulary(std::vector<std::string> tokens);
  std::vector<std::string> tokens_;
  std::vector<std::pair<std::string, int64_t>> index_;  // sorted by token, for encode()
};

}  // namespace latent
