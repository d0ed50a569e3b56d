// The smiles_vae family: its config keys, the model (the network of smiles_vae.h plus a property
// head), the data it reads (molecules re-encoded with its vocabulary, properties by name), its
// training step and its held-out metrics.
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <torch/nn/modules/activation.h>
#include <torch/nn/modules/container/sequential.h>

#include <cmath>
#include <cstdio>
#include <unordered_set>

#include "latent/chem.h"
#include "latent/error.h"
#include "latent/json.h"
#include "latent/objective.h"
#include "latent/smiles_vae.h"
#include "latent/train.h"
#include "models/config_keys.h"
#include "models/registry.h"
#include "models/smiles_vae/smiles_vae.h"
#include "models/training_step.h"

namespace latent {
namespace {

constexpr int64_t kPropertyHidden = 64;  // the property head: Linear(d, 64), ReLU, Linear(64, P)
constexpr int64_t kDecodeBatch = 2000;   // molecules decoded at once (finished ones leave the batch)
constexpr int64_t kMaxProperties = 32;
const std::set<std::string> kComputedProperties = {"logp", "mw", "tpsa", "qed", "sa", "plogp"};

int64_t token_width(const ModelConfig& c) { return c.smiles.max_length + 2; }

// Token rows without the columns that are padding in every row (the GRUs need not run over them).
at::Tensor trimmed(const at::Tensor& tokens) {
  const int64_t longest = (tokens != SmilesVocabulary::kPad).sum(1).max().item<int64_t>();
  return tokens.narrow(1, 0, std::max<int64_t>(2, longest)).contiguous();
}

class SmilesVaeModel : public SmilesVaeImpl {
 public:
  SmilesVaeModel(const ModelConfig& c, const std::vector<int64_t>& shape)
      : SmilesVaeImpl(c, shape), vocabulary_(SmilesVocabulary::from_json(c.smiles.vocabulary)), grammar_(c.smiles.vocabulary) {
    if (shape.size() != 1 || shape[0] != token_width(c))
      throw Error("a smiles_vae with max_length " + std::to_string(c.smiles.max_length) + " reads token rows of " +
                  std::to_string(token_width(c)) + ", got data of shape " + shape_text(shape));
    SmilesVaeSizes s;
    s.vocabulary = vocabulary_.size();
    s.latent = c.latent;
    s.embedding = c.smiles.embedding;
    s.encoder_hidden = c.smiles.encoder_hidden;
    s.decoder_hidden = c.smiles.decoder_hidden;
    s.decoder_layers = c.smiles.decoder_layers;
    net_ = SmilesVaeNet(s);
    // The network's modules under their own names (embedding.weight, encoder.weight_ih_l0, ...).
    for (const auto& child : net_->named_children()) register_module(child.key(), child.value());
    const int64_t p = static_cast<int64_t>(c.smiles.properties.size());
    if (p > 0) {
      namespace nn = torch::nn;
      head_ = register_module("property_head",
                              nn::Sequential(nn::Linear(c.latent, kPropertyHidden), nn::ReLU(), nn::Linear(kPropertyHidden, p)));
      mean_ = at::tensor(c.smiles.property_mean.empty() ? std::vector<double>(p, 0.0) : c.smiles.property_mean, at::kFloat);
      std_ = at::tensor(c.smiles.property_std.empty() ? std::vector<double>(p, 1.0) : c.smiles.property_std, at::kFloat);
    }
  }

  const SmilesVocabulary& vocabulary() const override { return vocabulary_; }

  Posterior encode(const at::Tensor& tokens) override {
    const at::Tensor t = tokens.to(at::kLong);
    const at::Tensor lengths = (t != SmilesVocabulary::kPad).sum(1).clamp_min(1);
    auto [mu, logvar] = net_->encode(t, lengths);
    return {mu, logvar};
  }

  at::Tensor generate(const at::Tensor& z, double temperature, at::Generator* gen, bool constrained) override {
    at::NoGradGuard no_grad;
    const SmilesGrammar* grammar = constrained ? &grammar_ : nullptr;
    std::vector<at::Tensor> parts;
    for (int64_t first = 0; first < z.size(0); first += kDecodeBatch)
      parts.push_back(
          net_->generate(z.narrow(0, first, std::min(kDecodeBatch, z.size(0) - first)), max_length(), temperature, gen, grammar));
    if (parts.empty()) return at::zeros({0, max_length() + 1}, at::kLong);
    return at::cat(parts);
  }

