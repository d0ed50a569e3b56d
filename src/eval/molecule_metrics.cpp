#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <cmath>
#include <unordered_set>

#include "latent/chem.h"
#include "latent/molecule_eval.h"

namespace latent {
namespace {

nlohmann::json mean_std(const std::vector<double>& v) {
  double mean = 0, sq = 0;
  for (double x : v) mean += x;
  mean /= static_cast<double>(std::max<size_t>(1, v.size()));
  for (double x : v) sq += (x - mean) * (x - mean);
  return {{"mean", mean}, {"std", std::sqrt(sq / static_cast<double>(std::max<size_t>(1, v.size())))}};
}

// logp, mw, qed, sa of each molecule, by property.
std::vector<std::vector<double>> property_table(const std::vector<std::string>& molecules) {
  std::vector<std::vector<double>> out(4);
  for (const auto& s : molecules) {
    const MoleculeProperties p = molecule_properties(s);
    out[0].push_back(p.logp);
    out[1].push_back(p.mw);
    out[2].push_back(p.qed);
    out[3].push_back(p.sa);
  }
  return out;
}

}  // namespace

std::vector<std::string> sample_molecules(SmilesVaeImpl& model, int64_t n, uint64_t seed, double temperature,
                                          double token_temperature, bool constrained) {
  at::NoGradGuard no_grad;
  model.eval();
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  const at::Tensor z = at::randn({n, model.latent_dim()}, gen, at::kFloat) * temperature;
  return model.decode_smiles(z, token_temperature, &gen, constrained);
}

double wasserstein_1d(std::vector<double> a, std::vector<double> b) {
  if (a.empty() || b.empty()) return 0;
  std::sort(a.begin(), a.end());
  std::sort(b.begin(), b.end());
  // The integral of |F_a - F_b| over the merged support.
  std::vector<double> all = a;
  all.insert(all.end(), b.begin(), b.end());
  std::sort(all.begin(), all.end());
  double w = 0;
  size_t ia = 0, ib = 0;
  for (size_t k = 0; k + 1 < all.size(); ++k) {
    while (ia < a.size() && a[ia] <= all[k]) ++ia;
    while (ib < b.size() && b[ib] <= all[k]) ++ib;
    const double fa = static_cast<double>(ia) / static_cast<double>(a.size());
    const double fb = static_cast<double>(ib) / static_cast<double>(b.size());
    w += std::abs(fa - fb) * (all[k + 1] - all[k]);
  }
  return w;
}

nlohmann::json generation_metrics(const std::vector<std::string>& samples, const std::vector<std::string>& train,
                                  const std::vector<std::string>& test) {
  std::vector<std::string> valid;  // canonical, in sample order
  for (const auto& s : samples) {
    if (s.empty()) continue;
    if (const auto c = canonical_smiles(s)) valid.push_back(*c);
  }
  std::vector<std::string> distinct;
  std::unordered_set<std::string> seen;
  for (const auto& v : valid)
    if (seen.insert(v).second) distinct.push_back(v);
  const std::unordered_set<std::string> in_train(train.begin(), train.end());
  int64_t novel = 0;
  for (const auto& v : distinct) novel += !in_train.count(v);

  const double n_valid = static_cast<double>(valid.size()), n_distinct = static_cast<double>(distinct.size());
  nlohmann::json out = {{"samples", samples.size()},
                        {"valid", valid.size()},
                        {"validity", samples.empty() ? 0.0 : n_valid / static_cast<double>(samples.size())},
                        {"uniqueness", valid.empty() ? 0.0 : n_distinct / n_valid},
                        {"novelty", distinct.empty() ? 0.0 : static_cast<double>(novel) / n_distinct}};
  if (valid.empty()) return out;

  std::vector<Fingerprint> fps;
  for (const auto& v : distinct) fps.push_back(morgan_fingerprint(v));
  double pair_sum = 0, pairs = 0;
  for (size_t i = 0; i < fps.size(); ++i)
    for (size_t j = i + 1; j < fps.size(); ++j) pair_sum += tanimoto(fps[i], fps[j]), pairs += 1;
  out["internal_diversity"] = pairs > 0 ? 1.0 - pair_sum / pairs : 0.0;

  std::vector<Fingerprint> test_fps;
  for (const auto& t : test) test_fps.push_back(morgan_fingerprint(t));
  double nn = 0;
  int64_t passing = 0;
  for (const auto& v : valid) {
    const Fingerprint fp = morgan_fingerprint(v);
    double best = 0;
    for (const auto& t : test_fps) best = std::max(best, tanimoto(fp, t));
    nn += best;
    passing += passes_structure_filters(v);
  }
  out["nn_similarity"] = test_fps.empty() ? 0.0 : nn / n_valid;
  out["filters"] = static_cast<double>(passing) / n_valid;

  const auto mine = property_table(distinct), theirs = property_table(test);
  const char* names[] = {"logp", "mw", "qed", "sa"};
  nlohmann::json props = nlohmann::json::object();
  for (int k = 0; k < 4; ++k)
    props[names[k]] = {
        {"samples", mean_std(mine[k])}, {"test", mean_std(theirs[k])}, {"wasserstein", wasserstein_1d(mine[k], theirs[k])}};
  out["properties"] = props;
  return out;
}

nlohmann::json reconstruction_metrics(SmilesVaeImpl& model, const Dataset& data, int64_t limit, uint64_t seed) {
  at::NoGradGuard no_grad;
  model.eval();
  const int64_t n = std::min(limit > 0 ? limit : data.size(), data.size());
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  int64_t greedy = 0, sampled = 0;
  for (int64_t first = 0; first < n; first += 500) {
    const int64_t b = std::min<int64_t>(500, n - first);
    const Posterior q = model.encode(data.x.narrow(0, first, b));
    const at::Tensor eps = at::randn(q.mu.sizes(), gen, at::kFloat);
    const auto from_mu = model.decode_smiles(q.mu);
    const auto from_z = model.decode_smiles(q.mu + at::exp(q.logvar / 2) * eps);
    for (int64_t i = 0; i < b; ++i) {
      const std::string& want = data.smiles.at(static_cast<size_t>(first + i));
      const auto a = canonical_smiles(from_mu[static_cast<size_t>(i)]);
      const auto c = canonical_smiles(from_z[static_cast<size_t>(i)]);
      greedy += a && *a == want;
      sampled += c && *c == want;
    }
  }
  const double count = static_cast<double>(std::max<int64_t>(1, n));
  return {{"molecules", n}, {"greedy", static_cast<double>(greedy) / count}, {"sampled", static_cast<double>(sampled) / count}};
}

}  // namespace latent
