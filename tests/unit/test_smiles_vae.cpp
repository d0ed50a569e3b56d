// The SMILES VAE's network against PyTorch (tests/smiles_vae_reference.py writes the fixture): the
// same weights, tokens and noise give the same encodings, logits, token NLL, KL and gradients.
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/autograd.h>

#include "latent/safetensors.h"
#include "latent/smiles_tokens.h"
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

TEST(SmilesVae, MatchesPyTorchForwardAndGradients) {
  const Reference ref;
  SmilesVaeNet net = ref.net();
  const at::Tensor tokens = ref.file.find("in.tokens"), lengths = ref.file.find("in.lengths");
  auto [mu, logvar] = net->encode(tokens, lengths);
  expect_close(mu, ref.file.find("out.mu"), "mu");
  expect_close(logvar, ref.file.find("out.logvar"), "logvar");
  const at::Tensor z = mu + at::exp(0.5 * logvar) * ref.file.find("in.eps");
  const at::Tensor logits = net->decode(z, tokens);
  expect_close(logits, ref.file.find("out.logits"), "logits");
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