  at::Tensor token_nll(const at::Tensor& z, const at::Tensor& tokens) override {
    const at::Tensor t = tokens.to(at::kLong);
    return token_nll(z, t, t);
  }
  /// -log p(tokens | z) per molecule with the decoder reading `read` (word dropout's input).
  at::Tensor token_nll(const at::Tensor& z, const at::Tensor& read, const at::Tensor& tokens) {
    return SmilesVaeNetImpl::reconstruction_nll(net_->decode(z, read), tokens);
  }

  /// Standardized predictions [N, P] (the head's own output).
  at::Tensor head_output(const at::Tensor& z) {
    if (head_.is_empty()) throw Error("this smiles_vae has no property head (its config's 'properties' is empty)");
    return head_->forward(z);
  }
  at::Tensor predict_properties(const at::Tensor& z) override { return head_output(z) * std_ + mean_; }
  at::Tensor standardize(const at::Tensor& values) const { return (values.to(at::kFloat) - mean_) / std_; }
  bool has_head() const { return !head_.is_empty(); }

  SmilesVaeNetImpl& net() { return *net_; }

  // ModelImpl: token rows as float, like the data.
  at::Tensor reconstruct(const at::Tensor& x) override {
    at::NoGradGuard no_grad;
    return as_data(generate(encode(x).mu, 0, nullptr, false));
  }
  at::Tensor sample(int64_t n, at::Generator& gen, double temperature) override {
    at::NoGradGuard no_grad;
    return as_data(generate(at::randn({n, latent_dim()}, gen, at::kFloat) * temperature, 0, nullptr, false));
  }
  nlohmann::json evaluate(const Dataset& data, uint64_t seed, int64_t batch_size) override;
  std::unique_ptr<TrainingStep> training_step(const TrainOptions& options) override;

  /// The share of `data`'s first `limit` molecules whose greedy decoding of mu is the same molecule.
  double reconstruction_rate(const Dataset& data, int64_t limit) {
    at::NoGradGuard no_grad;
    eval();
    const int64_t n = std::min(limit, data.size());
    if (n == 0) return 0;
    const std::vector<std::string> out = smiles_of(generate(encode(data.x.narrow(0, 0, n)).mu, 0, nullptr, false));
    int64_t same = 0;
    for (int64_t i = 0; i < n; ++i) {
      const std::optional<std::string> c = canonical_smiles(out[static_cast<size_t>(i)]);
      same += c && *c == data.smiles.at(static_cast<size_t>(i));
    }
    return static_cast<double>(same) / static_cast<double>(n);
  }

  /// The share of n greedy decodings of z ~ N(0, I) that RDKit reads as a molecule.
  double prior_validity(int64_t n, uint64_t seed) {
    at::NoGradGuard no_grad;
    eval();
    at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed);
    const std::vector<std::string> out = decode_smiles(at::randn({n, latent_dim()}, gen, at::kFloat));
    int64_t valid = 0;
    for (const auto& s : out) valid += !s.empty() && canonical_smiles(s).has_value();
    return static_cast<double>(valid) / static_cast<double>(std::max<int64_t>(1, n));
  }

 private:
  at::Tensor as_data(const at::Tensor& rows) const {  // [N, max_length + 1] -> float [N, max_length + 2]
    return at::constant_pad_nd(rows, {0, token_width(config_) - rows.size(1)}, SmilesVocabulary::kPad).to(at::kFloat);
  }

  SmilesVocabulary vocabulary_;
  SmilesGrammar grammar_;
  SmilesVaeNet net_{nullptr};
  torch::nn::Sequential head_{nullptr};
  at::Tensor mean_, std_;  // [P]: the head's standardization, from the config
};

// ---- training -------------------------------------------------------------------------------

class SmilesTraining : public TrainingStep {
 public:
  SmilesTraining(SmilesVaeModel& model, const TrainOptions& o) : model_(model), options_(o) {}

  void set_training_data(const Dataset& train) override { train_ = &train; }

