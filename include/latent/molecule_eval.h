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
/// `token_temperature` is 0, else drawn at that temperature. Seeded: the same seed gives the same
/// molecules.
std::vector<std::string> sample_molecules(SmilesVaeImpl& model, int64_t n, uint64_t seed, double temperature = 1.0,
                                          double token_temperature = 0.0);

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

/// The 1-D Wasserstein-1 distance between two samples' empirical distributions.
double wasserstein_1d(std::vector<double> a, std::vector<double> b);

}  // namespace latent
