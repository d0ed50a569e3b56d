#include "latent/image.h"

#include <ATen/ATen.h>

#include <cstdlib>
#include <memory>

#include "cpu/kernels.h"
#include "latent/atomic_file.h"
#include "latent/error.h"

#define STB_IMAGE_IMPLEMENTATION
#define STBI_FAILURE_USERMSG
#include <stb_image.h>
#define STB_IMAGE_WRITE_IMPLEMENTATION
#include <stb_image_write.h>
#define STB_IMAGE_RESIZE_IMPLEMENTATION
#include <stb_image_resize.h>

namespace latent {
namespace {

// stb_image (Debian's 2022 snapshot) trusts a JPEG's Huffman tables: a DHT segment whose 16 code
// counts add up to more than 256 writes past the table's 257-entry arrays (found by fuzz_image
// under UBSan). Every DHT segment, before the first scan and between scans, is checked here
// first. Returns the first problem, or "" for a file stb may read (a non-JPEG is stb's to judge).
std::string jpeg_tables_problem(const std::string& bytes) {
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
  const size_t n = bytes.size();
  size_t i = 0;
  while (i < n && p[i] == 0xFF) ++i;  // stb, like the JPEG standard, skips fill bytes before a marker
  if (i == 0 || i >= n || p[i] != 0xD8) return "";
  ++i;
  while (i + 1 < n) {
    if (p[i] != 0xFF) {  // entropy-coded data of a scan: on to the next marker
      ++i;
      continue;
    }
    const unsigned char m = p[i + 1];
    if (m == 0xFF || m == 0x00 || (m >= 0xD0 && m <= 0xD7) || m == 0x01) {  // fill, stuffed byte, restart, TEM
      i += m == 0xFF ? 1 : 2;
      continue;
    }
    if (m == 0xD9) return "";  // end of image
    if (i + 4 > n) return "";
    const size_t length = (static_cast<size_t>(p[i + 2]) << 8) | p[i + 3];
    if (length < 2) return "a JPEG segment shorter than its own length field";
    const size_t end = std::min(n, i + 2 + length);
    if (m == 0xC4) {  // define Huffman tables: [class/id, 16 counts, symbols] ...
      for (size_t t = i + 4; t < end;) {
        size_t symbols = 0;  // stb reads bytes past the end of the file as zeros
        for (size_t k = 1; k <= 16; ++k) symbols += t + k < n ? p[t + k] : 0;
        if (symbols > 256) return "a JPEG Huffman table declares " + std::to_string(symbols) + " codes (at most 256)";
        t += 17 + symbols;
      }
    }
    i = end;
  }
  return "";
}

}  // namespace

at::Tensor image_decode(const std::string& bytes, const std::string& origin, int channels, int height, int width,
                        int64_t max_pixels) {
  if (channels != 0 && channels != 1 && channels != 3) throw Error("image channels must be 1 or 3");
  if (bytes.size() > static_cast<size_t>(INT32_MAX)) throw Error(origin + ": image file too large");
  if (const std::string problem = jpeg_tables_problem(bytes); !problem.empty())
    throw Error(origin + ": not a readable JPEG image (" + problem + ")");
  int w = 0, h = 0, stored = 0;
  if (!stbi_info_from_memory(reinterpret_cast<const stbi_uc*>(bytes.data()), static_cast<int>(bytes.size()), &w, &h, &stored))
    throw Error(origin + ": not a readable PNG, JPEG or BMP image (" + stbi_failure_reason() + ")");
  // stb's probe gives a top-down BMP's height as stored, negative; its decoder takes |height|.
  const int64_t true_w = std::llabs(static_cast<int64_t>(w)), true_h = std::llabs(static_cast<int64_t>(h));
  if (true_w * true_h > max_pixels)
    throw Error(origin + ": image of " + std::to_string(true_w) + "x" + std::to_string(true_h) + " is too large");
  const int want = channels != 0 ? channels : (stored >= 3 ? 3 : 1);
  std::unique_ptr<stbi_uc, void (*)(void*)> pixels(stbi_load_from_memory(reinterpret_cast<const stbi_uc*>(bytes.data()),
                                                                         static_cast<int>(bytes.size()), &w, &h, &stored, want),
                                                   stbi_image_free);
  if (!pixels) throw Error(origin + ": cannot decode image (" + stbi_failure_reason() + ")");
  if (w < 1 || h < 1)  // stb decodes a BMP of height 0 (found by fuzz_image); resizing it divided by zero
    throw Error(origin + ": image of " + std::to_string(w) + "x" + std::to_string(h) + " pixels holds no pixels");
  at::Tensor hwc = at::from_blob(pixels.get(), {h, w, want}, at::kByte).clone();
  if ((height > 0 && height != h) || (width > 0 && width != w)) {
    const int oh = height > 0 ? height : h, ow = width > 0 ? width : w;
    at::Tensor out = at::empty({oh, ow, want}, at::kByte);
    if (!stbir_resize_uint8(hwc.data_ptr<uint8_t>(), w, h, 0, out.data_ptr<uint8_t>(), ow, oh, 0, want))
      throw Error(origin + ": cannot resize image");
    hwc = out;
  }
  return hwc.permute({2, 0, 1}).to(at::kFloat).div_(255.0f).contiguous();
}

at::Tensor image_load(const std::string& path, int channels, int height, int width) {
  return image_decode(read_file(path), path, channels, height, width);
}

std::string png_encode(const at::Tensor& image) {
  if (image.dim() != 3 || (image.size(0) != 1 && image.size(0) != 3)) throw Error("png_encode expects [C, H, W] with C = 1 or 3");
  at::Tensor hwc =
      image.detach().to(at::kCPU, at::kFloat).clamp(0, 1).mul(255).round().to(at::kByte).permute({1, 2, 0}).contiguous();
  const int h = static_cast<int>(hwc.size(0)), w = static_cast<int>(hwc.size(1)), c = static_cast<int>(hwc.size(2));
  std::string out;
  auto sink = [](void* ctx, void* data, int size) { static_cast<std::string*>(ctx)->append(static_cast<char*>(data), size); };
  if (!stbi_write_png_to_func(sink, &out, w, h, c, hwc.data_ptr<uint8_t>(), w * c)) throw Error("cannot encode PNG");
  return out;
}

at::Tensor image_grid(const at::Tensor& images, int64_t columns, int64_t gap, float background) {
  if (images.dim() != 4) throw Error("image_grid expects [N, C, H, W]");
  const int64_t n = images.size(0), c = images.size(1), h = images.size(2), w = images.size(3);
  columns = std::max<int64_t>(1, std::min(columns, std::max<int64_t>(n, 1)));
  const int64_t rows = (n + columns - 1) / columns;
  at::Tensor grid = at::full({c, rows * h + (rows + 1) * gap, columns * w + (columns + 1) * gap}, background, at::kFloat);
  at::Tensor src = images.detach().to(at::kCPU, at::kFloat);
  for (int64_t i = 0; i < n; ++i) {
    const int64_t r = i / columns, col = i % columns;
    grid.narrow(1, gap + r * (h + gap), h).narrow(2, gap + col * (w + gap), w).copy_(src[i]);
  }
  return grid;
}

void png_save_grid(const std::string& path, const at::Tensor& images, int64_t columns) {
  atomic_write(path, png_encode(image_grid(images, columns)));
}

at::Tensor interleave_rows(const at::Tensor& top, const at::Tensor& bottom, int64_t columns) {
  std::vector<at::Tensor> rows;
  for (int64_t i = 0; i < top.size(0); i += columns) {
    const int64_t m = std::min(columns, top.size(0) - i);
    rows.push_back(top.narrow(0, i, m));
    rows.push_back(bottom.narrow(0, i, m));
  }
  return at::cat(rows);
}

void to_u8_pixels(const float* x, int64_t n, uint8_t* out) { cpu::kernels().to_u8(x, n, out); }

}  // namespace latent
