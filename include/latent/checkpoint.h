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

#include "latent/adam.h"
#include "latent/config.h"
#include "latent/data.h"
#include "latent/model.h"
#include "latent/safetensors.h"
#include "latent/vq_vae.h"

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
void checkpoint_save(const std::string& path, const CheckpointInfo& info, torch::nn::Module& model, const Adam* adam);

struct LoadedCheckpoint {
  CheckpointInfo info;
  Vae model;             // mlp_vae and conv_vae (null for vq_vae)
  VqVae vq;              // vq_vae (null otherwise)
  SafetensorsFile file;  // for optimizer state
};

/// Throws latent::Error saying that `what` applies to VAEs, when the checkpoint holds a vq_vae.
void require_vae(const LoadedCheckpoint& ck, const std::string& what);

/// Reads a checkpoint and builds its model. Every missing, unexpected or wrongly shaped
/// parameter is listed in one error.
LoadedCheckpoint checkpoint_load(const std::string& path);

/// Copies `file`'s tensors into the model's parameters and buffers by name (strict, lists every problem).
void load_parameters(torch::nn::Module& model, const SafetensorsFile& file, const std::string& origin);

/// The model's parameters by state-dict name, in registration order.
std::vector<std::pair<std::string, at::Tensor>> named_parameters(torch::nn::Module& model);
/// Its parameters, then its buffers (the state a checkpoint holds).
std::vector<std::pair<std::string, at::Tensor>> named_state(torch::nn::Module& model);

}  // namespace latent
