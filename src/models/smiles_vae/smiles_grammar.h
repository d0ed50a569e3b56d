// Constrained decoding of SMILES: which tokens may come next so that the string stays a syntactically
// whole SMILES (branches and ring closures opened and closed in order, an atom after every bond)
// whose atoms keep legal valences (the bonds written to each atom never exceed what its element and
// charge allow), and so that whatever is open can still be closed before max_length: a token is
// allowed only when some atom on the way back out (the current one, then each branch point) can
// still take a bond while a ring is open, so a string seldom paints itself into a corner (the length
// budget is an estimate: a tangle of rings near max_length can leave no token, and generation ends
// the row there). Of aromaticity (kekulization) it models three rules (aromatic_ok): every aromatic
// atom ends in a ring (the string never leaves one where no ring can still run through it); the
// aromatic atoms keep a Kekule structure within reach (each the string can no longer bond to that
// needs a double bond, a c without an exocyclic one or an n with two neighbours, gets one from a
// distinct aromatic neighbour: a matching, searched by backtracking); and an odd ring of aromatic
// atoms closes only when one of them can give the ring a lone pair (o, s, [nH], an n with three
// bonds, a c=O; an n that closes such a ring must then take its third bond), so "c1cccc1" and a
// pyrrole without its [nH] are not written. A string the mask allows can still fail RDKit's
// aromatic checks in rare cases (charged aromatic atoms, an explicit bond between two aromatic atoms).
//
// Plain C++ over the vocabulary's token strings, no RDKit.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
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
    int bond = 0;                                    // the order written by a bond token awaiting its atom (0: none)
    bool branch_bond = false;                        // that bond opens a branch: an atom must follow
    int prev = -1;                                   // the atom new bonds attach to
    std::vector<int> capacity;                       // bonds each atom can still take
    std::vector<uint8_t> aromatic;                   // each atom's Aromatic class
    std::vector<std::pair<int, int>> written_bonds;  // bonds written with a bond token ("c-c", "c=O")
    int needs_bond = -1;  // an n that closed an odd aromatic ring with no other lone pair: it takes a third bond
    std::vector<std::vector<int>> neighbors;  // each atom's bonded atoms
    std::vector<int> parent;                  // the atom each was written after (-1: the first)
    std::vector<uint8_t> in_ring;             // whether a closed ring runs through each atom
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
  // An atom as an aromatic ring sees it: not aromatic; c; n (a lone pair for the ring only with three
  // bonds); an aromatic atom that gives the ring a lone pair (o, s, [nH], charged or other brackets).
  enum Aromatic : uint8_t { kAliphatic, kAromaticC, kAromaticN, kAromaticDonor };
  struct Token {
    Kind kind = kOther;
    int value = 0;  // atom: bond capacity; bond: order; ring: label
    Aromatic aromatic = kAliphatic;
  };
  // Whether closing ring `open` at s.prev (with an implicit bond) would make an odd ring of aromatic
  // atoms joined by implicit bonds (the shortest such path) none of which can give it a lone pair.
  // With `current_may_grow` an n closing the ring counts as able to take a third bond later.
  static bool closes_odd_aromatic_ring(const State& s, const State::Ring& open, bool current_may_grow);
  // A token's effect on the aromatic atoms, for aromatic_ok().
  struct Move {
    int leaves = -1;            // the atom the string leaves (no longer the one new atoms bond to)
    bool new_atom = false;      // a new atom is bonded to s.prev (a place new bonds can start from)
    int spends = 0;             // bonds the token takes at s.prev
    bool opens = false;         // s.prev opens a ring bond
    int partner = -1;           // an atom the token bonds to a new aromatic atom that can give it a double bond
    int grows[2] = {-1, -1};    // atoms the token gives a neighbour
    int a = -1, b = -1;         // a new aromatic bond between two atoms (a ring closure)
    int ring_from = -1;         // the ring closure's other atom (the ring runs from it to s.prev)
    int label = -1;             // the ring label the token closes
    int doubled[2] = {-1, -1};  // atoms the token gives a written double bond (c=O): they need no other
    bool end = false;           // the string ends
  };
  // Whether the aromatic atoms can still end well after `m`. Each outside a ring must lie where a
  // ring can still run through it: in the smallest subtree of the written tree joining the places
  // new bonds can start from (open branch points, atoms holding ring bonds, the atom the string is
  // at), with the bonds that takes left at it when it is such a place (two, less those leading
  // towards another, plus its double bond). And every aromatic c or two-neighbour n that can take
  // no more bonds and has no exocyclic double bond needs a double bond from a distinct aromatic
  // neighbour over an implicit bond (a matching, searched by backtracking; the atoms that can still
  // take bonds are free either way).
  static bool aromatic_ok(const State& s, const Move& m);
  // Marks the ring a closure between atoms `from` and `to` makes: the written tree's path between them.
  static void mark_ring(const std::vector<int>& parent, int from, int to, std::vector<uint8_t>& in_ring);
  // Whether the bond between atoms a and b was written with a bond token (so it is not aromatic).
  static bool bond_written(const State& s, int a, int b);
  // Records a bond written with a token between atoms a and b.
  static void wrote_bond(State& s, int a, int b, int order);
  // Tokens needed to finish from a state with `depth` open branches and `rings` open rings, at a
  // stage, when `atoms` more atoms must be written before the current one's rings can close.
  static int64_t finish_cost(State::Stage stage, size_t depth, size_t rings, int atoms);

  std::vector<Token> tokens_;
};

}  // namespace latent
