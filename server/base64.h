// Base64 (RFC 4648, standard alphabet, padded): images travel inside the explorer's JSON this way.
#pragma once

#include <string>

namespace latent::server {

std::string base64_encode(const std::string& bytes);

/// Throws latent::Error naming `what` when `text` is not valid padded base64. A "data:...;base64,"
/// prefix (as browsers write data URLs) is accepted and skipped.
std::string base64_decode(const std::string& text, const std::string& what);

}  // namespace latent::server
