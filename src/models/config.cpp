// ModelConfig: the type's family (models/registry.h) reads and writes the rest of the keys.
#include "latent/config.h"

#include <filesystem>

#include "latent/atomic_file.h"
#include "latent/error.h"
#include "latent/json.h"
#include "models/registry.h"

namespace latent {

ModelConfig ModelConfig::from_json(const nlohmann::json& j) {
  if (!j.is_object()) throw Error("model config: expected a JSON object, got " + json_excerpt(j));
  std::string types;
  for (const Family& f : families()) types += (types.empty() ? "" : ", ") + f.type;
  if (!j.contains("type")) throw Error("model config: missing 'type' (" + types + ")");
  if (!j["type"].is_string()) throw Error("model config: 'type' must be one of " + types + ", got " + json_excerpt(j["type"]));
  ModelConfig c = family(j["type"].get<std::string>()).parse(j);
  c.type = j["type"].get<std::string>();
  return c;
}

ModelConfig ModelConfig::from_text_or_file(const std::string& text_or_path) {
  std::string text = text_or_path;
  std::string origin = "model config";
  std::error_code ec;
  const bool looks_inline = text.find('{') != std::string::npos;
  if (!looks_inline) {
    if (!std::filesystem::exists(text_or_path, ec)) throw Error("model config: no such file: " + text_or_path);
    text = read_file(text_or_path);
    origin = text_or_path;
  }
  return from_json(parse_json(text, origin));
}

nlohmann::json ModelConfig::to_json() const { return family(type).to_json(*this); }

}  // namespace latent
