#include "latent/checkpoint.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <set>

#include "latent/error.h"
#include "latent/json.h"

namespace latent {
namespace {

constexpr const char* kFormat = "latent.vae.v1";

bool is_model_tensor(const std::string& name) {
  return name.rfind("optimizer.", 0) != 0 && name.rfind("data.", 0) != 0 && name.rfind("anomaly.", 0) != 0;
}

// Values per example at most (a 4096 x 4096 RGB image is 50M): a checkpoint's metadata is checked
// against it before a model is built for it.
constexpr int64_t kMaxExampleSize = int64_t{1} << 26;

int64_t example_size(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n = d > 0 && n > kMaxExampleSize / d ? kMaxExampleSize + 1 : n * d;
  return n;
}

nlohmann::json parse_meta(const SafetensorsFile& file, const std::string& key, const std::string& origin) {
  auto it = file.metadata.find(key);
  if (it == file.metadata.end()) throw Error(origin + ": not a latent checkpoint (metadata has no '" + key + "')");
  return parse_json(it->second, origin + ": metadata '" + key + "'");
}

// read(json) for metadata `key`; any error names the file and the key (nlohmann's type errors
// included: a number where a string belongs).
template <class Read>
auto read_meta(const SafetensorsFile& file, const std::string& key, const std::string& origin, Read read) {
  const nlohmann::json j = parse_meta(file, key, origin);
  try {
    return read(j);
  } catch (const nlohmann::json::exception& e) {
    throw Error(origin + ": metadata '" + key + "' holds a value of the wrong type (" + text_excerpt(e.what(), 120) + ")");
  } catch (const Error& e) {
    throw Error(origin + ": metadata '" + key + "': " + e.what());
  }
}

}  // namespace

void checkpoint_save(const std::string& path, const CheckpointInfo& info, torch::nn::Module& model,
                     const SafetensorsFile* optimizer) {
  SafetensorsFile file;
  for (auto& [name, p] : named_state(model)) file.tensors.emplace_back(name, p.detach());
  if (info.data_mean.defined()) {
    file.tensors.emplace_back("data.mean", info.data_mean);
    file.tensors.emplace_back("data.std", info.data_std);
  }
  if (optimizer) {
    file.tensors.insert(file.tensors.end(), optimizer->tensors.begin(), optimizer->tensors.end());
    file.metadata.insert(optimizer->metadata.begin(), optimizer->metadata.end());
  }
  file.metadata["format"] = kFormat;
  file.metadata["model"] = info.model.to_json().dump();
  file.metadata["data_shape"] = nlohmann::json(info.data_shape).dump();
  file.metadata["data"] = info.data.to_json().dump();
  file.metadata["classes"] = nlohmann::json(info.classes).dump();
  file.metadata["train"] = info.train.dump();
  file.metadata["state"] = info.state.dump();
  file.metadata["metrics"] = info.metrics.dump();
  safetensors_save(path, file);
}

void load_parameters(torch::nn::Module& model, const SafetensorsFile& file, const std::string& origin) {
  std::vector<std::string> problems;
  std::set<std::string> known;
  at::NoGradGuard no_grad;
  for (auto& [name, p] : named_state(model)) {
    known.insert(name);
    at::Tensor t = file.find(name);
    if (!t.defined()) {
      problems.push_back("missing " + name);
    } else if (t.sizes() != p.sizes()) {
      problems.push_back(name + ": got " + shape_text(t.sizes().vec()) + ", expected " + shape_text(p.sizes().vec()));
    } else if (t.is_floating_point() && !at::isfinite(t).all().item<bool>()) {
      problems.push_back(name + " holds NaN or infinite values");
    } else {
      p.copy_(t.to(p.scalar_type()));
    }
  }
  for (const auto& [name, t] : file.tensors)
    if (is_model_tensor(name) && !known.count(name)) problems.push_back("unexpected " + name);
  if (!problems.empty()) {
    std::string msg = origin + ": the weights do not fit the model (" + std::to_string(problems.size()) + " problems): ";
    for (size_t i = 0; i < problems.size(); ++i) msg += (i ? "; " : "") + problems[i];
    throw Error(msg);
  }
}

LoadedCheckpoint checkpoint_load(const std::string& path) {
  LoadedCheckpoint out;
  out.file = safetensors_load(path);
  auto fmt = out.file.metadata.find("format");
  if (fmt == out.file.metadata.end() || fmt->second != kFormat)
    throw Error(path + ": not a latent checkpoint (metadata 'format' is not " + std::string(kFormat) + ")");
  CheckpointInfo& info = out.info;
  info.model = read_meta(out.file, "model", path, [](const nlohmann::json& j) { return ModelConfig::from_json(j); });
  const nlohmann::json shape = parse_meta(out.file, "data_shape", path);
  if (!shape.is_array()) throw Error(path + ": metadata 'data_shape' is not a list");
  for (const auto& d : shape) {
    if (!d.is_number_integer() || d.get<int64_t>() < 1 || d.get<int64_t>() > kMaxExampleSize)
      throw Error(path + ": metadata 'data_shape' holds a bad size");
    info.data_shape.push_back(d.get<int64_t>());
    if (shape.size() > 4 || example_size(info.data_shape) > kMaxExampleSize)
      throw Error(path + ": metadata 'data_shape' " + json_excerpt(shape) + " is not an example shape latent trains on");
  }
  info.data = read_meta(out.file, "data", path, [](const nlohmann::json& j) { return DataSpec::from_json(j); });
  const nlohmann::json classes = parse_meta(out.file, "classes", path);
  if (classes.is_array())
    for (const auto& c : classes)
      if (c.is_string()) info.classes.push_back(c.get<std::string>());
  info.train = parse_meta(out.file, "train", path);
  info.state = parse_meta(out.file, "state", path);
  info.metrics = parse_meta(out.file, "metrics", path);
  for (const char* key : {"train", "state"}) {
    const nlohmann::json& j = key[0] == 't' ? info.train : info.state;
    if (!j.is_object()) throw Error(path + ": metadata '" + key + "' is not an object");
    for (const auto& [name, v] : j.items())  // what the training loop reads: numbers, strings, booleans, lists of numbers
      if (v.is_object() || (v.is_array() && std::any_of(v.begin(), v.end(), [](const auto& e) { return !e.is_number(); })))
        throw Error(path + ": metadata '" + key + "' holds a bad value for '" + text_excerpt(name, 40) + "'");
  }
  if (!info.metrics.is_array()) throw Error(path + ": metadata 'metrics' is not a list");
  info.data_mean = out.file.find("data.mean");
  info.data_std = out.file.find("data.std");
  out.model = make_model(info.model, info.data_shape);
  load_parameters(*out.model, out.file, path);
  return out;
}

}  // namespace latent
