// latent built without RDKit: the chemistry API links and says what is missing.
#include "latent/chem.h"
#include "latent/error.h"

namespace latent {
namespace {

[[noreturn]] void no_rdkit() {
  throw Error("this latent was built without RDKit: molecules need it (Debian: librdkit-dev rdkit-data, then rebuild)");
}

}  // namespace

bool chem_available() { return false; }
std::string chem_rdkit_version() { return ""; }
std::optional<std::string> canonical_smiles(const std::string&) { no_rdkit(); }
std::string randomized_smiles(const std::string&, uint64_t) { no_rdkit(); }
MoleculeProperties molecule_properties(const std::string&) { no_rdkit(); }
double penalized_logp(const MoleculeProperties&, const std::string&) { no_rdkit(); }
std::string rdkit_data_dir() { no_rdkit(); }
std::vector<Molecule> filter_molecules(const std::vector<Molecule>&, PoolFilterCounts*) { no_rdkit(); }
MoleculePool builtin_molecule_pool(const std::string&) { no_rdkit(); }
Fingerprint morgan_fingerprint(const std::string&) { no_rdkit(); }
bool passes_structure_filters(const std::string&) { no_rdkit(); }
std::string molecule_grid_png(const std::vector<std::string>&, const std::vector<std::string>&, int, int) { no_rdkit(); }
std::string molecule_svg(const std::string&, int, int) { no_rdkit(); }

}  // namespace latent