  BatchLoss run(const at::Tensor& x, const at::Tensor& index, const BatchRows& rows, at::Generator& gen,
                double kl_weight) override {
    const int64_t d = model_.latent_dim();
    // Noise for the whole batch, taken by rows: every rank's rows see one process's draws.
    const at::Tensor eps = rows.take(at::randn({rows.rows, d}, gen, at::kFloat));
    const at::Tensor seeds = rows.take(at::randint(int64_t{1} << 62, {rows.rows}, gen, at::kLong));
    const double dropout = model_.config().smiles.word_dropout;
    const at::Tensor uniform = dropout > 0 ? rows.take(at::rand({rows.rows, x.size(1)}, gen, at::kFloat)) : at::Tensor();
    // The encoder reads the molecule from a random atom order (augmented), the decoder writes its
    // canonical SMILES: z learns the molecule, not one way of writing it.
    const at::Tensor tokens = trimmed(x.to(at::kLong));
    const at::Tensor read = model_.config().smiles.augment ? trimmed(randomized(x.to(at::kLong), index, seeds)) : tokens;
    for (auto& p : model_.parameters())
      if (p.grad().defined()) p.mutable_grad().zero_();
    const Posterior q = model_.encode(read);
    const at::Tensor z = reparameterize(q.mu, q.logvar, eps);
    const at::Tensor fed = dropout > 0 ? drop_words(tokens, uniform.narrow(1, 0, tokens.size(1)), dropout) : tokens;
    const at::Tensor recon = model_.token_nll(z, fed, tokens).mean();
    const at::Tensor kl = kl_standard_normal(q.mu, q.logvar).mean();
    const at::Tensor kl_term = options_.free_bits > 0 ? kl_free_bits(q.mu, q.logvar, options_.free_bits) : kl;
    at::Tensor loss = recon + kl_weight * kl_term;
    BatchLoss out;
    double prop = 0;
    if (model_.has_head()) {
      const at::Tensor target = model_.standardize(train_->properties.index_select(0, index));  // [n, P]
      const at::Tensor err = (model_.head_output(z) - target).square().sum(1).mean();
      loss = loss + model_.config().smiles.property_weight * err;
      prop = err.item<double>();
    }
    loss.backward();
    tokens_ += (tokens.narrow(1, 1, tokens.size(1) - 1) != SmilesVocabulary::kPad).sum().item<double>();
    molecules_ += static_cast<double>(tokens.size(0));
    out.loss = loss.item<double>();
    out.terms = {{"recon", recon.item<double>()}, {"kl", kl.item<double>()}};
    if (model_.has_head()) out.terms.emplace_back("property", prop);
    return out;
  }

  void end_epoch(nlohmann::json& m, const Dataset& test, uint64_t eval_seed, bool /*last*/, const DataSplit& /*data*/,
                 bool progress) override {
    m["beta"] = options_.beta >= 0 ? options_.beta : model_.config().beta;
    // Tokens the decoder predicted per second (each molecule's tokens and its end), at the loop's rate.
    if (molecules_ > 0) m["tokens_per_s"] = m["samples_per_s"].get<double>() * tokens_ / molecules_;
    tokens_ = molecules_ = 0;
    m["train_elbo"] = -(m["train_recon"].get<double>() + m["train_kl"].get<double>());
    if (test.size() == 0) return;
    const nlohmann::json ev = model_.evaluate(test, eval_seed, 500);
    for (const char* key : {"elbo", "recon", "kl", "token_accuracy"}) m[std::string("test_") + key] = ev[key];
    m["active_units"] = ev["active_units"];
    if (ev.contains("property_rmse")) m["test_property_rmse"] = ev["property_rmse"];
    m["test_reconstruction"] = model_.reconstruction_rate(test, kEpochMolecules);
    m["prior_validity"] = model_.prior_validity(kEpochMolecules, eval_seed);
    if (progress)
      std::fprintf(stderr,
                   "  test: elbo %.2f  recon %.2f  kl %.2f  active units %lld/%lld  token accuracy %.3f  reconstructed %.3f  "
                   "prior validity %.3f\n",
                   ev["elbo"].get<double>(), ev["recon"].get<double>(), ev["kl"].get<double>(),
                   ev["active_units"].get<long long>(), static_cast<long long>(model_.latent_dim()),
                   ev["token_accuracy"].get<double>(), m["test_reconstruction"].get<double>(), m["prior_validity"].get<double>());
  }

