// AutoencoderKL (Rombach et al. 2022, the "kl-f8" first stage of Stable Diffusion), as diffusers
// names and runs it:
//   encoder: conv_in; per level `layers_per_block` resnets, then (all but the last level) a stride-2
//            3x3 conv on the input padded by one zero row/column at the bottom/right; mid block
//            (resnet, attention, resnet); GroupNorm, SiLU, conv_out -> 2 x latent channels;
//            quant_conv (1x1) -> mean, logvar (clamped to [-30, 20])
//   decoder: post_quant_conv (1x1); conv_in; mid block; per level, deepest first, `layers_per_block + 1`
//            resnets, then (all but the last) nearest 2x upsampling and a 3x3 conv; GroupNorm, SiLU, conv_out
//   resnet:  shortcut(x) + conv2(SiLU(GN2(conv1(SiLU(GN1(x)))))), shortcut a 1x1 conv when channels change
#include <ATen/ATen.h>

#include <array>

#include "cpu/sd_ops.h"
#include "sd/sd_models.h"

namespace latent {

namespace {

struct Resnet {
  SdNorm norm1, norm2;
  SdConv conv1, conv2, shortcut;  // shortcut.weight undefined when channels stay
};

struct Mid {
  Resnet first, second;
  bool has_attention = false;
  SdAttention attention;
};

struct Level {
  std::vector<Resnet> resnets;
  bool has_resample = false;
  SdConv resample;  // stride-2 conv (encoder) or the conv after upsampling (decoder)
};

class AutoencoderKl : public SdNetwork {
 public:
  // The module tree, built in forward order, takes each tensor it needs from `w` with its shape.
  AutoencoderKl(SdWeights& w, std::unique_ptr<SdOps> ops) : config_(w.config), ops_(std::move(ops)) {
    const auto& ch = config_.block_out_channels;
    const int64_t levels = static_cast<int64_t>(ch.size()), lc = config_.latent_channels;
    enc_in_ = conv(w, "encoder.conv_in.", ch[0], config_.in_channels, 3, 1, 1);
    int64_t cin = ch[0];
    for (int64_t i = 0; i < levels; ++i) {
      const std::string p = "encoder.down_blocks." + std::to_string(i) + ".";
      Level l;
      for (int64_t j = 0; j < config_.layers_per_block; ++j)
        l.resnets.push_back(resnet(w, p + "resnets." + std::to_string(j) + ".", j ? ch[i] : cin, ch[i]));
      if ((l.has_resample = i + 1 < levels)) l.resample = conv(w, p + "downsamplers.0.conv.", ch[i], ch[i], 3, 0, 1, 2);
      down_.push_back(std::move(l));
      cin = ch[i];
    }
    enc_mid_ = mid(w, "encoder.mid_block.", ch.back());
    enc_norm_ = norm(w, "encoder.conv_norm_out.", ch.back());
    enc_out_ = conv(w, "encoder.conv_out.", 2 * lc, ch.back(), 3, 1, 1);
    if (config_.use_quant_conv) quant_ = conv(w, "quant_conv.", 2 * lc, 2 * lc, 1, 0, 0);
    if (config_.use_post_quant_conv) post_quant_ = conv(w, "post_quant_conv.", lc, lc, 1, 0, 0);
    dec_in_ = conv(w, "decoder.conv_in.", ch.back(), lc, 3, 1, 1);
    dec_mid_ = mid(w, "decoder.mid_block.", ch.back());
    cin = ch.back();
    for (int64_t i = 0; i < levels; ++i) {
      const int64_t out = ch[levels - 1 - i];
      const std::string p = "decoder.up_blocks." + std::to_string(i) + ".";
      Level l;
      for (int64_t j = 0; j <= config_.layers_per_block; ++j)
        l.resnets.push_back(resnet(w, p + "resnets." + std::to_string(j) + ".", j ? out : cin, out));
      if ((l.has_resample = i + 1 < levels)) l.resample = conv(w, p + "upsamplers.0.conv.", out, out, 3, 1, 1);
      up_.push_back(std::move(l));
      cin = out;
    }
    dec_norm_ = norm(w, "decoder.conv_norm_out.", ch[0]);
    dec_out_ = conv(w, "decoder.conv_out.", config_.out_channels, ch[0], 3, 1, 1);
    w.check_all_taken();
  }

  void posterior(const at::Tensor& images, at::Tensor& mean, at::Tensor& logvar) override {
    at::Tensor h = ops_->conv(ops_->input(images), enc_in_);  // [N, C0, H, W]
    for (Level& l : down_) {
      for (Resnet& r : l.resnets) h = forward(std::move(h), r);  // [N, C_i, H_i, W_i]
      if (l.has_resample) h = ops_->conv(h, l.resample);         // [N, C_i, H_i / 2, W_i / 2]
    }
    h = forward(std::move(h), enc_mid_);                    // [N, C_last, H/f, W/f]
    h = ops_->conv(h, enc_out_, {}, false, {&enc_norm_});   // [N, 2 x latent, H/f, W/f]
    if (config_.use_quant_conv) h = ops_->conv(h, quant_);  // [N, 2 x latent, H/f, W/f]
    const at::Tensor moments = ops_->output(h);             // [N, 2 x latent, H/f, W/f]
    ops_->end_pass();
    const int64_t lc = config_.latent_channels;
    mean = moments.narrow(1, 0, lc).contiguous();           // [N, latent, H/f, W/f]
    logvar = moments.narrow(1, lc, lc).clamp(-30.0, 20.0);  // [N, latent, H/f, W/f]
  }

