// RDKit glue shared by the files of src/chem/ (the only code that includes RDKit's headers).
#pragma once

#include <GraphMol/ROMol.h>

#include <memory>
#include <string>

namespace latent::chem {

using MolPtr = std::unique_ptr<RDKit::ROMol>;

/// RDKit's molecule for `smiles` (sanitized, as Chem.MolFromSmiles), or null when RDKit cannot read
/// it. RDKit's own log lines about bad input are silenced once, here.
MolPtr parse_smiles(const std::string& smiles);
/// latent's canonical SMILES of a molecule (see latent/chem.h): a fixed point of reading and writing.
std::string canonical_of(const RDKit::ROMol& mol);
/// A SMARTS pattern the code itself holds; a bad one is a bug, so it throws std::logic_error.
MolPtr parse_smarts(const std::string& smarts);

/// QED with the mean weights (RDKit's QED.qed / QED.weights_mean), on the molecule without
/// explicit hydrogens, as RDKit's Python computes it.
double qed_score(const RDKit::ROMol& mol);
/// The synthetic accessibility score of RDKit Contrib's sascorer.py (Ertl and Schuffenhauer 2009).
/// Assigns stereochemistry flags on `mol` as that script does.
double sa_score(RDKit::ROMol& mol);

}  // namespace latent::chem
