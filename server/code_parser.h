// A fast reader for the request the explorer sends most: {"z": [[x, ...], ...]}, a batch of codes.
//
// A general JSON parse builds a tree of heap nodes and reads numbers with strtod; for the 16 x 20
// numbers of a typical decode request that was a fifth of the server's time per request. This reads
// the one shape straight into floats and gives up on anything else.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

namespace latent::server {

/// Reads `body` when it is exactly a JSON object with the one member `key` holding a non-empty array
/// of at most `max_rows` arrays of `d` numbers, each finite and of magnitude at most `bound`. The
/// values go to `out` row by row, as float rounded from the nearest double (as the general JSON path
/// gives them). Returns false for anything else, valid JSON of another shape included: the caller
/// then takes the general path, which names what is wrong.
bool parse_code_rows(std::string_view body, std::string_view key, int64_t d, int64_t max_rows, double bound,
                     std::vector<float>& out);

}  // namespace latent::server
