// SdAutoencoder's shared half: loading (which model, which operations), the scaling factor, input
// checks, and tiled encode/decode.
#include "latent/sd_vae.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <functional>

#include "latent/error.h"
#include "sd/sd_models.h"

namespace latent {

namespace {

// Tile starts along one axis of `size`: tiles of `tile` with at least `overlap` shared, the last one
// flush with the end, so every tile is whole when size >= tile.
std::vector<int64_t> tile_starts(int64_t size, int64_t tile, int64_t overlap) {
  if (size <= tile) return {0};
  const int64_t stride = std::max<int64_t>(1, tile - overlap);
  const int64_t n = (size - tile + stride - 1) / stride + 1;
  std::vector<int64_t> starts;
  for (int64_t k = 0; k < n; ++k) starts.push_back(k + 1 == n ? size - tile : k * stride);
  return starts;
}

// Weights of a tile's output along one axis [begin, end) (output units), given its neighbours'
// bounds: a linear ramp across each overlap, so neighbouring weights sum to 1 there.
at::Tensor tile_ramp(int64_t begin, int64_t end, int64_t prev_end, int64_t next_begin) {
  std::vector<float> w(end - begin, 1.0f);
  for (int64_t p = begin; p < end; ++p) {
    float v = 1.0f;
    if (prev_end > begin && p < prev_end) v = std::min(v, static_cast<float>((p - begin + 0.5) / (prev_end - begin)));
    if (next_begin < end && p >= next_begin) v = std::min(v, static_cast<float>((end - p - 0.5) / (end - next_begin)));
    w[p - begin] = v;
  }
  return at::tensor(w);
}

// Runs `fn` on overlapping tiles of x [N, C, H, W] (tiles of `tile` input units, at least `overlap`
// shared) and blends the outputs, which are `ratio_num / ratio_den` times the input size.
at::Tensor run_tiled(const at::Tensor& x, int64_t tile, int64_t overlap, int64_t ratio_num, int64_t ratio_den,
                     const std::function<at::Tensor(const at::Tensor&)>& fn, const std::function<void()>& on_tile) {
  const int64_t H = x.size(2), W = x.size(3);
  const auto rows = tile_starts(H, tile, overlap), cols = tile_starts(W, tile, overlap);
  auto out_pos = [&](int64_t p) { return p * ratio_num / ratio_den; };
  at::Tensor out, weight;  // [N, C', H', W'], [H', W']
  for (size_t i = 0; i < rows.size(); ++i) {
    const int64_t th = std::min(tile, H - rows[i]);
    const at::Tensor wy =
        tile_ramp(out_pos(rows[i]), out_pos(rows[i] + th), i ? out_pos(rows[i - 1] + std::min(tile, H - rows[i - 1])) : 0,
                  i + 1 < rows.size() ? out_pos(rows[i + 1]) : out_pos(H));
    for (size_t j = 0; j < cols.size(); ++j) {
      const int64_t tw = std::min(tile, W - cols[j]);
      const at::Tensor y = fn(x.narrow(2, rows[i], th).narrow(3, cols[j], tw));  // [N, C', th', tw']
      if (!out.defined()) {
        out = at::zeros({x.size(0), y.size(1), out_pos(H), out_pos(W)}, y.options());
        weight = at::zeros({out_pos(H), out_pos(W)}, y.options());
      }
      const at::Tensor wx =
          tile_ramp(out_pos(cols[j]), out_pos(cols[j] + tw), j ? out_pos(cols[j - 1] + std::min(tile, W - cols[j - 1])) : 0,
                    j + 1 < cols.size() ? out_pos(cols[j + 1]) : out_pos(W));
      const at::Tensor w = wy.unsqueeze(1) * wx.unsqueeze(0);  // [th', tw']
      out.narrow(2, out_pos(rows[i]), y.size(2)).narrow(3, out_pos(cols[j]), y.size(3)).add_(y * w);
      weight.narrow(0, out_pos(rows[i]), y.size(2)).narrow(1, out_pos(cols[j]), y.size(3)).add_(w);
      if (on_tile) on_tile();
    }
  }
  return out / weight;
}

void check_tiling(const SdTiling& tiling, int64_t f) {
  if (tiling.tile < 0 || tiling.tile % f != 0)
    throw Error("tile size " + std::to_string(tiling.tile) + " must be a positive multiple of " + std::to_string(f) + " pixels");
  if (!(tiling.overlap >= 0 && tiling.overlap < 0.5)) throw Error("tile overlap must be in [0, 0.5)");
}

}  // namespace

SdAutoencoder::~SdAutoencoder() = default;

std::unique_ptr<SdAutoencoder> SdAutoencoder::load(const std::string& path, const SdLoadOptions& options) {
  if (options.precision == Precision::kBFloat16x3)
    throw Error("precision bf16x3 is for MLP products; the SD autoencoder runs in fp32 or bf16");
  SdWeights weights = sd_weights_load(path, options.scaling_factor);
  std::unique_ptr<SdOps> ops =
      options.fast ? make_sd_ops_dnnl(options.precision, options.winograd, kSdBandBytes, options.follow_load) : nullptr;
  if (!ops) {
    if (options.precision == Precision::kBFloat16) throw Error("bf16 needs a build with oneDNN (Debian: libdnnl-dev)");
    ops = make_sd_ops_aten();
  }
  std::unique_ptr<SdAutoencoder> model(new SdAutoencoder());
  model->net_ = weights.config.type == "AutoencoderTiny" ? make_taesd(weights, std::move(ops))
                                                         : make_autoencoder_kl(weights, std::move(ops));
  model->config_ = weights.config;
  model->file_dtype_ = weights.dtype;
  model->file_layout_ = weights.layout;
  model->precision_ = options.precision;
  return model;
}

void SdAutoencoder::posterior(const at::Tensor& images, at::Tensor& mean, at::Tensor& logvar) {
  net_->posterior(images, mean, logvar);
}

at::Tensor SdAutoencoder::decode_unscaled(const at::Tensor& z) { return net_->decode_unscaled(z); }

at::Tensor SdAutoencoder::encode(const at::Tensor& images, bool sample, uint64_t seed, const SdTiling& tiling) {
  const int64_t f = config_.downsampling_factor();
  if (images.dim() != 4 || images.size(1) != config_.in_channels || images.size(2) % f || images.size(3) % f ||
      images.size(2) == 0 || images.size(3) == 0)
    throw Error("images of shape " + shape_text(images.sizes().vec()) + " cannot be encoded: expected [N, " +
                std::to_string(config_.in_channels) + ", H, W] with H and W positive multiples of " + std::to_string(f));
  check_tiling(tiling, f);
  const at::Tensor x = images.to(at::kFloat).contiguous();
  if (!at::isfinite(x).all().item<bool>()) throw Error("images contain NaN or infinite values");
  at::Tensor mean, logvar;
  const bool tiled = tiling.tile > 0 && (x.size(2) > tiling.tile || x.size(3) > tiling.tile);
  if (tiled) {
    const int64_t overlap = static_cast<int64_t>(tiling.tile / f * tiling.overlap) * f;
    const at::Tensor moments = run_tiled(
        x, tiling.tile, overlap, 1, f,
        [&](const at::Tensor& t) {
          at::Tensor m, lv;
          posterior(t.contiguous(), m, lv);
          return lv.defined() ? at::cat({m, lv}, 1) : m;
        },
        tiling.on_tile);
    const int64_t lc = config_.latent_channels;
    mean = moments.narrow(1, 0, lc);
    if (moments.size(1) == 2 * lc) logvar = moments.narrow(1, lc, lc);
  } else {
    posterior(x, mean, logvar);
  }
  at::Tensor z = mean;  // [N, latent, H/f, W/f]
  if (sample && logvar.defined()) {
    at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed);
    z = mean + at::exp(0.5 * logvar) * at::randn(mean.sizes(), gen, mean.options());
  }
  return (z - config_.shift_factor) * config_.scaling_factor;
}