 private:
  static constexpr int64_t kEpochMolecules = 500;  // greedy reconstructions and prior samples per epoch

  // Each row's molecule written from a random atom order (its seed), when it fits the row.
  at::Tensor randomized(const at::Tensor& tokens, const at::Tensor& index, const at::Tensor& seeds) const {
    at::Tensor out = tokens.clone();
    const int64_t n = tokens.size(0), width = tokens.size(1);
    const int64_t* idx = index.data_ptr<int64_t>();
    const int64_t* seed = seeds.data_ptr<int64_t>();
    int64_t* row = out.data_ptr<int64_t>();
    for (int64_t i = 0; i < n; ++i) {
      const std::string& smiles = train_->smiles.at(static_cast<size_t>(idx[i]));
      const std::vector<int64_t> ids = model_.vocabulary().encode(randomized_smiles(smiles, static_cast<uint64_t>(seed[i])));
      if (static_cast<int64_t>(ids.size()) > width) continue;  // longer than the model reads: keep the canonical form
      std::fill(row + i * width, row + (i + 1) * width, SmilesVocabulary::kPad);
      std::copy(ids.begin(), ids.end(), row + i * width);
    }
    return out;
  }

  SmilesVaeModel& model_;
  TrainOptions options_;
  const Dataset* train_ = nullptr;
  double tokens_ = 0, molecules_ = 0;  // this epoch's, on this rank
};

std::unique_ptr<TrainingStep> SmilesVaeModel::training_step(const TrainOptions& o) {
  if (o.objective != "elbo") throw Error("a smiles_vae trains on the ELBO; --objective " + o.objective + " does not apply");
  if (o.binarize) throw Error("--binarize applies to images, not to molecules");
  if (o.precision != "fp32") throw Error("--precision " + o.precision + " applies to the fused mlp_vae step only");
  return std::make_unique<SmilesTraining>(*this, o);
}

nlohmann::json SmilesVaeModel::evaluate(const Dataset& data, uint64_t seed, int64_t batch_size) {
  at::NoGradGuard no_grad;
  eval();
  const int64_t n = data.size(), d = latent_dim();
  nlohmann::json out = {{"examples", n}};
  if (n == 0) return out;
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  double recon = 0, kl = 0, correct = 0, counted = 0;
  at::Tensor mu_sum = at::zeros({d}, at::kDouble), mu_sq = at::zeros({d}, at::kDouble), kl_dims = at::zeros({d}, at::kDouble);
  at::Tensor sq_err;
  for (int64_t start = 0; start < n; start += batch_size) {
    const int64_t b = std::min(batch_size, n - start);
    const at::Tensor tokens = trimmed(data.x.narrow(0, start, b).to(at::kLong));
    const Posterior q = encode(tokens);
    const at::Tensor z = reparameterize(q.mu, q.logvar, at::randn({b, d}, gen, at::kFloat));
    recon += token_nll(z, tokens).sum().item<double>();
    kl += kl_standard_normal(q.mu, q.logvar).sum().item<double>();
    kl_dims += kl_standard_normal_per_dim(q.mu, q.logvar).to(at::kDouble).sum(0);
    // Token accuracy: teacher-forced argmax from z = mu, over every token after kBos up to kEos.
    const at::Tensor logits = net_->decode(q.mu, tokens);
    const at::Tensor target = tokens.narrow(1, 1, tokens.size(1) - 1);
    const at::Tensor real = target != SmilesVocabulary::kPad;
    correct += (logits.argmax(2).eq(target) & real).sum().item<double>();
    counted += real.sum().item<double>();
    const at::Tensor mu = q.mu.to(at::kDouble);
    mu_sum += mu.sum(0);
    mu_sq += mu.square().sum(0);
    if (has_head() && data.properties.defined()) {
      const at::Tensor e = (predict_properties(q.mu) - data.properties.narrow(0, start, b).to(at::kFloat)).square().sum(0);
      sq_err = sq_err.defined() ? sq_err + e.to(at::kDouble) : e.to(at::kDouble);
    }
  }
  const double count = static_cast<double>(n);
  const at::Tensor mean = mu_sum / count;
  const at::Tensor var = (mu_sq / count - mean.square()).clamp_min(0);
  out["recon"] = recon / count;
  out["kl"] = kl / count;
  out["elbo"] = -(recon + kl) / count;
  out["token_accuracy"] = correct / std::max(1.0, counted);
  out["active_units"] = (var > 0.01).sum().item<int64_t>();  // Burda et al.'s criterion, Var_x E_q[z_i] > 0.01
  std::vector<double> per_dim;
  for (int64_t i = 0; i < d; ++i) per_dim.push_back(kl_dims[i].item<double>() / count);
  out["kl_per_dim"] = per_dim;
  if (sq_err.defined()) {
    nlohmann::json rmse = nlohmann::json::object();
    for (size_t k = 0; k < property_names().size(); ++k)
      rmse[property_names()[k]] = std::sqrt(sq_err[static_cast<int64_t>(k)].item<double>() / count);
    out["property_rmse"] = rmse;
  }
  return out;
}

// ---- config ---------------------------------------------------------------------------------

std::vector<std::string> string_list(const nlohmann::json& v, const std::string& key, size_t max_items) {
  if (!v.is_array()) throw Error("model config: '" + key + "' must be a list of strings, got " + json_excerpt(v));
  if (v.size() > max_items)
    throw Error("model config: '" + key + "' lists " + std::to_string(v.size()) + " items, at most " + std::to_string(max_items));
  std::vector<std::string> out;
  for (const auto& e : v) {
    if (!e.is_string() || e.get<std::string>().empty())
      throw Error("model config: '" + key + "' must be a list of non-empty strings, got " + json_excerpt(e));
    out.push_back(e.get<std::string>());
  }
  return out;
}

std::vector<double> number_list(const nlohmann::json& v, const std::string& key, bool positive) {
  if (!v.is_array() || v.size() > static_cast<size_t>(kMaxProperties))
    throw Error("model config: '" + key + "' must be a list of at most " + std::to_string(kMaxProperties) + " numbers");
  std::vector<double> out;
  for (const auto& e : v) {
    if (!positive && (!e.is_number() || !std::isfinite(e.get<double>())))
      throw Error("model config: '" + key + "' must hold finite numbers, got " + json_excerpt(e));
    out.push_back(positive ? positive_number(e, key, false) : e.get<double>());
  }
  return out;
}

ModelConfig parse_smiles_config(const nlohmann::json& j) {
  only_keys(j,
            {"type", "latent", "beta", "embedding", "encoder_hidden", "decoder_hidden", "decoder_layers", "max_length",
             "vocabulary", "properties", "property_weight", "property_mean", "property_std", "augment", "word_dropout"},
            "smiles_vae");
  ModelConfig c;
  c.likelihood = Likelihood::kCategorical;
  c.latent = j.contains("latent") ? positive_int(j["latent"], "latent") : 56;
  if (j.contains("beta")) c.beta = positive_number(j["beta"], "beta", true);
  SmilesConfig& s = c.smiles;
  if (j.contains("embedding")) s.embedding = positive_int(j["embedding"], "embedding");
  if (j.contains("encoder_hidden")) s.encoder_hidden = positive_int(j["encoder_hidden"], "encoder_hidden");
  if (j.contains("decoder_hidden")) s.decoder_hidden = positive_int(j["decoder_hidden"], "decoder_hidden");
  if (j.contains("decoder_layers")) s.decoder_layers = positive_int(j["decoder_layers"], "decoder_layers");
  if (s.decoder_layers > kMaxConfigLayers)
    throw Error("model config: 'decoder_layers' must be at most " + std::to_string(kMaxConfigLayers));
  if (j.contains("max_length")) s.max_length = positive_int(j["max_length"], "max_length");
  if (j.contains("vocabulary")) {
    s.vocabulary = string_list(j["vocabulary"], "vocabulary", static_cast<size_t>(kMaxConfigSize));
    (void)SmilesVocabulary::from_json(s.vocabulary);  // checks the specials and repeats
  }
  if (j.contains("properties")) {
    s.properties = string_list(j["properties"], "properties", static_cast<size_t>(kMaxProperties));
    std::unordered_set<std::string> seen;
    for (const auto& p : s.properties)
      if (!seen.insert(p).second) throw Error("model config: 'properties' names '" + p + "' twice");
  }
  if (j.contains("property_weight")) s.property_weight = positive_number(j["property_weight"], "property_weight", true);
  if (j.contains("property_mean")) s.property_mean = number_list(j["property_mean"], "property_mean", false);
  if (j.contains("property_std")) s.property_std = number_list(j["property_std"], "property_std", true);
  for (const auto* list : {&s.property_mean, &s.property_std})
    if (!list->empty() && list->size() != s.properties.size())
      throw Error("model config: 'property_mean' and 'property_std' need one number per property");
  if (j.contains("augment")) {
    if (!j["augment"].is_boolean())
      throw Error("model config: 'augment' must be true or false, got " + json_excerpt(j["augment"]));
    s.augment = j["augment"].get<bool>();
  }
  if (j.contains("word_dropout")) {
    s.word_dropout = positive_number(j["word_dropout"], "word_dropout", true);
    if (s.word_dropout >= 1) throw Error("model config: 'word_dropout' must be below 1, got " + json_excerpt(j["word_dropout"]));
  }
  return c;
}

nlohmann::json smiles_config_json(const ModelConfig& c) {
  const SmilesConfig& s = c.smiles;
  nlohmann::json v = {{"type", c.type},
                      {"latent", c.latent},
                      {"beta", c.beta},
                      {"embedding", s.embedding},
                      {"encoder_hidden", s.encoder_hidden},
                      {"decoder_hidden", s.decoder_hidden},
                      {"decoder_layers", s.decoder_layers},
                      {"max_length", s.max_length},
                      {"properties", s.properties},
                      {"property_weight", s.property_weight},
                      {"augment", s.augment},
                      {"word_dropout", s.word_dropout}};
  if (!s.vocabulary.empty()) v["vocabulary"] = s.vocabulary;
  if (!s.property_mean.empty()) v["property_mean"] = s.property_mean;
  if (!s.property_std.empty()) v["property_std"] = s.property_std;
  return v;
}

double smiles_numbers(const ModelConfig& c, const std::vector<int64_t>& /*shape*/) {
  const SmilesConfig& s = c.smiles;
  const double v = std::max<double>(static_cast<double>(s.vocabulary.size()), 64), e = static_cast<double>(s.embedding),
               he = static_cast<double>(s.encoder_hidden), hd = static_cast<double>(s.decoder_hidden),
               layers = static_cast<double>(s.decoder_layers), d = static_cast<double>(c.latent);
  const double encoder = 2 * 3 * (e + he + 2) * he, decoder = 3 * (e + d + hd + 2) * hd + (layers - 1) * 3 * (2 * hd + 2) * hd;
  return v * e + encoder + 2 * (2 * he + 1) * d + (d + 1) * layers * hd + decoder + (hd + 1) * v +
         (d + 1 + static_cast<double>(s.properties.size())) * kPropertyHidden;
}

// Properties by name: a column the data has, or one RDKit computes (each molecule's properties are
// computed once, and plogp takes logp and sa from the data's columns where it has them).
class PropertyColumns {
 public:
  explicit PropertyColumns(const Dataset& d) : d_(d) {}

