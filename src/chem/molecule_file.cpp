// Molecules from a user's .smi or .csv file (ZINC250k, MOSES, ChEMBL exports read the same way).
#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <sstream>
#include <unordered_set>

#include "io/text.h"
#include "latent/atomic_file.h"
#include "latent/chem.h"
#include "latent/error.h"

namespace latent {
namespace {

// One CSV record's fields (RFC 4180 quoting within the line; SMILES never hold a newline).
std::vector<std::string> csv_fields(const std::string& line) {
  std::vector<std::string> out;
  std::string f;
  bool quoted = false;
  for (size_t i = 0; i < line.size(); ++i) {
    const char c = line[i];
    if (quoted) {
      if (c == '"' && i + 1 < line.size() && line[i + 1] == '"')
        f += '"', ++i;
      else if (c == '"')
        quoted = false;
      else
        f += c;
    } else if (c == '"') {
      quoted = true;
    } else if (c == ',') {
      out.push_back(std::move(f));
      f.clear();
    } else if (c != '\r') {
      f += c;
    }
  }
  out.push_back(std::move(f));
  return out;
}

bool parse_number(const std::string& s, double& v) {
  if (s.empty()) return false;
  char* end = nullptr;
  v = std::strtod(s.c_str(), &end);
  return end == s.c_str() + s.size();
}

}  // namespace

MoleculeTable read_molecule_file(const std::string& path, const std::string& smiles_column) {
  const std::string name = lowercase(path);
  const bool csv = ends_with(name, ".csv");
  if (!csv && !ends_with(name, ".smi") && !ends_with(name, ".smiles") && !ends_with(name, ".txt"))
    throw Error(path + ": molecules are read from .smi (a SMILES per line) or .csv (with a SMILES column) files");
  std::istringstream in(read_file(path));
  MoleculeTable table;
  std::unordered_set<std::string> seen;
  std::vector<std::vector<std::string>> raw_properties;  // as text, until every value is known to be a number
  std::vector<std::string> header;
  int smiles_at = 0;
  std::vector<int> property_at;
  int number = 0;
  for (std::string line; std::getline(in, line);) {
    ++number;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || line[0] == '#') continue;
    std::string smiles;
    std::vector<std::string> values;
    if (csv) {
      std::vector<std::string> fields = csv_fields(line);
      if (header.empty()) {
        header = fields;
        const std::string want = smiles_column.empty() ? "smiles" : smiles_column;
        auto it = std::find_if(header.begin(), header.end(),
                               [&](const std::string& h) { return smiles_column.empty() ? lowercase(h) == want : h == want; });
        if (it == header.end())
          throw Error(path + ": no column named '" + want + "' (the header has " + std::to_string(header.size()) +
                      " columns; --smiles-column names another)");
        smiles_at = static_cast<int>(it - header.begin());
        for (int c = 0; c < static_cast<int>(header.size()); ++c)
          if (c != smiles_at) property_at.push_back(c);
        continue;
      }
      if (fields.size() != header.size())
        throw Error(path + ":" + std::to_string(number) + ": " + std::to_string(fields.size()) + " fields, the header has " +
                    std::to_string(header.size()));
      smiles = fields[smiles_at];
      for (int c : property_at) values.push_back(fields[c]);
    } else {
      std::istringstream words(line);
      words >> smiles;
      if (number == 1 && lowercase(smiles).rfind("smiles", 0) == 0) continue;  // a header line
    }
    const std::optional<std::string> canonical = canonical_smiles(smiles);
    if (!canonical) {
      ++table.invalid;
      continue;
    }
    if (!seen.insert(*canonical).second) {
      ++table.duplicates;
      continue;
    }
    table.molecules.push_back({*canonical, path + ":" + std::to_string(number)});
    raw_properties.push_back(std::move(values));
  }
  if (table.molecules.empty())
    throw Error(path + ": no molecule RDKit can read (" + std::to_string(table.invalid) + " invalid SMILES)");
  // A column is a property when every kept row holds a number there (names, ids and notes are not).
  std::vector<size_t> numeric;
  for (size_t k = 0; k < property_at.size(); ++k) {
    bool all = true;
    double v = 0;
    for (const auto& row : raw_properties) all = all && parse_number(row[k], v);
    if (all) {
      numeric.push_back(k);
      table.property_names.push_back(header[property_at[k]]);
    }
  }
  for (const auto& row : raw_properties) {
    std::vector<double> values(numeric.size());
    for (size_t j = 0; j < numeric.size(); ++j) parse_number(row[numeric[j]], values[j]);
    table.properties.push_back(std::move(values));
  }
  return table;
}

}  // namespace latent
