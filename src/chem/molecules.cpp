// SMILES in and out, and the properties of one molecule, on RDKit.
#include <GraphMol/Descriptors/Crippen.h>
#include <GraphMol/Descriptors/MolDescriptors.h>
#include <GraphMol/Descriptors/MolSurf.h>
#include <GraphMol/MolOps.h>
#include <GraphMol/RingInfo.h>
#include <GraphMol/SmilesParse/SmartsWrite.h>
#include <GraphMol/SmilesParse/SmilesParse.h>
#include <GraphMol/SmilesParse/SmilesWrite.h>
#include <RDGeneral/RDLog.h>
#include <RDGeneral/versions.h>

#include <algorithm>
#include <cstdlib>
#include <mutex>
#include <numeric>
#include <random>
#include <stdexcept>

#include "chem/rdkit_mol.h"
#include "latent/chem.h"
#include "latent/error.h"

namespace latent {

namespace chem {

MolPtr parse_smiles(const std::string& smiles) {
  static std::once_flag quiet;
  std::call_once(quiet, [] { boost::logging::disable_logs("rdApp.*"); });
  try {
    return MolPtr(RDKit::SmilesToMol(smiles));
  } catch (const std::exception&) {  // RDKit throws for some faults and returns null for others
    return nullptr;
  }
}

MolPtr parse_smarts(const std::string& smarts) {
  MolPtr q(RDKit::SmartsToMol(smarts));
  if (!q) throw std::logic_error("latent: bad built-in SMARTS " + smarts);
  return q;
}

// RDKit's canonical SMILES is not always a fixed point: a molecule written without stereo or
// isotopes can read back as another graph ("[2H]C" becomes "[H]C", which reads back as "C"). Writing
// the string RDKit reads back from the first one is: canonical(canonical(x)) == canonical(x).
std::string canonical_of(const RDKit::ROMol& mol) {
  const std::string once = RDKit::MolToSmiles(mol, /*doIsomericSmiles=*/false);
  MolPtr again = parse_smiles(once);
  return again && again->getNumAtoms() > 0 ? RDKit::MolToSmiles(*again, /*doIsomericSmiles=*/false) : once;
}

}  // namespace chem

namespace {

chem::MolPtr require_molecule(const std::string& smiles) {
  chem::MolPtr mol = chem::parse_smiles(smiles);
  if (!mol || mol->getNumAtoms() == 0) throw Error("not a valid SMILES (RDKit cannot read it as a molecule): '" + smiles + "'");
  return mol;
}

// RDKit's own exceptions (a sanitization or kekulization failure deep in a descriptor) become
// latent::Error naming the molecule; latent's errors pass as they are.
template <typename F>
auto rdkit_call(const std::string& smiles, const char* what, F&& f) {
  try {
    return f();
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    throw Error(std::string("RDKit could not ") + what + " of '" + smiles + "': " + e.what());
  }
}

}  // namespace

bool chem_available() { return true; }

std::string chem_rdkit_version() { return RDKit::rdkitVersion; }

std::optional<std::string> canonical_smiles(const std::string& smiles) {
  if (smiles.empty()) return std::nullopt;
  chem::MolPtr mol = chem::parse_smiles(smiles);
  if (!mol || mol->getNumAtoms() == 0) return std::nullopt;
  try {
    std::string c = chem::canonical_of(*mol);
    // A molecule whose canonical SMILES RDKit cannot read back (a kekulization its writer's
    // aromaticity made impossible) is not one latent can use either.
    if (!chem::parse_smiles(c)) return std::nullopt;
    return c;
  } catch (const std::exception&) {  // RDKit could not write it: not a molecule latent can use
    return std::nullopt;
  }
}

std::string randomized_smiles(const std::string& smiles, uint64_t seed) {
  chem::MolPtr mol = require_molecule(smiles);
  std::vector<unsigned int> order(mol->getNumAtoms());
  std::iota(order.begin(), order.end(), 0u);
  std::mt19937_64 rng(seed);
  for (size_t i = order.size(); i > 1; --i) std::swap(order[i - 1], order[rng() % i]);  // Fisher-Yates
  return rdkit_call(smiles, "write a random spelling", [&] {
    chem::MolPtr shuffled(RDKit::MolOps::renumberAtoms(*mol, order));
    return RDKit::MolToSmiles(*shuffled, /*doIsomericSmiles=*/false, /*doKekule=*/false, /*rootedAtAtom=*/-1,
                              /*canonical=*/false);
  });
}

MoleculeProperties molecule_properties(const std::string& smiles) {
  chem::MolPtr mol = require_molecule(smiles);
  return rdkit_call(smiles, "compute the properties", [&] {
    MoleculeProperties p;
    double mr = 0;
    RDKit::Descriptors::calcCrippenDescriptors(*mol, p.logp, mr);
    p.mw = RDKit::Descriptors::calcAMW(*mol);
    p.tpsa = RDKit::Descriptors::calcTPSA(*mol);
    p.heavy_atoms = static_cast<int>(mol->getNumHeavyAtoms());
    p.rings = static_cast<int>(mol->getRingInfo()->numRings());
    p.qed = chem::qed_score(*mol);
    p.sa = chem::sa_score(*mol);
    return p;
  });
}

double penalized_logp(const MoleculeProperties& p, const std::string& smiles) {
  chem::MolPtr mol = require_molecule(smiles);
  size_t largest = 0;
  for (const auto& ring : mol->getRingInfo()->atomRings()) largest = std::max(largest, ring.size());
  const double cycle = largest > 6 ? double(largest - 6) : 0.0;
  return p.logp - p.sa - cycle;
}

std::string rdkit_data_dir() {
  const char* env = std::getenv("LATENT_RDKIT_DATA");
  return env && *env ? env : "/usr/share/RDKit";
}

}  // namespace latent
