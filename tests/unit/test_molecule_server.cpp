// The explorer's Molecules routes against a small SMILES VAE: replies checked against the library's
// own encode and decode, and bad requests answered 400 with a message.
#include <gtest/gtest.h>
#include <httplib.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "explorer_server.h"
#include "latent/checkpoint.h"
#include "latent/chem.h"
#include "latent/smiles_vae.h"
#include "latent/train.h"
#include "test_util.h"

namespace latent::server {
namespace {

using nlohmann::json;

class MoleculeServerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!chem_available()) return;
    dir_ = new test::TempDir();
    std::ifstream in(std::string(LATENT_FIXTURES) + "/chem_properties.csv");
    std::string line, smi;
    std::getline(in, line);
    std::getline(in, line);
    while (std::getline(in, line)) {
      const size_t a = line.find(','), b = line.find(',', a + 1);
      const std::string c = line.substr(a + 1, b - a - 1);
      if (!c.empty() && c.find('"') == std::string::npos && c.find('.') == std::string::npos) smi += c + "\n";
    }
    test::write_bytes(*dir_ / "mols.smi", smi);
    DataSpec spec;
    spec.source = *dir_ / "mols.smi";
    TrainOptions o;
    o.epochs = 2;
    o.batch_size = 32;
    o.threads = 1;
    o.progress = false;
    o.out = *dir_ / "run";
    train(
        ModelConfig::from_text_or_file(
            R"({"type": "smiles_vae", "latent": 6, "embedding": 12, "encoder_hidden": 16, "decoder_hidden": 24, "decoder_layers": 1})"),
        spec, o);
    ck_ = new LoadedCheckpoint(checkpoint_load(*dir_ / "run/model.safetensors"));
    ServeOptions opt;
    opt.port = 0;
    opt.threads = 4;
    server_ = new ExplorerServer(checkpoint_load(*dir_ / "run/model.safetensors"), *dir_ / "run/model.safetensors", opt);
    thread_ = new std::thread([] { server_->run(); });
  }
  static void TearDownTestSuite() {
    if (!server_) return;
    server_->stop();
    thread_->join();
    delete thread_;
    delete server_;
    delete ck_;
    delete dir_;
  }
  void SetUp() override {
    if (!chem_available()) GTEST_SKIP() << "this latent was built without RDKit (librdkit-dev)";
  }

  static std::pair<int, json> request(const std::string& path, const std::string* body) {
    httplib::Client c("127.0.0.1", server_->port());
    c.set_read_timeout(20);
    auto r = body ? c.Post(path.c_str(), *body, "application/json") : c.Get(path.c_str());
    if (!r) return {0, json()};
    return {r->status, json::parse(r->body)};
  }
  static std::pair<int, json> post(const std::string& path, const json& body) {
    const std::string text = body.dump();
    return request(path, &text);
  }
  static std::pair<int, json> get(const std::string& path) { return request(path, nullptr); }
  static SmilesVaeImpl& model() { return require_smiles_vae(*ck_->model, "test"); }

  static test::TempDir* dir_;
  static LoadedCheckpoint* ck_;
  static ExplorerServer* server_;
  static std::thread* thread_;
};

test::TempDir* MoleculeServerTest::dir_ = nullptr;
LoadedCheckpoint* MoleculeServerTest::ck_ = nullptr;
ExplorerServer* MoleculeServerTest::server_ = nullptr;
std::thread* MoleculeServerTest::thread_ = nullptr;

TEST_F(MoleculeServerTest, InfoSaysMoleculesAndImageRoutesAnswer404) {
  EXPECT_TRUE(server_->shows_molecules());
  auto [status, info] = get("/api/info");
  ASSERT_EQ(status, 200);
  EXPECT_EQ(info["kind"], "molecules");
  EXPECT_EQ(info["latent"], 6);
  EXPECT_EQ(info["properties"], json({"logp", "qed", "sa", "plogp"}));
  auto [s2, e] = get("/api/metrics");
  EXPECT_EQ(s2, 404);
  EXPECT_NE(e["error"].get<std::string>().find("molecule model"), std::string::npos);
}

