/// @brief Image files: decoding (PNG/JPEG/BMP via stb), resizing, and PNG grids of tensors.
///
/// Images inside latent are float tensors in [0, 1], shape [C, H, W] (C = 1 or 3).
#pragma once

#include <ATen/Tensor.h>

#include <cstdint>
#include <string>

namespace latent {

/// Decodes an image file. channels: 1 (grayscale), 3 (RGB) or 0 (as stored: 1 or 3).
/// height/width > 0 resize to that size. Returns float [C, H, W] in [0, 1].
at::Tensor image_load(const std::string& path, int channels = 0, int height = 0, int width = 0);
/// `max_pixels` bounds the stored size (width * height) before anything is decoded (default 2^26,
/// 8192 x 8192: 200 MB of 8-bit RGB).
at::Tensor image_decode(const std::string& bytes, const std::string& origin, int channels = 0, int height = 0, int width = 0,
                        int64_t max_pixels = int64_t{1} << 26);

/// Encodes float [C, H, W] in [0, 1] (values are clamped) as PNG bytes.
std::string png_encode(const at::Tensor& image);

/// Tiles images [N, C, H, W] into a grid of `columns` with a 2-pixel gap and writes a PNG atomically.
void png_save_grid(const std::string& path, const at::Tensor& images, int64_t columns);

/// Rows of `columns` images, each row of `top` [N, C, H, W] above the same images of `bottom` (inputs
/// above their reconstructions), for png_save_grid with `columns`.
at::Tensor interleave_rows(const at::Tensor& top, const at::Tensor& bottom, int64_t columns);

/// 8-bit pixels of n values in [0, 1]: round(255 x), clamped (NaN gives 0). The CPU's fastest kernel.
void to_u8_pixels(const float* x, int64_t n, uint8_t* out);

/// The grid itself, [C, H', W'], for callers that compose further.
at::Tensor image_grid(const at::Tensor& images, int64_t columns, int64_t gap = 2, float background = 1.0f);

}  // namespace latent