  at::Tensor operator()(const std::string& name) {
    if (const at::Tensor c = column(name); c.defined()) return c;
    if (!kComputedProperties.count(name)) {
      std::string have;
      for (const auto& p : d_.property_names) have += (have.empty() ? "" : ", ") + p;
      throw Error("model config: property '" + name +
                  "' is neither computed (logp, mw, tpsa, qed, sa, plogp) nor a column of the data" +
                  (have.empty() ? std::string() : " (" + have + ")"));
    }
    const at::Tensor logp = column("logp"), sa = column("sa");
    at::Tensor out = at::empty({d_.size()}, at::kDouble);
    for (int64_t i = 0; i < d_.size(); ++i) {
      const std::string& smiles = d_.smiles[static_cast<size_t>(i)];
      double v = 0;
      if (name == "plogp" && logp.defined() && sa.defined()) {
        MoleculeProperties p;
        p.logp = logp[i].item<double>();
        p.sa = sa[i].item<double>();
        v = penalized_logp(p, smiles);
      } else {
        const MoleculeProperties& p = computed(i);
        v = name == "logp"   ? p.logp
            : name == "mw"   ? p.mw
            : name == "tpsa" ? p.tpsa
            : name == "qed"  ? p.qed
            : name == "sa"   ? p.sa
                             : penalized_logp(p, smiles);
      }
      out[i] = v;
    }
    return out;
  }

