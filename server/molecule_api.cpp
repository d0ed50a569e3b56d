#include "molecule_api.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>

#include "api_fields.h"
#include "explorer_api.h"
#include "latent/checkpoint_data.h"
#include "latent/chem.h"
#include "latent/error.h"
#include "latent/json.h"
#include "latent/molecule_eval.h"

namespace latent::server {

using nlohmann::json;

MoleculeApi::MoleculeApi(LoadedCheckpoint checkpoint, std::string checkpoint_path)
    : ck_(std::move(checkpoint)),
      model_(&require_smiles_vae(*ck_.model, checkpoint_path + ": the Molecules view")),
      path_(std::move(checkpoint_path)) {
  if (model_->latent_dim() < 2) throw Error(path_ + ": the explorer needs a latent space of at least 2 dimensions");
  model_->eval();
  const Dataset test = checkpoint_data(ck_, "", "test", 0);
  smiles_ = test.smiles;
  properties_ = test.properties;
  at::NoGradGuard no_grad;
  std::vector<at::Tensor> mus;
  for (int64_t i = 0; i < test.size(); i += 500)
    mus.push_back(model_->encode(test.x.narrow(0, i, std::min<int64_t>(500, test.size() - i))).mu);
  mu_ = at::cat(mus);
  mean_ = mu_.mean(0);
  axes_ = principal_plane(mu_).axes;
}

json MoleculeApi::info() const {
  json last = ck_.info.metrics.empty() ? json() : ck_.info.metrics.back();
  return {{"kind", "molecules"},
          {"file", path_},
          {"model", ck_.info.model.to_json()},
          {"latent", model_->latent_dim()},
          {"properties", model_->property_names()},
          {"test_size", smiles_.size()},
          {"epochs", ck_.info.metrics.size()},
          {"last_epoch", last},
          {"max_samples", kMaxSamples},
          {"max_walk", kMaxWalk},
          {"max_steps", kMaxSteps},
          {"rdkit", chem_rdkit_version()}};
}

json MoleculeApi::point_json(const at::Tensor& z) const {
  const at::Tensor p = axes_.mv(z - mean_);
  return vector_json(p);
}

json MoleculeApi::molecule_json(const std::string& smiles) const {
  const std::optional<std::string> c = smiles.empty() ? std::nullopt : canonical_smiles(smiles);
  json j = {{"smiles", c ? *c : smiles}, {"valid", c.has_value()}};
  if (!c) return j;
  j["svg"] = molecule_svg(*c, 220, 170);
  const MoleculeProperties p = molecule_properties(*c);  // once: QED and SA are the costly ones
  json props = {{"logp", p.logp}, {"mw", p.mw}, {"tpsa", p.tpsa}, {"qed", p.qed}, {"sa", p.sa}};
  props["plogp"] = penalized_logp(p, *c);
  j["properties"] = props;
  return j;
}

std::string MoleculeApi::canonical(const json& body, const std::string& key) const {
  const json& v = field(body, key);
  if (!v.is_string()) throw ApiError(400, "'" + key + "' must be a SMILES string");
  const std::string text = v.get<std::string>();
  if (text.empty() || text.size() > 500) throw ApiError(400, "'" + key + "' must be a SMILES of 1 to 500 characters");
  const std::optional<std::string> c = canonical_smiles(text);
  if (!c) throw ApiError(400, "'" + text_excerpt(text, 60) + "' is not a molecule RDKit can read");
  return *c;
}

at::Tensor MoleculeApi::encode_one(const std::string& smiles) const {
  try {
    return model_->encode(model_->tokens_of({smiles})).mu[0];
  } catch (const Error& e) {
    throw ApiError(400, e.what());
  }
}

json MoleculeApi::plane(const std::string& property, int64_t limit) const {
  const auto& names = model_->property_names();
  const auto it = std::find(names.begin(), names.end(), property);
  if (it == names.end() || !properties_.defined())
    throw ApiError(
        400, "'property' must be one the model knows (" + json(names).dump() + "), got '" + text_excerpt(property, 40) + "'");
  const int64_t k = it - names.begin(), n = std::min<int64_t>(std::max<int64_t>(1, limit), mu_.size(0));
  const at::Tensor points = (mu_.narrow(0, 0, n) - mean_).mm(axes_.t());  // [n, 2]
  json out = json::array();
  const at::Tensor values = properties_.select(1, k);
  for (int64_t i = 0; i < n; ++i)
    out.push_back({std::round(points[i][0].item<double>() * 1e4) / 1e4, std::round(points[i][1].item<double>() * 1e4) / 1e4,
                   std::round(values[i].item<double>() * 1e4) / 1e4});
  return {{"property", property}, {"points", out}, {"smiles", std::vector<std::string>(smiles_.begin(), smiles_.begin() + n)}};
}

json MoleculeApi::encode(const json& body) const {
  const std::string smiles = canonical(body, "smiles");
  std::lock_guard<std::mutex> lock(mutex_);
  at::NoGradGuard no_grad;
  const at::Tensor mu = encode_one(smiles);
  json out = molecule_json(smiles);
  out["mu"] = vector_json(mu);
  out["point"] = point_json(mu);
  out["decoded"] = molecule_json(model_->decode_smiles(mu.unsqueeze(0))[0]);
  if (!model_->property_names().empty()) out["predicted"] = vector_json(model_->predict_properties(mu.unsqueeze(0))[0]);
  return out;
}

json MoleculeApi::decode(const json& body) const {
  const int64_t d = model_->latent_dim();
  at::Tensor z;
  if (body.is_object() && body.contains("z")) {
    z = at::empty({d}, at::kFloat);
    code_json(body["z"], "'z'", d, z.data_ptr<float>());
  } else {
    const double x = number_field(body, "x", 0, -kMaxCode, kMaxCode), y = number_field(body, "y", 0, -kMaxCode, kMaxCode);
    z = mean_ + axes_[0] * x + axes_[1] * y;
  }
  std::lock_guard<std::mutex> lock(mutex_);
  at::NoGradGuard no_grad;
  json out = molecule_json(model_->decode_smiles(z.unsqueeze(0))[0]);
  out["point"] = point_json(z);
  return out;
}

json MoleculeApi::sample(const json& body) const {
  const int64_t n = integer_field(body, "n", 8, 1, kMaxSamples);
  const int64_t seed = integer_field(body, "seed", 0, 0, int64_t{1} << 53);
  std::lock_guard<std::mutex> lock(mutex_);
  at::NoGradGuard no_grad;
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(static_cast<uint64_t>(seed));
  const at::Tensor z = at::randn({n, model_->latent_dim()}, gen, at::kFloat);
  const auto decoded = model_->decode_smiles(z);
  json out = json::array();
  for (int64_t i = 0; i < n; ++i) {
    json m = molecule_json(decoded[static_cast<size_t>(i)]);
    m["point"] = point_json(z[i]);
    out.push_back(m);
  }
  return {{"samples", out}};
}

json MoleculeApi::walk(const json& body) const {
  const std::string from = canonical(body, "from"), to = canonical(body, "to");
  const int64_t steps = integer_field(body, "steps", 8, 2, kMaxWalk);
  std::lock_guard<std::mutex> lock(mutex_);
  at::NoGradGuard no_grad;
  const at::Tensor a = encode_one(from), b = encode_one(to);
  const at::Tensor t = at::linspace(0, 1, steps, at::kFloat).unsqueeze(1);  // [S, 1]
  const at::Tensor z = a.unsqueeze(0) * (1 - t) + b.unsqueeze(0) * t;       // [S, d]
  const auto decoded = model_->decode_smiles(z);
  json out = json::array();
  for (int64_t i = 0; i < steps; ++i) {
    json m = molecule_json(decoded[static_cast<size_t>(i)]);
    m["t"] = std::round(t[i][0].item<double>() * 1e4) / 1e4;
    m["point"] = point_json(z[i]);
    out.push_back(m);
  }
  return {{"from", from}, {"to", to}, {"steps", out}};
}

json MoleculeApi::optimize(const json& body) const {
  const std::string smiles = canonical(body, "smiles");
  OptimizeOptions o;
  o.property = string_field(body, "property", "qed");
  const auto& names = model_->property_names();
  if (std::find(names.begin(), names.end(), o.property) == names.end())
    throw ApiError(400, "'property' must be one the model's head predicts (" + json(names).dump() + ")");
  o.minimize = body.value("minimize", false);
  o.steps = integer_field(body, "steps", 30, 1, kMaxSteps);
  o.similarity = number_field(body, "similarity", 0.4, -1e-9, 1.0);
  o.step_size = number_field(body, "step_size", 0.1, 0.0, 10.0);
  std::lock_guard<std::mutex> lock(mutex_);
  OptimizeResult r;
  try {
    r = optimize_molecules(*model_, {smiles}, o).at(0);
  } catch (const Error& e) {
    throw ApiError(400, e.what());
  }
  json path = json::array();
  for (const auto& s : r.path) {
    json m = {{"step", s.step}, {"smiles", s.smiles}, {"valid", s.valid}, {"predicted", std::round(s.predicted * 1e4) / 1e4}};
    if (s.valid) {
      m["value"] = s.value;
      m["similarity"] = s.similarity;
      m["svg"] = molecule_svg(s.smiles, 160, 120);
    }
    path.push_back(m);
  }
  json out = {{"property", o.property},
              {"seed", molecule_json(r.seed)},
              {"seed_value", r.seed_value},
              {"path", path},
              {"candidates", r.candidates}};
  if (r.improved()) {
    out["best"] = molecule_json(r.best);
    out["best_value"] = r.best_value;
    out["best_similarity"] = r.best_similarity;
  }
  return out;
}

}  // namespace latent::server
