// The explorer's HTTP API against a small model: every endpoint, and malformed and hostile requests.
// Replies are checked against the library's own encode/decode run in the test, and the KL steps
// against their closed form: grad_mu KL = mu, so mu_k = mu_0 (1 - lr)^k.
#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>
#include <gtest/gtest.h>
#include <httplib.h>

#include <algorithm>
#include <cstdio>
#include <functional>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>

#include "base64.h"
#include "code_parser.h"
#include "explorer_api.h"
#include "explorer_server.h"
#include "latent/checkpoint.h"
#include "latent/error.h"
#include "latent/image.h"
#include "latent/npy.h"
#include "latent/sd_vae.h"
#include "sd_api.h"
#include "server_fixture.h"
#include "test_util.h"

namespace latent::server {
namespace {

using nlohmann::json;

constexpr int64_t kLatent = 3;

class ServerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new test::TempDir();
    model_ = new Vae(test::write_tiny_image_checkpoint(*dir_));
    ServeOptions opt;
    opt.port = 0;
    opt.threads = 8;
    opt.max_body = 64 * 1024;
    opt.precision = "fp32";  // replies are checked against the model's own float32 decoder
    server_ = new ExplorerServer(checkpoint_load(*dir_ / "model.safetensors"), *dir_ / "model.safetensors", opt);
    thread_ = new std::thread([] { server_->run(); });
  }
  static void TearDownTestSuite() {
    server_->stop();
    thread_->join();
    delete thread_;
    delete server_;
    delete model_;
    delete dir_;
  }

  static httplib::Client client() {
    httplib::Client c("127.0.0.1", server_->port());
    c.set_read_timeout(10);
    return c;
  }
  static std::pair<int, json> post(const std::string& path, const std::string& body) {
    auto r = client().Post(path.c_str(), body, "application/json");
    if (!r) return {0, json()};
    return {r->status, json::parse(r->body)};
  }
  static std::pair<int, json> get(const std::string& path) {
    auto r = client().Get(path.c_str());
    if (!r) return {0, json()};
    return {r->status, json::parse(r->body)};
  }
  static at::Tensor pixels(const json& images) {  // -> uint8 [N, C, H, W]
    const std::string bytes = base64_decode(images.at("pixels").get<std::string>(), "test");
    auto shape = images.at("shape").get<std::vector<int64_t>>();
    return at::from_blob(const_cast<char*>(bytes.data()), shape, at::kByte).clone();
  }
  static at::Tensor expected_pixels(const at::Tensor& z) {
    c10::InferenceMode guard;
    return (*model_)->likelihood_mean((*model_)->decode(z)).mul(255).round().to(at::kByte);
  }
  static void expect_error(const std::pair<int, json>& reply, int status, const std::string& fragment) {
    EXPECT_EQ(reply.first, status) << reply.second.dump();
    ASSERT_TRUE(reply.second.contains("error")) << reply.second.dump();
    EXPECT_NE(reply.second["error"].get<std::string>().find(fragment), std::string::npos) << reply.second["error"];
  }

  static test::TempDir* dir_;
  static Vae* model_;
  static ExplorerServer* server_;
  static std::thread* thread_;
};

test::TempDir* ServerTest::dir_ = nullptr;
Vae* ServerTest::model_ = nullptr;
ExplorerServer* ServerTest::server_ = nullptr;
std::thread* ServerTest::thread_ = nullptr;

TEST(Base64, MatchesTheRfc4648VectorsAndRejectsMalformedText) {
  const std::vector<std::pair<std::string, std::string>> vectors = {{"", ""},
                                                                    {"f", "Zg=="},
                                                                    {"fo", "Zm8="},
                                                                    {"foo", "Zm9v"},
                                                                    {"foob", "Zm9vYg=="},
                                                                    {"fooba", "Zm9vYmE="},
                                                                    {"foobar", "Zm9vYmFy"}};
  for (const auto& [plain, coded] : vectors) {
    EXPECT_EQ(base64_encode(plain), coded);
    EXPECT_EQ(base64_decode(coded, "test"), plain);
  }
  std::string all;
  for (int c = 0; c < 256; ++c) all += static_cast<char>(c);
  EXPECT_EQ(base64_decode(base64_encode(all), "test"), all);
  EXPECT_EQ(base64_decode("data:image/png;base64,Zm9v", "test"), "foo");
  for (const char* bad : {"Zg=", "Z===", "Zm9v!A==", "=Zm9", "Zg==Zm9v", "Zm=v"})
    EXPECT_THROW(base64_decode(bad, "test"), Error) << bad;
}

