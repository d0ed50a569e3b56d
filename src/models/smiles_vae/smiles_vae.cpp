#include "models/smiles_vae/smiles_vae.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <limits>

#include "latent/smiles_tokens.h"
#include "models/smiles_vae/gru.h"

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

GruWeights SmilesVaeNetImpl::gru_weights(const torch::nn::GRU& gru, int64_t layer, bool reverse) {
  const std::string suffix = "_l" + std::to_string(layer) + (reverse ? "_reverse" : "");
  const auto params = gru->named_parameters(/*recurse=*/false);
  return {params["weight_ih" + suffix], params["weight_hh" + suffix], params["bias_ih" + suffix], params["bias_hh" + suffix]};
}

std::pair<at::Tensor, at::Tensor> SmilesVaeNetImpl::encode(const at::Tensor& tokens, const at::Tensor& lengths) {
  // Each direction's final state is its state after the row's last real token: the forward
  // direction reads the row, the reverse one the row's tokens [0, length) in reverse order (what a
  // packed bidirectional GRU does). Both run packed: rows longest first, each for its length.
  const int64_t t = tokens.size(1);
  const auto [len, order] = lengths.to(at::kLong).clamp(1, t).sort(0, /*descending=*/true);
  const PackedSteps steps = PackedSteps::of_lengths(len);
  const at::Tensor positions = steps.positions(), last = steps.last_positions();
  const at::Tensor rows = tokens.index_select(0, order);
  const at::Tensor back = (len.unsqueeze(1) - 1 - at::arange(t, at::kLong).unsqueeze(0)).remainder(t);  // [B, T]
  const at::Tensor h0 = at::zeros({tokens.size(0), sizes_.encoder_hidden}, at::kFloat);
  at::Tensor finals[2];
  for (int direction = 0; direction < 2; ++direction) {
    const GruWeights w = gru_weights(encoder, 0, direction == 1);
    const at::Tensor read = direction == 0 ? rows : rows.gather(1, back);                      // [B, T]
    const at::Tensor e = embedding->forward(read.t().reshape(-1).index_select(0, positions));  // [N, E]
    finals[direction] = gru_packed(at::linear(e, w.w_ih, w.b_ih), h0, w.w_hh, w.b_hh, steps).index_select(0, last);
  }
  // Back to the caller's row order.
  const at::Tensor both = at::cat({finals[0], finals[1]}, 1).index_select(0, at::argsort(order));  // [B, 2 H_enc]
  return {fc_mu->forward(both), fc_logvar->forward(both)};                                         // [B, d] each
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
  const int64_t b = tokens.size(0), t = tokens.size(1) - 1, e_size = sizes_.embedding, d = sizes_.latent;
  // Packed: the rows longest first, each run for the tokens it predicts (its kBos up to the token
  // before its kEos); the logits after a row's end are 0 (the loss ignores them).
  const auto [len, order] = (tokens.narrow(1, 1, t) != SmilesVocabulary::kPad).sum(1).clamp(1, t).sort(0, true);
  const PackedSteps steps = PackedSteps::of_lengths(len);
  const at::Tensor positions = steps.positions();  // [N]
  const at::Tensor zs = z.index_select(0, order);
  const at::Tensor read = tokens.index_select(0, order).narrow(1, 0, t).t().reshape(-1).index_select(0, positions);
  const at::Tensor h0 = initial_state(zs);  // [L, B, H]
  // Layer 0 reads [embedding, z] at every step: z's part of its product is taken once per row.
  GruWeights w = gru_weights(decoder, 0, false);
  const at::Tensor z_part = at::linear(zs, w.w_ih.narrow(1, e_size, d), w.b_ih);  // [B, 3H]
  const at::Tensor gi = at::linear(embedding->forward(read), w.w_ih.narrow(1, 0, e_size)) +
                        z_part.index_select(0, positions.remainder(b));  // [N, 3H]
  at::Tensor y = gru_packed(gi, h0[0], w.w_hh, w.b_hh, steps);           // [N, H]
  for (int64_t l = 1; l < sizes_.decoder_layers; ++l) {
    w = gru_weights(decoder, l, false);
    y = gru_packed(at::linear(y, w.w_ih, w.b_ih), h0[l], w.w_hh, w.b_hh, steps);
  }
  const at::Tensor packed = output->forward(y);  // [N, V]
  const at::Tensor padded = at::zeros({t * b, packed.size(1)}, packed.options()).index_copy(0, positions, packed);
  return padded.view({t, b, packed.size(1)}).index_select(1, at::argsort(order)).transpose(0, 1);  // [B, T-1, V]
}

