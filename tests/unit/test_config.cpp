#include "latent/config.h"
#include "latent/error.h"
#include "latent/model.h"
#include "test_util.h"

namespace latent {
namespace {

ModelConfig parse(const std::string& text) { return ModelConfig::from_text_or_file(text); }

TEST(ModelConfig, AcceptsTheShortFormAndRoundTrips) {
  ModelConfig c = parse(R"({"type": "mlp_vae", "hidden": [400], "latent": 20, "likelihood": "bernoulli"})");
  EXPECT_EQ(c.type, "mlp_vae");
  EXPECT_EQ(c.hidden, std::vector<int64_t>{400});
  EXPECT_EQ(c.latent, 20);
  EXPECT_EQ(c.beta, 1.0);
  ModelConfig again = ModelConfig::from_json(c.to_json());
  EXPECT_EQ(again.to_json(), c.to_json());
}

TEST(ModelConfig, RejectsBadKeysAndValuesNamingTheKey) {
  EXPECT_ERROR_WITH(parse(R"({"type": "mlp_vae", "hidden": [400], "latent": 20, "hiden": 3})"), "unknown key 'hiden'");
  EXPECT_ERROR_WITH(parse(R"({"type": "mlp_vae", "hidden": [400], "latent": 0})"), "'latent'");
  EXPECT_ERROR_WITH(parse(R"({"type": "mlp_vae", "hidden": [400, -1], "latent": 2})"), "'hidden'");
  EXPECT_ERROR_WITH(parse(R"({"type": "gan", "latent": 2})"), "'type'");
  EXPECT_ERROR_WITH(parse(R"({"type": "mlp_vae", "hidden": [4], "latent": 2, "likelihood": "poisson"})"), "'likelihood'");
  EXPECT_ERROR_WITH(parse(R"({"type": "mlp_vae", "hidden": [4], "latent": 2, "channels": [3]})"), "unknown key 'channels'");
  EXPECT_ERROR_WITH(parse(R"({"type": "mlp_vae", "hidden": [4], "latent": 2, "sigma": 0.5})"), "'sigma'");
  EXPECT_ERROR_WITH(parse(R"({"type": "conv_vae", "latent": 2})"), "'channels'");
  EXPECT_ERROR_WITH(parse(R"({"type": "mlp_vae", "hidden": [4], "latent": 2, "beta": -1})"), "'beta'");
  EXPECT_ERROR_WITH(parse(R"({"type": "mlp_vae", "latent": 2)"), "invalid JSON");
  EXPECT_ERROR_WITH(parse("no-such-config.json"), "no such file");
}

TEST(ModelConfig, ConvVaeChecksTheImageSize) {
  ModelConfig c = parse(R"({"type": "conv_vae", "channels": [8, 16], "latent": 4})");
  EXPECT_NO_THROW(make_model(c, {1, 28, 28}));
  EXPECT_NO_THROW(make_model(c, {3, 64, 48}));
  EXPECT_ERROR_WITH(make_model(c, {1, 30, 30}), "divisible by 4");
  EXPECT_ERROR_WITH(make_model(c, {2, 28, 28}), "1 or 3 channels");
  EXPECT_ERROR_WITH(make_model(c, {784}), "1 or 3 channels");
}

TEST(Models, ParameterNamesFollowPyTorchStateDicts) {
  Vae m = make_vae(parse(R"({"type": "mlp_vae", "hidden": [400], "latent": 20})"), {1, 28, 28});
  std::vector<std::string> names;
  for (const auto& p : m->named_parameters()) names.push_back(p.key());
  EXPECT_EQ(names, (std::vector<std::string>{"encoder.0.weight", "encoder.0.bias", "fc_mu.weight", "fc_mu.bias",
                                             "fc_logvar.weight", "fc_logvar.bias", "decoder.0.weight", "decoder.0.bias",
                                             "decoder.2.weight", "decoder.2.bias"}));
  EXPECT_EQ(m->named_parameters()["encoder.0.weight"].sizes(), at::IntArrayRef({400, 784}));
  EXPECT_EQ(m->named_parameters()["decoder.2.weight"].sizes(), at::IntArrayRef({784, 400}));
}

}  // namespace
}  // namespace latent