TEST(CodeParser, ReadsWhatTheJsonParserReadsForAnyNumberSpelling) {
  // Each body has numbers in many spellings; every value must equal the general parser's double,
  // rounded to float, exactly.
  std::mt19937 rng(7);
  std::normal_distribution<double> normal(0.0, 3.0);
  const char* formats[] = {"%.17g", "%g", "%.3e", "%.9E", "%.0f", "%.1f", "%.6e"};
  for (int trial = 0; trial < 300; ++trial) {
    const int rows = 1 + trial % 7, d = 1 + trial % 5;
    std::string body = trial % 2 ? "{\"z\":[" : " {\n \"z\" :\t[ ";
    for (int r = 0; r < rows; ++r) {
      body += r ? ", [" : "[";
      for (int k = 0; k < d; ++k) {
        char num[64];
        const double v = trial % 11 == 0 ? (k % 2 ? -0.0 : 1e-320) : normal(rng) * std::pow(10.0, (trial % 9) - 4);
        std::snprintf(num, sizeof(num), formats[(trial + k) % 7], v);
        body += (k ? " , " : "") + std::string(num);
      }
      body += "]";
    }
    body += "] }\r\n";
    std::vector<float> got;
    const json j = json::parse(body);
    bool small = true;
    for (const auto& row : j["z"])
      for (const auto& x : row) small = small && std::abs(x.get<double>()) <= 1e6;
    ASSERT_EQ(parse_code_rows(body, "z", d, 1024, 1e6, got), small) << body;
    if (!small) continue;
    ASSERT_EQ(got.size(), static_cast<size_t>(rows * d));
    for (int r = 0; r < rows; ++r)
      for (int k = 0; k < d; ++k) EXPECT_EQ(got[r * d + k], static_cast<float>(j["z"][r][k].get<double>())) << body;
  }
}

TEST(CodeParser, GivesUpOnAnythingButTheOneShape) {
  std::vector<float> out;
  for (const char* body : {R"({"z": [[1, 2]]})",
                           R"({"z": [[01, 2, 3]]})",
                           R"({"z": [[+1, 2, 3]]})",
                           R"({"z": [[.5, 2, 3]]})",
                           R"({"z": [[1., 2, 3]]})",
                           R"({"z": [[1e, 2, 3]]})",
                           R"({"z": [[NaN, 2, 3]]})",
                           R"({"z": [[Infinity, 2, 3]]})",
                           R"({"z": [[1e400, 2, 3]]})",
                           R"({"z": [[2e6, 2, 3]]})",
                           R"({"z": [[1, 2, 3]], "seed": 1})",
                           R"({"z": [[1, 2, 3],]})",
                           R"({"z": [[1, 2, 3]]} x)",
                           R"({"z": [[1, 2, 3]])",
                           R"({"z": [[1, 2, 3, 4]]})",
                           R"({"z": []})",
                           R"({"\u007a": [[1, 2, 3]]})",
                           R"({"z": [[1, "2", 3]]})",
                           R"({"z": [1, 2, 3]})",
                           R"([[1, 2, 3]])",
                           "",
                           R"({"z": [[1, 2, 3], [4, 5, 6], [7, 8, 9]]})"})
    EXPECT_FALSE(parse_code_rows(body, "z", 3, 2, 1e6, out)) << body;
  EXPECT_TRUE(parse_code_rows(R"({"z": [[1, 2, 3], [4, 5, 6]]})", "z", 3, 2, 1e6, out));
  EXPECT_EQ(out, std::vector<float>({1, 2, 3, 4, 5, 6}));
}