  at::Tensor decode_unscaled(const at::Tensor& z) override {
    at::Tensor h = ops_->input(z);  // [N, latent, h, w]
    if (config_.use_post_quant_conv) h = ops_->conv(h, post_quant_);
    h = forward(ops_->conv(h, dec_in_), dec_mid_);  // [N, C_last, h, w]
    for (Level& l : up_) {
      for (Resnet& r : l.resnets) h = forward(std::move(h), r);                       // [N, C_i, h_i, w_i]
      if (l.has_resample) h = ops_->conv(h, l.resample, {}, false, {nullptr, true});  // [N, C_i, 2 h_i, 2 w_i]
    }
    const at::Tensor image = ops_->output(ops_->conv(h, dec_out_, {}, false, {&dec_norm_}));  // [N, out, h f, w f]
    ops_->end_pass();
    return image;
  }

 private:
  // A conv [out, in, k, k] with bias [out].
  static SdConv conv(SdWeights& w, const std::string& p, int64_t out, int64_t in, int64_t k, int64_t pad_begin, int64_t pad_end,
                     int64_t stride = 1) {
    SdConv c;
    c.weight = w.take(p + "weight", {out, in, k, k});
    c.bias = w.take(p + "bias", {out});
    c.stride = stride;
    c.pad_begin = pad_begin;
    c.pad_end = pad_end;
    return c;
  }
  SdNorm norm(SdWeights& w, const std::string& p, int64_t c) const {
    SdNorm n;
    n.weight = w.take(p + "weight", {c});
    n.bias = w.take(p + "bias", {c});
    n.groups = config_.norm_num_groups;
    return n;
  }
  Resnet resnet(SdWeights& w, const std::string& p, int64_t cin, int64_t c) const {
    Resnet r;
    r.norm1 = norm(w, p + "norm1.", cin);
    r.conv1 = conv(w, p + "conv1.", c, cin, 3, 1, 1);
    r.norm2 = norm(w, p + "norm2.", c);
    r.conv2 = conv(w, p + "conv2.", c, c, 3, 1, 1);
    if (cin != c) r.shortcut = conv(w, p + "conv_shortcut.", c, cin, 1, 0, 0);
    return r;
  }
  Mid mid(SdWeights& w, const std::string& p, int64_t c) const {
    Mid m;
    m.first = resnet(w, p + "resnets.0.", c, c);
    if ((m.has_attention = config_.mid_block_add_attention)) {
      const std::string a = p + "attentions.0.";
      m.attention.norm = norm(w, a + "group_norm.", c);
      std::array<at::Tensor*, 8> parts = {&m.attention.q_weight,   &m.attention.q_bias,   &m.attention.k_weight,
                                          &m.attention.k_bias,     &m.attention.v_weight, &m.attention.v_bias,
                                          &m.attention.out_weight, &m.attention.out_bias};
      const char* names[] = {"to_q.", "to_k.", "to_v.", "to_out.0."};
      for (int i = 0; i < 4; ++i) {
        *parts[2 * i] = w.take(a + names[i] + "weight", {c, c});
        *parts[2 * i + 1] = w.take(a + names[i] + "bias", {c});
      }
    }
    m.second = resnet(w, p + "resnets.1.", c, c);
    return m;
  }

  // Takes x by value so its memory goes as soon as the second convolution no longer needs it.
  // The shortcut (1x1 when the channels change) is applied inside the second convolution, which may
  // write its result over x's memory.
  at::Tensor forward(at::Tensor x, Resnet& r) {
    const at::Tensor h = ops_->conv(x, r.conv1, {}, false, {&r.norm1});  // [N, C_out, H, W]
    return ops_->conv(h, r.conv2, std::move(x), false, {&r.norm2},
                      r.shortcut.present() ? &r.shortcut : nullptr);  // [N, C_out, H, W]
  }
  at::Tensor forward(at::Tensor x, Mid& m) {
    at::Tensor h = forward(std::move(x), m.first);
    if (m.has_attention) h = ops_->attention(h, m.attention);
    return forward(std::move(h), m.second);
  }

  SdVaeConfig config_;
  std::unique_ptr<SdOps> ops_;
  SdConv enc_in_, enc_out_, quant_, post_quant_, dec_in_, dec_out_;
  SdNorm enc_norm_, dec_norm_;
  std::vector<Level> down_, up_;
  Mid enc_mid_, dec_mid_;
};

}  // namespace

std::unique_ptr<SdNetwork> make_autoencoder_kl(SdWeights& weights, std::unique_ptr<SdOps> ops) {
  return std::make_unique<AutoencoderKl>(weights, std::move(ops));
}

}  // namespace latent