at::Tensor SdAutoencoder::decode(const at::Tensor& latents, const SdTiling& tiling) {
  const int64_t f = config_.downsampling_factor();
  if (latents.dim() != 4 || latents.size(1) != config_.latent_channels || latents.size(2) == 0 || latents.size(3) == 0)
    throw Error("latents of shape " + shape_text(latents.sizes().vec()) + " cannot be decoded: expected [N, " +
                std::to_string(config_.latent_channels) + ", h, w]");
  check_tiling(tiling, f);
  const at::Tensor z = (latents.to(at::kFloat) / config_.scaling_factor + config_.shift_factor).contiguous();
  if (!at::isfinite(z).all().item<bool>()) throw Error("latents contain NaN or infinite values");
  const int64_t tile = tiling.tile / f;
  if (tiling.tile > 0 && (z.size(2) > tile || z.size(3) > tile)) {
    const int64_t overlap = static_cast<int64_t>(tile * tiling.overlap);
    return run_tiled(
        z, tile, overlap, f, 1, [&](const at::Tensor& t) { return decode_unscaled(t.contiguous()); }, tiling.on_tile);
  }
  return decode_unscaled(z);
}

int64_t SdAutoencoder::tile_count(int64_t height, int64_t width, const SdTiling& tiling) const {
  const int64_t f = config_.downsampling_factor();
  if (tiling.tile <= 0 || (height <= tiling.tile && width <= tiling.tile)) return 1;
  const int64_t tile = tiling.tile / f, overlap = static_cast<int64_t>(tile * tiling.overlap);
  return static_cast<int64_t>(tile_starts(height / f, tile, overlap).size() * tile_starts(width / f, tile, overlap).size());
}

}  // namespace latent
