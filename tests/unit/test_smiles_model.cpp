// The smiles_vae family end to end (config, molecule data, training, checkpoints, the property
// head) and the molecule metrics against RDKit's Python (tests/chem/rdkit_reference.py metrics).
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <set>

#include "latent/checkpoint.h"
#include "latent/checkpoint_data.h"
#include "latent/chem.h"
#include "latent/data.h"
#include "latent/error.h"
#include "latent/image.h"
#include "latent/molecule_eval.h"
#include "latent/smiles_vae.h"
#include "latent/train.h"
#include "models/smiles_vae/smiles_grammar.h"
#include "test_util.h"

namespace latent {
namespace {

#define REQUIRE_RDKIT() \
  if (!chem_available()) GTEST_SKIP() << "this latent was built without RDKit (librdkit-dev)"

// The canonical molecules of the chemistry fixture (a spread of the built-in pool and hard cases).
std::vector<std::string> fixture_molecules() {
  std::ifstream in(std::string(LATENT_FIXTURES) + "/chem_properties.csv");
  std::vector<std::string> out;
  std::string line;
  std::getline(in, line);
  std::getline(in, line);
  while (std::getline(in, line)) {
    const size_t a = line.find(',');
    const size_t b = line.find(',', a + 1);
    const std::string canonical = line.substr(a + 1, b - a - 1);
    if (!canonical.empty() && canonical.find('"') == std::string::npos) out.push_back(canonical);
  }
  return out;
}

std::string write_smi(const test::TempDir& dir, const std::vector<std::string>& molecules) {
  std::string text;
  for (size_t i = 0; i < molecules.size(); ++i) text += molecules[i] + " mol" + std::to_string(i) + "\n";
  const std::string path = dir / "mols.smi";
  test::write_bytes(path, text);
  return path;
}

ModelConfig tiny_config(const std::string& extra = "") {
  return ModelConfig::from_text_or_file(
      R"({"type": "smiles_vae", "latent": 8, "embedding": 16, "encoder_hidden": 24, "decoder_hidden": 32, "decoder_layers": 2,
          "max_length": 80)" +
      extra + "}");
}

// Training options for the tiny model on the fixture's molecules.
TrainOptions quick_training(const std::string& out, int64_t epochs) {
  TrainOptions o;
  o.epochs = epochs;
  o.batch_size = 32;
  o.adam.lr = 3e-3;
  o.threads = 1;
  o.progress = false;
  o.out = out;
  return o;
}

TEST(SmilesModel, ConfigKeysDefaultsAndErrors) {
  const ModelConfig c = ModelConfig::from_text_or_file(R"({"type": "smiles_vae"})");
  EXPECT_EQ(c.latent, 56);
  EXPECT_EQ(c.likelihood, Likelihood::kCategorical);
  EXPECT_EQ(c.smiles.properties, (std::vector<std::string>{"logp", "qed", "sa", "plogp"}));
  EXPECT_TRUE(c.smiles.augment);
  EXPECT_EQ(c.smiles.word_dropout, 0.0);
  EXPECT_EQ(ModelConfig::from_json(c.to_json()).to_json(), c.to_json());
  EXPECT_ERROR_WITH(ModelConfig::from_text_or_file(R"({"type": "smiles_vae", "hidden": [3]})"), "unknown key 'hidden'");
  EXPECT_ERROR_WITH(ModelConfig::from_text_or_file(R"({"type": "smiles_vae", "properties": ["qed", "qed"]})"), "twice");
  EXPECT_ERROR_WITH(ModelConfig::from_text_or_file(R"({"type": "smiles_vae", "augment": 1})"), "'augment'");
  EXPECT_ERROR_WITH(ModelConfig::from_text_or_file(R"({"type": "smiles_vae", "word_dropout": 1})"),
                    "'word_dropout' must be below 1");
  EXPECT_ERROR_WITH(ModelConfig::from_text_or_file(R"({"type": "smiles_vae", "word_dropout": -0.1})"), "'word_dropout'");
  EXPECT_ERROR_WITH(ModelConfig::from_text_or_file(R"({"type": "smiles_vae", "vocabulary": ["C"]})"), "vocabulary");
  EXPECT_ERROR_WITH(ModelConfig::from_text_or_file(R"({"type": "smiles_vae", "property_mean": [1, 2]})"), "one number per");
  EXPECT_ERROR_WITH(ModelConfig::from_text_or_file(R"({"type": "smiles_vae", "max_length": 0})"), "'max_length'");
}

TEST(SmilesModel, ReadsSmiAndCsvFilesAsMolecules) {
  REQUIRE_RDKIT();
  test::TempDir dir;
  const std::string smi = write_smi(dir, {"OCC", "c1ccccc1O", "CCO", "not a molecule", "CC(=O)O"});
  EXPECT_TRUE(is_molecule_source(smi, ""));
  Dataset d = molecule_load(smi, "");
  EXPECT_EQ(d.smiles,
            (std::vector<std::string>{"CCO", "Oc1ccccc1", "CC(=O)O"}));  // canonical, the repeat and the invalid one dropped
  ASSERT_EQ(d.x.sizes(), (std::vector<int64_t>{3, 11}));                 // kBos, the 9 tokens of Oc1ccccc1, kEos
  EXPECT_EQ(d.x[0][0].item<float>(), SmilesVocabulary::kBos);
  EXPECT_EQ(d.x[0][4].item<float>(), SmilesVocabulary::kEos);
  EXPECT_EQ(d.x[0][5].item<float>(), SmilesVocabulary::kPad);

  const std::string csv = dir / "mols.csv";
  test::write_bytes(csv, "name,SMILES,activity\na,CCN,1.5\nb,c1ccncc1,-2\nc,CCCl,0.25\n");
  EXPECT_TRUE(is_molecule_source(csv, ""));
  const std::string numbers = dir / "numbers.csv";
  test::write_bytes(numbers, "a,b\n1,2\n");
  EXPECT_FALSE(is_molecule_source(numbers, ""));
  Dataset c = molecule_load(csv, "");
  EXPECT_EQ(c.property_names, (std::vector<std::string>{"activity"}));
  ASSERT_TRUE(c.properties.defined());
  EXPECT_DOUBLE_EQ(c.properties[1][0].item<double>(), -2.0);
  EXPECT_ERROR_WITH(molecule_load(csv, "smiles_text"), "no column named 'smiles_text'");

  // The split shares one vocabulary and width; --standardize is refused.
  DataSpec spec;
  spec.source = write_smi(dir, fixture_molecules());
  spec.test_fraction = 0.2;
  const DataSplit split = load_data(spec);
  EXPECT_EQ(split.train.vocabulary, split.test.vocabulary);
  EXPECT_EQ(split.train.x.size(1), split.test.x.size(1));
  EXPECT_EQ(split.train.size() + split.test.size(), static_cast<int64_t>(fixture_molecules().size()));
  const std::set<std::string> train(split.train.smiles.begin(), split.train.smiles.end());
  for (const auto& s : split.test.smiles) EXPECT_EQ(train.count(s), 0u) << s;
  spec.standardize = true;
  EXPECT_ERROR_WITH(load_data(spec), "--standardize applies to numeric data");
}

TEST(SmilesModel, WordDropoutHidesOnlySmilesTokensFromTheDecoder) {
  const int64_t kBos = SmilesVocabulary::kBos, kEos = SmilesVocabulary::kEos, kPad = SmilesVocabulary::kPad,
                kUnk = SmilesVocabulary::kUnk;
  // Rows of 200 SMILES tokens (ids 4..9) between kBos and kEos, padded.
  at::Tensor tokens = at::randint(4, 10, {8, 205}, at::kLong);
  tokens.select(1, 0).fill_(kBos);
  tokens.select(1, 201).fill_(kEos);
  tokens.narrow(1, 202, 3).fill_(kPad);
  const at::Tensor uniform = at::rand({8, 205});
  const at::Tensor fed = drop_words(tokens, uniform, 0.3);
  EXPECT_TRUE(fed.select(1, 0).eq(kBos).all().item<bool>());
  EXPECT_TRUE(fed.select(1, 201).eq(kEos).all().item<bool>());
  EXPECT_TRUE(fed.narrow(1, 202, 3).eq(kPad).all().item<bool>());
  const at::Tensor words = fed.narrow(1, 1, 200), draws = uniform.narrow(1, 1, 200);
  EXPECT_TRUE(words.eq(kUnk).eq(draws < 0.3).all().item<bool>()) << "a token is hidden exactly when its draw is below p";
  EXPECT_TRUE((words.eq(kUnk) | words.eq(tokens.narrow(1, 1, 200))).all().item<bool>());
  EXPECT_TRUE(drop_words(tokens, uniform, 0.0).equal(tokens));

  // Training with it: the decoder that rarely sees the previous token predicts it worse.
  REQUIRE_RDKIT();
  test::TempDir dir;
  DataSpec spec;
  spec.source = write_smi(dir, fixture_molecules());
  TrainOptions o = quick_training(dir / "plain", 6);
  const double plain = train(tiny_config(), spec, o).last_metrics["train_recon"].get<double>();
  o.out = dir / "dropped";
  const TrainResult dropped = train(tiny_config(R"(, "word_dropout": 0.9)"), spec, o);
  EXPECT_GT(dropped.last_metrics["train_recon"].get<double>(), plain + 2.0) << plain;
  EXPECT_EQ(checkpoint_load(dropped.checkpoint).info.model.smiles.word_dropout, 0.9);
}

TEST(SmilesModel, TrainsResumesAndReloadsToTheSameNumbers) {
  REQUIRE_RDKIT();
  test::TempDir dir;
  DataSpec spec;
  spec.source = write_smi(dir, fixture_molecules());
  TrainOptions o = quick_training(dir / "run", 3);
  o.free_bits = 0.1;
  const TrainResult r = train(tiny_config(), spec, o);
  const nlohmann::json& m = r.last_metrics;
  for (const char* key : {"test_elbo", "test_recon", "test_kl", "test_token_accuracy", "active_units", "test_reconstruction",
                          "prior_validity", "train_property", "test_property_rmse"})
    EXPECT_TRUE(m.contains(key)) << key;
  std::ifstream metrics(dir / "run/metrics.jsonl");
  std::string first_line;
  std::getline(metrics, first_line);
  const nlohmann::json first = nlohmann::json::parse(first_line);
  EXPECT_LT(m["train_recon"].get<double>(), first["train_recon"].get<double>()) << "training did not lower the token NLL";
  EXPECT_GT(m["test_token_accuracy"].get<double>(), 0.2);

  // The checkpoint is self-describing: vocabulary and property standardization are in its config.
  LoadedCheckpoint ck = checkpoint_load(r.checkpoint);
  EXPECT_FALSE(ck.info.model.smiles.vocabulary.empty());
  EXPECT_EQ(ck.info.model.smiles.property_mean.size(), 4u);
  const Dataset test = checkpoint_data(ck, "", "test", 0);
  const nlohmann::json ev = ck.model->evaluate(test, 7, 500);
  // The KL (closed form) and the token accuracy (from z = mu) involve no noise.
  EXPECT_NEAR(ev["kl"].get<double>(), m["test_kl"].get<double>(), 1e-9) << "reloaded model evaluates differently";
  EXPECT_DOUBLE_EQ(ev["token_accuracy"].get<double>(), m["test_token_accuracy"].get<double>());

  // Resuming to 4 epochs continues the run.
  const TrainResult more = train_resume(r.checkpoint, 4, "", false);
  EXPECT_EQ(more.last_metrics["epoch"].get<int64_t>(), 4);

  // Molecules in, SMILES out.
  SmilesVaeImpl& model = require_smiles_vae(*ck.model, "test");
  const at::Tensor rows = model.tokens_of({"CCO", "c1ccccc1"});
  EXPECT_EQ(model.smiles_of(rows), (std::vector<std::string>{"CCO", "c1ccccc1"}));
  EXPECT_ERROR_WITH(model.tokens_of({std::string(100, 'C')}), "more than the model's max_length of 80");
  const auto samples = sample_molecules(model, 20, 3);
  EXPECT_EQ(samples.size(), 20u);
  EXPECT_EQ(samples, sample_molecules(model, 20, 3)) << "the same seed gives the same molecules";

  // Optimization: every step decoded and scored; the best (if any) is valid, similar enough and better.
  OptimizeOptions opt;
  opt.property = "qed";
  opt.steps = 6;
  opt.similarity = 0.0;
  const auto results = optimize_molecules(model, {"CCOc1ccccc1", "CC(=O)Nc1ccc(O)cc1"}, opt);
  ASSERT_EQ(results.size(), 2u);
  for (const auto& res : results) {
    EXPECT_EQ(res.path.size(), 6u);
    EXPECT_NEAR(res.seed_value, molecule_property(res.seed, "qed"), 1e-12);
    if (res.improved()) {
      EXPECT_GT(res.best_value, res.seed_value);
      EXPECT_NEAR(res.best_value, molecule_property(res.best, "qed"), 1e-12);
    }
  }
  opt.property = "tpsa";
  EXPECT_ERROR_WITH(optimize_molecules(model, {"CCO"}, opt), "predicts logp, qed, sa, plogp, not 'tpsa'");
  opt.property = "qed";
  EXPECT_ERROR_WITH(optimize_molecules(model, {"C1CC"}, opt), "seed 1 is not a valid molecule");
}

TEST(MoleculeMetrics, DrawsGridsOfMolecules) {
  REQUIRE_RDKIT();
  const std::string png = molecule_grid_png({"CCO", "c1ccccc1", "not valid", "CC(=O)O"}, {"a", "b", "c: invalid", "d"}, 3, 120);
  ASSERT_GT(png.size(), 8u);
  EXPECT_EQ(png.substr(1, 3), "PNG");
  const at::Tensor image = image_decode(png, "grid");  // [C, H, W]
  EXPECT_EQ(image.size(2), 3 * 120);
  EXPECT_EQ(image.size(1), 2 * 120);
  EXPECT_NE(molecule_svg("c1ccccc1O").find("<svg"), std::string::npos);
  EXPECT_EQ(molecule_svg("C1CC"), "");
}

TEST(SmilesModel, FamiliesRefuseDataTheyCannotRead) {
  REQUIRE_RDKIT();
  test::TempDir dir;
  DataSpec molecules;
  molecules.source = write_smi(dir, fixture_molecules());
  TrainOptions o;
  o.epochs = 1;
  o.progress = false;
  o.out = dir / "run";
  EXPECT_ERROR_WITH(train(ModelConfig::from_text_or_file(R"({"type": "mlp_vae", "hidden": [8], "latent": 2})"), molecules, o),
                    "molecules are read by a smiles_vae");
  const std::string numbers = dir / "numbers.csv";
  test::write_bytes(numbers, "a,b\n0.1,0.2\n0.3,0.4\n0.5,0.6\n");
  DataSpec table;
  table.source = numbers;
  EXPECT_ERROR_WITH(train(tiny_config(), table, o), "a smiles_vae reads molecules");
  o.binarize = true;
  EXPECT_ERROR_WITH(train(tiny_config(), molecules, o), "--binarize applies to images");
}

TEST(SmilesModel, PropertyHeadGradientMatchesFiniteDifferences) {
  REQUIRE_RDKIT();
  ModelConfig c = tiny_config(R"(, "property_mean": [1, 0.5, 3, -1], "property_std": [2, 0.2, 1, 2])");
  c.smiles.vocabulary = SmilesVocabulary::build({"CCO", "c1ccccc1"}).to_json().get<std::vector<std::string>>();
  at::manual_seed(0);
  Model m = make_model(c, {82});
  SmilesVaeImpl& model = require_smiles_vae(*m, "test");
  at::Tensor z = at::randn({1, 8}, at::kDouble);
  m->to(at::kDouble);
  at::Tensor zg = z.clone().requires_grad_(true);
  model.predict_properties(zg).select(1, 1).sum().backward();  // d qed / dz
  const double h = 1e-6;
  for (int64_t i = 0; i < 8; ++i) {
    at::Tensor up = z.clone(), down = z.clone();
    up[0][i] += h;
    down[0][i] -= h;
    const double fd =
        (model.predict_properties(up)[0][1].item<double>() - model.predict_properties(down)[0][1].item<double>()) / (2 * h);
    EXPECT_NEAR(zg.grad()[0][i].item<double>(), fd, 1e-6) << "dimension " << i;
  }
  ModelConfig no_head = c;
  no_head.smiles.properties.clear();
  no_head.smiles.property_mean.clear();
  no_head.smiles.property_std.clear();
  Model bare = make_model(no_head, {82});
  EXPECT_ERROR_WITH(require_smiles_vae(*bare, "test").predict_properties(at::zeros({1, 8})), "no property head");
}

// ---- metrics against RDKit's Python -------------------------------------------------------------

nlohmann::json metrics_fixture() {
  std::ifstream in(std::string(LATENT_FIXTURES) + "/chem_metrics.json");
  return nlohmann::json::parse(in);
}

TEST(MoleculeMetrics, FingerprintsAndFiltersMatchRdkitPython) {
  REQUIRE_RDKIT();
  const nlohmann::json f = metrics_fixture();
  ASSERT_GT(f["fingerprints"].size(), 50u);
  int caught = 0;
  for (const auto& row : f["fingerprints"]) {
    const std::string smiles = row["smiles"];
    SCOPED_TRACE(smiles);
    Fingerprint want;
    for (int b : row["on_bits"]) want.words[static_cast<size_t>(b / 64)] |= uint64_t{1} << (b % 64);
    EXPECT_EQ(morgan_fingerprint(smiles).words, want.words);
    EXPECT_EQ(passes_structure_filters(smiles), row["filters"].get<bool>());
    caught += !row["filters"].get<bool>();
  }
  EXPECT_GT(caught, 5) << "the fixture should hold molecules the filters catch";
  EXPECT_ERROR_WITH(morgan_fingerprint("C1CC"), "not a valid molecule");
}

TEST(MoleculeMetrics, GenerationMetricsMatchRdkitPython) {
  REQUIRE_RDKIT();
  const nlohmann::json f = metrics_fixture()["metrics"];
  const nlohmann::json g = generation_metrics(f["samples"], f["train"], f["test"]);
  // Ratios of counts are exact; means of Tanimoto similarities and the Wasserstein distance differ
  // only by summation order.
  for (const char* key : {"validity", "uniqueness", "novelty", "filters"})
    EXPECT_DOUBLE_EQ(g[key].get<double>(), f[key].get<double>()) << key;
  EXPECT_NEAR(g["internal_diversity"].get<double>(), f["internal_diversity"].get<double>(), 1e-12);
  EXPECT_NEAR(g["nn_similarity"].get<double>(), f["nn_similarity"].get<double>(), 1e-12);
  EXPECT_NEAR(g["properties"]["logp"]["wasserstein"].get<double>(), f["logp_wasserstein"].get<double>(), 1e-9);
}

TEST(MoleculeMetrics, WassersteinOfShiftedSamples) {
  EXPECT_DOUBLE_EQ(wasserstein_1d({0, 1}, {0.5, 1.5}), 0.5);
  EXPECT_DOUBLE_EQ(wasserstein_1d({3, 1, 2}, {1, 2, 3}), 0.0);
  EXPECT_DOUBLE_EQ(wasserstein_1d({0}, {0, 2}), 1.0);
}

}  // namespace
}  // namespace latent