TEST_F(ServerTest, TheFastDecodeReplyIsTheGeneralOne) {
  ExplorerApi api(checkpoint_load(*dir_ / "model.safetensors"), *dir_ / "model.safetensors");
  std::mt19937 rng(8);
  std::normal_distribution<float> normal;
  for (int rows : {1, 2, 16, 1024}) {
    json z = json::array();
    for (int r = 0; r < rows; ++r) z.push_back({normal(rng), normal(rng), normal(rng)});
    const std::string body = json{{"z", z}}.dump();
    const auto text = api.decode_text(body);
    ASSERT_TRUE(text.has_value()) << rows;
    EXPECT_EQ(json::parse(*text), api.decode(json::parse(body))) << rows;
  }
  EXPECT_FALSE(api.decode_text(R"({"z": [[1, 2]]})").has_value());
}

TEST_F(ServerTest, Bf16DecodingStaysWithinAFewPixelLevelsOfFloat32) {
  // bfloat16 rounds inputs and weights to 8 significant bits; on this small model the pixels move
  // by at most 2 of 255 levels (on the Fashion-MNIST model at most 10, nearly all by 1).
  LATENT_SKIP_WITHOUT_BF16();
  auto bf16 = std::make_unique<ExplorerApi>(checkpoint_load(*dir_ / "model.safetensors"), *dir_ / "model.safetensors",
                                            ApiLimits{}, "bf16");
  EXPECT_EQ(bf16->info()["precision"], "bf16");
  at::manual_seed(9);
  at::Tensor z = at::randn({500, kLatent}) * 2;
  json body = {{"z", json::array()}};
  for (int64_t r = 0; r < z.size(0); ++r)
    body["z"].push_back(std::vector<float>(z[r].data_ptr<float>(), z[r].data_ptr<float>() + kLatent));
  const at::Tensor got = pixels(bf16->decode(body)["images"]).to(at::kInt), want = expected_pixels(z).to(at::kInt);
  EXPECT_LE((got - want).abs().max().item<int>(), 2);
  EXPECT_GT((got - want).abs().sum().item<int>(), 0) << "bf16 gave float32's pixels: was it used?";
}

TEST_F(ServerTest, InfoDescribesTheModelAndAnOrthonormalPrincipalPlane) {
  auto [status, j] = get("/api/info");
  ASSERT_EQ(status, 200);
  EXPECT_EQ(j["latent"], kLatent);
  EXPECT_EQ(j["data_shape"], json({1, 8, 8}));
  EXPECT_EQ(j["test_size"], 10);
  EXPECT_EQ(j["precision"], "fp32");
  at::Tensor axes = at::tensor(j["pca"]["axes"][0].get<std::vector<float>>());
  at::Tensor axes1 = at::tensor(j["pca"]["axes"][1].get<std::vector<float>>());
  EXPECT_NEAR(axes.norm().item<double>(), 1.0, 1e-3);
  EXPECT_NEAR(axes1.norm().item<double>(), 1.0, 1e-3);
  EXPECT_NEAR(axes.dot(axes1).item<double>(), 0.0, 1e-3);
  EXPECT_GE(j["pca"]["explained"][0].get<double>(), j["pca"]["explained"][1].get<double>());
}

TEST_F(ServerTest, DecodeReturnsTheModelsMeanAsPixels) {
  auto [status, j] = post("/api/decode", R"({"z": [[0, 0, 0], [1.5, -2, 0.25]]})");
  ASSERT_EQ(status, 200) << j.dump();
  at::Tensor want = expected_pixels(at::tensor({0.f, 0.f, 0.f, 1.5f, -2.f, 0.25f}).reshape({2, 3}));
  EXPECT_TRUE(at::equal(pixels(j["images"]), want));
}

TEST_F(ServerTest, DecodeRejectsBadCodes) {
  expect_error(post("/api/decode", R"({"z": [[1, 2]]})"), 400, "z[0] has 2 values; this model's latent size is 3");
  expect_error(post("/api/decode", R"({"z": [[1, "a", 2]]})"), 400, "z[0][1] must be a finite number");
  expect_error(post("/api/decode", R"({"z": [[1, 1e999, 2]]})"), 400, "number overflow");
  expect_error(post("/api/decode", R"({"z": [[1, 2e7, 2]]})"), 400, "magnitude at most 1e6");
  expect_error(post("/api/decode", R"({"z": []})"), 400, "non-empty array");
  expect_error(post("/api/decode", R"({"code": [[1, 2, 3]]})"), 400, "missing field 'z'");
  expect_error(post("/api/decode", R"([1, 2, 3])"), 400, "must be a JSON object");
  expect_error(post("/api/decode", R"({"z": [[1, 2, 3]])"), 400, "the request body: invalid JSON");
  expect_error(post("/api/decode", "NaN"), 400, "the request body: invalid JSON");
  json many = json::array();
  for (int i = 0; i < 1025; ++i) many.push_back({0, 0, 0});
  expect_error(post("/api/decode", json{{"z", many}}.dump()), 400, "at most 1024 per request");
}

