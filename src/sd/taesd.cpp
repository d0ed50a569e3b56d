// TAESD (Bohan 2023), the tiny distilled autoencoder of Stable Diffusion, as diffusers' AutoencoderTiny
// names and runs it:
//   encoder: x -> (x + 1) / 2; per stage a 3x3 conv (stride 2 after the first stage, no bias) and
//            blocks; a 3x3 conv to the latent channels. Its latents are on the diffusion model's scale.
//   decoder: z -> 3 tanh(z / 3); conv, ReLU; per stage blocks, then (all but the last) nearest 2x
//            upsampling and a 3x3 conv without bias; the last stage's conv has a bias; y -> 2 y - 1
//   block:   ReLU(conv(ReLU(conv(ReLU(conv(x))))) + skip(x)), skip a 1x1 conv without bias when
//            channels change
#include <ATen/ATen.h>

#include "sd/sd_models.h"

namespace latent {

namespace {

struct Block {
  SdConv conv0, conv2, conv4, skip;  // skip.weight undefined for the identity
};

struct Stage {
  SdConv conv;  // encoder: before the blocks; decoder: after them
  std::vector<Block> blocks;
  bool upsample = false;  // decoder: before `conv`
};

class Taesd : public SdNetwork {
 public:
  // The module tree, built in forward order, takes each tensor it needs from `w` with its shape.
  Taesd(SdWeights& w, std::unique_ptr<SdOps> ops) : config_(w.config), ops_(std::move(ops)) {
    const auto& ec = config_.block_out_channels;
    const auto& dc = config_.decoder_block_out_channels;
    int64_t idx = 0, cin = config_.in_channels;
    for (size_t s = 0; s < config_.num_encoder_blocks.size(); ++s) {
      Stage st;
      st.conv = conv(w, layer("encoder", idx++), ec[s], cin, 3, /*bias=*/s == 0, s == 0 ? 1 : 2);
      for (int64_t b = 0; b < config_.num_encoder_blocks[s]; ++b)
        st.blocks.push_back(block(w, layer("encoder", idx++), ec[s], ec[s]));
      encoder_.push_back(std::move(st));
      cin = ec[s];
    }
    enc_out_ = conv(w, layer("encoder", idx), config_.latent_channels, cin, 3, true);
    dec_in_ = conv(w, layer("decoder", 0), dc[0], config_.latent_channels, 3, true);
    idx = 2;  // 1 is the ReLU
    for (size_t s = 0; s < config_.num_decoder_blocks.size(); ++s) {
      const bool last = s + 1 == config_.num_decoder_blocks.size();
      Stage st;
      for (int64_t b = 0; b < config_.num_decoder_blocks[s]; ++b)
        st.blocks.push_back(block(w, layer("decoder", idx++), dc[s], dc[s]));
      if ((st.upsample = !last)) ++idx;  // the upsampling layer
      st.conv = conv(w, layer("decoder", idx++), last ? config_.out_channels : dc[s], dc[s], 3, /*bias=*/last);
      decoder_.push_back(std::move(st));
    }
    w.check_all_taken();
  }

  void posterior(const at::Tensor& images, at::Tensor& mean, at::Tensor& logvar) override {
    at::Tensor h = ops_->input((images + 1) * 0.5);  // [N, 3, H, W] in [0, 1]
    for (Stage& s : encoder_) {
      h = ops_->conv(h, s.conv);                    // [N, C, H_s, W_s]
      for (Block& b : s.blocks) h = forward(h, b);  // [N, C, H_s, W_s]
    }
    mean = ops_->output(ops_->conv(h, enc_out_));  // [N, latent, H/f, W/f]
    logvar = at::Tensor();
    ops_->end_pass();
  }

  at::Tensor decode_unscaled(const at::Tensor& z) override {
    at::Tensor h = ops_->conv(ops_->input(at::tanh(z / 3.0) * 3.0), dec_in_, {}, true);  // [N, C, h, w]
    for (Stage& s : decoder_) {
      for (Block& b : s.blocks) h = forward(h, b);                  // [N, C, h_s, w_s]
      h = ops_->conv(h, s.conv, {}, false, {nullptr, s.upsample});  // [N, C or out, h_s or 2 h_s, ...]
    }
    const at::Tensor image = ops_->output(h) * 2.0 - 1.0;  // [N, out, h f, w f]
    ops_->end_pass();
    return image;
  }

 private:
  static std::string layer(const char* half, int64_t i) { return std::string(half) + ".layers." + std::to_string(i) + "."; }
  // A conv [out, in, k, k], padded to keep the size, with bias [out] where it has one.
  static SdConv conv(SdWeights& w, const std::string& p, int64_t out, int64_t in, int64_t k, bool bias, int64_t stride = 1) {
    SdConv c;
    c.weight = w.take(p + "weight", {out, in, k, k});
    if (bias) c.bias = w.take(p + "bias", {out});
    c.stride = stride;
    c.pad_begin = c.pad_end = k == 1 ? 0 : 1;
    return c;
  }
  static Block block(SdWeights& w, const std::string& p, int64_t cin, int64_t c) {
    Block b;
    b.conv0 = conv(w, p + "conv.0.", c, cin, 3, true);
    b.conv2 = conv(w, p + "conv.2.", c, c, 3, true);
    b.conv4 = conv(w, p + "conv.4.", c, c, 3, true);
    if (cin != c) b.skip = conv(w, p + "skip.", c, cin, 1, false);
    return b;
  }
  at::Tensor forward(const at::Tensor& x, Block& b) {
    at::Tensor h = ops_->conv(x, b.conv0, {}, true);                                   // [N, C, H, W]
    h = ops_->conv(h, b.conv2, {}, true);                                              // [N, C, H, W]
    return ops_->conv(h, b.conv4, x, true, {}, b.skip.present() ? &b.skip : nullptr);  // [N, C, H, W]
  }

  SdVaeConfig config_;
  std::unique_ptr<SdOps> ops_;
  std::vector<Stage> encoder_, decoder_;
  SdConv enc_out_, dec_in_;
};

}  // namespace

std::unique_ptr<SdNetwork> make_taesd(SdWeights& weights, std::unique_ptr<SdOps> ops) {
  return std::make_unique<Taesd>(weights, std::move(ops));
}

}  // namespace latent
