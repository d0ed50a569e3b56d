/// @brief VQ-VAE (van den Oord et al. 2017): a conv encoder maps an image to an h x w grid of
/// D-vectors z_e; each is replaced by its nearest of K codebook vectors (z_q); a transposed-conv
/// decoder maps z_q back to the likelihood's parameters.
///
/// Training (vq_training.cpp): loss = -log p(x | z_q) + commitment * ||z_e - sg(z_q)||^2, both summed
/// per example, with the straight-through gradient (the decoder's gradient at z_q passes to z_e
/// unchanged). The codebook is not trained by gradient but as exponential moving averages of the
/// vectors assigned to each code (Appendix A.1 of the paper), starts from k-means on the first
/// batches' encodings, and codes that no vector chose for a while restart at encodings of the batch.
///
/// Sampling: after training, two priors over the grid of code indices are fitted to the training
/// set's codes: the empirical categorical of each grid position (prior.counts), and a small
/// autoregressive model that draws the grid in raster order, each code given the codes already
/// drawn to its left, up-left, above and up-right (one-hot embeddings plus a position embedding,
/// one hidden layer; a PixelCNN with a 2x3 causal window). Samples come from the autoregressive
/// prior once it is trained; both priors' NLL on test codes goes into the metrics.
///
/// State-dict names: encoder.N (nn.Sequential), pre_quant (1x1 conv to D channels), decoder.N,
/// prior.embed, prior.position, prior.hidden, prior.out, and the buffers quantizer.embed [K, D],
/// quantizer.ema_count [K], quantizer.ema_sum [K, D], prior.counts [h * w, K], prior.trained [].
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/linear.h>

#include <memory>
#include <vector>

#include "latent/config.h"
#include "latent/data.h"
#include "latent/model.h"

namespace latent {

struct VqForward {
  at::Tensor params;      // likelihood parameters [B, C, H, W] (decoded through the straight-through z)
  at::Tensor recon;       // -log p(x | z_q) per example [B]
  at::Tensor commitment;  // ||z_e - sg(z_q)||^2 per example [B]
  at::Tensor z_e;         // encoder output [B, D, h, w]
  at::Tensor indices;     // nearest codes [B, h, w] (int64)
};

class VqVaeImpl : public ModelImpl {
 public:
  VqVaeImpl(ModelConfig config, std::vector<int64_t> data_shape);

  /// Decodes the nearest codes of x's encodings.
  at::Tensor reconstruct(const at::Tensor& x) override { return likelihood_mean(decode_indices(nearest(encode(x)))); }
  /// Decodes index grids from the prior (sample_indices); the temperature does not apply.
  at::Tensor sample(int64_t n, at::Generator& gen, double /*temperature*/ = 1.0) override {
    return likelihood_mean(decode_indices(sample_indices(n, gen)));
  }
  /// recon (-log p(x | z_q), nats per example), commitment, usage (fraction of codes chosen at
  /// least once) and perplexity of the codes chosen.
  nlohmann::json evaluate(const Dataset& data, uint64_t seed, int64_t batch_size = 500) override;
  /// Straight-through gradients, the EMA codebook, k-means start, restarts, priors (vq_training.cpp).
  std::unique_ptr<TrainingStep> training_step(const TrainOptions& options) override;

  at::Tensor encode(const at::Tensor& x);              // x [B, C, H, W] -> z_e [B, D, h, w]
  at::Tensor nearest(const at::Tensor& z_e) const;     // -> code indices [B, h, w]
  at::Tensor lookup(const at::Tensor& indices) const;  // [B, h, w] -> z_q [B, D, h, w]
  at::Tensor decode(const at::Tensor& z_q);            // -> likelihood parameters [B, C, H, W]
  at::Tensor decode_indices(const at::Tensor& indices) { return decode(lookup(indices)); }
  VqForward forward(const at::Tensor& x);  // everything a training step needs

  /// One EMA step of the codebook from encodings z_e [B, D, h, w] and their codes [B, h, w]:
  /// count_k <- decay count_k + (1 - decay) n_k, sum_k <- decay sum_k + (1 - decay) (sum of the
  /// vectors assigned to k), embed_k = sum_k / count_k (counts Laplace-smoothed so none is 0).
  void ema_update(const at::Tensor& z_e, const at::Tensor& indices);
  /// Sets the codebook to `vectors` [K, D] and restarts the EMA state there (count 1 each).
  void set_codebook(const at::Tensor& vectors);
  /// k-means (k-means++ seeding, then `iterations` Lloyd rounds; an empty cluster takes a random vector) on vectors [N, D]; the
  /// centres become the codebook and the EMA state. Returns the mean squared distance of the vectors to their centres.
  double init_codebook_kmeans(const at::Tensor& vectors, int iterations, at::Generator& gen);
  /// Codes with used[k] == false move to random rows of `vectors` [N, D] (and restart their EMA
  /// state there). Returns how many moved.
  int64_t restart_codes(const at::Tensor& used, const at::Tensor& vectors, at::Generator& gen);

  /// Adds code indices [N, h, w] to the per-position counts of the prior (`reset` first clears them).
  void fit_prior(const at::Tensor& indices, bool reset);
  /// Trains the autoregressive prior on code grids [N, h, w] by maximum likelihood (Adam, batches of
  /// 256 grids); returns its NLL on them in nats per grid after the last epoch.
  double train_prior(const at::Tensor& indices, int epochs, double lr, at::Generator& gen);
  /// -log p(grid) in nats per grid, averaged over code grids [N, h, w]: under the autoregressive
  /// prior, or the per-position categorical (counts + 1/2, so unseen codes keep some mass).
  double prior_nll(const at::Tensor& indices, bool autoregressive);
  /// Index grids [n, h, w] drawn from the autoregressive prior when it is trained, else from the
  /// per-position categorical (uniform where it has no counts yet).
  at::Tensor sample_indices(int64_t n, at::Generator& gen);
  bool prior_trained() const;

  int64_t codebook_size() const { return config_.codebook; }
  int64_t code_dim() const { return config_.code_dim; }
  std::vector<int64_t> grid() const { return {grid_h_, grid_w_}; }
  const at::Tensor& codebook() const { return embed_; }

 private:
  int64_t grid_h_ = 0, grid_w_ = 0;
  /// Neighbour codes [N, h w, 4] (left, up-left, up, up-right; K outside the grid) of grids [N, h, w].
  at::Tensor causal_context(const at::Tensor& indices) const;
  /// The autoregressive prior's logits [N, P', K] for contexts [N, P', 4] at grid positions `pos` [P'].
  at::Tensor prior_logits(const at::Tensor& context, const at::Tensor& pos);

  torch::nn::Sequential encoder_, decoder_;
  torch::nn::Conv2d pre_quant_{nullptr};
  torch::nn::Embedding prior_embed_{nullptr};
  torch::nn::Linear prior_hidden_{nullptr}, prior_out_{nullptr};
  at::Tensor prior_position_;  // [h w, 4 E]
  at::Tensor embed_, ema_count_, ema_sum_, prior_counts_, prior_trained_;
};

using VqVae = std::shared_ptr<VqVaeImpl>;

/// Throws latent::Error when the data shape does not fit (images [C, H, W], C = 1 or 3, H and W
/// divisible by 2^levels).
VqVae make_vq_vae(const ModelConfig& config, const std::vector<int64_t>& data_shape);

/// exp(entropy) of a code histogram [K]: K when every code is used equally, 1 when one code is.
double perplexity(const at::Tensor& counts);

}  // namespace latent
