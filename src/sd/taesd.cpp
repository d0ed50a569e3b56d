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

class Taesd : public SdAutoencoder {
 public:
  Taesd(SdWeights weights, std::unique_ptr<SdOps> ops) : w_(std::move(weights.tensors)), ops_(std::move(ops)) {
    config_ = weights.config;
    file_dtype_ = weights.dtype;
    file_layout_ = weights.layout;
    int64_t idx = 0;
    for (size_t s = 0; s < config_.num_encoder_blocks.size(); ++s) {
      Stage st;
      st.conv = conv("encoder", idx++, s == 0 ? 1 : 2);
      for (int64_t b = 0; b < config_.num_encoder_blocks[s]; ++b) st.blocks.push_back(block("encoder", idx++));
      encoder_.push_back(std::move(st));
    }
    enc_out_ = conv("encoder", idx);
    dec_in_ = conv("decoder", 0);
    idx = 2;
    for (size_t s = 0; s < config_.num_decoder_blocks.size(); ++s) {
      Stage st;
      for (int64_t b = 0; b < config_.num_decoder_blocks[s]; ++b) st.blocks.push_back(block("decoder", idx++));
      if ((st.upsample = s + 1 < config_.num_decoder_blocks.size())) ++idx;
      st.conv = conv("decoder", idx++);
      decoder_.push_back(std::move(st));
    }
    w_.clear();
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
  at::Tensor take(const std::string& name) const { return sd_take(w_, name); }
  SdConv conv(const std::string& half, int64_t idx, int64_t stride = 1, const std::string& sub = "") {
    const std::string p = half + ".layers." + std::to_string(idx) + "." + sub;
    SdConv c;
    c.weight = take(p + "weight");
    c.bias = take(p + "bias");
    c.stride = stride;
    c.pad_begin = c.pad_end = c.weight.defined() && c.weight.size(2) == 1 ? 0 : 1;
    return c;
  }
  Block block(const std::string& half, int64_t idx) {
    return {conv(half, idx, 1, "conv.0."), conv(half, idx, 1, "conv.2."), conv(half, idx, 1, "conv.4."),
            conv(half, idx, 1, "skip.")};
  }
  at::Tensor forward(const at::Tensor& x, Block& b) {
    at::Tensor h = ops_->conv(x, b.conv0, {}, true);                                   // [N, C, H, W]
    h = ops_->conv(h, b.conv2, {}, true);                                              // [N, C, H, W]
    return ops_->conv(h, b.conv4, x, true, {}, b.skip.present() ? &b.skip : nullptr);  // [N, C, H, W]
  }

  std::map<std::string, at::Tensor> w_;
  std::unique_ptr<SdOps> ops_;
  std::vector<Stage> encoder_, decoder_;
  SdConv enc_out_, dec_in_;
};

}  // namespace

std::unique_ptr<SdAutoencoder> make_taesd(SdWeights weights, std::unique_ptr<SdOps> ops) {
  return std::make_unique<Taesd>(std::move(weights), std::move(ops));
}

}  // namespace latent
