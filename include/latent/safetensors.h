/// @brief Strict reader and writer of the safetensors format.
///
/// Layout: 8-byte little-endian header length N, N bytes of JSON header
/// ({name: {dtype, shape, data_offsets}, "__metadata__": {string: string}}), then the data buffer.
/// The reader checks every bound: header length against the file, offsets against the buffer,
/// byte counts against dtype x shape, overlaps and holes. Supported dtypes: F32, F16, BF16, F64,
/// I64, I32, I16, I8, U8, BOOL. Tensors come back on the CPU in their stored dtype.
#pragma once

#include <ATen/Tensor.h>

#include <map>
#include <string>
#include <utility>
#include <vector>

namespace latent {

struct SafetensorsFile {
  std::vector<std::pair<std::string, at::Tensor>> tensors;  ///< in file order
  std::map<std::string, std::string> metadata;

  /// The tensor called `name`, or an undefined tensor.
  at::Tensor find(const std::string& name) const;
};

/// Serializes to the safetensors byte layout (tensors are copied to contiguous CPU memory).
std::string safetensors_serialize(const SafetensorsFile& file);

/// Parses bytes; `origin` names the source in error messages.
SafetensorsFile safetensors_parse(const std::string& bytes, const std::string& origin);

/// Writes atomically (temp file, fsync, rename).
void safetensors_save(const std::string& path, const SafetensorsFile& file);

SafetensorsFile safetensors_load(const std::string& path);

/// Like safetensors_load, but the tensors are read-only views of the file mapped into memory: nothing
/// is read until used, so taking a few tensors of a large file (the VAE of a whole Stable Diffusion
/// checkpoint) costs only their bytes. The file must not change while its tensors live.
SafetensorsFile safetensors_map(const std::string& path);

/// For a tensor from safetensors_map: lets the kernel drop the memory pages holding its bytes (they
/// are read from the file again when touched), after a copy in another layout has been made. Returns
/// false, doing nothing, for any other tensor.
bool safetensors_drop_pages(const at::Tensor& t);

}  // namespace latent
