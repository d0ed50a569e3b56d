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

#include "sd/sd_models.h"
#include "sd/sd_ops.h"

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

class AutoencoderKl : public SdAutoencoder {
 public:
  AutoencoderKl(SdWeights weights, std::unique_ptr<SdOps> ops) : w_(std::move(weights.tensors)), ops_(std::move(ops)) {
    config_ = weights.config;
    file_dtype_ = weights.dtype;
    file_layout_ = weights.layout;
    const auto& ch = config_.block_out_channels;
    const int64_t levels = static_cast<int64_t>(ch.size());
    enc_in_ = conv("encoder.conv_in.", 1, 1);
    for (int64_t i = 0; i < levels; ++i) {
      const std::string p = "encoder.down_blocks." + std::to_string(i) + ".";
      Level l;
      for (int64_t j = 0; j < config_.layers_per_block; ++j)
        l.resnets.push_back(resnet(p + "resnets." + std::to_string(j) + "."));
      if ((l.has_resample = i + 1 < levels)) l.resample = conv(p + "downsamplers.0.conv.", 0, 1, 2);
      down_.push_back(std::move(l));
    }
    enc_mid_ = mid("encoder.mid_block.");
    enc_norm_ = norm("encoder.conv_norm_out.");
    enc_out_ = conv("encoder.conv_out.", 1, 1);
    if (config_.use_quant_conv) quant_ = conv("quant_conv.", 0, 0);
    if (config_.use_post_quant_conv) post_quant_ = conv("post_quant_conv.", 0, 0);
    dec_in_ = conv("decoder.conv_in.", 1, 1);
    dec_mid_ = mid("decoder.mid_block.");
    for (int64_t i = 0; i < levels; ++i) {
      const std::string p = "decoder.up_blocks." + std::to_string(i) + ".";
      Level l;
      for (int64_t j = 0; j <= config_.layers_per_block; ++j)
        l.resnets.push_back(resnet(p + "resnets." + std::to_string(j) + "."));
      if ((l.has_resample = i + 1 < levels)) l.resample = conv(p + "upsamplers.0.conv.", 1, 1);
      up_.push_back(std::move(l));
    }
    dec_norm_ = norm("decoder.conv_norm_out.");
    dec_out_ = conv("decoder.conv_out.", 1, 1);
    w_.clear();  // every tensor now lives in a layer
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
  at::Tensor take(const std::string& name) const { return sd_take(w_, name); }
  SdConv conv(const std::string& p, int64_t pad_begin, int64_t pad_end, int64_t stride = 1) {
    SdConv c;
    c.weight = take(p + "weight");
    c.bias = take(p + "bias");
    c.stride = stride;
    c.pad_begin = pad_begin;
    c.pad_end = pad_end;
    return c;
  }
  SdNorm norm(const std::string& p) { return {take(p + "weight"), take(p + "bias"), config_.norm_num_groups, 1e-6}; }
  Resnet resnet(const std::string& p) {
    Resnet r{norm(p + "norm1."), norm(p + "norm2."), conv(p + "conv1.", 1, 1), conv(p + "conv2.", 1, 1),
             conv(p + "conv_shortcut.", 0, 0)};
    return r;
  }
  Mid mid(const std::string& p) {
    Mid m;
    m.first = resnet(p + "resnets.0.");
    m.second = resnet(p + "resnets.1.");
    if ((m.has_attention = config_.mid_block_add_attention)) {
      const std::string a = p + "attentions.0.";
      m.attention = {norm(a + "group_norm."), take(a + "to_q.weight"),     take(a + "to_q.bias"),
                     take(a + "to_k.weight"), take(a + "to_k.bias"),       take(a + "to_v.weight"),
                     take(a + "to_v.bias"),   take(a + "to_out.0.weight"), take(a + "to_out.0.bias")};
    }
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

  std::map<std::string, at::Tensor> w_;
  std::unique_ptr<SdOps> ops_;
  SdConv enc_in_, enc_out_, quant_, post_quant_, dec_in_, dec_out_;
  SdNorm enc_norm_, dec_norm_;
  std::vector<Level> down_, up_;
  Mid enc_mid_, dec_mid_;
};

}  // namespace

std::unique_ptr<SdAutoencoder> make_autoencoder_kl(SdWeights weights, std::unique_ptr<SdOps> ops) {
  return std::make_unique<AutoencoderKl>(std::move(weights), std::move(ops));
}

}  // namespace latent