at::Tensor SmilesVaeNetImpl::reconstruction_nll(const at::Tensor& logits, const at::Tensor& tokens) {
  const int64_t b = logits.size(0), t = logits.size(1), v = logits.size(2);
  const at::Tensor targets = tokens.narrow(1, 1, t).reshape({b * t});  // [B (T-1)]
  const at::Tensor ce = at::cross_entropy_loss(logits.reshape({b * t, v}), targets, {}, at::Reduction::None,
                                               SmilesVocabulary::kPad);  // [B (T-1)]
  return ce.view({b, t}).sum(1);                                         // [B]
}

at::Tensor drop_words(const at::Tensor& tokens, const at::Tensor& uniform, double p) {
  const at::Tensor word =
      (tokens != SmilesVocabulary::kPad) & (tokens != SmilesVocabulary::kBos) & (tokens != SmilesVocabulary::kEos);
  return at::where(word & (uniform < p), at::full({}, SmilesVocabulary::kUnk, tokens.options()), tokens);
}

at::Tensor SmilesVaeNetImpl::generate(const at::Tensor& z, int64_t max_length, double temperature, at::Generator* gen,
                                      const SmilesGrammar* grammar) {
  const int64_t b = z.size(0), v = sizes_.vocabulary;
  std::vector<SmilesGrammar::State> states(grammar ? static_cast<size_t>(b) : 0);
  at::Tensor rows = at::full({b, max_length + 1}, SmilesVocabulary::kPad, at::kLong);
  rows.select(1, 0).fill_(SmilesVocabulary::kBos);
  // Only the rows still being written go through the decoder: a finished row leaves the batch.
  at::Tensor active = at::arange(b, at::kLong);  // [A] rows of `rows`
  // Layer 0's input products: the embedding's for every token (a table [V, 3H]) and z's per row.
  const int64_t e_size = sizes_.embedding, layers = sizes_.decoder_layers;
  std::vector<GruWeights> w;
  for (int64_t l = 0; l < layers; ++l) w.push_back(gru_weights(decoder, l, false));
  const at::Tensor table = at::linear(embedding->weight, w[0].w_ih.narrow(1, 0, e_size));    // [V, 3H]
  at::Tensor z_part = at::linear(z, w[0].w_ih.narrow(1, e_size, sizes_.latent), w[0].b_ih);  // [A, 3H]
  std::vector<at::Tensor> h = initial_state(z).unbind(0);                                    // L x [A, H]
  at::Tensor token = at::full({b}, SmilesVocabulary::kBos, at::kLong);                       // [A]
  for (int64_t step = 1; step <= max_length && active.size(0) > 0; ++step) {
    const int64_t a = active.size(0);
    h[0] = gru_step(table.index_select(0, token) + z_part, h[0], w[0].w_hh, w[0].b_hh);  // [A, H]
    for (size_t l = 1; l < h.size(); ++l) h[l] = gru_step(at::linear(h[l - 1], w[l].w_ih, w[l].b_ih), h[l], w[l].w_hh, w[l].b_hh);
    at::Tensor logits = output->forward(h.back());  // [A, V]
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
      z_part = z_part.index_select(0, keep);
      for (auto& state : h) state = state.index_select(0, keep);
      token = token.index_select(0, keep);
    }
  }
  return rows;
}

}  // namespace latent