 private:
  at::Tensor column(const std::string& name) const {
    for (size_t k = 0; k < d_.property_names.size(); ++k)
      if (d_.property_names[k] == name) return d_.properties.select(1, static_cast<int64_t>(k));
    return {};
  }
  const MoleculeProperties& computed(int64_t i) {
    if (computed_.empty())
      for (const auto& s : d_.smiles) computed_.push_back(molecule_properties(s));
    return computed_[static_cast<size_t>(i)];
  }

  const Dataset& d_;
  std::vector<MoleculeProperties> computed_;
};

void prepare_smiles_data(ModelConfig& c, Dataset& d, bool fit) {
  if (d.size() == 0) return;
  if (d.smiles.empty())
    throw Error("a smiles_vae reads molecules: --data molecules, FILE.smi, or a CSV file with a SMILES column");
  SmilesConfig& s = c.smiles;
  if (fit && s.vocabulary.empty()) s.vocabulary = SmilesVocabulary::build(d.smiles).to_json().get<std::vector<std::string>>();
  encode_molecules(d, s.vocabulary, token_width(c));
  if (!s.properties.empty()) {
    std::vector<at::Tensor> cols;
    PropertyColumns columns(d);
    for (const auto& name : s.properties) cols.push_back(columns(name));
    d.properties = at::stack(cols, 1);
    d.property_names = s.properties;
    if (fit && s.property_mean.empty()) {
      const at::Tensor mean = d.properties.mean(0), std = d.properties.std(0, /*unbiased=*/false).clamp_min(1e-6);
      for (int64_t k = 0; k < mean.size(0); ++k) {
        s.property_mean.push_back(mean[k].item<double>());
        s.property_std.push_back(std[k].item<double>());
      }
    }
  }
}

}  // namespace

