// The SD weight loader: layout detection (diffusers, LDM, legacy attention names, TAESD, prefixes),
// the architecture inferred from tensor shapes, and the module tree's strict check of every tensor.
#include "fuzz_util.h"
#include "latent/error.h"
#include "latent/sd_vae.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = latent::fuzz::as_file(data, size, ".safetensors");
  latent::SdLoadOptions options;
  options.fast = false;  // the reference operations: nothing is laid out or compiled
  try {
    latent::SdAutoencoder::load(path, options);
  } catch (const latent::Error&) {
  }
  return 0;
}
