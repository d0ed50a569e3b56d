/// @brief Atomic file writes: temp file in the same folder, fsync, rename, fsync of the folder.
///
/// A crash or a full disk at any point leaves either the old file or the complete new one,
/// never a half-written file under the final name.
#pragma once

#include <string>
#include <string_view>

namespace latent {

/// Writes `bytes` to `path` atomically; creates missing parent folders. Throws latent::Error.
void atomic_write(const std::string& path, std::string_view bytes);

/// Reads a whole file; throws latent::Error naming the file when it cannot.
std::string read_file(const std::string& path);

}  // namespace latent
