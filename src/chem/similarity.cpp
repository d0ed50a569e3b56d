// Morgan fingerprints and RDKit's structural-alert catalogs (PAINS, Brenk).
#include <DataStructs/ExplicitBitVect.h>
#include <GraphMol/FilterCatalog/FilterCatalog.h>
#include <GraphMol/Fingerprints/MorganFingerprints.h>

#include "chem/rdkit_mol.h"
#include "latent/chem.h"
#include "latent/error.h"
#include "latent/json.h"

namespace latent {
namespace {

chem::MolPtr molecule(const std::string& smiles) {
  chem::MolPtr mol = chem::parse_smiles(smiles);
  if (!mol) throw Error("not a valid molecule: '" + text_excerpt(smiles, 80) + "'");
  return mol;
}

}  // namespace

Fingerprint morgan_fingerprint(const std::string& smiles) {
  const chem::MolPtr mol = molecule(smiles);
  std::unique_ptr<ExplicitBitVect> bits(
      RDKit::MorganFingerprints::getFingerprintAsBitVect(*mol, 2, static_cast<unsigned>(Fingerprint::kBits)));
  Fingerprint fp;
  std::vector<int> on;
  bits->getOnBits(on);
  for (int b : on) fp.words[static_cast<size_t>(b) / 64] |= uint64_t{1} << (b % 64);
  return fp;
}

bool passes_structure_filters(const std::string& smiles) {
  static const RDKit::FilterCatalog catalog = [] {
    RDKit::FilterCatalogParams params;
    params.addCatalog(RDKit::FilterCatalogParams::PAINS);
    params.addCatalog(RDKit::FilterCatalogParams::BRENK);
    return RDKit::FilterCatalog(params);
  }();
  return !catalog.hasMatch(*molecule(smiles));
}

}  // namespace latent
