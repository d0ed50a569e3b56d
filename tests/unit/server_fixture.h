// What both server suites serve: 40 random 8x8 gray images (a quarter of them the test split) and
// an mlp_vae with 3 latents, written into `dir` as model.safetensors. Returns the model.
#pragma once

#include <ATen/ATen.h>

#include <nlohmann/json.hpp>

#include "latent/checkpoint.h"
#include "latent/npy.h"
#include "test_util.h"

namespace latent::test {

inline Vae write_tiny_image_checkpoint(const TempDir& dir) {
  at::manual_seed(3);
  npy_save(dir / "images.npy", at::randint(0, 256, {40, 1, 8, 8}, at::kByte));
  CheckpointInfo info;
  info.model = ModelConfig::from_text_or_file(R"({"type": "mlp_vae", "hidden": [16], "latent": 3, "likelihood": "bernoulli"})");
  info.data_shape = {1, 8, 8};
  info.data.source = dir / "images.npy";
  info.data.test_fraction = 0.25;
  info.metrics = nlohmann::json::array({{{"epoch", 1}, {"test_elbo", -40.0}}});
  Vae model = make_vae(info.model, info.data_shape);
  checkpoint_save(dir / "model.safetensors", info, *model);
  return model;
}

}  // namespace latent::test
