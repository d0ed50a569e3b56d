// The built-in pool "molecules": every SMILES and SDF set rdkit-data ships, filtered to drug-like
// single molecules, made canonical, de-duplicated and split by a hash of each SMILES.
#include <GraphMol/FileParsers/MolSupplier.h>
#include <GraphMol/MolOps.h>
#include <GraphMol/SmilesParse/SmilesWrite.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <optional>
#include <set>
#include <sstream>
#include <unordered_set>

#include "chem/rdkit_mol.h"
#include "latent/atomic_file.h"
#include "latent/chem.h"
#include "latent/error.h"

namespace latent {
namespace {

// Where the pool's molecules come from, relative to rdkit_data_dir(). `column` is the SMILES's
// field (0-based) in a line; `separator` ' ' means any whitespace; `header` skips the first line.
struct SmilesFile {
  const char* path;
  int column;
  char separator;
  bool header;
};
const SmilesFile kSmilesFiles[] = {
    {"Data/Pains/test_data/wehi_mols.csv", 0, ',', false},
    {"Data/NCI/first_5K.smi", 0, ' ', false},
    {"Contrib/FreeWilson/data/CHEMBL2321810.smi", 0, ' ', false},
    {"Contrib/NIBRSubstructureFilters/examples/chembl24_structs_randomtestSample_100.csv", 1, ',', true},
    {"Contrib/fraggle/data/ChEMBL_11265_actives.smi", 0, ' ', false},
    {"Contrib/SA_Score/data/zim.100.txt", 0, '\t', true},
    {"Contrib/Fastcluster/cdk2.smi", 1, '\t', false},
};
const char* const kSdfFiles[] = {
    "Contrib/PBF/testData/egfr.sdf",         "Projects/DbCLI/testData/bzr.sdf", "Projects/DbCLI/testData/pubchem.200.sdf",
    "Contrib/Fastcluster/testdata/cdk2.sdf", "Data/NCI/first_200.props.sdf",
};
// Bump when the filters or the sources change: the cached file is rebuilt.
constexpr const char* kPoolVersion = "latent molecules 1";

std::string field(const std::string& line, int column, char separator) {
  std::vector<std::string> fields;
  if (separator == ' ') {
    std::istringstream in(line);
    for (std::string f; in >> f;) fields.push_back(f);
  } else {
    std::string f;
    std::istringstream in(line);
    while (std::getline(in, f, separator)) fields.push_back(f);
  }
  if (column >= static_cast<int>(fields.size())) return "";
  std::string f = fields[column];
  if (f.size() >= 2 && f.front() == '"' && f.back() == '"') f = f.substr(1, f.size() - 2);
  return f;
}

std::vector<Molecule> read_sources(const std::string& dir) {
  std::vector<Molecule> raw;
  for (const SmilesFile& s : kSmilesFiles) {
    std::istringstream in(read_file(dir + "/" + s.path));
    int number = 0;
    for (std::string line; std::getline(in, line);) {
      ++number;
      if ((s.header && number == 1) || line.empty() || line[0] == '#') continue;
      raw.push_back({field(line, s.column, s.separator), std::string(s.path) + ":" + std::to_string(number)});
    }
  }
  for (const char* path : kSdfFiles) {
    const std::string full = dir + "/" + path;
    read_file(full);  // a clear error when it is missing
    RDKit::SDMolSupplier supplier(full, /*sanitize=*/true, /*removeHs=*/true);
    for (unsigned record = 1; !supplier.atEnd(); ++record) {
      chem::MolPtr mol;
      try {
        mol.reset(supplier.next());
      } catch (const std::exception&) {  // a record RDKit cannot read: skipped, as a bad SMILES is
      }
      if (mol) raw.push_back({RDKit::MolToSmiles(*mol), std::string(path) + "#" + std::to_string(record)});
    }
  }
  return raw;
}

bool allowed_element(const std::string& symbol) {
  static const std::set<std::string> allowed = {"C", "N", "O", "S", "F", "Cl", "Br", "I", "P"};
  return allowed.count(symbol) > 0;
}

std::string fmt(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

std::string pool_header() { return std::string("# ") + kPoolVersion + ", RDKit " + chem_rdkit_version(); }

void write_pool(const std::string& path, const MoleculePool& pool) {
  std::string out = pool_header() + "\nsmiles,split,logp,mw,tpsa,qed,sa,heavy_atoms,rings,source\n";
  for (size_t i = 0; i < pool.molecules.size(); ++i) {
    const MoleculeProperties& p = pool.properties[i];
    out += pool.molecules[i].smiles + "," + std::to_string(pool.split[i]) + "," + fmt(p.logp) + "," + fmt(p.mw) + "," +
           fmt(p.tpsa) + "," + fmt(p.qed) + "," + fmt(p.sa) + "," + std::to_string(p.heavy_atoms) + "," +
           std::to_string(p.rings) + "," + pool.molecules[i].source + "\n";
  }
  out += "# end of " + std::to_string(pool.molecules.size()) + " molecules\n";  // a cut file is seen as one
  atomic_write(path, out);
}

// The cached pool, or nothing when it is missing, of another version, or damaged (then rebuilt).
std::optional<MoleculePool> read_pool(const std::string& path) {
  std::ifstream in(path);
  if (!in) return std::nullopt;
  std::string line;
  if (!std::getline(in, line) || line != pool_header()) return std::nullopt;
  std::getline(in, line);  // column names
  MoleculePool pool;
  while (std::getline(in, line)) {
    if (line.rfind("# end of ", 0) == 0) {
      if (pool.molecules.empty() || line != "# end of " + std::to_string(pool.molecules.size()) + " molecules")
        return std::nullopt;
      return pool;
    }
    std::vector<std::string> f;
    std::istringstream fields(line);
    for (std::string s; std::getline(fields, s, ',');) f.push_back(s);
    if (f.size() != 10) return std::nullopt;
    try {
      MoleculeProperties p;
      p.logp = std::stod(f[2]);
      p.mw = std::stod(f[3]);
      p.tpsa = std::stod(f[4]);
      p.qed = std::stod(f[5]);
      p.sa = std::stod(f[6]);
      p.heavy_atoms = std::stoi(f[7]);
      p.rings = std::stoi(f[8]);
      pool.molecules.push_back({f[0], f[9]});
      pool.split.push_back(static_cast<int8_t>(std::stoi(f[1])));
      pool.properties.push_back(p);
    } catch (const std::exception&) {
      return std::nullopt;
    }
  }
  return std::nullopt;  // no end line: cut short
}

}  // namespace

std::vector<Molecule> filter_molecules(const std::vector<Molecule>& raw, PoolFilterCounts* rejected) {
  PoolFilterCounts counts;
  std::vector<Molecule> kept;
  std::unordered_set<std::string> seen;
  for (const Molecule& m : raw) {
    chem::MolPtr mol = m.smiles.empty() ? nullptr : chem::parse_smiles(m.smiles);
    if (!mol || mol->getNumAtoms() == 0) {
      ++counts.unreadable;
      continue;
    }
    // The largest fragment (the first of equal size), as RDKit's LargestFragmentChooser keeps.
    // A fragment RDKit cannot sanitize on its own makes the record unreadable.
    std::vector<boost::shared_ptr<RDKit::ROMol>> fragments;
    std::string canonical;
    try {
      fragments = RDKit::MolOps::getMolFrags(*mol, /*sanitizeFrags=*/true);
    } catch (const std::exception&) {
      ++counts.unreadable;
      continue;
    }
    const RDKit::ROMol* largest = fragments.front().get();
    for (const auto& f : fragments) {
      if (f->getNumHeavyAtoms() > largest->getNumHeavyAtoms()) largest = f.get();
    }
    bool elements_ok = true;
    for (const RDKit::Atom* a : largest->atoms()) elements_ok = elements_ok && allowed_element(a->getSymbol());
    if (!elements_ok) {
      ++counts.elements;
      continue;
    }
    const unsigned heavy = largest->getNumHeavyAtoms();
    if (heavy < 6 || heavy > 38) {
      ++counts.size;
      continue;
    }
    try {
      canonical = chem::canonical_of(*largest);
    } catch (const std::exception&) {
      ++counts.unreadable;
      continue;
    }
    if (!seen.insert(canonical).second) {
      ++counts.duplicates;
      continue;
    }
    kept.push_back({std::move(canonical), m.source});
  }
  if (rejected) *rejected = counts;
  return kept;
}

MoleculePool builtin_molecule_pool(const std::string& cache_dir) {
  const std::string path = cache_dir + "/molecules.csv";
  if (std::optional<MoleculePool> cached = read_pool(path)) return std::move(*cached);

  MoleculePool pool;
  pool.molecules = filter_molecules(read_sources(rdkit_data_dir()));
  std::sort(pool.molecules.begin(), pool.molecules.end(),
            [](const Molecule& a, const Molecule& b) { return a.smiles < b.smiles; });
  const int64_t n = static_cast<int64_t>(pool.molecules.size());
  std::vector<std::optional<MoleculeProperties>> properties(n);
  molecule_properties("CCO");  // loads the SA fragment table: its errors are the data's, not a molecule's
#pragma omp parallel for schedule(dynamic, 64)
  for (int64_t i = 0; i < n; ++i) {
    try {
      properties[i] = molecule_properties(pool.molecules[i].smiles);
    } catch (const Error&) {  // a canonical SMILES RDKit cannot read back: left out below
    }
  }
  std::vector<Molecule> readable;
  for (int64_t i = 0; i < n; ++i) {
    if (!properties[i]) continue;
    readable.push_back(std::move(pool.molecules[i]));
    pool.properties.push_back(*properties[i]);
    pool.split.push_back(static_cast<int8_t>(molecule_split(readable.back().smiles)));
  }
  pool.molecules = std::move(readable);
  // The cache only saves the next start some seconds: a folder that cannot be written is no error.
  try {
    write_pool(path, pool);
  } catch (const Error&) {
  }
  return pool;
}

}  // namespace latent
