#include "models/smiles_vae/smiles_grammar.h"

#include <algorithm>
#include <cctype>
#include <functional>

#include "latent/smiles_tokens.h"

namespace latent {
namespace {

// The most bonds an element takes when neutral (RDKit's largest allowed valence for the organic
// subset and common elements; 4 for anything else).
int base_valence(const std::string& element) {
  static const std::vector<std::pair<std::string, int>> table = {{"H", 1},  {"B", 3},  {"C", 4}, {"N", 3},  {"O", 2},  {"F", 1},
                                                                 {"Si", 4}, {"P", 5},  {"S", 6}, {"Cl", 1}, {"Se", 6}, {"Br", 1},
                                                                 {"I", 5},  {"Na", 1}, {"K", 1}, {"Li", 1}};
  for (const auto& [e, v] : table)
    if (e == element) return v;
  return 4;
}

// How a charge changes the bonds an element can take: N+ and O+ gain one per charge (isoelectronic
// with C and N), anions of N, O, S and halogens lose one, C takes 3 either way, B- takes 4.
int charged_valence(const std::string& element, int charge) {
  const int v = base_valence(element);
  if (charge == 0) return v;
  if (element == "C") return 3;
  if (element == "B") return charge < 0 ? 4 : 2;
  if (element == "N" || element == "O" || element == "P" || element == "S" || element == "Se")
    return element == "S" || element == "Se" ? (charge > 0 ? 3 : 1) : std::max(0, v + charge);
  return std::max(0, v + charge);
}

// The bonds a bracket atom ("[nH]", "[N+]", "[C@@H]", "[13CH3]", "[O-]") can take besides its
// hydrogens, or -1 when it does not read as one.
int bracket_capacity(const std::string& t) {
  size_t i = 1;
  while (i < t.size() && std::isdigit(static_cast<unsigned char>(t[i]))) ++i;  // isotope
  if (i >= t.size()) return -1;
  std::string element;
  if (std::isupper(static_cast<unsigned char>(t[i]))) {
    element = t.substr(i, 1);
    ++i;
    if (i < t.size() && std::islower(static_cast<unsigned char>(t[i])) && t[i] != 'H' &&
        base_valence(element + t[i]) != 4) {  // a two-letter element of the table (Cl, Br, Si, Se, Na, Li)
      element += t[i];
      ++i;
    }
  } else if (std::islower(static_cast<unsigned char>(t[i]))) {
    if (t.compare(i, 2, "se") == 0) {
      element = "Se";
      i += 2;
    } else {
      element = std::string(1, static_cast<char>(std::toupper(static_cast<unsigned char>(t[i]))));
      ++i;
    }
  } else {
    return -1;
  }
  while (i < t.size() && t[i] == '@') ++i;  // chirality (@, @@; @TH1 and friends are rare enough to ignore)
  int hydrogens = 0;
  if (i < t.size() && t[i] == 'H') {
    ++i;
    hydrogens = 1;
    if (i < t.size() && std::isdigit(static_cast<unsigned char>(t[i]))) hydrogens = t[i++] - '0';
  }
  int charge = 0;
  while (i < t.size() && (t[i] == '+' || t[i] == '-')) {
    const int sign = t[i] == '+' ? 1 : -1;
    ++i;
    if (i < t.size() && std::isdigit(static_cast<unsigned char>(t[i])))
      charge += sign * (t[i++] - '0');
    else
      charge += sign;
  }
  int capacity = charged_valence(element, charge) - hydrogens;
  return std::max(0, capacity);
}

// An atom token's aromatic class (SmilesGrammar::Aromatic's order): 0 aliphatic, 1 c (and the
// cations that take a double bond as it does), 2 n, 3 an aromatic atom that gives a ring a lone pair.
uint8_t aromatic_class(const std::string& t) {
  if (t == "c") return 1;
  if (t == "n") return 2;
  if (t == "o" || t == "s" || t == "p" || t == "b") return 3;
  if (t.size() < 3 || t.front() != '[') return 0;
  size_t i = 1;
  while (i < t.size() && std::isdigit(static_cast<unsigned char>(t[i]))) ++i;  // isotope
  if (i >= t.size() || !std::islower(static_cast<unsigned char>(t[i]))) return 0;
  if (t.find('+', i) != std::string::npos) return 1;  // [n+], [nH+], [o+]: a double bond in the ring, as c
  const bool plain = t.find_first_of("H+-", i) == std::string::npos;
  if (plain && t.compare(i, 2, "c]") == 0) return 1;
  if (plain && (t.compare(i, 2, "n]") == 0 || t.compare(i, 3, "n@") == 0)) return 2;
  return 3;
}

}  // namespace

SmilesGrammar::SmilesGrammar(const std::vector<std::string>& tokens) : tokens_(tokens.size()) {
  static const std::vector<std::pair<std::string, int>> organic = {{"B", 3}, {"C", 4},  {"N", 3},  {"O", 2}, {"P", 5}, {"S", 6},
                                                                   {"F", 1}, {"Cl", 1}, {"Br", 1}, {"I", 1}, {"b", 3}, {"c", 4},
                                                                   {"n", 3}, {"o", 2},  {"p", 3},  {"s", 4}};
  static const std::vector<std::pair<std::string, int>> bonds = {{"-", 1}, {"=", 2}, {"#", 3}, {"$", 4},
                                                                 {":", 1}, {"/", 1}, {"\\", 1}};
  for (size_t id = 0; id < tokens.size(); ++id) {
    const std::string& t = tokens[id];
    Token& k = tokens_[id];
    if (static_cast<int64_t>(id) == SmilesVocabulary::kEos) {
      k.kind = kEos;
      continue;
    }
    if (static_cast<int64_t>(id) < SmilesVocabulary::kSpecials) continue;  // pad, bos, unk: never written
    for (const auto& [s, v] : organic)
      if (t == s) k = {kAtom, v};
    for (const auto& [s, v] : bonds)
      if (t == s) k = {kBond, v};
    if (t == "(") k = {kOpen, 0};
    if (t == ")") k = {kClose, 0};
    if (t.size() == 1 && std::isdigit(static_cast<unsigned char>(t[0]))) k = {kRing, t[0] - '0'};
    if (t.size() == 3 && t[0] == '%') k = {kRing, std::stoi(t.substr(1))};
    if (t.size() > 2 && t.front() == '[' && t.back() == ']') {
      const int c = bracket_capacity(t);
      if (c >= 0) k = {kAtom, c};
    }
    if (k.kind == kAtom) k.aromatic = static_cast<Aromatic>(aromatic_class(t));
  }
}

void SmilesGrammar::wrote_bond(State& s, int a, int b, int order) {
  s.written_bonds.emplace_back(a, b);
  if (order != 2) return;
  for (int x : {a, b})  // an aromatic atom with a double bond outside the ring (c=O) needs no partner in it
    if (s.aromatic[static_cast<size_t>(x)] != kAliphatic) s.aromatic[static_cast<size_t>(x)] = kAromaticDonor;
}

bool SmilesGrammar::bond_written(const State& s, int a, int b) {
  return std::any_of(s.written_bonds.begin(), s.written_bonds.end(), [&](const std::pair<int, int>& e) {
    return (e.first == a && e.second == b) || (e.first == b && e.second == a);
  });
}

bool SmilesGrammar::closes_odd_aromatic_ring(const State& s, const State::Ring& open, bool current_may_grow) {
  const auto& arom = s.aromatic;
  const int from = open.atom, to = s.prev;
  if (arom[static_cast<size_t>(from)] == kAliphatic || arom[static_cast<size_t>(to)] == kAliphatic) return false;
  // The ring the closure makes: the shortest path between the two atoms over aromatic atoms and
  // implicit bonds (breadth first); a bond written out ("c-c", "c=c") is not an aromatic one.
  std::vector<int> parent(s.capacity.size(), -1);
  std::vector<int> queue = {from};
  parent[static_cast<size_t>(from)] = from;
  for (size_t head = 0; head < queue.size() && parent[static_cast<size_t>(to)] < 0; ++head) {
    const int at = queue[head];
    for (int n : s.neighbors[static_cast<size_t>(at)])
      if (parent[static_cast<size_t>(n)] < 0 && arom[static_cast<size_t>(n)] != kAliphatic && !bond_written(s, at, n)) {
        parent[static_cast<size_t>(n)] = at;
        queue.push_back(n);
      }
  }
  if (parent[static_cast<size_t>(to)] < 0) return false;
  std::vector<int> ring;
  for (int a = to; a != from; a = parent[static_cast<size_t>(a)]) ring.push_back(a);
  ring.push_back(from);
  if (ring.size() % 2 == 0) return false;
  auto open_elsewhere = [&](int a) {  // a ring bond of its own still to close
    return std::any_of(s.rings.begin(), s.rings.end(),
                       [&](const State::Ring& r) { return r.atom == a && r.label != open.label; });
  };
  for (int a : ring) {
    const size_t i = static_cast<size_t>(a);
    if (arom[i] == kAliphatic || arom[i] == kAromaticDonor) return false;
    if (arom[i] == kAromaticN) {
      const size_t bonds = s.neighbors[i].size() + (a == from || a == to ? 1 : 0);
      const bool may_grow = (a == to && current_may_grow) || open_elsewhere(a) ||
                            std::find(s.branches.begin(), s.branches.end(), a) != s.branches.end();
      if (bonds >= 3 || may_grow) return false;
    }
  }
  return true;
}

void SmilesGrammar::mark_ring(const std::vector<int>& parent, int from, int to, std::vector<uint8_t>& in_ring) {
  std::vector<uint8_t> above(parent.size(), 0);
  for (int a = from; a >= 0; a = parent[static_cast<size_t>(a)]) above[static_cast<size_t>(a)] = 1;
  int top = to;
  for (; !above[static_cast<size_t>(top)]; top = parent[static_cast<size_t>(top)]) in_ring[static_cast<size_t>(top)] = 1;
  for (int a = from; a != top; a = parent[static_cast<size_t>(a)]) in_ring[static_cast<size_t>(a)] = 1;
  in_ring[static_cast<size_t>(top)] = 1;
}

bool SmilesGrammar::aromatic_ok(const State& s, const Move& m) {
  const size_t n = s.aromatic.size();
  const size_t prev = static_cast<size_t>(std::max(s.prev, 0));
  std::vector<int> cap(s.capacity);
  if (s.prev >= 0) cap[prev] -= m.spends;
  std::vector<uint8_t> in_ring(s.in_ring);
  if (m.ring_from >= 0) mark_ring(s.parent, m.ring_from, s.prev, in_ring);
  std::vector<int> labels(n, 0);  // ring bonds still to close at each atom: neighbours to come
  for (const auto& r : s.rings)
    if (r.label != m.label) ++labels[static_cast<size_t>(r.atom)];
  if (m.opens) ++labels[prev];
  // Where new bonds can start after the move: the open branch points, the atoms holding ring bonds
  // and the one the string is at (a new atom below s.prev counts as one in its subtree).
  std::vector<uint8_t> start(n, 0);
  if (!m.end) {
    for (int b : s.branches) start[static_cast<size_t>(b)] = 1;
    for (size_t a = 0; a < n; ++a) start[a] = start[a] || labels[a] > 0;
    if (s.prev >= 0 && s.prev != m.leaves) start[prev] = 1;
  }
  const int below_prev = m.new_atom ? 1 : 0;
  std::vector<int> count(n, 0), joined_children(n, 0);  // start points in each subtree; children leading to one
  for (size_t a = n; a-- > 0;) {
    count[a] += start[a] + (a == prev ? below_prev : 0);
    if (a == prev) joined_children[a] += below_prev;
    const int p = s.parent[a];
    if (p >= 0 && count[a] > 0) count[static_cast<size_t>(p)] += count[a], ++joined_children[static_cast<size_t>(p)];
  }
  int total = below_prev;
  for (size_t a = 0; a < n; ++a) total += start[a];
  auto doubled = [&](size_t a) { return static_cast<int>(a) == m.doubled[0] || static_cast<int>(a) == m.doubled[1]; };
  // Every aromatic atom outside a ring must lie where a ring can still run through it, with the
  // bonds that takes (two at it, less those that already lead towards a start) and its double bond.
  for (size_t a = 0; a < n; ++a) {
    if (s.aromatic[a] == kAliphatic || in_ring[a]) continue;
    if (!start[a]) {
      if (!(count[a] > 0 && (count[a] < total || joined_children[a] >= 2))) return false;
      continue;
    }
    const int usable = joined_children[a] + (s.parent[a] >= 0 && total - count[a] > 0 ? 1 : 0) + labels[a];
    const int needed = std::max(0, 2 - usable) + (s.aromatic[a] == kAromaticC && !doubled(a) ? 1 : 0);
    if (cap[a] < needed) return false;
  }
  // Kekule: each aromatic c or two-neighbour n that can take no more bonds and has no exocyclic
  // double bond needs one from a distinct aromatic neighbour over an implicit bond.
  auto open = [&](size_t a) { return start[a] && (labels[a] > 0 || cap[a] >= 1); };
  std::vector<uint8_t> role(n, 0);  // 0 takes no double bond, 1 needs one, 2 free (open)
  std::vector<int> needy;
  for (size_t i = 0; i < n; ++i) {
    const int a = static_cast<int>(i);
    if ((s.aromatic[i] != kAromaticC && s.aromatic[i] != kAromaticN) || doubled(i)) continue;
    const size_t degree = s.neighbors[i].size() + static_cast<size_t>(labels[i]) + (a == m.grows[0] || a == m.grows[1] ? 1 : 0);
    // An open c stays free only with room for a new bond and its double bond, or a ring bond to come.
    const bool free = open(i) && (s.aromatic[i] == kAromaticN || labels[i] > 0 || cap[i] >= 2);
    if (free) {
      role[i] = 2;
    } else if (s.aromatic[i] == kAromaticC || degree <= 2) {
      if (cap[i] < 1) return false;  // no valence left for the double bond it needs
      role[i] = 1;
      needy.push_back(a);
    }
  }
  if (needy.empty()) return true;
  std::vector<std::vector<int>> partners(n);
  auto link = [&](int a, int b) {
    if (role[static_cast<size_t>(a)] && role[static_cast<size_t>(b)] && cap[static_cast<size_t>(a)] >= 1 &&
        cap[static_cast<size_t>(b)] >= 1) {
      partners[static_cast<size_t>(a)].push_back(b);
      partners[static_cast<size_t>(b)].push_back(a);
    }
  };
  for (size_t i = 0; i < n; ++i)
    for (int j : s.neighbors[i])
      if (static_cast<int>(i) < j && !bond_written(s, static_cast<int>(i), j)) link(static_cast<int>(i), j);
  if (m.a >= 0) link(m.a, m.b);
  const int outside = static_cast<int>(n);  // the new aromatic atom, m.partner's free partner
  std::vector<int> mate(n + 1, -1);
  int budget = 20000;  // search steps; past it the structure is assumed reachable
  std::function<bool()> search = [&]() -> bool {
    if (--budget < 0) return true;
    int best = -1;
    size_t fewest = 99;
    for (int a : needy)  // the unmatched atom with the fewest free partners first
      if (mate[static_cast<size_t>(a)] < 0) {
        size_t k = (a == m.partner && mate[n] < 0) ? 1 : 0;
        for (int b : partners[static_cast<size_t>(a)]) k += mate[static_cast<size_t>(b)] < 0;
        if (k < fewest) fewest = k, best = a;
      }
    if (best < 0) return true;
    if (fewest == 0) return false;
    std::vector<int> options = partners[static_cast<size_t>(best)];
    if (best == m.partner) options.push_back(outside);
    for (int b : options) {
      if (mate[static_cast<size_t>(b)] >= 0) continue;
      mate[static_cast<size_t>(best)] = b, mate[static_cast<size_t>(b)] = best;
      if (search()) return true;
      mate[static_cast<size_t>(best)] = -1, mate[static_cast<size_t>(b)] = -1;
    }
    return false;
  };
  return search();
}

int64_t SmilesGrammar::finish_cost(State::Stage stage, size_t depth, size_t rings, int atoms) {
  const int64_t atom = stage == State::kStart || stage == State::kAfterBond || stage == State::kAfterOpen ? 1 : 0;
  // Open rings: a digit each, after the atoms needed to host them (past the one the stage needs).
  return atom + (rings > 0 ? static_cast<int64_t>(rings) + atoms : 0) + static_cast<int64_t>(depth) + 1;
}

void SmilesGrammar::allowed(const State& s, int64_t remaining, uint8_t* out) const {
  const size_t depth = s.branches.size(), rings = s.rings.size();
  const int prev_cap = s.prev >= 0 ? s.capacity[static_cast<size_t>(s.prev)] : 0;
  const bool after_atom = s.stage == State::kAfterAtom;
  auto fits = [&](State::Stage next, size_t d, size_t r, int atoms = 1) {
    return finish_cost(next, d, r, atoms) <= remaining - 1;
  };
  auto bonded = [&](int a, int b) {
    const auto& n = s.neighbors[static_cast<size_t>(a)];
    return std::find(n.begin(), n.end(), b) != n.end();
  };
  // The atoms to write before every open ring but `skip` can close: none when atom `a` (holding `cap`
  // bonds; -1: a new atom bonded to prev) can close them all, two when `a` opened one (a ring needs
  // three atoms), else one. `also_bonded`: an atom `a` is about to bond to.
  auto atoms_needed = [&](int a, int cap, int skip, int also_bonded = -2) {
    int orders = 0, shared = 0;
    bool host = true, opener = false;
    std::vector<int> openers;  // one atom cannot close two rings of the same opener (two bonds between them)
    for (const auto& r : s.rings) {
      if (r.label == skip) continue;
      if (std::find(openers.begin(), openers.end(), r.atom) != openers.end()) host = false, ++shared;
      openers.push_back(r.atom);
      orders += r.order;
      if (r.atom == a) opener = true;
      if (r.atom == a || r.atom == also_bonded || (a >= 0 ? bonded(a, r.atom) : r.atom == s.prev)) host = false;
    }
    if (host && cap >= orders) return 0;
    return (opener ? 2 : 1) + shared;  // each ring sharing an opener needs a host of its own
  };
  // Whether one of the outermost `levels` open branch points (prev's bonds less `used`) can take a bond.
  auto branch_can = [&](size_t levels, int used) {
    for (size_t k = 0; k < levels && k < depth; ++k) {
      const int b = s.branches[k];
      if (s.capacity[static_cast<size_t>(b)] - (b == s.prev ? used : 0) >= 1) return true;
    }
    return false;
  };
  // With rings open, the string must be able to go on: from the atom it is at (holding `cap` bonds)
  // or from a branch point it can return to.
  auto can_go_on = [&](size_t open_rings, int cap, size_t levels, int used) {
    return open_rings == 0 || cap >= 1 || branch_can(levels, used);
  };
  // The aromatic checks per kind of move (once an aromatic atom is written), each computed once.
  const bool any_aromatic = std::any_of(s.aromatic.begin(), s.aromatic.end(), [](uint8_t a) { return a != kAliphatic; });
  auto aromatic = [&](const Move& m) { return !any_aromatic || aromatic_ok(s, m); };
  // An atom bonded to s.prev with `order` (`partner`: an aromatic one over an implicit bond, which can
  // give s.prev its double bond; `grows`: one that can take more bonds): memoized.
  int8_t atom_memo[5][2][2] = {};  // 0 unknown, 1 no, 2 yes
  auto atom_after = [&](int order, bool partner, bool grows) {
    if (s.stage == State::kStart || !any_aromatic) return true;
    partner = partner && s.aromatic[static_cast<size_t>(s.prev)] != kAliphatic;
    int8_t& known = atom_memo[std::min(order, 4)][partner ? 1 : 0][grows ? 1 : 0];
    if (known == 0) {
      Move m;
      m.leaves = m.grows[0] = s.prev;
      m.new_atom = grows;
      m.spends = order;
      if (partner) m.partner = s.prev;
      if (order == 2) m.doubled[0] = s.prev;
      known = aromatic_ok(s, m) ? 2 : 1;
    }
    return known == 2;
  };
  auto atom_ok = [&](const Token& t) {
    const int order = s.bond > 0 ? s.bond : 1;
    return atom_after(order, s.bond == 0 && (t.aromatic == kAromaticC || t.aromatic == kAromaticN), t.value - order >= 1);
  };
  // '(': s.prev becomes a branch point with a new atom below it.
  auto branch_ok = [&]() {
    Move m;
    m.spends = 1;
    m.grows[0] = s.prev;
    m.new_atom = true;
    return aromatic(m);
  };
  int8_t opens_memo = -1;
  for (size_t id = 0; id < tokens_.size(); ++id) {
    const Token& t = tokens_[id];
    bool ok = false;
    switch (t.kind) {
      case kAtom: {
        if (s.stage == State::kDone) break;
        const int order = s.bond > 0 ? s.bond : 1;
        if (s.stage == State::kStart)
          ok = can_go_on(rings, t.value, 0, 0);
        else
          ok = prev_cap >= order && t.value >= order && can_go_on(rings, t.value - order, depth, order);
        const int cap = s.stage == State::kStart ? t.value : t.value - order;
        ok = ok && fits(State::kAfterAtom, depth, rings, atoms_needed(-1, cap, -1)) && atom_ok(t);
        break;
      }
      case kBond:
        ok = (after_atom || s.stage == State::kAfterOpen || s.stage == State::kAfterClose) && prev_cap >= t.value &&
             fits(State::kAfterBond, depth, rings, atoms_needed(-1, 1000, -1)) &&
             (atom_after(t.value, false, true) || (after_atom && rings > 0));  // an atom or a ring closure must follow
        break;
      case kOpen:
        ok = (after_atom || s.stage == State::kAfterClose) && prev_cap >= 1 &&
             fits(State::kAfterOpen, depth + 1, rings, atoms_needed(-1, 1000, -1)) && branch_ok();
        break;
      case kClose: {
        if (!(after_atom || s.stage == State::kAfterClose) || depth == 0 || s.needs_bond >= 0) break;
        const int b = s.branches.back(), cap = s.capacity[static_cast<size_t>(b)];
        // A ring digit cannot follow ')': the branch point's rings close at a later atom.
        Move m;
        m.leaves = s.prev;
        ok = fits(State::kAfterClose, depth - 1, rings, std::max(1, atoms_needed(b, cap, -1))) &&
             can_go_on(rings, cap, depth - 1, 0) && aromatic(m);
        break;
      }
      case kRing: {
        if (!after_atom && !(s.stage == State::kAfterBond && !s.branch_bond)) break;  // "C(=1" is not SMILES
        const auto open = std::find_if(s.rings.begin(), s.rings.end(), [&](const State::Ring& r) { return r.label == t.value; });
        if (open != s.rings.end()) {  // closes it: a bond between two atoms that can take it
          const int order = s.bond > 0 ? s.bond : open->order;
          const bool clash = s.bond > 0 && open->written && s.bond != open->order;  // "C#1...=1"
          const int opener_cap = s.capacity[static_cast<size_t>(open->atom)] + open->order;
          const bool taken = open->atom == s.prev || bonded(s.prev, open->atom);  // a second bond between two atoms
          const bool odd_aromatic = s.bond == 0 && !open->written && closes_odd_aromatic_ring(s, *open, true);
          ok = !taken && !clash && !odd_aromatic && prev_cap >= order && opener_cap >= order &&
               fits(State::kAfterAtom, depth, rings - 1, atoms_needed(s.prev, prev_cap - order, t.value, open->atom)) &&
               can_go_on(rings - 1, prev_cap - order, depth, order);
          if (ok) {
            Move m;
            m.label = t.value;
            m.spends = order;
            m.grows[0] = s.prev, m.grows[1] = open->atom;
            if (s.bond == 0 && !open->written) m.a = open->atom, m.b = s.prev;
            if (order == 2) m.doubled[0] = s.prev, m.doubled[1] = open->atom;
            m.ring_from = open->atom;
            ok = aromatic(m);
          }
        } else {  // opens it, reserving the bond at this atom
          const int order = s.bond > 0 ? s.bond : 1;
          ok = prev_cap >= order && fits(State::kAfterAtom, depth, rings + 1, 2) &&
               can_go_on(rings + 1, prev_cap - order, depth, order);
          if (ok && opens_memo < 0) {
            Move m;
            m.spends = order;
            m.opens = true;
            opens_memo = aromatic(m) ? 1 : 0;
          }
          ok = ok && opens_memo == 1;
        }
        break;
      }
      case kEos:
        ok = (after_atom || s.stage == State::kAfterClose) && depth == 0 && rings == 0 && remaining >= 1 && s.needs_bond < 0 &&
             aromatic([] {
               Move m;
               m.end = true;
               return m;
             }());
        break;
      case kOther:
        break;
    }
    out[id] = ok ? 1 : 0;
  }
}

void SmilesGrammar::advance(State& s, int64_t id) const {
  const Token& t = tokens_.at(static_cast<size_t>(id));
  switch (t.kind) {
    case kAtom: {
      const int order = s.bond > 0 ? s.bond : 1;
      int cap = t.value;
      if (s.prev >= 0 && s.stage != State::kStart) {
        s.capacity[static_cast<size_t>(s.prev)] -= order;
        cap -= order;
      }
      const int atom = static_cast<int>(s.capacity.size());
      s.capacity.push_back(cap);
      s.aromatic.push_back(t.aromatic);
      s.neighbors.emplace_back();
      s.parent.push_back(s.stage != State::kStart ? s.prev : -1);
      s.in_ring.push_back(0);
      if (s.stage != State::kStart) {
        s.neighbors.back().push_back(s.prev);
        s.neighbors[static_cast<size_t>(s.prev)].push_back(atom);
        if (s.bond > 0) wrote_bond(s, s.prev, atom, s.bond);
        if (s.needs_bond == s.prev) s.needs_bond = -1;
      }
      s.prev = atom;
      s.bond = 0;
      s.stage = State::kAfterAtom;
      break;
    }
    case kBond:
      s.bond = t.value;
      s.branch_bond = s.stage == State::kAfterOpen;
      s.stage = State::kAfterBond;
      break;
    case kOpen:
      s.branches.push_back(s.prev);
      s.stage = State::kAfterOpen;
      break;
    case kClose:
      s.prev = s.branches.back();
      s.branches.pop_back();
      s.stage = State::kAfterClose;
      break;
    case kRing: {
      const auto open = std::find_if(s.rings.begin(), s.rings.end(), [&](const State::Ring& r) { return r.label == t.value; });
      if (s.needs_bond == s.prev) s.needs_bond = -1;  // a ring bond, opened or closed, is its third
      if (open != s.rings.end()) {
        if (s.bond == 0 && !open->written && closes_odd_aromatic_ring(s, *open, false)) s.needs_bond = s.prev;
        const int order = s.bond > 0 ? s.bond : open->order;
        s.capacity[static_cast<size_t>(open->atom)] -= order - open->order;
        s.capacity[static_cast<size_t>(s.prev)] -= order;
        s.neighbors[static_cast<size_t>(s.prev)].push_back(open->atom);
        s.neighbors[static_cast<size_t>(open->atom)].push_back(s.prev);
        if (s.bond > 0 || open->written) wrote_bond(s, s.prev, open->atom, order);
        mark_ring(s.parent, open->atom, s.prev, s.in_ring);
        s.rings.erase(open);
      } else {
        const int order = s.bond > 0 ? s.bond : 1;
        s.capacity[static_cast<size_t>(s.prev)] -= order;
        s.rings.push_back({t.value, s.prev, order, s.bond > 0});
      }
      s.bond = 0;
      s.stage = State::kAfterAtom;
      break;
    }
    case kEos:
    case kOther:
      s.stage = State::kDone;
      break;
  }
}

std::string SmilesGrammar::kind(int64_t id) const {
  static const char* names[] = {"other", "atom", "bond", "open", "close", "ring", "eos"};
  return names[tokens_.at(static_cast<size_t>(id)).kind];
}

int SmilesGrammar::atom_capacity(int64_t id) const {
  const Token& t = tokens_.at(static_cast<size_t>(id));
  return t.kind == kAtom ? t.value : -1;
}

}  // namespace latent
