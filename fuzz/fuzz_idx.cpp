// The IDX reader, raw and gzip-compressed (the first byte of the input picks which).
#include "fuzz_util.h"
#include "latent/data.h"
#include "latent/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const std::string path = latent::fuzz::as_file(data + 1, size - 1, data[0] & 1 ? ".idx.gz" : ".idx");
  try {
    latent::idx_load(path);
  } catch (const latent::Error&) {
  }
  return 0;
}
