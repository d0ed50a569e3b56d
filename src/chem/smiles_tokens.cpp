#include "latent/smiles_tokens.h"

#include <algorithm>
#include <cctype>
#include <cstring>
#include <set>

#include "latent/error.h"

namespace latent {
namespace {

const char* const kSpecialTokens[SmilesVocabulary::kSpecials] = {"<pad>", "<bos>", "<eos>", "<unk>"};

// Characters that are tokens by themselves outside brackets: organic-subset atoms (aromatic in
// lower case), bonds, branches, ring closures, dots, and the reaction and wildcard marks.
bool single_token(char c) { return c != '\0' && std::strchr("BCNOSPFIbcnosp().=#-+\\/:~@?>*$0123456789", c); }

}  // namespace

std::vector<std::string> smiles_tokens(const std::string& smiles) {
  std::vector<std::string> out;
  auto fail = [&](size_t at, const std::string& what) {
    return Error("SMILES '" + smiles + "': " + what + " at position " + std::to_string(at + 1));
  };
  for (size_t i = 0; i < smiles.size();) {
    const char c = smiles[i];
    if (c == '[') {
      const size_t end = smiles.find(']', i + 1);
      if (end == std::string::npos) throw fail(i, "'[' is never closed");
      if (end == i + 1) throw fail(i, "an empty bracket atom");
      out.push_back(smiles.substr(i, end - i + 1));
      i = end + 1;
    } else if ((c == 'B' && i + 1 < smiles.size() && smiles[i + 1] == 'r') ||
               (c == 'C' && i + 1 < smiles.size() && smiles[i + 1] == 'l')) {
      out.push_back(smiles.substr(i, 2));
      i += 2;
    } else if (c == '%') {
      if (i + 2 >= smiles.size() || !std::isdigit(static_cast<unsigned char>(smiles[i + 1])) ||
          !std::isdigit(static_cast<unsigned char>(smiles[i + 2])))
        throw fail(i, "'%' needs two digits");
      out.push_back(smiles.substr(i, 3));
      i += 3;
    } else if (single_token(c)) {
      out.emplace_back(1, c);
      ++i;
    } else {
      throw fail(i, std::isprint(static_cast<unsigned char>(c)) ? std::string("'") + c + "' is not a SMILES character"
                                                                : "a byte that is not a SMILES character");
    }
  }
  return out;
}

SmilesVocabulary::SmilesVocabulary(std::vector<std::string> tokens) : tokens_(std::move(tokens)) {
  for (size_t i = 0; i < tokens_.size(); ++i) index_.emplace_back(tokens_[i], static_cast<int64_t>(i));
  std::sort(index_.begin(), index_.end());
}

SmilesVocabulary SmilesVocabulary::build(const std::vector<std::string>& smiles) {
  std::set<std::string> seen;
  for (const std::string& s : smiles)
    for (std::string& t : smiles_tokens(s)) seen.insert(std::move(t));
  std::vector<std::string> tokens(std::begin(kSpecialTokens), std::end(kSpecialTokens));
  tokens.insert(tokens.end(), seen.begin(), seen.end());
  return SmilesVocabulary(std::move(tokens));
}

SmilesVocabulary SmilesVocabulary::from_json(const nlohmann::json& j) {
  auto fail = [](const std::string& what) { return Error("SMILES vocabulary: " + what); };
  if (!j.is_array()) throw fail("expected a list of tokens");
  if (j.size() <= size_t{kSpecials} || j.size() > 4096) throw fail("expected 5 to 4096 tokens, got " + std::to_string(j.size()));
  std::vector<std::string> tokens;
  for (const auto& t : j) {
    if (!t.is_string()) throw fail("every token must be a string");
    tokens.push_back(t.get<std::string>());
  }
  for (int i = 0; i < kSpecials; ++i)
    if (tokens[i] != kSpecialTokens[i]) throw fail("token " + std::to_string(i) + " must be " + kSpecialTokens[i]);
  for (size_t i = kSpecials; i < tokens.size(); ++i) {
    std::vector<std::string> parts;
    try {
      parts = smiles_tokens(tokens[i]);
    } catch (const Error&) {
    }
    if (parts.size() != 1) throw fail("'" + tokens[i] + "' is not one SMILES token");
  }
  if (std::set<std::string>(tokens.begin(), tokens.end()).size() != tokens.size()) throw fail("a token is listed twice");
  return SmilesVocabulary(std::move(tokens));
}

nlohmann::json SmilesVocabulary::to_json() const { return tokens_; }

const std::string& SmilesVocabulary::token(int64_t id) const {
  if (id < 0 || id >= size()) throw Error("SMILES vocabulary: no token " + std::to_string(id));
  return tokens_[id];
}

std::vector<int64_t> SmilesVocabulary::encode(const std::string& smiles) const {
  std::vector<int64_t> ids = {kBos};
  for (const std::string& t : smiles_tokens(smiles)) {
    const auto it = std::lower_bound(index_.begin(), index_.end(), std::make_pair(t, int64_t{-1}));
    ids.push_back(it != index_.end() && it->first == t ? it->second : kUnk);
  }
  ids.push_back(kEos);
  return ids;
}

std::string SmilesVocabulary::decode(const std::vector<int64_t>& ids) const {
  std::string out;
  for (int64_t id : ids) {
    if (id == kEos) break;
    if (id == kBos || id == kPad) continue;
    out += id == kUnk ? "?" : token(id);
  }
  return out;
}

}  // namespace latent