TEST_F(ServerTest, OversizeAndDeeplyNestedBodiesGetErrorsNotCrashes) {
  expect_error(post("/api/decode", std::string(100 * 1024, ' ')), 413, "too large");
  expect_error(post("/api/decode", std::string(60000, '[')), 400, "nested deeper than 64 levels");
  EXPECT_EQ(get("/api/info").first, 200);
}

// Messages that quote what the client sent used to throw while the reply was dumped (invalid UTF-8
// in a JSON string), which httplib answered with 500.
TEST_F(ServerTest, InvalidUtf8AnywhereGetsA4xxWithValidJson) {
  expect_error(post("/api/encode", "{\"index\": \xff\xfe}"), 400, "invalid JSON");
  expect_error(post("/api/encode", "{\"\xff\xfe\": 1}"), 400, "");
  expect_error(get("/api/anomaly?score=%FF%FE"), 400, "unknown score");
  expect_error(get("/\xff\xfe"), 404, "");
  EXPECT_EQ(get("/api/info").first, 200);
}

TEST_F(ServerTest, ItemsPageTheTestSplitWithValidation) {
  auto [status, j] = get("/api/items?offset=8&limit=5");
  ASSERT_EQ(status, 200);
  EXPECT_EQ(j["count"], 2);  // 10 test examples: 8 and 9
  EXPECT_EQ(pixels(j["images"]).sizes(), at::IntArrayRef({2, 1, 8, 8}));
  expect_error(get("/api/items?offset=10"), 404, "out of range");
  expect_error(get("/api/items?offset=-1"), 404, "out of range");
  expect_error(get("/api/items?limit=0"), 400, "limit must be between 1 and 256");
  expect_error(get("/api/items?limit=abc"), 400, "must be an integer");
  expect_error(get("/api/items?limit=5x"), 400, "must be an integer");
}

TEST_F(ServerTest, EncodeTakesAnIndexOrAnUploadedImage) {
  auto [status, j] = post("/api/encode", R"({"index": 2})");
  ASSERT_EQ(status, 200) << j.dump();
  EXPECT_EQ(j["mu"].size(), 3u);
  double kl = 0;
  for (const auto& k : j["kl_per_dim"]) kl += k.get<double>();
  EXPECT_NEAR(j["kl"].get<double>(), kl, 1e-3);
  EXPECT_GT(j["recon_nats"].get<double>(), 0);

  const std::string png = png_encode(at::rand({1, 16, 16}));  // resized to 8x8 by the server
  auto [s2, j2] = post("/api/encode", json{{"png", base64_encode(png)}}.dump());
  ASSERT_EQ(s2, 200) << j2.dump();
  EXPECT_EQ(pixels(j2["input"]).sizes(), at::IntArrayRef({1, 1, 8, 8}));

  expect_error(post("/api/encode", R"({"index": 10})"), 404, "index 10 is out of range: the test split has 10 examples");
  expect_error(post("/api/encode", R"({"index": 1.5})"), 400, "'index' must be an integer");
  expect_error(post("/api/encode", R"({"index": 1, "png": "AAAA"})"), 400, "exactly one of");
  expect_error(post("/api/encode", R"({})"), 400, "exactly one of");
  expect_error(post("/api/encode", R"({"png": "!!!!"})"), 400, "not base64");
  expect_error(post("/api/encode", json{{"png", base64_encode("hello, not an image")}}.dump()), 400, "not a readable PNG");
  // A valid PNG header that claims 20000 x 20000 pixels is refused before anything is decoded.
  std::string huge = png;
  for (int k = 0; k < 2; ++k) {
    const uint32_t v = 20000;
    for (int b = 0; b < 4; ++b) huge[16 + 4 * k + b] = static_cast<char>(v >> (24 - 8 * b));
  }
  expect_error(post("/api/encode", json{{"png", base64_encode(huge)}}.dump()), 400, "too large");
}

