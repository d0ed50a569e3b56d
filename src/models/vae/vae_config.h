// The config keys the VAE families share (latent/config.h): conv_vae adds "channels".
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "latent/config.h"

namespace latent {

ModelConfig parse_vae_config(const nlohmann::json& j, const std::string& type, bool conv);
nlohmann::json vae_config_json(const ModelConfig& c, bool conv);

}  // namespace latent
