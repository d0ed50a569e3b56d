/// @brief Checkpoints: a model, its optimizer state and everything needed to use or resume it,
/// in one safetensors file.
///
/// Tensors: the model's parameters and buffers under their state-dict names, "optimizer.*" (Adam state),
/// "anomaly.calibration" (normal data's scores, after latent calibrate; metadata "anomaly") and,
/// for standardized data, "data.mean" / "data.std". __metadata__ (all strings, JSON where
/// structured): format, model (config), data_shape, data (the DataSpec), classes, train
/// (TrainOptions), state (epoch / step counters and partial-epoch sums), metrics (per epoch).
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

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

/// Writes atomically. `optimizer` (Adam::save_state's tensors and metadata) may be null.
void checkpoint_save(const std::string& path, const CheckpointInfo& info, torch::nn::Module& model,
                     const SafetensorsFile* optimizer = nullptr);

struct LoadedCheckpoint {
  CheckpointInfo info;
  Model model;           // built by its config's type (model.h); ask it what it supports
  SafetensorsFile file;  // for optimizer state

  /// The model as a VAE, or latent::Error saying that `what` applies to VAEs only.
  VaeImpl& vae(const std::string& what) const { return require_gaussian_latent(*model, what); }
};

/// Reads a checkpoint and builds its model. Every missing, unexpected or wrongly shaped
/// parameter is listed in one error.
LoadedCheckpoint checkpoint_load(const std::string& path);

/// Copies `file`'s tensors into the model's parameters and buffers by name (strict, lists every problem).
void load_parameters(torch::nn::Module& model, const SafetensorsFile& file, const std::string& origin);

}  // namespace latent
