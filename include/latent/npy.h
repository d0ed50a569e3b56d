/// @brief NumPy .npy arrays: strict reader (u1, i4, i8, f4, f8; C order) and atomic writer.
#pragma once

#include <ATen/Tensor.h>

#include <string>

namespace latent {

/// Parses .npy bytes; `origin` names the source in errors. Returns a CPU tensor of the file's dtype.
at::Tensor npy_parse(const std::string& bytes, const std::string& origin);
at::Tensor npy_load(const std::string& path);

std::string npy_serialize(const at::Tensor& tensor);
/// Writes atomically. Float32, float64, uint8, int32 and int64 tensors.
void npy_save(const std::string& path, const at::Tensor& tensor);

}  // namespace latent
