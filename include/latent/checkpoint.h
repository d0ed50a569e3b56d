/// @brief Checkpoints: a model, its optimizer state and everything needed to use or resume it,
/// in one safetensors file.
///
/// Tensors: the model's parameters under their state-dict names, "optimizer.*" (Adam state) and,
/// for standardized data, "data.mean" / "data.std". __metadata__ (all strings, JSON where
/// structured): format, model (config), data_shape, data (the DataSpec), classes, train
/// (TrainOptions), state (epoch / step counters and partial-epoch sums), metrics (per epoch).
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "latent/adam.h"
#include "latent/config.h"
#include "latent/data.h"
#include "latent/model.h"
#include "latent/safetensors.h"

namespace latent {

struct CheckpointInfo {
  ModelConfig model;
  std::vector<int64_t> data_shape;
  DataSpec data;
  std::vector<std::string> classes;
  nlohmann::json train = nlohmann::json::object();
  nlohmann::json state = nlohmann::json::object();
  nlohmann::json metrics = nlohmann::json::array();
  at::Tensor data_mean, data_std;  // undefined unless the data was standardized
};

/// Writes atomically. `adam` may be null (no optimizer state).
void checkpoint_save(const std::string& path, const CheckpointInfo& info, VaeImpl& model, const Adam* adam);

struct LoadedCheckpoint {
  CheckpointInfo info;
  Vae model;
  SafetensorsFile file;  // for optimizer state
};

/// Reads a checkpoint and builds its model. Every missing, unexpected or wrongly shaped
/// parameter is listed in one error.
LoadedCheckpoint checkpoint_load(const std::string& path);

/// Copies `file`'s tensors into the model's parameters by name (strict, lists every problem).
void load_parameters(VaeImpl& model, const SafetensorsFile& file, const std::string& origin);

/// The model's parameters by state-dict name, in registration order.
std::vector<std::pair<std::string, at::Tensor>> named_parameters(VaeImpl& model);

}  // namespace latent
