// latent optimize: property optimization of molecules in a SMILES VAE's latent space.
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <numeric>
#include <unordered_set>

#include "common.h"
#include "latent/atomic_file.h"
#include "latent/chem.h"
#include "latent/error.h"
#include "latent/molecule_eval.h"
#include "latent/smiles_vae.h"

namespace latent::cli {
namespace {

struct OptimizeArgs {
  std::string checkpoint, from, out, data;
  int64_t lowest = 0;
  double count_above = std::nan("");
  OptimizeOptions options;
};

// The seeds: a .smi/.csv file, "test" (the checkpoint's test split), or one SMILES.
std::vector<std::string> seed_molecules(const LoadedCheckpoint& ck, const OptimizeArgs& a) {
  std::vector<std::string> seeds;
  std::error_code ec;
  if (a.from == "test" || a.from == "train") {
    for (const auto& s : checkpoint_data(ck, a.data, a.from, 0).smiles) seeds.push_back(s);
  } else if (std::filesystem::is_regular_file(a.from, ec)) {
    for (const Molecule& m : read_molecule_file(a.from).molecules) seeds.push_back(m.smiles);
  } else {
    seeds.push_back(a.from);
  }
  if (a.lowest > 0 && a.lowest < static_cast<int64_t>(seeds.size())) {  // the worst seeds by the property
    std::vector<std::pair<double, std::string>> scored;
    for (const auto& s : seeds) scored.emplace_back(molecule_property(s, a.options.property) * (a.options.minimize ? -1 : 1), s);
    std::stable_sort(scored.begin(), scored.end(), [](const auto& x, const auto& y) { return x.first < y.first; });
    seeds.clear();
    for (int64_t i = 0; i < a.lowest; ++i) seeds.push_back(scored[static_cast<size_t>(i)].second);
  }
  return seeds;
}

void run_optimize(const OptimizeArgs& a) {
  LoadedCheckpoint ck = checkpoint_load(a.checkpoint);
  SmilesVaeImpl& model = require_smiles_vae(*ck.model, "latent optimize");
  const std::vector<std::string> seeds = seed_molecules(ck, a);
  const std::vector<OptimizeResult> results = optimize_molecules(model, seeds, a.options, true);

  std::string csv = "seed,seed_value,best,best_value,improvement,similarity,candidates\n";
  std::vector<double> gains, similarities;
  for (const auto& r : results) {
    char line[128];
    std::snprintf(line, sizeof(line), "%.6g", r.seed_value);
    csv += r.seed + "," + line + "," + r.best + ",";
    if (r.improved()) {
      std::snprintf(line, sizeof(line), "%.6g,%.6g,%.4f", r.best_value, r.improvement(), r.best_similarity);
      csv += line;
      gains.push_back(r.improvement());
      similarities.push_back(r.best_similarity);
    } else {
      csv += ",,";
    }
    csv += "," + std::to_string(r.candidates) + "\n";
  }
  if (!a.out.empty()) atomic_write(a.out, csv);

  const double n = static_cast<double>(results.size());
  const double mean = gains.empty() ? 0 : std::accumulate(gains.begin(), gains.end(), 0.0) / static_cast<double>(gains.size());
  double var = 0;
  for (double g : gains) var += (g - mean) * (g - mean);
  const double sd = gains.empty() ? 0 : std::sqrt(var / static_cast<double>(gains.size()));
  const double sim = similarities.empty() ? 0
                                          : std::accumulate(similarities.begin(), similarities.end(), 0.0) /
                                                static_cast<double>(similarities.size());
  std::printf("%s: %zu seeds, %d steps; improved with similarity >= %.2f: %zu (%.1f%%), %s by %.3f +- %.3f, similarity %.3f\n",
              a.options.property.c_str(), results.size(), static_cast<int>(a.options.steps), a.options.similarity, gains.size(),
              100.0 * static_cast<double>(gains.size()) / n, a.options.minimize ? "lowered" : "raised", mean, sd, sim);
  if (!std::isnan(a.count_above)) {  // novel molecules past a bar (JT-VAE's QED >= 0.9 count)
    std::unordered_set<std::string> train, found;
    for (const auto& s : checkpoint_data(ck, a.data, "train", 0).smiles) train.insert(s);
    for (const auto& r : results)
      for (const auto& s : r.path)
        if (s.valid && !train.count(s.smiles) && (a.options.minimize ? s.value <= a.count_above : s.value >= a.count_above))
          found.insert(s.smiles);
    std::printf("novel molecules with %s %s %g: %zu\n", a.options.property.c_str(),
                a.options.minimize ? "<=" : ">=", a.count_above, found.size());
  }
  if (!a.out.empty()) std::printf("wrote %s\n", a.out.c_str());
}

}  // namespace

void add_molecules(CLI::App& app) {
  auto a = std::make_shared<OptimizeArgs>();
  CLI::App* o = app.add_subcommand("optimize", "Improve molecules by gradient ascent on a SMILES VAE's property head");
  o->add_option("checkpoint", a->checkpoint, "a smiles_vae checkpoint")->required()->check(CLI::ExistingFile);
  o->add_option("--from", a->from, "seed molecules: FILE.smi, FILE.csv, test (the checkpoint's test split) or one SMILES")
      ->required();
  o->add_option("--property", a->options.property, "a property the head predicts and RDKit scores: logp, qed, sa, plogp, ...")
      ->capture_default_str();
  o->add_flag("--minimize", a->options.minimize, "lower the property (sa: easier to make)");
  o->add_option("--similarity", a->options.similarity, "the least Tanimoto similarity to the seed a result may have")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1.0));
  o->add_option("--steps", a->options.steps, "gradient steps from each seed")->capture_default_str()->check(CLI::Range(1, 10000));
  o->add_option("--step-size", a->options.step_size, "length of each step in latent space")
      ->capture_default_str()
      ->check(positive());
  o->add_option("--lowest", a->lowest, "keep only the N seeds with the worst property (JT-VAE: the 800 lowest)")
      ->check(non_negative());
  o->add_option("--count-above", a->count_above, "also count novel molecules found with the property at or past this value");
  o->add_option("--data", a->data, "data for --from test/train (default: the checkpoint's)");
  o->add_option("-o,--out", a->out, "CSV: seed, its value, the best molecule, its value, improvement, similarity");
  o->footer(
      "Example:\n  latent optimize runs/molecules/model.safetensors --property qed --from seeds.smi --similarity 0.4 -o "
      "optimized.csv\n  latent optimize runs/molecules/model.safetensors --property plogp --from test --lowest 800 "
      "--similarity 0.4 -o plogp.csv");
  o->callback([a]() { run_optimize(*a); });
}

}  // namespace latent::cli