// ---- constrained decoding ----------------------------------------------------------------------

namespace latent {
namespace {

// Writes `smiles` token by token through the grammar; false at the first token it does not allow.
// How many tokens of `smiles` (kEos included) the grammar takes before the first it refuses.
size_t tokens_accepted(const SmilesGrammar& g, const SmilesVocabulary& v, const std::string& smiles, int64_t max_length) {
  const std::vector<int64_t> ids = v.encode(smiles);  // kBos ... kEos
  SmilesGrammar::State s;
  std::vector<uint8_t> mask(static_cast<size_t>(v.size()));
  for (size_t k = 1; k < ids.size(); ++k) {
    g.allowed(s, max_length - static_cast<int64_t>(k) + 1, mask.data());
    if (!mask[static_cast<size_t>(ids[k])]) return k - 1;
    g.advance(s, ids[k]);
  }
  return ids.size() - 1;
}

// Writes `smiles` token by token through the grammar; false at the first token it does not allow.
bool grammar_accepts(const SmilesGrammar& g, const SmilesVocabulary& v, const std::string& smiles, int64_t max_length) {
  return tokens_accepted(g, v, smiles, max_length) == v.encode(smiles).size() - 1;
}

TEST(SmilesGrammar, AcceptsEveryRealMolecule) {
  const std::vector<std::string> molecules = fixture_molecules();
  const SmilesVocabulary v = SmilesVocabulary::build(molecules);
  const SmilesGrammar g(v.to_json().get<std::vector<std::string>>());
  for (const auto& m : molecules)
    if (m.find('.') == std::string::npos) EXPECT_TRUE(grammar_accepts(g, v, m, 200)) << m;  // one fragment each
}

TEST(SmilesGrammar, RefusesBrokenSyntaxAndValences) {
  const SmilesVocabulary v = SmilesVocabulary::build({"CC(=O)N1CC1Cl", "C#N", "[NH4+]", "[O-]C", "c1ccccc1"});
  const SmilesGrammar g(v.to_json().get<std::vector<std::string>>());
  for (const char* bad :
       {"C(", "C1CC", "C=(C)C", "O=O=O", "ClCl(C)", "C(C)(C)(C)(C)C", "N#N=C", "(C)", "=C", "C)", "[NH4+]C", "C1C1"})
    EXPECT_FALSE(grammar_accepts(g, v, bad, 50)) << bad;
  EXPECT_EQ(g.kind(v.encode("C")[1]), "atom");
  EXPECT_EQ(g.atom_capacity(v.encode("[NH4+]")[1]), 0);
  EXPECT_EQ(g.atom_capacity(v.encode("[O-]")[1]), 1);
  // Odd aromatic rings close only with an atom that gives the ring a lone pair.
  const SmilesVocabulary a = SmilesVocabulary::build({"c1ccccc1", "c1cc[nH]c1", "c1ccoc1", "Cn1cccc1", "c1ccn(C)c1", "c1ccsc1"});
  const SmilesGrammar ga(a.to_json().get<std::vector<std::string>>());
  // An n that closes such a ring must take a third bond before the string leaves it.
  for (const char* bad : {"c1cccc1", "c1ccnc1", "Cc1cccc1", "c1cccnc1c1cccc1", "c1cccn1", "Cc1ccc(n1)C"})
    EXPECT_FALSE(grammar_accepts(ga, a, bad, 50)) << bad;
  for (const char* good :
       {"c1ccccc1", "c1cc[nH]c1", "c1ccoc1", "Cn1cccc1", "c1ccn(C)c1", "c1ccsc1", "c1cccn1C", "c1cccn1c1ccccc1"})
    EXPECT_TRUE(grammar_accepts(ga, a, good, 50)) << good;
  // Every aromatic atom ends in a ring: the string does not end, and a branch does not close, with
  // one outside every ring that no open ring bond can still reach.
  const SmilesVocabulary r = SmilesVocabulary::build({"c1ccccc1", "C1CCCC1", "Cc1ccc(C)cc1", "c1ccc2c(c1)CCC2"});
  const SmilesGrammar gr(r.to_json().get<std::vector<std::string>>());
  for (const char* bad : {"C1CCCC1c", "Cc", "C(c)C", "C1CCC(C1)c", "C1CC(c)CC1", "C1CCCc1cccc"})
    EXPECT_FALSE(grammar_accepts(gr, r, bad, 50)) << bad;
  for (const char* good : {"c1ccccc1", "Cc1ccc(C)cc1", "c1ccc2c(c1)CCC2", "C1CCc2ccccc21", "c1(C)ccccc1", "c1c(C)cccc1",
                           "C1CCCC1c1ccccc1", "c12ccccc1cccc2", "c1ccc(cc1)C"})
    EXPECT_TRUE(grammar_accepts(gr, r, good, 50)) << good;
  // The aromatic atoms keep a Kekule structure: each that needs a double bond can still get one.
  const SmilesVocabulary k =
      SmilesVocabulary::build({"O=c1cccccc1", "O=c1ccc(=O)cc1", "c1ccc2[nH]ccc2c1", "Cn1ccc2ccccc21", "C=C"});
  const SmilesGrammar gk(k.to_json().get<std::vector<std::string>>());
  for (const char* bad : {"C=c1ccccc1", "c1cccc(C)(C)c1", "Cc1c(C)(C)cccc1", "O=c1ccccc1", "c1ccc2ccccc2c1c"})
    EXPECT_FALSE(grammar_accepts(gk, k, bad, 50)) << bad;
  for (const char* good :
       {"O=c1cccccc1", "O=c1ccc(=O)cc1", "c1ccc2[nH]ccc2c1", "Cn1ccc2ccccc21", "c1ccc2ccccc2c1C", "Cc1ccccc1C"})
    EXPECT_TRUE(grammar_accepts(gk, k, good, 50)) << good;
  // Dead ends are refused where they begin: in "C1=Cc1c(F", the second c can join a ring only by two
  // ring bonds of its own (no ring can come through its neighbour any more), which with its double
  // bond leave no room for F: the F (token 9) is refused.
  const SmilesVocabulary f = SmilesVocabulary::build({"C1=Cc1c(F)ccc(F)c1", "c1ccccc1"});
  const SmilesGrammar gf(f.to_json().get<std::vector<std::string>>());
  EXPECT_EQ(tokens_accepted(gf, f, "C1=Cc1c(F)", 50), 8u);
  EXPECT_TRUE(grammar_accepts(gf, f, "Fc1ccc(F)cc1", 50));
  EXPECT_TRUE(grammar_accepts(gf, f, "Fc1ccc(F)cc1", 50));
  // Too little room left to close a ring is refused.
  EXPECT_FALSE(grammar_accepts(g, v, "CC1CC1", 4));
  EXPECT_TRUE(grammar_accepts(g, v, "CC1CC1", 7));
}

// Random walks through the mask over the tokens of `molecules`, far more tangled than real
// molecules: how many finished as a molecule RDKit reads, how many ran into a corner where no token
// fits (generation ends such a row), how many never ended, and the finished strings RDKit refuses.
struct Walks {
  int read = 0, stuck = 0, cut = 0;
  std::vector<std::string> refused;
};
Walks random_walks(const std::vector<std::string>& molecules, int walks, int64_t longest) {
  const SmilesVocabulary v = SmilesVocabulary::build(molecules);
  const SmilesGrammar g(v.to_json().get<std::vector<std::string>>());
  std::mt19937 rng(5);
  std::vector<uint8_t> mask(static_cast<size_t>(v.size()));
  Walks out;
  for (int walk = 0; walk < walks; ++walk) {
    const int64_t max_length = 4 + walk % (longest - 3);
    SmilesGrammar::State s;
    std::vector<int64_t> ids = {SmilesVocabulary::kBos};
    bool stuck = false;
    for (int64_t step = 1; step <= max_length; ++step) {
      g.allowed(s, max_length - step + 1, mask.data());
      std::vector<int64_t> choices;
      for (int64_t id = 0; id < v.size(); ++id)
        if (mask[static_cast<size_t>(id)]) choices.push_back(id);
      if (choices.empty()) {
        stuck = true;
        break;
      }
      // Ends are rarer than other tokens so that walks grow long.
      int64_t id = choices[std::uniform_int_distribution<size_t>(0, choices.size() - 1)(rng)];
      if (id == SmilesVocabulary::kEos && choices.size() > 1 && rng() % 4 != 0)
        id = choices[(std::find(choices.begin(), choices.end(), id) - choices.begin() + 1) % choices.size()];
      ids.push_back(id);
      if (id == SmilesVocabulary::kEos) break;
      g.advance(s, id);
    }
    if (stuck) {
      ++out.stuck;
    } else if (ids.back() != SmilesVocabulary::kEos) {
      ++out.cut;
    } else if (canonical_smiles(v.decode(ids)).has_value()) {
      ++out.read;
    } else {
      out.refused.push_back(v.decode(ids));
    }
  }
  return out;
}

// Aliphatic tokens: every walk that finishes is a molecule, at most 2% run into a corner. (Over
// aromatic tokens uniform walks mostly write what no molecule looks like; the aromatic rules are
// checked on strings above and on a model's samples in bench/RESULTS.md.)
TEST(SmilesGrammar, RandomWalksAreMoleculesRdkitReads) {
  REQUIRE_RDKIT();
  const Walks w =
      random_walks({"CC(=O)N1CCC1Cl", "C#N", "[NH4+]", "C[N+](C)(C)C", "O=S(=O)(O)O", "OP(=O)(O)F", "C2CC2Br", "C=C"}, 500, 43);
  EXPECT_TRUE(w.refused.empty()) << w.refused.front();
  EXPECT_EQ(w.cut, 0) << "walks that never ended";
  EXPECT_LE(w.stuck, 10) << "walks that found no token to continue with";
}

}  // namespace
}  // namespace latent
