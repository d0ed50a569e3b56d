// A latent checkpoint: safetensors plus __metadata__ (format, model config, data shape, data spec,
// classes, training options, state, metrics), the model it describes, and strict weight loading.
#include "fuzz_util.h"
#include "latent/checkpoint.h"
#include "latent/error.h"
#include "latent/train.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = latent::fuzz::as_file(data, size, ".safetensors");
  try {
    const latent::LoadedCheckpoint ck = latent::checkpoint_load(path);
    (void)latent::TrainOptions::from_json(ck.info.train);
  } catch (const latent::Error&) {
  }
  return 0;
}
