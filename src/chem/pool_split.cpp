// The pool's fixed split, its cache folder and Tanimoto similarity: plain C++, in every build (with or without RDKit).
#include <cstdlib>

#include "latent/chem.h"
#include "latent/error.h"

namespace latent {

int molecule_split(const std::string& canonical) {
  uint64_t h = 14695981039346656037ull;  // FNV-1a, 64 bits
  for (unsigned char c : canonical) h = (h ^ c) * 1099511628211ull;
  const uint64_t bucket = h % 10;
  return bucket == 0 ? 2 : bucket == 1 ? 1 : 0;
}

double tanimoto(const Fingerprint& a, const Fingerprint& b) {
  int both = 0, either = 0;
  for (size_t i = 0; i < a.words.size() && i < b.words.size(); ++i) {
    both += __builtin_popcountll(a.words[i] & b.words[i]);
    either += __builtin_popcountll(a.words[i] | b.words[i]);
  }
  return either == 0 ? 0.0 : static_cast<double>(both) / static_cast<double>(either);
}

std::string default_cache_dir() {
  if (const char* d = std::getenv("LATENT_CACHE_DIR"); d && *d) return d;
  if (const char* d = std::getenv("XDG_CACHE_HOME"); d && *d) return std::string(d) + "/latent";
  if (const char* d = std::getenv("HOME"); d && *d) return std::string(d) + "/.cache/latent";
  throw Error("no cache folder for the built-in molecules: set LATENT_CACHE_DIR (or HOME)");
}

}  // namespace latent