TEST_F(ServerTest, SamplingIsSeededAndValidated) {
  auto a = post("/api/sample", R"({"count": 4, "seed": 7})").second;
  auto b = post("/api/sample", R"({"count": 4, "seed": 7})").second;
  auto c = post("/api/sample", R"({"count": 4, "seed": 8})").second;
  EXPECT_EQ(a["z"], b["z"]);
  EXPECT_NE(a["z"], c["z"]);
  EXPECT_EQ(a["z"].size(), 4u);
  at::Tensor z = at::tensor(a["z"][1].get<std::vector<float>>()).unsqueeze(0);
  EXPECT_LE((pixels(a["images"])[1].to(at::kInt) - expected_pixels(z)[0].to(at::kInt)).abs().max().item<int>(), 1);
  expect_error(post("/api/sample", R"({"count": 0})"), 400, "'count' must be between 1 and 1024");
  expect_error(post("/api/sample", R"({"count": "8"})"), 400, "'count' must be an integer");
}

TEST_F(ServerTest, KlStepsFollowTheClosedFormGradient) {
  auto [status, j] = post("/api/kl_steps", R"({"index": 1, "steps": 20, "lr": 0.1})");
  ASSERT_EQ(status, 200) << j.dump();
  const auto& traj = j["trajectory"];
  ASSERT_EQ(traj.size(), 21u);
  EXPECT_EQ(pixels(j["images"]).size(0), 21);
  for (size_t s = 1; s < traj.size(); ++s) EXPECT_LT(traj[s]["kl"].get<double>(), traj[s - 1]["kl"].get<double>());
  for (int k = 0; k < 3; ++k) {
    const double mu0 = traj[0]["mu"][k], mu20 = traj[20]["mu"][k];
    EXPECT_NEAR(mu20, mu0 * std::pow(0.9, 20), 2e-4);
    // d KL / d logvar = (exp(logvar) - 1) / 2
    const double lv0 = traj[0]["logvar"][k], lv1 = traj[1]["logvar"][k];
    EXPECT_NEAR(lv1, lv0 - 0.1 * 0.5 * (std::exp(lv0) - 1), 2e-4);
  }
  expect_error(post("/api/kl_steps", R"({"index": 1, "lr": 0})"), 400, "'lr' must be in");
  expect_error(post("/api/kl_steps", R"({"index": 1, "steps": 501})"), 400, "'steps' must be between 1 and 500");
}

TEST_F(ServerTest, InterpolationHitsItsEndpoints) {
  auto [status, j] = post("/api/interpolate", R"({"a": [1, 0, 0], "b": [0, 2, 0], "t": [0, 1], "method": "slerp"})");
  ASSERT_EQ(status, 200) << j.dump();
  EXPECT_NEAR(j["z"][0][0].get<double>(), 1.0, 1e-4);
  EXPECT_NEAR(j["z"][1][1].get<double>(), 2.0, 1e-4);
  auto [s2, j2] = post("/api/interpolate", R"({"a": [1, 0, 0], "b": [0, 2, 0], "steps": 5})");
  ASSERT_EQ(s2, 200);
  EXPECT_NEAR(j2["z"][2][0].get<double>(), 0.5, 1e-4);  // linear midpoint
  EXPECT_NEAR(j2["z"][2][1].get<double>(), 1.0, 1e-4);
  expect_error(post("/api/interpolate", R"({"a": [1, 0, 0], "b": [0, 2, 0], "steps": 5, "t": [0.5]})"), 400, "not both");
  expect_error(post("/api/interpolate", R"({"a": [1, 0, 0], "b": [0, 2, 0], "t": [1.5]})"), 400, "in [0, 1]");
  expect_error(post("/api/interpolate", R"({"a": [1, 0, 0], "b": [0, 2, 0], "method": "cubic"})"), 400, "linear or slerp");
  expect_error(post("/api/interpolate", R"({"a": [1, 0], "b": [0, 2, 0]})"), 400, "'a' has 2 values");
}

