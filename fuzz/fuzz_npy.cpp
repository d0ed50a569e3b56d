// The NPY reader: magic, version, header dict (descr, fortran_order, shape), data length.
#include <string>

#include "latent/error.h"
#include "latent/npy.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    latent::npy_parse(std::string(reinterpret_cast<const char*>(data), size), "fuzz");
  } catch (const latent::Error&) {
  }
  return 0;
}
