/// @brief The one exception type of latent.
///
/// Every error a user can cause (bad config, corrupt file, wrong shape) is thrown as
/// latent::Error with a message that says what, where and what was expected. The CLI prints it
/// as one line and exits non-zero; the server turns it into a 4xx with the same message.
#pragma once

#include <stdexcept>
#include <string>

namespace latent {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

}  // namespace latent
