#include "models/smiles_vae/smiles_vae.h"

#include <ATen/ATen.h>
#include <torch/nn/utils/rnn.h>

#include <algorithm>
#include <limits>

#include "latent/smiles_tokens.h"

namespace latent {

SmilesVaeNetImpl::SmilesVaeNetImpl(const SmilesVaeSizes& s) : sizes_(s) {
  namespace nn = torch::nn;
  embedding = register_module("embedding",
                              nn::Embedding(nn::EmbeddingOptions(s.vocabulary, s.embedding).padding_idx(SmilesVocabulary::kPad)));
  encoder =
      register_module("encoder", nn::GRU(nn::GRUOptions(s.embedding, s.encoder_hidden).batch_first(true).bidirectional(true)));
  fc_mu = register_module("fc_mu", nn::Linear(2 * s.encoder_hidden, s.latent));
  fc_logvar = register_module("fc_logvar", nn::Linear(2 * s.encoder_hidden, s.latent));
  decoder_init = register_module("decoder_init", nn::Linear(s.latent, s.decoder_layers * s.decoder_hidden));
  decoder = register_module(
      "decoder",
      nn::GRU(nn::GRUOptions(s.embedding + s.latent, s.decoder_hidden).num_layers(s.decoder_layers).batch_first(true)));
  output = register_module("output", nn::Linear(s.decoder_hidden, s.vocabulary));
}

std::pair<at::Tensor, at::Tensor> SmilesVaeNetImpl::encode(const at::Tensor& tokens, const at::Tensor& lengths) {
  const at::Tensor e = embedding->forward(tokens);  // [B, T, E]
  const auto packed = torch::nn::utils::rnn::pack_padded_sequence(e, lengths.to(at::kLong).cpu(), /*batch_first=*/true,
                                                                  /*enforce_sorted=*/false);
  const at::Tensor h = std::get<1>(encoder->forward_with_packed_input(packed));  // [2, B, H_enc]
  const at::Tensor both = at::cat({h[0], h[1]}, 1);                              // [B, 2 H_enc]
  return {fc_mu->forward(both), fc_logvar->forward(both)};                       // [B, d] each
}

at::Tensor SmilesVaeNetImpl::initial_state(const at::Tensor& z) {
  const int64_t b = z.size(0);
  return decoder_init
      ->forward(z)                                              // [B, L H]
      .view({b, sizes_.decoder_layers, sizes_.decoder_hidden})  // [B, L, H]
      .transpose(0, 1)
      .contiguous();  // [L, B, H]
}

at::Tensor SmilesVaeNetImpl::decode(const at::Tensor& z, const at::Tensor& tokens) {
  const int64_t b = tokens.size(0), t = tokens.size(1) - 1;
  const at::Tensor e = embedding->forward(tokens.narrow(1, 0, t));                  // [B, T-1, E]
  const at::Tensor in = at::cat({e, z.unsqueeze(1).expand({b, t, z.size(1)})}, 2);  // [B, T-1, E + d]
  const at::Tensor out = std::get<0>(decoder->forward(in, initial_state(z)));       // [B, T-1, H]
  return output->forward(out);                                                      // [B, T-1, V]
}

at::Tensor SmilesVaeNetImpl::reconstruction_nll(const at::Tensor& logits, const at::Tensor& tokens) {
  const int64_t b = logits.size(0), t = logits.size(1), v = logits.size(2);
  const at::Tensor targets = tokens.narrow(1, 1, t).reshape({b * t});  // [B (T-1)]
  const at::Tensor ce = at::cross_entropy_loss(logits.reshape({b * t, v}), targets, {}, at::Reduction::None,
                                               SmilesVocabulary::kPad);  // [B (T-1)]
  return ce.view({b, t}).sum(1);                                         // [B]
}

at::Tensor SmilesVaeNetImpl::generate(const at::Tensor& z, int64_t max_length, double temperature, at::Generator* gen,
                                      const SmilesGrammar* grammar) {
  const int64_t b = z.size(0), v = sizes_.vocabulary;
  std::vector<SmilesGrammar::State> states(grammar ? static_cast<size_t>(b) : 0);
  at::Tensor rows = at::full({b, max_length + 1}, SmilesVocabulary::kPad, at::kLong);
  rows.select(1, 0).fill_(SmilesVocabulary::kBos);
  // Only the rows still being written go through the decoder: a finished row leaves the batch.
  at::Tensor active = at::arange(b, at::kLong);                         // [A] rows of `rows`
  at::Tensor zs = z, h = initial_state(z);                              // [A, d], [L, A, H]
  at::Tensor token = at::full({b}, SmilesVocabulary::kBos, at::kLong);  // [A]
  for (int64_t step = 1; step <= max_length && active.size(0) > 0; ++step) {
    const int64_t a = active.size(0);
    const at::Tensor in = at::cat({embedding->forward(token), zs}, 1).unsqueeze(1);  // [A, 1, E + d]
    auto [out, next] = decoder->forward(in, h);                                      // [A, 1, H], [L, A, H]
    h = next;
    at::Tensor logits = output->forward(out.squeeze(1));  // [A, V]
    const int64_t* row_of = active.data_ptr<int64_t>();
    if (grammar) {  // only the tokens that keep each row a SMILES that can still be finished
      at::Tensor mask = at::empty({a, v}, at::kByte);
      uint8_t* m = mask.data_ptr<uint8_t>();
      for (int64_t i = 0; i < a; ++i) {
        uint8_t* allowed = m + i * v;
        grammar->allowed(states[static_cast<size_t>(row_of[i])], max_length - step + 1, allowed);
        if (std::find(allowed, allowed + v, uint8_t{1}) == allowed + v)
          allowed[SmilesVocabulary::kEos] = 1;  // nothing fits: it ends
      }
      logits = logits.masked_fill(mask.eq(0), -std::numeric_limits<float>::infinity());
    }
    if (temperature <= 0) {
      token = logits.argmax(1);
    } else {
      const at::Tensor p = at::softmax(logits / temperature, 1);
      token = at::multinomial(p, 1, false, gen ? c10::optional<at::Generator>(*gen) : c10::nullopt).squeeze(1);
    }
    token = token.contiguous();
    rows.select(1, step).index_copy_(0, active, token);
    if (grammar) {
      const int64_t* t = token.data_ptr<int64_t>();
      for (int64_t i = 0; i < a; ++i) grammar->advance(states[static_cast<size_t>(row_of[i])], t[i]);
    }
    const at::Tensor going = token != SmilesVocabulary::kEos;  // [A]
    if (!going.all().item<bool>()) {
      const at::Tensor keep = going.nonzero().squeeze(1);
      active = active.index_select(0, keep);
      zs = zs.index_select(0, keep);
      h = h.index_select(1, keep);
      token = token.index_select(0, keep);
    }
  }
  return rows;
}

}  // namespace latent
