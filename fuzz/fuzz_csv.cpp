// The CSV reader: header detection, field counts, numbers.
#include "fuzz_util.h"
#include "latent/data.h"
#include "latent/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = latent::fuzz::as_file(data, size, ".csv");
  try {
    latent::csv_load(path);
  } catch (const latent::Error&) {
  }
  return 0;
}
