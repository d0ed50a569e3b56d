// Constrained decoding of SMILES: which tokens may come next so that the string stays a syntactically
// whole SMILES (branches and ring closures opened and closed in order, an atom after every bond)
// whose atoms keep legal valences (the bonds written to each atom never exceed what its element and
// charge allow), and so that whatever is open can still be closed before max_length: a token is
// allowed only when some atom on the way back out (the current one, then each branch point) can
// still take a bond while a ring is open, so a string seldom paints itself into a corner (the length
// budget is an estimate: a tangle of rings near max_length can leave no token, and generation ends
// the row there). Aromaticity
// (kekulization) is not modelled: a string the mask allows can still fail RDKit's aromatic checks.
//
// Plain C++ over the vocabulary's token strings, no RDKit.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace latent {

class SmilesGrammar {
 public:
  /// tokens: the vocabulary by id (SmilesVocabulary's order, specials first).
  explicit SmilesGrammar(const std::vector<std::string>& tokens);

  /// One row's progress through a SMILES.
  struct State {
    enum Stage : uint8_t { kStart, kAfterAtom, kAfterBond, kAfterOpen, kAfterClose, kDone };
    Stage stage = kStart;
    int bond = 0;                             // the order written by a bond token awaiting its atom (0: none)
    bool branch_bond = false;                 // that bond opens a branch: an atom must follow
    int prev = -1;                            // the atom new bonds attach to
    std::vector<int> capacity;                // bonds each atom can still take
    std::vector<std::vector<int>> neighbors;  // each atom's bonded atoms
    std::vector<int> branches;                // atoms at each open '('
    struct Ring {
      int label, atom, order;  // the atom that opened it and the bond order it reserved there
      bool written;            // the order was written there ("C=1"), not implied
    };
    std::vector<Ring> rings;  // open ring closures
  };

  /// allowed[v] = 1 for each token id v that may follow `s` with `remaining` tokens left to write
  /// (this one included; kEos counts as one).
  void allowed(const State& s, int64_t remaining, uint8_t* allowed) const;
  /// `s` after token `id` (one allowed() permitted).
  void advance(State& s, int64_t id) const;

  /// What a token is, for tests: "atom", "bond", "open", "close", "ring", "eos", "other".
  std::string kind(int64_t id) const;
  /// The bonds an atom token can take (-1 for tokens that are not atoms).
  int atom_capacity(int64_t id) const;

 private:
  enum Kind : uint8_t { kOther, kAtom, kBond, kOpen, kClose, kRing, kEos };
  struct Token {
    Kind kind = kOther;
    int value = 0;  // atom: bond capacity; bond: order; ring: label
  };
  // Tokens needed to finish from a state with `depth` open branches and `rings` open rings, at a
  // stage, when `atoms` more atoms must be written before the current one's rings can close.
  static int64_t finish_cost(State::Stage stage, size_t depth, size_t rings, int atoms);

  std::vector<Token> tokens_;
};

}  // namespace latent
