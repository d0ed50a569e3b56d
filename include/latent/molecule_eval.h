/// @brief Honest numbers for a molecule generator: the metrics of MOSES (Polykovskiy et al. 2020)
/// and the SMILES VAE's reconstruction, on RDKit.
///
/// Every molecule is compared in latent's canonical form (include/latent/chem.h). Fingerprints are
/// 2048-bit Morgan, radius 2.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "latent/data.h"
#include "latent/smiles_vae.h"

namespace latent {

/// n SMILES decoded from z ~ N(0, temperature^2 I): the most likely token at each step when
/// `token_temperature` is 0, else drawn at that temperature; `constrained` decodes with the syntax
/// and valence mask (SmilesVaeImpl::generate). Seeded: the same seed gives the same
/// molecules.
std::vector<std::string> sample_molecules(SmilesVaeImpl& model, int64_t n, uint64_t seed, double temperature = 1.0,
                                          double token_temperature = 0.0, bool constrained = false);

/// Metrics of generated SMILES `samples` against the training and test molecules (canonical):
///   samples, valid (count), validity            share RDKit reads as a molecule
///   uniqueness                                  distinct valid molecules / valid ones (among all samples given)
///   novelty                                     distinct valid molecules not in `train` / distinct valid ones
///   internal_diversity                          1 - mean Tanimoto over pairs of distinct valid molecules
///   nn_similarity                               mean over valid samples of the highest Tanimoto to a `test` molecule
///   filters                                     share of valid samples passing PAINS and Brenk (RDKit FilterCatalog)
///   properties: {logp, mw, qed, sa: {samples: {mean, std}, test: {mean, std}, wasserstein}}
///                                               distributions of distinct valid samples against the test set's
/// Throws latent::Error without RDKit.
nlohmann::json generation_metrics(const std::vector<std::string>& samples, const std::vector<std::string>& train,
                                  const std::vector<std::string>& test);

/// The share of `data`'s molecules (up to `limit`) decoded back to themselves: "greedy" from z = mu,
/// "sampled" from one z ~ q(z | x) (both with the most likely tokens).
nlohmann::json reconstruction_metrics(SmilesVaeImpl& model, const Dataset& data, int64_t limit, uint64_t seed);

/// The value of a property RDKit computes: logp, mw, tpsa, qed, sa or plogp (penalized logP);
/// throws latent::Error for another name or an invalid SMILES.
double molecule_property(const std::string& smiles, const std::string& property);

/// Property optimization in latent space (Gomez-Bombarelli et al. 2018; the protocol of JT-VAE's
/// constrained optimization): from each seed's mu, `steps` steps of gradient ascent (descent with
/// `minimize`) on the property head's standardized prediction; after every step z is decoded
/// (greedy), and each distinct valid molecule is scored with RDKit's real property and its Tanimoto
/// similarity to the seed. The best is the highest-scoring (lowest with `minimize`) molecule other
/// than the seed with similarity >= `similarity`.
struct OptimizeOptions {
  std::string property = "qed";
  bool minimize = false;
  int64_t steps = 80;
  double step_size = 0.1;  // per step, in z's units, along the gradient of the standardized prediction
  double similarity = 0.4;
};
struct OptimizeStep {
  int64_t step = 0;
  std::string smiles;  // decoded at this step ("" when nothing valid)
  bool valid = false;
  double value = 0, similarity = 0, predicted = 0;
};
struct OptimizeResult {
  std::string seed;
  double seed_value = 0;
  std::string best;  // "" when no candidate met the similarity bound and improved on the seed
  double best_value = 0, best_similarity = 0;
  int64_t candidates = 0;          // distinct valid molecules decoded along the way
  std::vector<OptimizeStep> path;  // every step's decoding
  bool improved() const { return !best.empty(); }
  double improvement() const { return best.empty() ? 0.0 : best_value - seed_value; }
};
std::vector<OptimizeResult> optimize_molecules(SmilesVaeImpl& model, const std::vector<std::string>& seeds,
                                               const OptimizeOptions& options, bool progress = false);

/// The 1-D Wasserstein-1 distance between two samples' empirical distributions.
double wasserstein_1d(std::vector<double> a, std::vector<double> b);

}  // namespace latent