TEST_F(ServerTest, AnomalyGivesEachScoresDistributionAndTheTopInputs) {
  auto [status, j] = get("/api/anomaly?score=mahalanobis");
  ASSERT_EQ(status, 200) << j.dump();
  EXPECT_EQ(j["score"], "mahalanobis");
  EXPECT_EQ(j["examples"], 10);
  const auto names = j["names"].get<std::vector<std::string>>();
  for (const char* n : {"neg_elbo", "recon_error", "prior_nll", "mahalanobis", "complexity_adjusted"})
    EXPECT_NE(std::find(names.begin(), names.end(), n), names.end()) << n;
  const auto q = j["quantiles"].get<std::vector<double>>();
  ASSERT_EQ(q.size(), 1001u);
  EXPECT_TRUE(std::is_sorted(q.begin(), q.end()));
  double total = 0;
  for (double c : j["histogram"]["counts"]) total += c;
  EXPECT_EQ(total, 10);
  ASSERT_EQ(j["top"].size(), 10u);
  EXPECT_GE(j["top"][0]["score"].get<double>(), j["top"][9]["score"].get<double>());
  EXPECT_DOUBLE_EQ(j["top"][0]["score"].get<double>(), q.back());
  EXPECT_EQ(pixels(j["inputs"]).sizes(), at::IntArrayRef({10, 1, 8, 8}));
  EXPECT_EQ(pixels(j["error_maps"]).amax().item<int>(), 255);  // each map scaled to its own maximum
  EXPECT_TRUE(j["calibration"].is_null());
  expect_error(get("/api/anomaly?score=nope"), 400, "unknown score 'nope'");
}

TEST_F(ServerTest, MetricsComeFromTheCheckpoint) {
  auto [status, j] = get("/api/metrics");
  ASSERT_EQ(status, 200);
  EXPECT_EQ(j["epochs"][0]["test_elbo"], -40.0);
}

TEST_F(ServerTest, ThePageIsEmbeddedAndNothingElseIsServed) {
  auto c = client();
  auto r = c.Get("/");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_NE(r->get_header_value("Content-Type").find("text/html"), std::string::npos);
  EXPECT_NE(r->body.find("latent explorer"), std::string::npos);
  r = c.Get("/js/app.js");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_NE(r->get_header_value("Content-Type").find("text/javascript"), std::string::npos);
  for (const char* path : {"/../../etc/passwd", "/%2e%2e/%2e%2e/etc/passwd", "/js/../../CMakeLists.txt", "/index.html/"}) {
    r = c.Get(path);
    ASSERT_TRUE(r) << path;
    EXPECT_EQ(r->status, 404) << path;
  }
  expect_error(get("/api/nothing"), 404, "not found");
  expect_error(post("/api/info", "{}"), 404, "no such route: POST /api/info");
}

TEST_F(ServerTest, ASecondServerOnTheSamePortIsRefused) {
  ServeOptions opt;
  opt.port = server_->port();
  try {
    ExplorerServer second(checkpoint_load(*dir_ / "model.safetensors"), *dir_ / "model.safetensors", opt);
    FAIL() << "a second server bound port " << opt.port;
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("cannot listen on 127.0.0.1:" + std::to_string(opt.port)), std::string::npos)
        << e.what();
  }
  EXPECT_EQ(get("/api/info").first, 200);
}

TEST_F(ServerTest, ConcurrentRequestsAllSucceed) {
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&ok, t] {
      auto c = client();
      for (int i = 0; i < 25; ++i) {
        json body = {{"z", json::array({{t, i * 0.1, -1}})}};
        auto r = c.Post("/api/decode", body.dump(), "application/json");
        if (r && r->status == 200) ++ok;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), 200);
}

TEST_F(ServerTest, SdRoutesSayWhenThereIsNoAutoencoder) {
  expect_error(get("/api/sd/info"), 404, "start latent serve with --vae");
  expect_error(post("/api/sd/decode", "{}"), 404, "--vae FILE or --taesd FILE");
}

