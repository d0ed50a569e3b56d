// The synthetic accessibility score of Ertl and Schuffenhauer (J. Cheminf. 2009, 1:8) as RDKit
// Contrib's SA_Score/sascorer.py computes it (with its version 1.1 density correction): the mean
// contribution of the molecule's Morgan (radius 2) fragments, from the fragment table fitted on
// PubChem that rdkit-data ships (fpscores.pkl.gz), minus penalties for size, stereo centres,
// spiro and bridgehead atoms and macrocycles, mapped onto 1 (easy) to 10 (hard).
#include <GraphMol/Descriptors/Lipinski.h>
#include <GraphMol/Fingerprints/MorganFingerprints.h>
#include <GraphMol/MolOps.h>
#include <GraphMol/RingInfo.h>

#include <cmath>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <unordered_map>

#include "chem/rdkit_mol.h"
#include "latent/atomic_file.h"
#include "latent/chem.h"
#include "latent/data.h"
#include "latent/error.h"

namespace latent::chem {
namespace {

using FragmentScores = std::unordered_map<uint32_t, double>;

// fpscores.pkl.gz is a protocol-0 (text) pickle of a list of lists [score, fragment id, ...]:
// the opcodes MARK "(", LIST "l", PUT "p<n>", FLOAT "F<x>", INT "I<n>", APPEND "a" and STOP ".".
// Every id takes the score of the list it is in; a later list wins, as in sascorer.py.
FragmentScores read_fragment_scores(const std::string& path) {
  const std::string text = gunzip_if_needed(read_file(path), path);
  auto fail = [&](const std::string& what) { return Error(path + ": not SA_Score's fragment table: " + what); };
  FragmentScores scores;
  double score = 0;
  bool have_score = false;
  size_t i = 0;
  auto line = [&]() {  // the argument after an opcode, up to its newline
    const size_t end = text.find('\n', i);
    if (end == std::string::npos) throw fail("truncated");
    std::string arg = text.substr(i, end - i);
    i = end + 1;
    return arg;
  };
  while (i < text.size()) {
    const char op = text[i++];
    if (op == '(' || op == 'l' || op == 'a') continue;
    if (op == '.') break;
    if (op == 'p') {
      line();
    } else if (op == 'F') {
      const std::string arg = line();
      char* end = nullptr;
      score = std::strtod(arg.c_str(), &end);
      if (end == arg.c_str() || *end) throw fail("bad score '" + arg + "'");
      have_score = true;
    } else if (op == 'I') {
      const std::string arg = line();
      char* end = nullptr;
      const unsigned long long id = std::strtoull(arg.c_str(), &end, 10);
      if (end == arg.c_str() || *end || id > 0xffffffffull) throw fail("bad fragment id '" + arg + "'");
      if (!have_score) throw fail("a fragment id before any score");
      scores[static_cast<uint32_t>(id)] = score;
    } else {
      throw fail(std::string("unexpected pickle opcode '") + op + "'");
    }
  }
  if (scores.empty()) throw fail("no fragments");
  return scores;
}

const FragmentScores& fragment_scores() {
  static std::once_flag once;
  static std::unique_ptr<FragmentScores> scores;
  static std::string error;
  std::call_once(once, [] {
    const std::string path = rdkit_data_dir() + "/Contrib/SA_Score/fpscores.pkl.gz";
    try {
      scores = std::make_unique<FragmentScores>(read_fragment_scores(path));
    } catch (const Error& e) {
      error = std::string(e.what()) + " (the SA score needs rdkit-data; LATENT_RDKIT_DATA names another copy)";
    }
  });
  if (!scores) throw Error(error);
  return *scores;
}

}  // namespace

double sa_score(RDKit::ROMol& mol) {
  const FragmentScores& table = fragment_scores();
  std::unique_ptr<RDKit::SparseIntVect<uint32_t>> fp(RDKit::MorganFingerprints::getFingerprint(mol, 2));
  double score1 = 0;
  int nf = 0;
  for (const auto& [id, count] : fp->getNonzeroElements()) {
    nf += count;
    const auto it = table.find(id);
    score1 += (it == table.end() ? -4.0 : it->second) * count;
  }
  const size_t distinct = fp->getNonzeroElements().size();
  score1 /= nf;

  const int atoms = static_cast<int>(mol.getNumAtoms());
  // Chem.FindMolChiralCenters(m, includeUnassigned=True), its legacy implementation.
  RDKit::MolOps::assignStereochemistry(mol, /*cleanIt=*/false, /*force=*/true, /*flagPossibleStereoCenters=*/true);
  int chiral = 0;
  for (const RDKit::Atom* a : mol.atoms()) {
    if (a->hasProp(RDKit::common_properties::_CIPCode) || a->hasProp(RDKit::common_properties::_ChiralityPossible)) ++chiral;
  }
  const int spiro = static_cast<int>(RDKit::Descriptors::calcNumSpiroAtoms(mol));
  const int bridgeheads = static_cast<int>(RDKit::Descriptors::calcNumBridgeheadAtoms(mol));
  int macrocycles = 0;
  for (const auto& ring : mol.getRingInfo()->atomRings()) macrocycles += ring.size() > 8 ? 1 : 0;

  const double size_penalty = std::pow(atoms, 1.005) - atoms;
  const double stereo_penalty = std::log10(chiral + 1);
  const double spiro_penalty = std::log10(spiro + 1);
  const double bridge_penalty = std::log10(bridgeheads + 1);
  const double macrocycle_penalty = macrocycles > 0 ? std::log10(2) : 0.0;
  const double score2 = 0. - size_penalty - stereo_penalty - spiro_penalty - bridge_penalty - macrocycle_penalty;
  // Symmetric molecules have fewer distinct fragments than atoms: easier than their size says.
  const double score3 = atoms > static_cast<int>(distinct) ? std::log(double(atoms) / distinct) * .5 : 0.0;

  const double raw = score1 + score2 + score3;
  const double lo = -4.0, hi = 2.5;
  double sa = 11. - (raw - lo + 1) / (hi - lo) * 9.;
  if (sa > 8.) sa = 8. + std::log(sa + 1. - 9.);
  if (sa > 10.)
    sa = 10.0;
  else if (sa < 1.)
    sa = 1.0;
  return sa;
}

}  // namespace latent::chem
