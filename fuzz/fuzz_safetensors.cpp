// The safetensors reader: header length, JSON header (dtypes, shapes, offsets), tensor bytes.
#include <string>

#include "latent/error.h"
#include "latent/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const latent::SafetensorsFile f = latent::safetensors_parse(std::string(reinterpret_cast<const char*>(data), size), "fuzz");
    // A file that parsed must serialize and parse back to the same tensors.
    const latent::SafetensorsFile g = latent::safetensors_parse(latent::safetensors_serialize(f), "again");
    if (g.tensors.size() != f.tensors.size()) __builtin_trap();
  } catch (const latent::Error&) {
  }
  return 0;
}
