// Image decoding through latent's loader (stb: PNG, JPEG, BMP, ...), with a pixel cap, and resizing.
#include <string>

#include "latent/error.h"
#include "latent/image.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  try {
    latent::image_decode(bytes, "fuzz", 0, 0, 0, int64_t{1} << 22);
    latent::image_decode(bytes, "fuzz", 1, 28, 28, int64_t{1} << 22);
  } catch (const latent::Error&) {
  }
  return 0;
}
