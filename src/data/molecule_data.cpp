// Molecule data as a Dataset: canonical SMILES, their token ids, and numeric columns as properties.
#include <ATen/ATen.h>

#include <algorithm>
#include <cctype>
#include <fstream>

#include "io/text.h"
#include "latent/chem.h"
#include "latent/data.h"
#include "latent/error.h"
#include "latent/smiles_tokens.h"

namespace latent {
namespace {

Dataset from_smiles(std::vector<std::string> smiles, std::vector<std::string> property_names,
                    const std::vector<std::vector<double>>& properties) {
  Dataset d;
  d.smiles = std::move(smiles);
  d.property_names = std::move(property_names);
  const int64_t n = static_cast<int64_t>(d.smiles.size()), p = static_cast<int64_t>(d.property_names.size());
  if (p > 0) {
    d.properties = at::empty({n, p}, at::kDouble);
    double* out = d.properties.data_ptr<double>();
    for (int64_t i = 0; i < n; ++i)
      for (int64_t k = 0; k < p; ++k) out[i * p + k] = properties[static_cast<size_t>(i)][static_cast<size_t>(k)];
  }
  const SmilesVocabulary vocabulary = SmilesVocabulary::build(d.smiles);
  int64_t width = 2;
  for (const auto& s : d.smiles) width = std::max<int64_t>(width, static_cast<int64_t>(smiles_tokens(s).size()) + 2);
  encode_molecules(d, vocabulary.to_json().get<std::vector<std::string>>(), width);
  return d;
}

Dataset pool_split(int split) {
  const MoleculePool pool = builtin_molecule_pool(default_cache_dir());
  std::vector<std::string> smiles;
  std::vector<std::vector<double>> values;
  for (size_t i = 0; i < pool.molecules.size(); ++i) {
    if (pool.split[i] != split) continue;
    smiles.push_back(pool.molecules[i].smiles);
    const MoleculeProperties& p = pool.properties[i];
    values.push_back({p.logp, p.mw, p.tpsa, p.qed, p.sa});
  }
  return from_smiles(std::move(smiles), {"logp", "mw", "tpsa", "qed", "sa"}, values);
}

}  // namespace

bool is_molecule_source(const std::string& source, const std::string& smiles_column) {
  if (source == "molecules") return true;
  const std::string name = lowercase(source);
  if (ends_with(name, ".smi") || ends_with(name, ".smiles")) return true;
  if (!ends_with(name, ".csv")) return false;
  if (!smiles_column.empty()) return true;
  std::ifstream in(source);
  std::string header;
  while (std::getline(in, header) && (header.empty() || header[0] == '#')) {
  }
  for (std::string field : split_text(header, ',')) {
    field.erase(std::remove_if(field.begin(), field.end(),
                               [](char c) { return c == '"' || std::isspace(static_cast<unsigned char>(c)); }),
                field.end());
    if (lowercase(field) == "smiles") return true;
  }
  return false;
}

Dataset molecule_load(const std::string& source, const std::string& smiles_column, int pool_split_index) {
  if (source == "molecules") return pool_split(pool_split_index);
  const MoleculeTable table = read_molecule_file(source, smiles_column);
  std::vector<std::string> smiles;
  smiles.reserve(table.molecules.size());
  for (const Molecule& m : table.molecules) smiles.push_back(m.smiles);
  return from_smiles(std::move(smiles), table.property_names, table.properties);
}

void encode_molecules(Dataset& d, const std::vector<std::string>& tokens, int64_t width) {
  const SmilesVocabulary vocabulary = SmilesVocabulary::from_json(tokens);
  const int64_t n = static_cast<int64_t>(d.smiles.size());
  at::Tensor x = at::zeros({n, width}, at::kFloat);  // kPad is 0
  float* out = x.data_ptr<float>();
  for (int64_t i = 0; i < n; ++i) {
    const std::vector<int64_t> ids = vocabulary.encode(d.smiles[static_cast<size_t>(i)]);
    if (static_cast<int64_t>(ids.size()) > width)
      throw Error("the molecule " + d.smiles[static_cast<size_t>(i)] + " has " + std::to_string(ids.size() - 2) +
                  " tokens, more than the model's max_length of " + std::to_string(width - 2));
    for (size_t k = 0; k < ids.size(); ++k) out[i * width + static_cast<int64_t>(k)] = static_cast<float>(ids[k]);
  }
  d.x = x;
  d.vocabulary = tokens;
}

void share_vocabulary(Dataset& a, Dataset& b) {
  std::vector<std::string> all = a.smiles;
  all.insert(all.end(), b.smiles.begin(), b.smiles.end());
  const std::vector<std::string> tokens = SmilesVocabulary::build(all).to_json().get<std::vector<std::string>>();
  const int64_t width = std::max(a.x.defined() ? a.x.size(1) : 0, b.x.defined() ? b.x.size(1) : 0);
  if (!a.smiles.empty()) encode_molecules(a, tokens, width);
  if (!b.smiles.empty()) encode_molecules(b, tokens, width);
}

}  // namespace latent
