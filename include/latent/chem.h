/// @brief Molecules: SMILES parsing and writing, properties (logP, weight, TPSA, QED, SA score) and
/// the built-in pool of drug-like molecules, on RDKit.
///
/// Everything here takes and gives SMILES strings, so callers need no RDKit headers. A build of
/// latent without RDKit (Debian: librdkit-dev) still links: every function but `chem_available`
/// and the tokenizer throws latent::Error saying so.
///
/// Molecules are compared in latent's canonical form: RDKit's canonical SMILES of the molecule as
/// written, without stereochemistry (as MOSES's data), so "C[C@H](N)O" and "OC(N)C" are one
/// molecule.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace latent {

/// True when this build has RDKit.
bool chem_available();
/// "2022.09.3": the RDKit this build uses ("" without RDKit).
std::string chem_rdkit_version();

/// latent's canonical SMILES of `smiles`, or nothing when RDKit cannot read it as a molecule
/// (syntax, valence, aromaticity). Never throws for a bad string.
std::optional<std::string> canonical_smiles(const std::string& smiles);

/// The same molecule written from a random atom order (RDKit, non-canonical), the augmentation of
/// randomized-SMILES training: the same `seed` gives the same string. Throws for an invalid SMILES.
std::string randomized_smiles(const std::string& smiles, uint64_t seed);

struct MoleculeProperties {
  double logp = 0;  // Wildman-Crippen logP (RDKit's MolLogP)
  double mw = 0;    // average molecular weight with hydrogens (RDKit's MolWt), g/mol
  double tpsa = 0;  // topological polar surface area (RDKit's TPSA, N and O only), A^2
  double qed = 0;   // quantitative estimate of drug-likeness, mean weights (RDKit's QED.qed)
  double sa = 0;    // synthetic accessibility, 1 (easy) to 10 (hard) (RDKit Contrib's sascorer)
  int heavy_atoms = 0;
  int rings = 0;  // smallest set of smallest rings
};

/// The properties of one molecule; throws latent::Error naming the SMILES when it is invalid.
MoleculeProperties molecule_properties(const std::string& smiles);

/// Penalized logP as JT-VAE's optimization benchmark defines it: logP - SA - (rings of more than
/// six atoms, each counted by how many atoms it has beyond six, largest ring only), unnormalized.
double penalized_logp(const MoleculeProperties& p, const std::string& smiles);

/// A 2048-bit Morgan fingerprint (radius 2, as RDKit's GetMorganFingerprintAsBitVect(mol, 2, 2048)),
/// the fingerprint of MOSES's and GuacaMol's similarity metrics.
struct Fingerprint {
  static constexpr int kBits = 2048;
  std::vector<uint64_t> words = std::vector<uint64_t>(kBits / 64, 0);
};
/// Throws latent::Error naming the SMILES when it is invalid.
Fingerprint morgan_fingerprint(const std::string& smiles);
/// Tanimoto similarity |a & b| / |a | b| (0 for two empty fingerprints).
double tanimoto(const Fingerprint& a, const Fingerprint& b);
/// Whether the molecule matches none of RDKit's PAINS (A, B, C) and Brenk structural alerts
/// (FilterCatalog), the filters of MOSES's "Filters" metric. Throws for an invalid SMILES.
bool passes_structure_filters(const std::string& smiles);

/// A PNG of molecules in a grid of `columns` (RDKit's 2D depictions drawn with cairo), each cell
/// `cell` pixels square with its legend under it; a SMILES RDKit cannot read leaves its cell empty
/// but for its legend (the caller says "invalid" there). Throws latent::Error where this build's
/// RDKit has no cairo drawing.
std::string molecule_grid_png(const std::vector<std::string>& smiles, const std::vector<std::string>& legends, int columns,
                              int cell = 250);
/// An SVG of one molecule (RDKit's depiction), or an empty string when the SMILES is invalid.
std::string molecule_svg(const std::string& smiles, int width = 250, int height = 200);

/// Where RDKit's shared data lives (the SA fragment table, the molecule files of the built-in
/// pool): $LATENT_RDKIT_DATA, else /usr/share/RDKit (Debian's rdkit-data).
std::string rdkit_data_dir();

/// One molecule of a data set: its canonical SMILES and where it came from.
struct Molecule {
  std::string smiles;  // latent's canonical form
  std::string source;  // the file (relative to rdkit_data_dir()) and its line or record
};

/// The molecules a SMILES string list becomes after the pool's filters: each read by RDKit,
/// reduced to its largest fragment (salts and solvents dropped), kept when its elements are among
/// C N O S F Cl Br I P and it has 6 to 38 heavy atoms, then made canonical; duplicates keep their
/// first occurrence. `rejected` (optional) counts what was dropped.
struct PoolFilterCounts {
  int64_t unreadable = 0, elements = 0, size = 0, duplicates = 0;
};
std::vector<Molecule> filter_molecules(const std::vector<Molecule>& raw, PoolFilterCounts* rejected = nullptr);

/// Molecules from a user's file: FILE.smi (a SMILES per line, optionally followed by a name after
/// whitespace; "#" lines and a first line starting with "smiles" are skipped) or FILE.csv (a header
/// row; the SMILES in column `smiles_column`, by default the one named "smiles" in any case; every
/// other column whose values all read as numbers becomes a property). Each SMILES is made canonical;
/// rows RDKit cannot read are skipped and counted, as are repeats of a molecule (the first stays).
/// Throws latent::Error naming the file for a missing column, a ragged row or no readable molecule.
struct MoleculeTable {
  std::vector<Molecule> molecules;              // source: "FILE:LINE"
  std::vector<std::string> property_names;      // csv columns that hold numbers
  std::vector<std::vector<double>> properties;  // [molecule][property]
  int64_t invalid = 0, duplicates = 0;
};
MoleculeTable read_molecule_file(const std::string& path, const std::string& smiles_column = "");

/// The built-in pool "molecules": the SMILES and SDF sets shipped in rdkit-data, filtered as
/// above, sorted by SMILES. Built at first use and kept in `cache_dir` (molecules.csv, written
/// atomically with its properties); later calls read that file. The split is fixed by each
/// molecule's SMILES (a hash), so it is the same on every machine: 80% train, 10% valid, 10% test.
struct MoleculePool {
  std::vector<Molecule> molecules;
  std::vector<MoleculeProperties> properties;
  std::vector<int8_t> split;  // 0 train, 1 valid, 2 test
};
MoleculePool builtin_molecule_pool(const std::string& cache_dir);
/// The split a SMILES belongs to (0 train, 1 valid, 2 test): 80/10/10 by a 64-bit FNV-1a hash.
int molecule_split(const std::string& canonical);
/// Where the pool is cached: $LATENT_CACHE_DIR, else $XDG_CACHE_HOME/latent, else ~/.cache/latent.
std::string default_cache_dir();

}  // namespace latent
