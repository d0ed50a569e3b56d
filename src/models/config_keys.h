// Reading a model config's keys: each check throws latent::Error naming the key and what it needs.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "latent/config.h"

namespace latent {

/// Caps on what a config may ask for, checked before anything is allocated (a checkpoint's config
/// comes from a file): sizes (latent, hidden, channels, codebook, code_dim) and list lengths.
constexpr int64_t kMaxConfigSize = 65536;
constexpr int64_t kMaxConfigLayers = 32;

/// Throws for the first key of j not in `allowed`.
void only_keys(const nlohmann::json& j, const std::set<std::string>& allowed, const std::string& type);
int64_t positive_int(const nlohmann::json& v, const std::string& key);
std::vector<int64_t> int_list(const nlohmann::json& v, const std::string& key);
std::string one_of(const nlohmann::json& v, const std::string& key, const std::set<std::string>& allowed);
double positive_number(const nlohmann::json& v, const std::string& key, bool allow_zero);
/// "activation" and "likelihood", where present.
void activation_and_likelihood(const nlohmann::json& j, ModelConfig& c);
/// "channels": required, at least one conv layer.
std::vector<int64_t> conv_channels(const nlohmann::json& j, const std::string& type);
const char* likelihood_name(Likelihood l);

}  // namespace latent
