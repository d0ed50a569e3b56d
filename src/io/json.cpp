#include "latent/json.h"

#include "latent/error.h"

namespace latent {
namespace {

// The deepest nesting of arrays and objects in `text`, counted without recursion (strings skipped).
// Stops counting at `limit` + 1.
int nesting_depth(std::string_view text, int limit) {
  int depth = 0, deepest = 0;
  bool in_string = false, escaped = false;
  for (char c : text) {
    if (in_string) {
      if (escaped)
        escaped = false;
      else if (c == '\\')
        escaped = true;
      else if (c == '"')
        in_string = false;
      continue;
    }
    if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > deepest && (deepest = depth) > limit) return deepest;
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return deepest;
}

}  // namespace

nlohmann::json parse_json(std::string_view text, const std::string& origin) {
  if (nesting_depth(text, kMaxJsonDepth) > kMaxJsonDepth)
    throw Error(origin + ": JSON nested deeper than " + std::to_string(kMaxJsonDepth) + " levels");
  try {
    return nlohmann::json::parse(text.begin(), text.end());
  } catch (const nlohmann::json::exception& e) {
    std::string what = e.what();  // "[json.exception.parse_error.101] parse error at line 1, ...: ..."
    const size_t bracket = what.find("] ");
    throw Error(origin + ": invalid JSON (" + text_excerpt(bracket == std::string::npos ? what : what.substr(bracket + 2), 200) +
                ")");
  }
}

std::string text_excerpt(std::string_view text, size_t max_chars) {
  std::string out;
  size_t chars = 0, i = 0;
  while (i < text.size() && chars < max_chars) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    size_t len = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xe ? 3 : (c >> 3) == 0x1e ? 4 : 0;
    bool valid = len > 0 && i + len <= text.size();
    for (size_t k = 1; valid && k < len; ++k) valid = (static_cast<unsigned char>(text[i + k]) & 0xc0) == 0x80;
    if (!valid) {
      out += "\xef\xbf\xbd";  // U+FFFD
      ++i;
    } else if (len == 1 && (c < 0x20 || c == 0x7f)) {
      out += ' ';
      ++i;
    } else {
      out.append(text.substr(i, len));
      i += len;
    }
    ++chars;
  }
  if (i < text.size()) out += "...";
  return out;
}

std::string json_excerpt(const nlohmann::json& v, size_t max_chars) {
  try {
    return text_excerpt(v.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace), max_chars);
  } catch (...) {
    return "(unprintable JSON)";
  }
}

}  // namespace latent
