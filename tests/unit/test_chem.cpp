// latent's chemistry against RDKit's Python (tests/chem/rdkit_reference.py writes the fixture):
// canonical SMILES, logP, weight, TPSA, QED and SA score, the pool's filters and split.
#include <gtest/gtest.h>

#include <fstream>
#include <set>
#include <sstream>

#include "latent/chem.h"
#include "latent/error.h"
#include "latent/smiles_tokens.h"
#include "test_util.h"

namespace latent {
namespace {

// Properties are sums of tabulated contributions in double precision on both sides; 1e-5 (absolute)
// is the issue's bound and leaves room only for summation order.
constexpr double kTolerance = 1e-5;

struct Row {
  std::string input, canonical;
  int split = -1;
  MoleculeProperties p;
};

std::vector<std::string> csv_fields(const std::string& line) {
  std::vector<std::string> out;
  std::string f;
  bool quoted = false;
  for (char c : line) {
    if (c == '"')
      quoted = !quoted;
    else if (c == ',' && !quoted)
      out.push_back(std::move(f)), f.clear();
    else
      f += c;
  }
  out.push_back(f);
  return out;
}

std::vector<Row> fixture_rows() {
  std::ifstream in(std::string(LATENT_FIXTURES) + "/chem_properties.csv");
  std::vector<Row> rows;
  std::string line;
  std::getline(in, line);  // provenance
  std::getline(in, line);  // column names
  while (std::getline(in, line)) {
    const auto f = csv_fields(line);
    EXPECT_EQ(f.size(), 10u) << line;
    if (f.size() != 10) continue;
    Row r{f[0], f[1]};
    if (!r.canonical.empty()) {
      r.split = std::stoi(f[2]);
      r.p = {std::stod(f[3]), std::stod(f[4]), std::stod(f[5]), std::stod(f[6]),
             std::stod(f[7]), std::stoi(f[8]), std::stoi(f[9])};
    }
    rows.push_back(r);
  }
  return rows;
}

#define REQUIRE_RDKIT() \
  if (!chem_available()) GTEST_SKIP() << "this latent was built without RDKit (librdkit-dev)"

TEST(Chem, CanonicalSmilesAndPropertiesMatchRdkitPython) {
  REQUIRE_RDKIT();
  const auto rows = fixture_rows();
  ASSERT_GT(rows.size(), 150u);
  int molecules = 0;
  for (const Row& r : rows) {
    SCOPED_TRACE(r.input);
    const auto c = canonical_smiles(r.input);
    if (r.canonical.empty()) {
      EXPECT_FALSE(c.has_value()) << *c;
      EXPECT_THROW(molecule_properties(r.input), Error);
      continue;
    }
    ++molecules;
    ASSERT_TRUE(c.has_value());
    EXPECT_EQ(*c, r.canonical);
    EXPECT_EQ(molecule_split(*c), r.split);
    const MoleculeProperties p = molecule_properties(*c);
    EXPECT_NEAR(p.logp, r.p.logp, kTolerance);
    EXPECT_NEAR(p.mw, r.p.mw, kTolerance);
    EXPECT_NEAR(p.tpsa, r.p.tpsa, kTolerance);
    EXPECT_NEAR(p.qed, r.p.qed, kTolerance);
    EXPECT_NEAR(p.sa, r.p.sa, kTolerance);
    EXPECT_EQ(p.heavy_atoms, r.p.heavy_atoms);
    EXPECT_EQ(p.rings, r.p.rings);
  }
  EXPECT_GT(molecules, 150);
}

// RDKit reads this string (a constrained sample of a SMILES VAE), but cannot read back the canonical
// SMILES it writes for it (its aromaticity perception makes a ring that cannot be kekulized): not a
// valid molecule, so the metrics never meet a string they cannot fingerprint.
TEST(Chem, AMoleculeWhoseCanonicalSmilesDoesNotReadBackIsInvalid) {
  REQUIRE_RDKIT();
  EXPECT_FALSE(canonical_smiles("COC(=O)c1sc(N2C(=O)CSC2c2ccccc2NC(=O)c2ccc(OC)cc2)cs2C=C(F)OC2=NCc1").has_value());
}

TEST(Chem, RandomizedSmilesIsTheSameMoleculeWrittenAnotherWay) {
  REQUIRE_RDKIT();
  int larger = 0, respelled = 0;  // molecules of 10 or more heavy atoms; those given several spellings
  for (const Row& r : fixture_rows()) {
    if (r.canonical.empty()) continue;
    SCOPED_TRACE(r.canonical);
    std::set<std::string> spellings;
    for (uint64_t seed = 1; seed <= 8; ++seed) {
      const std::string s = randomized_smiles(r.canonical, seed);
      EXPECT_EQ(s, randomized_smiles(r.canonical, seed)) << "not reproducible";
      EXPECT_EQ(canonical_smiles(s).value_or("(invalid)"), r.canonical);
      spellings.insert(s);
    }
    if (r.p.heavy_atoms >= 10) {
      ++larger;
      respelled += spellings.size() > 1 ? 1 : 0;
    }
  }
  // A molecule as symmetric as cyclododecane has one spelling; nearly all others have many.
  EXPECT_GE(respelled, larger * 95 / 100) << respelled << " of " << larger;
  EXPECT_THROW(randomized_smiles("C1CC", 1), Error);
}

TEST(Chem, PoolFiltersKeepTheLargestFragmentOfDrugLikeMolecules) {
  REQUIRE_RDKIT();
  PoolFilterCounts counts;
  const auto kept = filter_molecules({{"C[N+](C)(C)Cc1ccccc1.[Cl-]", "a"},  // salt: the cation stays
                                      {"c1ccccc1CC(=O)O", "b"},
                                      {"OC(=O)Cc1ccccc1", "c"},      // the same molecule as b
                                      {"C1CC", "d"},                 // unreadable
                                      {"c1ccccc1[Si](C)(C)C", "e"},  // silicon
                                      {"CCO", "f"},                  // 3 heavy atoms
                                      {std::string(39, 'C'), "g"},   // 39 heavy atoms
                                      {"", "h"}},
                                     &counts);
  ASSERT_EQ(kept.size(), 2u);
  EXPECT_EQ(kept[0].smiles, "C[N+](C)(C)Cc1ccccc1");
  EXPECT_EQ(kept[0].source, "a");
  EXPECT_EQ(kept[1].smiles, "O=C(O)Cc1ccccc1");
  EXPECT_EQ(kept[1].source, "b");
  EXPECT_EQ(counts.duplicates, 1);
  EXPECT_EQ(counts.unreadable, 2);
  EXPECT_EQ(counts.elements, 1);
  EXPECT_EQ(counts.size, 2);
}

TEST(Chem, PenalizedLogpSubtractsSaAndLargeRings) {
  REQUIRE_RDKIT();
  const std::string ring = "C1CCCCCCCCCCC1";  // 12 atoms: 6 beyond six
  const MoleculeProperties p = molecule_properties(ring);
  EXPECT_NEAR(penalized_logp(p, ring), p.logp - p.sa - 6.0, 1e-12);
  const MoleculeProperties b = molecule_properties("c1ccccc1");
  EXPECT_NEAR(penalized_logp(b, "c1ccccc1"), b.logp - b.sa, 1e-12);
}

TEST(Chem, TheSplitIsFixedAndNearEightyTenTen) {
  int counts[3] = {0, 0, 0};
  for (int i = 0; i < 20000; ++i) ++counts[molecule_split("C" + std::to_string(i))];
  EXPECT_NEAR(counts[0] / 20000.0, 0.8, 0.02);
  EXPECT_NEAR(counts[1] / 20000.0, 0.1, 0.01);
  EXPECT_NEAR(counts[2] / 20000.0, 0.1, 0.01);
}

TEST(SmilesTokens, BracketAtomsTwoLetterAtomsAndRingClosuresAreOneToken) {
  using V = std::vector<std::string>;
  EXPECT_EQ(smiles_tokens("CC(=O)Nc1ccc(Cl)cc1Br"),
            (V{"C", "C", "(", "=", "O", ")", "N", "c", "1", "c", "c", "c", "(", "Cl", ")", "c", "c", "1", "Br"}));
  EXPECT_EQ(smiles_tokens("[nH]1cc[C@@H]%12C[N+](=O)[O-]"),
            (V{"[nH]", "1", "c", "c", "[C@@H]", "%12", "C", "[N+]", "(", "=", "O", ")", "[O-]"}));
  EXPECT_EQ(smiles_tokens("C/C=C\\C#N"), (V{"C", "/", "C", "=", "C", "\\", "C", "#", "N"}));
  EXPECT_TRUE(smiles_tokens("").empty());
  // Every valid SMILES of the fixture joins back from its tokens.
  for (const Row& r : fixture_rows()) {
    if (r.canonical.empty()) continue;
    std::string joined;
    for (const auto& t : smiles_tokens(r.input)) joined += t;
    EXPECT_EQ(joined, r.input);
    for (const auto& t : smiles_tokens(r.canonical)) joined += t;
    EXPECT_EQ(joined, r.input + r.canonical);
  }
}

TEST(SmilesTokens, CharactersSmilesDoesNotUseAreOneError) {
  for (const char* bad : {"CC[N+", "C[]C", "C%1", "C%a1", "CC X", "C\xc3\xa9", "CC]"}) {
    SCOPED_TRACE(bad);
    try {
      smiles_tokens(bad);
      ADD_FAILURE() << "no error";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("position"), std::string::npos) << e.what();
    }
  }
  EXPECT_THROW(smiles_tokens(std::string("C\0C", 3)), Error);
}

TEST(SmilesTokens, VocabularyRoundTripsAndKeepsItsIdsThroughJson) {
  const std::vector<std::string> data = {"CCO", "c1ccccc1Cl", "C[N+](C)(C)C", "OC(=O)Br"};
  const SmilesVocabulary v = SmilesVocabulary::build(data);
  EXPECT_EQ(v.token(SmilesVocabulary::kPad), "<pad>");
  EXPECT_EQ(v.token(SmilesVocabulary::kEos), "<eos>");
  EXPECT_EQ(v.size(), SmilesVocabulary::kSpecials + 10);  // C O c 1 Cl [N+] ( ) = Br
  for (const std::string& s : data) {
    const auto ids = v.encode(s);
    EXPECT_EQ(ids.front(), SmilesVocabulary::kBos);
    EXPECT_EQ(ids.back(), SmilesVocabulary::kEos);
    EXPECT_EQ(v.decode(ids), s);
  }
  EXPECT_EQ(v.encode("CS")[2], SmilesVocabulary::kUnk);
  EXPECT_EQ(v.decode(v.encode("CS")), "C?");
  const SmilesVocabulary back = SmilesVocabulary::from_json(v.to_json());
  EXPECT_EQ(back.encode("c1ccccc1Cl"), v.encode("c1ccccc1Cl"));
  EXPECT_THROW(SmilesVocabulary::from_json(nlohmann::json::array({"<pad>", "<bos>", "<eos>", "<unk>", "CC"})), Error);
  EXPECT_THROW(SmilesVocabulary::from_json(nlohmann::json::array({"<pad>", "<bos>", "<eos>", "<unk>", "C", "C"})), Error);
  EXPECT_THROW(SmilesVocabulary::from_json(nlohmann::json::array({"<bos>", "<pad>", "<eos>", "<unk>", "C"})), Error);
  EXPECT_THROW(SmilesVocabulary::from_json(nlohmann::json{{"a", 1}}), Error);
}

TEST(Chem, ReadsSmiAndCsvFilesWithPropertiesAndCountsWhatItSkips) {
  REQUIRE_RDKIT();
  test::TempDir dir;
  test::write_bytes(dir / "a.smi", "smiles name\nOCC mol1\nCCO mol2\nC1CC broken\n# note\n\nc1ccccc1\n");
  const MoleculeTable smi = read_molecule_file(dir / "a.smi");
  ASSERT_EQ(smi.molecules.size(), 2u);
  EXPECT_EQ(smi.molecules[0].smiles, "CCO");
  EXPECT_EQ(smi.molecules[0].source, dir / "a.smi" + ":2");
  EXPECT_EQ(smi.molecules[1].smiles, "c1ccccc1");
  EXPECT_EQ(smi.invalid, 1);
  EXPECT_EQ(smi.duplicates, 1);
  EXPECT_TRUE(smi.property_names.empty());

  test::write_bytes(dir / "b.csv", "id,SMILES,logP,qed,note\r\nz1,CCO,-0.1,0.4,\"a, b\"\r\nz2,\"c1ccccc1\",1.7,0.44,x\r\n");
  const MoleculeTable csv = read_molecule_file(dir / "b.csv");
  ASSERT_EQ(csv.molecules.size(), 2u);
  EXPECT_EQ(csv.property_names, (std::vector<std::string>{"logP", "qed"}));
  EXPECT_EQ(csv.properties[1], (std::vector<double>{1.7, 0.44}));
  EXPECT_THROW(read_molecule_file(dir / "b.csv", "id"), Error);      // ids are no SMILES: nothing readable
  EXPECT_THROW(read_molecule_file(dir / "b.csv", "smiles"), Error);  // an explicit name matches exactly
  test::write_bytes(dir / "c.csv", "smiles,x\nCCO,1\nCCN\n");
  EXPECT_THROW(read_molecule_file(dir / "c.csv"), Error);  // a ragged row
  test::write_bytes(dir / "d.sdf", "CCO\n");
  EXPECT_THROW(read_molecule_file(dir / "d.sdf"), Error);
}

TEST(Chem, WithoutRdkitEveryCallSaysSo) {
  if (chem_available()) GTEST_SKIP() << "this build has RDKit";
  try {
    canonical_smiles("CCO");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("RDKit"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace latent
