// Small string helpers the loaders share.
#pragma once

#include <cctype>
#include <string>
#include <vector>

namespace latent {

inline std::string lowercase(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

inline bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

/// The fields of `s` between `separator`s (no quoting).
inline std::vector<std::string> split_text(const std::string& s, char separator) {
  std::vector<std::string> out(1);
  for (char c : s) {
    if (c == separator)
      out.emplace_back();
    else
      out.back() += c;
  }
  return out;
}

}  // namespace latent
