#include <ATen/ATen.h>

#include <algorithm>
#include <set>
#include <unordered_set>

#include "latent/chem.h"
#include "latent/error.h"
#include "latent/molecule_eval.h"
#include "latent/progress.h"

namespace latent {

double molecule_property(const std::string& smiles, const std::string& property) {
  static const std::set<std::string> known = {"logp", "mw", "tpsa", "qed", "sa", "plogp"};
  if (!known.count(property))
    throw Error("RDKit scores logp, mw, tpsa, qed, sa and plogp; '" + property + "' is not one of them");
  const MoleculeProperties p = molecule_properties(smiles);
  if (property == "logp") return p.logp;
  if (property == "mw") return p.mw;
  if (property == "tpsa") return p.tpsa;
  if (property == "qed") return p.qed;
  if (property == "sa") return p.sa;
  return penalized_logp(p, smiles);
}

std::vector<OptimizeResult> optimize_molecules(SmilesVaeImpl& model, const std::vector<std::string>& seeds,
                                               const OptimizeOptions& o, bool progress) {
  const auto& names = model.property_names();
  const auto it = std::find(names.begin(), names.end(), o.property);
  if (it == names.end()) {
    std::string have;
    for (const auto& n : names) have += (have.empty() ? "" : ", ") + n;
    throw Error("the model's property head predicts " + (have.empty() ? std::string("nothing") : have) + ", not '" + o.property +
                "'");
  }
  (void)molecule_property("C", o.property);  // refuses a property RDKit cannot score, before any work
  if (seeds.empty()) throw Error("no seed molecules");
  if (o.steps < 1) throw Error("optimization needs at least one step");
  const int64_t k = it - names.begin();
  const double sign = o.minimize ? -1.0 : 1.0;
  model.eval();

  std::vector<OptimizeResult> out(seeds.size());
  std::vector<Fingerprint> seed_fps;
  std::vector<std::unordered_set<std::string>> seen(seeds.size());
  for (size_t i = 0; i < seeds.size(); ++i) {
    const std::optional<std::string> c = canonical_smiles(seeds[i]);
    if (!c) throw Error("seed " + std::to_string(i + 1) + " is not a valid molecule: '" + seeds[i] + "'");
    out[i].seed = *c;
    out[i].seed_value = molecule_property(*c, o.property);
    seed_fps.push_back(morgan_fingerprint(*c));
    seen[i].insert(*c);
  }
  std::vector<std::string> canonical_seeds;
  for (const auto& r : out) canonical_seeds.push_back(r.seed);
  at::Tensor z;
  {
    at::NoGradGuard no_grad;
    z = model.encode(model.tokens_of(canonical_seeds)).mu.detach();  // [S, d]
  }
  ProgressBar bar("optimize " + o.property, o.steps, "steps", progress);
  for (int64_t step = 1; step <= o.steps; ++step) {
    at::Tensor zg = z.clone().requires_grad_(true);
    const at::Tensor predicted = model.predict_properties(zg).select(1, k);  // [S]
    predicted.sum().backward();
    {
      at::NoGradGuard no_grad;
      // The gradient of the prediction in its own units, normalized per seed: steps of a fixed length.
      const at::Tensor g = zg.grad();
      const at::Tensor norm = g.norm(2, 1, true).clamp_min(1e-12);
      z = z + sign * o.step_size * g / norm;
    }
    const std::vector<std::string> decoded = model.decode_smiles(z);
    const at::Tensor now = predicted.detach();
    for (size_t i = 0; i < seeds.size(); ++i) {
      OptimizeResult& r = out[i];
      OptimizeStep s;
      s.step = step;
      s.predicted = now[static_cast<int64_t>(i)].item<double>();
      const std::optional<std::string> c = decoded[i].empty() ? std::nullopt : canonical_smiles(decoded[i]);
      if (c) {
        s.smiles = *c;
        s.valid = true;
        s.value = molecule_property(*c, o.property);
        s.similarity = tanimoto(morgan_fingerprint(*c), seed_fps[i]);
        if (seen[i].insert(*c).second) {
          ++r.candidates;
          const bool better = sign * (s.value - (r.best.empty() ? r.seed_value : r.best_value)) > 0;
          if (s.similarity >= o.similarity && better) {
            r.best = *c;
            r.best_value = s.value;
            r.best_similarity = s.similarity;
          }
        }
      } else {
        s.smiles = decoded[i];
      }
      r.path.push_back(s);
    }
    bar.update(step);
  }
  bar.finish();
  return out;
}

}  // namespace latent
