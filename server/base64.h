// Base64 (RFC 4648, standard alphabet, padded): images travel inside the explorer's JSON this way.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace latent::server {

std::string base64_encode(const std::string& bytes);
void base64_append(const uint8_t* bytes, size_t n, std::string& out);  // encodes onto the end of out

/// Throws latent::Error naming `what` when `text` is not valid padded base64. A "data:...;base64,"
/// prefix (as browsers write data URLs) is accepted and skipped.
std::string base64_decode(const std::string& text, const std::string& what);

}  // namespace latent::server
