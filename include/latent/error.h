/// @brief The one exception type of latent.
///
/// Every error a user can cause (bad config, corrupt file, wrong shape) is thrown as
/// latent::Error with a message that says what, where and what was expected. The CLI prints it
/// as one line and exits non-zero; the server turns it into a 4xx with the same message.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace latent {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

/// "[1, 28, 28]": a shape as error messages write it.
inline std::string shape_text(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

}  // namespace latent