at::Tensor SmilesVaeImpl::tokens_of(const std::vector<std::string>& smiles) const {
  const int64_t width = max_length() + 2;
  at::Tensor rows = at::zeros({static_cast<int64_t>(smiles.size()), width}, at::kLong);
  int64_t* out = rows.data_ptr<int64_t>();
  for (size_t i = 0; i < smiles.size(); ++i) {
    const std::vector<int64_t> ids = vocabulary().encode(smiles[i]);
    if (static_cast<int64_t>(ids.size()) > width)
      throw Error("'" + text_excerpt(smiles[i], 60) + "' has " + std::to_string(ids.size() - 2) +
                  " tokens, more than the model's max_length of " + std::to_string(max_length()));
    std::copy(ids.begin(), ids.end(), out + static_cast<int64_t>(i) * width);
  }
  return rows;
}

std::vector<std::string> SmilesVaeImpl::smiles_of(const at::Tensor& rows) const {
  const at::Tensor r = rows.to(at::kLong).contiguous();
  std::vector<std::string> out;
  const int64_t n = r.size(0), t = r.size(1);
  const int64_t* p = r.data_ptr<int64_t>();
  for (int64_t i = 0; i < n; ++i) out.push_back(vocabulary().decode(std::vector<int64_t>(p + i * t, p + (i + 1) * t)));
  return out;
}

std::vector<std::string> SmilesVaeImpl::decode_smiles(const at::Tensor& z, double temperature, at::Generator* gen,
                                                      bool constrained) {
  return smiles_of(generate(z, temperature, gen, constrained));
}

SmilesVaeImpl& require_smiles_vae(ModelImpl& model, const std::string& what) {
  if (auto* m = dynamic_cast<SmilesVaeImpl*>(&model)) return *m;
  throw Error(what + " applies to molecule models (smiles_vae); this model is a " + model.config().type);
}

Family smiles_vae_family() {
  Family f{"smiles_vae",
           false,
           parse_smiles_config,
           smiles_config_json,
           [](const ModelConfig& c, const std::vector<int64_t>& shape) -> Model {
             if (c.smiles.vocabulary.empty()) throw Error("model config: a smiles_vae needs its 'vocabulary'");
             return std::make_shared<SmilesVaeModel>(c, shape);
           },
           smiles_numbers};
  f.prepare_data = prepare_smiles_data;
  return f;
}

}  // namespace latent
