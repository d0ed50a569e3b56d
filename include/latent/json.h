/// @brief JSON from untrusted places (configs, checkpoint metadata, weight headers, request bodies):
/// parsed with a bounded nesting depth, and quoted in messages without ever throwing.
#pragma once

#include <cstddef>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

namespace latent {

/// Nesting deeper than this is refused before parsing: nothing latent reads nests past a few levels,
/// and nlohmann's dump and destructor recurse once per level (70,000 levels overflowed the stack).
constexpr int kMaxJsonDepth = 64;

/// Parses `text`; throws latent::Error "<origin>: invalid JSON (...)" for malformed text and
/// "<origin>: JSON nested deeper than 64 levels" before building anything that deep.
nlohmann::json parse_json(std::string_view text, const std::string& origin);

/// `v` as JSON text for a message: invalid UTF-8 replaced, at most `max_chars` characters
/// (longer text ends in "..."). Never throws.
std::string json_excerpt(const nlohmann::json& v, size_t max_chars = 80);

/// `text` for a message: at most `max_chars` characters, invalid UTF-8 and control characters
/// replaced (so a reply that quotes it is valid JSON). Never throws.
std::string text_excerpt(std::string_view text, size_t max_chars = 80);

}  // namespace latent