TEST_F(MoleculeServerTest, EncodeMatchesTheLibrary) {
  auto [status, r] = post("/api/molecules/encode", {{"smiles", "OCC"}});
  ASSERT_EQ(status, 200) << r.dump();
  EXPECT_EQ(r["smiles"], "CCO");  // canonical
  EXPECT_TRUE(r["valid"].get<bool>());
  EXPECT_NE(r["svg"].get<std::string>().find("<svg"), std::string::npos);
  EXPECT_NEAR(r["properties"]["qed"].get<double>(), molecule_properties("CCO").qed, 1e-12);
  at::NoGradGuard no_grad;
  const at::Tensor mu = model().encode(model().tokens_of({"CCO"})).mu;
  for (int64_t i = 0; i < 6; ++i) EXPECT_NEAR(r["mu"][static_cast<size_t>(i)].get<double>(), mu[0][i].item<double>(), 1e-4);
  EXPECT_EQ(r["decoded"]["smiles"].get<std::string>().empty(), false);
  const std::string mine = model().decode_smiles(mu)[0];
  const auto canon = canonical_smiles(mine);
  EXPECT_EQ(r["decoded"]["smiles"], canon ? *canon : mine);
  EXPECT_EQ(r["decoded"]["valid"], canon.has_value());
}

TEST_F(MoleculeServerTest, BadRequestsAre400WithAMessage) {
  const std::vector<std::pair<std::string, json>> bad = {
      {"/api/molecules/encode", {{"smiles", "C1CC("}}},
      {"/api/molecules/encode", {{"smiles", 5}}},
      {"/api/molecules/encode", json::object()},
      {"/api/molecules/decode", {{"z", {1, 2}}}},
      {"/api/molecules/sample", {{"n", 65}}},
      {"/api/molecules/walk", {{"from", "CCO"}, {"to", "CCN"}, {"steps", 17}}},
      {"/api/molecules/optimize", {{"smiles", "CCO"}, {"property", "tpsa"}}},
      {"/api/molecules/optimize", {{"smiles", "CCO"}, {"steps", 0}}},
  };
  for (const auto& [path, body] : bad) {
    auto [status, r] = post(path, body);
    EXPECT_EQ(status, 400) << path << " " << body.dump();
    EXPECT_FALSE(r.value("error", "").empty()) << path;
  }
  auto [status, r] = get("/api/molecules/plane?property=nope");
  EXPECT_EQ(status, 400);
}

TEST_F(MoleculeServerTest, PlaneSampleWalkAndOptimize) {
  auto [s1, plane] = get("/api/molecules/plane?property=qed");
  ASSERT_EQ(s1, 200);
  EXPECT_EQ(plane["points"].size(), plane["smiles"].size());
  EXPECT_GT(plane["points"].size(), 5u);
  auto [s2, a] = post("/api/molecules/sample", {{"n", 3}, {"seed", 4}});
  auto [s3, b] = post("/api/molecules/sample", {{"n", 3}, {"seed", 4}});
  ASSERT_EQ(s2, 200);
  EXPECT_EQ(a["samples"].size(), 3u);
  EXPECT_EQ(a, b) << "a seed gives the same samples";
  auto [s4, w] = post("/api/molecules/walk", {{"from", "CCO"}, {"to", "c1ccccc1O"}, {"steps", 5}});
  ASSERT_EQ(s4, 200);
  ASSERT_EQ(w["steps"].size(), 5u);
  at::NoGradGuard no_grad;
  const std::string first = model().decode_smiles(model().encode(model().tokens_of({"CCO"})).mu)[0];
  const auto c = canonical_smiles(first);
  EXPECT_EQ(w["steps"][0]["smiles"], c ? *c : first) << "the walk starts at the decoding of its first molecule";
  auto [s5, d] = post("/api/molecules/decode", {{"x", 0.5}, {"y", -0.25}});
  ASSERT_EQ(s5, 200);
  EXPECT_NEAR(d["point"][0].get<double>(), 0.5, 1e-3);
  auto [s6, o] = post("/api/molecules/optimize", {{"smiles", "CCOc1ccccc1"}, {"property", "qed"}, {"steps", 4}});
  ASSERT_EQ(s6, 200) << o.dump();
  EXPECT_EQ(o["path"].size(), 4u);
  EXPECT_NEAR(o["seed_value"].get<double>(), molecule_properties("CCOc1ccccc1").qed, 1e-12);
}

}  // namespace
}  // namespace latent::server