// The SD latents view's API on the small fixture autoencoder (tests/sd_vae_reference.py): its replies
// against the library's own encode and decode of the same image.
TEST(SdApiTest, EncodeDecodeAndWalkMatchTheAutoencoder) {
  const std::string file = std::string(LATENT_FIXTURES) + "/sd/diffusers_f32.safetensors";
  auto reference = SdAutoencoder::load(file, SdLoadOptions{});
  SdApi api(SdAutoencoder::load(file, SdLoadOptions{}), file, 16);
  EXPECT_EQ(api.info()["latent_channels"], 4);
  EXPECT_EQ(api.info()["factor"], 2);
  // A 24x16 image: its central 16x16 square is what gets encoded.
  at::manual_seed(5);
  const at::Tensor image = at::rand({3, 16, 24});
  const std::string png = base64_encode(png_encode(image));
  const json e = api.encode({{"png", png}});
  const at::Tensor square = image_decode(png_encode(image), "t", 3).narrow(2, 4, 16).unsqueeze(0);  // [1, 3, 16, 16]
  c10::InferenceMode guard;
  const at::Tensor z = reference->encode(square * 2 - 1, false);  // [1, 4, 8, 8]
  EXPECT_EQ(e["shape"], json({4, 8, 8}));
  const at::Tensor got = at::tensor(e["latents"].get<std::vector<float>>()).view({1, 4, 8, 8});
  EXPECT_TRUE(test::all_close(got, z, 0, 1e-4));  // four decimals
  EXPECT_EQ(e["channels"]["shape"], json({4, 1, 8, 8}));
  EXPECT_EQ(e["input"]["shape"], json({1, 3, 16, 16}));
  const at::Tensor decoded = ((reference->decode(z).clamp(-1, 1) + 1) / 2).mul(255).round();
  const auto pixels = [](const json& images) {
    const std::string bytes = base64_decode(images.at("pixels").get<std::string>(), "test");
    return at::from_blob(const_cast<char*>(bytes.data()), images.at("shape").get<std::vector<int64_t>>(), at::kByte)
        .to(at::kFloat);
  };
  EXPECT_LE((pixels(e["decoded"]) - decoded).abs().max().item<float>(), 1.0f);
  const json d = api.decode({{"latents", e["latents"]}});
  EXPECT_LE((pixels(d["image"]) - decoded).abs().max().item<float>(), 1.0f);
  // A walk to the latents' negation: its ends decode as the ends, its middle (linear) as zero latents.
  json neg = json::array();
  for (const auto& v : e["latents"]) neg.push_back(-v.get<double>());
  const json w = api.interpolate({{"a", e["latents"]}, {"b", neg}, {"t", {0, 0.5, 1}}});
  const at::Tensor frames = pixels(w["images"]);  // [3, 3, 16, 16]
  EXPECT_LE((frames[0] - decoded[0]).abs().max().item<float>(), 1.0f);
  EXPECT_LE(
      (frames[1] - ((reference->decode(at::zeros_like(z)).clamp(-1, 1) + 1) / 2).mul(255).round()[0]).abs().max().item<float>(),
      1.0f);
  EXPECT_LE((frames[2] - ((reference->decode(-z).clamp(-1, 1) + 1) / 2).mul(255).round()[0]).abs().max().item<float>(), 1.0f);
  // Bad requests: named, 400.
  auto status_of = [](const std::function<void()>& fn) {
    try {
      fn();
    } catch (const ApiError& err) {
      return std::make_pair(err.status, std::string(err.what()));
    }
    return std::make_pair(200, std::string());
  };
  auto [s1, m1] = status_of([&] { api.encode({{"png", base64_encode("not an image")}}); });
  EXPECT_EQ(s1, 400);
  EXPECT_NE(m1.find("not a readable PNG"), std::string::npos) << m1;
  auto [s2, m2] = status_of([&] { api.decode({{"latents", {1, 2, 3}}}); });
  EXPECT_EQ(s2, 400);
  EXPECT_NE(m2.find("latents here are 4 x 8 x 8 = 256"), std::string::npos) << m2;
  auto [s3, m3] = status_of([&] { api.interpolate({{"a", e["latents"]}, {"b", e["latents"]}, {"steps", 50}}); });
  EXPECT_EQ(s3, 400);
  EXPECT_NE(m3.find("'steps' must be between 2 and 9"), std::string::npos) << m3;
  json nan = e["latents"];
  nan[3] = "x";
  auto [s4, m4] = status_of([&] { api.decode({{"latents", nan}}); });
  EXPECT_EQ(s4, 400);
  EXPECT_NE(m4.find("'latents'[3] must be a finite number"), std::string::npos) << m4;
  EXPECT_THROW(SdApi(SdAutoencoder::load(file, SdLoadOptions{}), file, 15), Error);  // not a multiple of 2
}

}  // namespace
}  // namespace latent::server
