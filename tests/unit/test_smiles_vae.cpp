// The SMILES VAE's network against PyTorch (tests/smiles_vae_reference.py writes the fixture): the
// same weights, tokens and noise give the same encodings, logits, token NLL, KL and gradients.
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/autograd.h>

#include "latent/error.h"
#include "latent/safetensors.h"
#include "latent/smiles_tokens.h"
#include "models/smiles_vae/gru.h"
#include "models/smiles_vae/smiles_vae.h"

namespace latent {
namespace {

// float32 on both sides through the same GRU kernels; sums of a few dozen terms: 1e-5 relative to
// each tensor's largest magnitude.
void expect_close(const at::Tensor& got, const at::Tensor& want, const std::string& what, double rel = 1e-5) {
  ASSERT_EQ(got.sizes(), want.sizes()) << what;
  const double scale = std::max(1.0, want.abs().max().item<double>());
  const double err = (got.to(at::kDouble) - want.to(at::kDouble)).abs().max().item<double>();
  EXPECT_LE(err, rel * scale) << what << ": max error " << err << " at scale " << scale;
}

struct Reference {
  SafetensorsFile file = safetensors_load(std::string(LATENT_FIXTURES) + "/smiles_vae_reference.safetensors");
  SmilesVaeSizes sizes() const {
    SmilesVaeSizes s;
    s.vocabulary = std::stoll(file.metadata.at("vocabulary"));
    s.latent = std::stoll(file.metadata.at("latent"));
    s.embedding = std::stoll(file.metadata.at("embedding"));
    s.encoder_hidden = std::stoll(file.metadata.at("encoder_hidden"));
    s.decoder_hidden = std::stoll(file.metadata.at("decoder_hidden"));
    s.decoder_layers = std::stoll(file.metadata.at("decoder_layers"));
    return s;
  }
  SmilesVaeNet net() const {
    SmilesVaeNet n(sizes());
    at::NoGradGuard no_grad;
    for (auto& p : n->named_parameters()) {
      const at::Tensor w = file.find(p.key());
      EXPECT_TRUE(w.defined()) << "no " << p.key() << " in the fixture";
      if (w.defined()) p.value().copy_(w);
    }
    return n;
  }
};

// A GRU layer's inputs, random, each a leaf that collects its gradient; at::gru (ATen's GRU, an
// independent implementation of the same cell) as the reference.
struct GruCase {
  int64_t T, B, I, H;
  at::Tensor x, h0, w_ih, w_hh, b_ih, b_hh;
  GruCase(int64_t t, int64_t b, int64_t i, int64_t h, uint64_t seed) : T(t), B(b), I(i), H(h) {
    at::manual_seed(seed);
    auto leaf = [](at::Tensor v) { return v.requires_grad_(true); };
    x = leaf(at::randn({T, B, I}));
    h0 = leaf(at::randn({B, H}) * 0.5);
    w_ih = leaf(at::randn({3 * H, I}) * 0.4);
    w_hh = leaf(at::randn({3 * H, H}) * 0.4);
    b_ih = leaf(at::randn({3 * H}) * 0.3);
    b_hh = leaf(at::randn({3 * H}) * 0.3);
  }
  std::vector<at::Tensor> inputs() const { return {x, h0, w_ih, w_hh, b_ih, b_hh}; }
  at::Tensor aten() const {
    return std::get<0>(at::gru(x, h0.unsqueeze(0), {w_ih, w_hh, b_ih, b_hh}, true, 1, 0.0, false, false, false));
  }
};
constexpr const char* kGruInputNames[] = {"x", "h0", "w_ih", "w_hh", "b_ih", "b_hh"};

// latent's GRU layer (gru.h) against ATen's at::gru, an independent implementation of the same cell:
// every step's state and the gradients of all six inputs; then a few gradients against central
// finite differences of the float32 loss.
TEST(Gru, MatchesAtenGruAndFiniteDifferences) {
  const GruCase c(7, 5, 6, 11, 3);
  const at::Tensor weight = at::randn({c.T, c.B, c.H});  // loss = sum(weight * Y)
  const std::vector<at::Tensor> inputs = c.inputs();

  auto ours = [&] { return gru_sequence(at::linear(c.x, c.w_ih, c.b_ih), c.h0, c.w_hh, c.b_hh); };
  const at::Tensor y = ours();
  const at::Tensor want = c.aten();
  expect_close(y, want, "states");
  const auto g_ours = torch::autograd::grad({(y * weight).sum()}, inputs);
  const auto g_want = torch::autograd::grad({(want * weight).sum()}, inputs);
  for (size_t i = 0; i < inputs.size(); ++i) expect_close(g_ours[i], g_want[i], std::string("gradient of ") + kGruInputNames[i]);

  at::NoGradGuard no_grad;
  auto loss = [&] { return (ours() * weight).sum().item<double>(); };
  const double eps = 1e-2;
  for (size_t i = 1; i < inputs.size(); ++i) {
    at::Tensor p = inputs[i].view(-1);
    for (int64_t e : {int64_t{0}, p.numel() / 2, p.numel() - 1}) {
      const float keep = p[e].item<float>();
      p[e] = keep + eps;
      const double up = loss();
      p[e] = keep - eps;
      const double down = loss();
      p[e] = keep;
      const double numeric = (up - down) / (2 * eps), analytic = g_ours[i].view(-1)[e].item<double>();
      EXPECT_NEAR(analytic, numeric, 2e-3 * std::max(1.0, std::abs(numeric))) << kGruInputNames[i] << "[" << e << "]";
    }
  }
}

TEST(Gru, PackedRowsRunTheirOwnLengths) {
  const GruCase c(6, 4, 3, 7, 5);
  const PackedSteps steps = PackedSteps::of_lengths(at::tensor(std::vector<int64_t>{6, 4, 4, 1}));
  EXPECT_EQ(steps.total, 15);
  EXPECT_EQ(steps.running, (std::vector<int64_t>{4, 3, 3, 3, 1, 1}));
  EXPECT_TRUE(at::equal(steps.last_positions(), at::tensor(std::vector<int64_t>{14, 11, 12, 3})));
  const at::Tensor positions = steps.positions();  // into [T * B]
  const at::Tensor weight = at::randn({steps.total, c.H});
  const std::vector<at::Tensor> inputs = c.inputs();
  const at::Tensor packed_x = c.x.reshape({c.T * c.B, c.I}).index_select(0, positions);
  const at::Tensor y = gru_packed(at::linear(packed_x, c.w_ih, c.b_ih), c.h0, c.w_hh, c.b_hh, steps);  // [15, H]
  // Each row's states are the full sequence's up to its end (a step never sees the ones after it).
  const at::Tensor want = c.aten().reshape({c.T * c.B, c.H}).index_select(0, positions);
  expect_close(y, want, "packed states");
  // The same gradients as the full sequence's loss over those positions; none past a row's end.
  const auto g = torch::autograd::grad({(y * weight).sum()}, inputs);
  const auto g_want = torch::autograd::grad({(want * weight).sum()}, inputs);
  for (size_t i = 0; i < inputs.size(); ++i) expect_close(g[i], g_want[i], std::string("gradient of ") + kGruInputNames[i]);
  EXPECT_EQ(g[0][5][3].abs().max().item<float>(), 0.0f);  // row 3 ran one step
  EXPECT_THROW(PackedSteps::of_lengths(at::tensor(std::vector<int64_t>{1, 4, 4, 6})), Error);
  EXPECT_THROW(PackedSteps::of_lengths(at::tensor(std::vector<int64_t>{4, 0})), Error);
}

TEST(Gru, OneStepIsTheSequencesFirstStep) {
  at::manual_seed(4);
  const int64_t B = 3, H = 9;
  const at::Tensor gi = at::randn({2, B, 3 * H}), h0 = at::randn({B, H}), w = at::randn({3 * H, H}) * 0.3, b = at::randn({3 * H});
  const at::Tensor y = gru_sequence(gi, h0, w, b);
  const at::Tensor h1 = gru_step(gi[0], h0, w, b);
  EXPECT_TRUE(at::equal(h1, y[0]));
  EXPECT_TRUE(at::equal(gru_step(gi[1], h1, w, b), y[1]));
}

TEST(SmilesVae, MatchesPyTorchForwardAndGradients) {
  const Reference ref;
  SmilesVaeNet net = ref.net();
  const at::Tensor tokens = ref.file.find("in.tokens"), lengths = ref.file.find("in.lengths");
  auto [mu, logvar] = net->encode(tokens, lengths);
  expect_close(mu, ref.file.find("out.mu"), "mu");
  expect_close(logvar, ref.file.find("out.logvar"), "logvar");
  const at::Tensor z = mu + at::exp(0.5 * logvar) * ref.file.find("in.eps");
  const at::Tensor logits = net->decode(z, tokens);
  // Logits after a row's kEos are the padding's (the loss ignores them; latent does not run those steps).
  const at::Tensor real = (tokens.narrow(1, 1, tokens.size(1) - 1) != SmilesVocabulary::kPad).unsqueeze(2);
  expect_close(logits * real, ref.file.find("out.logits") * real, "logits up to each row's end");
  const at::Tensor nll = SmilesVaeNetImpl::reconstruction_nll(logits, tokens);
  expect_close(nll, ref.file.find("out.nll"), "nll");
  const at::Tensor kl = 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum(1);
  const at::Tensor loss = (nll + kl).mean();
  expect_close(loss.reshape({1}), ref.file.find("out.loss"), "loss");
  loss.backward();
  int checked = 0;
  for (const auto& p : net->named_parameters()) {
    expect_close(p.value().grad(), ref.file.find("grad." + p.key()), "gradient of " + p.key(), 2e-5);
    ++checked;
  }
  // embedding; the encoder GRU's 8 tensors (2 directions); fc_mu, fc_logvar, decoder_init (2 each);
  // the decoder GRU's 8 (2 layers); output (2): every gradient the fixture holds.
  EXPECT_EQ(checked, 25);
  int in_fixture = 0;
  for (const auto& [name, t] : ref.file.tensors) in_fixture += name.rfind("grad.", 0) == 0 ? 1 : 0;
  EXPECT_EQ(in_fixture, checked);
}

TEST(SmilesVae, PaddingAfterTheEndChangesNothing) {
  const Reference ref;
  SmilesVaeNet net = ref.net();
  at::NoGradGuard no_grad;
  const at::Tensor tokens = ref.file.find("in.tokens"), lengths = ref.file.find("in.lengths");
  // Row 1 is padded; writing other tokens after its kEos must not move its encoding or its NLL.
  at::Tensor noisy = tokens.clone();
  noisy[1].narrow(0, 3, 6).fill_(7);
  auto [mu, logvar] = net->encode(tokens, lengths);
  auto [mu2, logvar2] = net->encode(noisy, lengths);
  expect_close(mu2[1], mu[1], "mu of a padded row");
  const at::Tensor z = mu;
  const at::Tensor a = SmilesVaeNetImpl::reconstruction_nll(net->decode(z, tokens), tokens);
  at::Tensor b_tokens = tokens.clone();
  b_tokens[1].narrow(0, 3, 6).fill_(SmilesVocabulary::kPad);
  const at::Tensor b = SmilesVaeNetImpl::reconstruction_nll(net->decode(z, b_tokens), b_tokens);
  expect_close(b, a, "nll");
}

TEST(SmilesVae, GreedyDecodingFollowsTheTeacherForcedArgmax) {
  const Reference ref;
  SmilesVaeNet net = ref.net();
  at::NoGradGuard no_grad;
  const at::Tensor z = ref.file.find("in.eps");
  const at::Tensor rows = net->generate(z, 12, 0.0, nullptr);  // [3, 13]
  ASSERT_EQ(rows.sizes(), (at::IntArrayRef{3, 13}));
  EXPECT_TRUE((rows.select(1, 0) == SmilesVocabulary::kBos).all().item<bool>());
  // Feeding the generated rows back with teacher forcing, every generated token is the argmax.
  const at::Tensor logits = net->decode(z, rows);  // [3, 12, V]
  for (int64_t r = 0; r < 3; ++r) {
    for (int64_t t = 1; t <= 12; ++t) {
      const int64_t tok = rows[r][t].item<int64_t>();
      if (tok == SmilesVocabulary::kPad) {
        EXPECT_TRUE((rows[r].narrow(0, t, 13 - t) == SmilesVocabulary::kPad).all().item<bool>()) << "row " << r;
        break;
      }
      EXPECT_EQ(tok, logits[r][t - 1].argmax().item<int64_t>()) << "row " << r << " step " << t;
      if (tok == SmilesVocabulary::kEos) break;
    }
  }
  // Sampling with a generator is reproducible.
  at::Generator g1 = at::make_generator<at::CPUGeneratorImpl>(5), g2 = at::make_generator<at::CPUGeneratorImpl>(5);
  EXPECT_TRUE(at::equal(net->generate(z, 12, 1.0, &g1), net->generate(z, 12, 1.0, &g2)));
}

}  // namespace
}  // namespace latent
