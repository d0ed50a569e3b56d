// SD's autoencoders against the independent PyTorch implementation in tests/sd_vae_reference.py:
// the same random weights saved in three layouts and dtypes, each with the outputs it must give
// (computed in float64 from that file's rounded weights). Tolerance: 1e-4 absolute in float32 (the
// issue's bound; outputs are O(1)), for the ATen reference operations and for oneDNN's.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <filesystem>

#include "cpu/sd_ops.h"
#include "latent/npy.h"
#include "latent/safetensors.h"
#include "latent/sd_vae.h"
#include "sd/sd_weights.h"
#include "test_util.h"

namespace latent {
namespace {

const std::string kDir = std::string(LATENT_FIXTURES) + "/sd/";
constexpr double kTol = 1e-4;

struct LayoutCase {
  std::string file;
  std::string layout, dtype;
  bool fast;
};

std::string name_of(const ::testing::TestParamInfo<LayoutCase>& info) {
  return info.param.file + (info.param.fast ? "_fast" : "_aten");
}

class SdLayouts : public ::testing::TestWithParam<LayoutCase> {};

TEST_P(SdLayouts, EncodeAndDecodeMatchTheReference) {
  const LayoutCase& c = GetParam();
  SdLoadOptions options;
  options.fast = c.fast;
  auto vae = SdAutoencoder::load(kDir + c.file + ".safetensors", options);
  EXPECT_EQ(vae->file_layout(), c.layout);
  EXPECT_EQ(vae->file_dtype(), c.dtype);
  EXPECT_EQ(vae->config().source, "config.json");
  EXPECT_EQ(vae->config().block_out_channels, (std::vector<int64_t>{32, 64}));
  EXPECT_EQ(vae->config().downsampling_factor(), 2);
  at::Tensor mean, logvar;
  vae->posterior(npy_load(kDir + "image.npy"), mean, logvar);
  EXPECT_TRUE(test::all_close(mean, npy_load(kDir + c.file + ".mean.npy"), 0, kTol));
  EXPECT_TRUE(test::all_close(logvar, npy_load(kDir + c.file + ".logvar.npy"), 0, kTol));
  EXPECT_TRUE(
      test::all_close(vae->decode_unscaled(npy_load(kDir + "latents.npy")), npy_load(kDir + c.file + ".decoded.npy"), 0, kTol));
}

INSTANTIATE_TEST_SUITE_P(
    Files, SdLayouts,
    ::testing::Values(LayoutCase{"diffusers_f32", "diffusers", "F32", false},
                      LayoutCase{"diffusers_f32", "diffusers", "F32", true},
                      LayoutCase{"ldm_f16_first_stage", "ldm, prefix first_stage_model.", "F16", false},
                      LayoutCase{"ldm_f16_first_stage", "ldm, prefix first_stage_model.", "F16", true},
                      LayoutCase{"legacy_bf16_vae", "diffusers (legacy attention names), prefix vae.", "BF16", false},
                      LayoutCase{"legacy_bf16_vae", "diffusers (legacy attention names), prefix vae.", "BF16", true}),
    name_of);

// None of the kernels oneDNN made for `ops` is one of its reference kernels (named "ref:..."), which
// run tens to hundreds of times slower: the activations' blocking is the one this CPU's kernels want.
void expect_no_reference_kernels(const SdOps& ops) {
  const std::vector<std::string> names = ops.kernel_names();
  EXPECT_FALSE(names.empty());
  for (const std::string& name : names) EXPECT_EQ(name.rfind("ref", 0), std::string::npos) << name << " on " << cpu_summary();
}

// oneDNN's banded convolutions (GroupNorm+SiLU and upsampling computed band by band into them)
// against ATen's plain ones, with bands of 4 rows over heights that 4 does not divide, a batch of 2,
// the fused residual and ReLU, direct and Winograd kernels.
TEST(SdOps, BandedConvolutionsMatchAtens) {
  auto aten = make_sd_ops_aten();
  at::manual_seed(3);
  const SdNorm norm{at::rand({32}) + 0.5, at::randn({32}) * 0.1, 8, 1e-6};
  // oneDNN's direct kernels, oneDNN's Winograd (where it has one; else direct), latent's Winograd.
  for (int mode : {0, 1, 2}) {
    const bool winograd = mode == 1;
    auto dnnl = make_sd_ops_dnnl(Precision::kFloat32, winograd, 1, false, mode == 2 ? SdWinograd::kAlways : SdWinograd::kNever);
    if (!dnnl) GTEST_SKIP() << "built without oneDNN";
    for (bool upsample : {false, true})
      for (bool with_norm : {false, true}) {
        if (!upsample && !with_norm) continue;
        const at::Tensor x = at::randn({2, 32, 9, 7}) * 2 + 0.3;  // [N, C, H, W]
        const int64_t h = upsample ? 18 : 9, w = upsample ? 14 : 7;
        for (bool residual : {false, true})
          for (bool relu : {false, true}) {
            SdConv c{at::randn({48, 32, 3, 3}) * 0.1, at::randn({48}) * 0.1};
            SdConv c_ref = c;
            const SdPrologue pre{with_norm ? &norm : nullptr, upsample};
            const at::Tensor r = at::randn({2, 48, h, w});
            const at::Tensor want = aten->conv(x, c_ref, residual ? r.clone() : at::Tensor(), relu, pre);
            const at::Tensor got =
                dnnl->output(dnnl->conv(dnnl->input(x), c, residual ? dnnl->input(r) : at::Tensor(), relu, pre));
            EXPECT_TRUE(test::all_close(got, want, 0, 1e-4))
                << "mode " << mode << " upsample " << upsample << " norm " << with_norm << " residual " << residual << " relu "
                << relu << ": max diff " << (got - want).abs().max().item<double>();
            EXPECT_FALSE(c.weight.defined());  // oneDNN holds the weights in its own layout now
            EXPECT_TRUE(c.present());
          }
      }
    if (mode != 2) expect_no_reference_kernels(*dnnl);  // (latent's Winograd runs no oneDNN kernel here)
  }
}

// A resnet's tail in bands of 4 rows: conv2(SiLU(GN(h))) + shortcut(x), with x of more channels
// than the output (written over x's memory), fewer, or the same (identity); then a convolution of
// the result, whose GroupNorm uses the moments kept from the bands. Float32 direct and Winograd
// (1e-4), and bfloat16 where the CPU has it (3e-2: inputs and weights rounded to 8 bits).
void check_banded_shortcuts(int mode) {
  auto aten = make_sd_ops_aten();
  at::manual_seed(4);
  const SdNorm norm{at::rand({48}) + 0.5, at::randn({48}) * 0.1, 8, 1e-6};
  {
    std::unique_ptr<SdOps> dnnl = make_sd_ops_dnnl(mode == 2 ? Precision::kBFloat16 : Precision::kFloat32, mode == 1, 1, false,
                                                   mode == 3 ? SdWinograd::kAlways : SdWinograd::kNever);
    if (!dnnl) GTEST_SKIP() << "built without oneDNN";
    const double tol = mode == 2 ? 3e-2 : 1e-4;
    for (int64_t res_channels : {64, 32, 48}) {
      const at::Tensor h = at::randn({2, 48, 10, 7}) * 2 + 0.3, x = at::randn({2, res_channels, 10, 7});  // [N, C, H, W]
      SdConv conv2{at::randn({48, 48, 3, 3}) * 0.1, at::randn({48}) * 0.1}, next{at::randn({16, 48, 3, 3}) * 0.1, {}};
      SdConv shortcut{at::randn({48, res_channels, 1, 1}) * 0.2, at::randn({48}) * 0.1, 1, 0, 0};
      SdConv conv2_ref = conv2, next_ref = next, shortcut_ref = shortcut;
      SdConv* sc = res_channels == 48 ? nullptr : &shortcut;
      const at::Tensor want = aten->conv(h, conv2_ref, x, false, {&norm}, sc ? &shortcut_ref : nullptr);
      const at::Tensor want_next = aten->conv(want, next_ref, {}, false, {&norm});
      const at::Tensor y = dnnl->conv(dnnl->input(h), conv2, dnnl->input(x), false, {&norm}, sc);
      const at::Tensor got = dnnl->output(y), got_next = dnnl->output(dnnl->conv(y, next, {}, false, {&norm}));
      EXPECT_TRUE(test::all_close(got, want, 0, tol))
          << "mode " << mode << " residual channels " << res_channels << ": max diff " << (got - want).abs().max().item<double>();
      EXPECT_TRUE(test::all_close(got_next, want_next, 0, tol))
          << "mode " << mode << " residual channels " << res_channels << ": max diff "
          << (got_next - want_next).abs().max().item<double>();
      dnnl->end_pass();
    }
    expect_no_reference_kernels(*dnnl);
  }
}

TEST(SdOps, BandedShortcutsAndKeptMomentsMatchAtens) { check_banded_shortcuts(0); }
TEST(SdOps, BandedShortcutsAndKeptMomentsMatchAtensWinograd) { check_banded_shortcuts(1); }
TEST(SdOps, BandedShortcutsAndKeptMomentsMatchAtensLatentsWinograd) { check_banded_shortcuts(3); }
TEST(SdOps, BandedShortcutsAndKeptMomentsMatchAtensBFloat16) {
  LATENT_SKIP_WITHOUT_BF16();
  check_banded_shortcuts(2);
}

// Layers whose Winograd weights are transformed for each run (large beside a 128x128 output) into
// one shared buffer: A, then B (weights given in float16, so its source is a converted copy that
// goes), then A again (the buffer switches back), in bands of 4 rows, against ATen.
TEST(SdOps, TransientWinogradWeightsMatchAtens) {
  for (SdWinograd own : {SdWinograd::kNever, SdWinograd::kAlways}) {  // oneDNN's (AVX-512; else direct), latent's
    SCOPED_TRACE(own == SdWinograd::kAlways ? "latent's Winograd" : "oneDNN's");
    auto aten = make_sd_ops_aten();
    auto dnnl = make_sd_ops_dnnl(Precision::kFloat32, false, 1, false, own);
    if (!dnnl) GTEST_SKIP() << "built without oneDNN";
    at::manual_seed(6);
    const int64_t c = 80;
    const SdNorm norm{at::rand({c}) + 0.5, at::randn({c}) * 0.1, 8, 1e-6};
    SdConv a{at::randn({c, c, 3, 3}) * 0.05, at::randn({c}) * 0.1}, b{(at::randn({c, c, 3, 3}) * 0.05).to(at::kHalf), {}};
    SdConv a_ref = a, b_ref{b.weight.to(at::kFloat), {}};
    const at::Tensor x = at::randn({1, c, 128, 128});  // [N, C, H, W]
    at::Tensor want = aten->conv(x, a_ref, {}, false, {&norm});
    want = aten->conv(want, b_ref, {}, false, {&norm});
    want = aten->conv(want, a_ref, {}, false, {&norm});
    at::Tensor got = dnnl->conv(dnnl->input(x), a, {}, false, {&norm});
    got = dnnl->conv(got, b, {}, false, {&norm});
    got = dnnl->output(dnnl->conv(got, a, {}, false, {&norm}));
    EXPECT_TRUE(test::all_close(got, want, 0, 1e-4)) << "max diff " << (got - want).abs().max().item<double>();
    if (own == SdWinograd::kNever) expect_no_reference_kernels(*dnnl);  // (latent's runs no oneDNN kernel here)
  }
}

// Attention on the blocked layout, batch 2, against ATen's; run twice (the second time on reused
// activation memory) with the same result.
TEST(SdOps, AttentionMatchesAtensAndRepeats) {
  auto aten = make_sd_ops_aten();
  auto dnnl = make_sd_ops_dnnl(Precision::kFloat32, false);
  if (!dnnl) GTEST_SKIP() << "built without oneDNN";
  at::manual_seed(5);
  const int64_t c = 32;
  auto linear = [&] { return at::randn({c, c}) / std::sqrt(static_cast<double>(c)); };
  const SdAttention a{{at::rand({c}) + 0.5, at::randn({c}) * 0.1, 8, 1e-6},
                      linear(),
                      at::randn({c}) * 0.1,
                      linear(),
                      at::randn({c}) * 0.1,
                      linear(),
                      at::randn({c}) * 0.1,
                      linear(),
                      at::randn({c}) * 0.1};
  const at::Tensor x = at::randn({2, c, 5, 7}) * 2 + 0.3;  // [N, C, H, W]
  const at::Tensor want = aten->attention(x, a);
  const at::Tensor first = dnnl->output(dnnl->attention(dnnl->input(x), a));
  dnnl->end_pass();
  const at::Tensor second = dnnl->output(dnnl->attention(dnnl->input(x), a));
  EXPECT_TRUE(test::all_close(first, want, 0, 1e-4)) << "max diff " << (first - want).abs().max().item<double>();
  EXPECT_TRUE(at::equal(first, second));
}

TEST(SdVae, ScalingFactorFromConfigDefaultAndOverride) {
  // config.json says 0.5: encode's mean is the posterior mean x 0.5, decode divides first.
  auto vae = SdAutoencoder::load(kDir + "diffusers_f32.safetensors");
  EXPECT_DOUBLE_EQ(vae->config().scaling_factor, 0.5);
  const at::Tensor image = npy_load(kDir + "image.npy"), latents = npy_load(kDir + "latents.npy");
  EXPECT_TRUE(test::all_close(vae->encode(image, false), npy_load(kDir + "diffusers_f32.mean.npy") * 0.5, 0, kTol));
  EXPECT_TRUE(test::all_close(vae->decode(latents * 0.5), npy_load(kDir + "diffusers_f32.decoded.npy"), 0, kTol));
  // A sample: mean + sigma eps, seeded.
  const at::Tensor a = vae->encode(image, true, 7), b = vae->encode(image, true, 7), c = vae->encode(image, true, 8);
  EXPECT_TRUE(at::equal(a, b));
  EXPECT_FALSE(at::equal(a, c));
  const at::Tensor sigma = at::exp(0.5 * npy_load(kDir + "diffusers_f32.logvar.npy"));
  const at::Tensor eps = (a / 0.5 - npy_load(kDir + "diffusers_f32.mean.npy")) / sigma;
  EXPECT_NEAR(eps.mean().item<double>(), 0.0, 0.15);  // 768 draws of N(0, 1)
  EXPECT_NEAR(eps.std().item<double>(), 1.0, 0.1);

  SdLoadOptions options;
  options.scaling_factor = 0.13025;
  EXPECT_DOUBLE_EQ(SdAutoencoder::load(kDir + "diffusers_f32.safetensors", options)->config().scaling_factor, 0.13025);
}

TEST(SdVae, ArchitectureFromShapesWithoutConfigJson) {
  test::TempDir dir;
  std::filesystem::copy_file(kDir + "ldm_f16_first_stage.safetensors", dir / "sd-v1-5.safetensors");
  auto vae = SdAutoencoder::load(dir / "sd-v1-5.safetensors");
  const SdVaeConfig& c = vae->config();
  EXPECT_EQ(c.source, "tensor shapes");
  EXPECT_EQ(c.block_out_channels, (std::vector<int64_t>{32, 64}));
  EXPECT_EQ(c.layers_per_block, 1);
  EXPECT_EQ(c.latent_channels, 4);
  EXPECT_EQ(c.in_channels, 3);
  EXPECT_EQ(c.out_channels, 3);
  EXPECT_TRUE(c.use_quant_conv && c.use_post_quant_conv && c.mid_block_add_attention);
  EXPECT_DOUBLE_EQ(c.scaling_factor, 0.18215);
  EXPECT_TRUE(test::all_close(vae->decode_unscaled(npy_load(kDir + "latents.npy")),
                              npy_load(kDir + "ldm_f16_first_stage.decoded.npy"), 0, kTol));
}

TEST(SdVae, MismatchedFileListsEveryProblem) {
  SafetensorsFile f = safetensors_load(kDir + "ldm_f16_first_stage.safetensors");
  std::vector<std::pair<std::string, at::Tensor>> kept;
  for (auto& [name, t] : f.tensors) {
    if (name == "first_stage_model.decoder.up.1.block.0.norm1.weight" || name == "first_stage_model.encoder.mid.attn_1.k.bias")
      continue;
    if (name == "first_stage_model.decoder.conv_in.weight") t = at::zeros({64, 5, 3, 3}, at::kHalf);
    kept.push_back({name, t});
  }
  kept.push_back({"first_stage_model.decoder.extra.weight", at::zeros({2}, at::kHalf)});
  kept.push_back({"model.diffusion_model.input_blocks.0.0.weight", at::zeros({2}, at::kHalf)});  // the rest of an SD checkpoint
  f.tensors = kept;
  test::TempDir dir;
  safetensors_save(dir / "broken.safetensors", f);
  std::filesystem::copy_file(kDir + "config.json", dir / "config.json");
  try {
    SdAutoencoder::load(dir / "broken.safetensors");
    FAIL() << "a mismatched file loaded";
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("2 missing, 1 unexpected, 1 wrongly shaped"), std::string::npos) << m;
    // Named as the file names them (LDM layout, with its prefix), with the expected shapes.
    EXPECT_NE(m.find("missing: first_stage_model.decoder.up.1.block.0.norm1.weight [64]"), std::string::npos) << m;
    EXPECT_NE(m.find("missing: first_stage_model.encoder.mid.attn_1.k.bias [64]"), std::string::npos) << m;
    EXPECT_NE(m.find("unexpected: first_stage_model.decoder.extra.weight [2]"), std::string::npos) << m;
    EXPECT_NE(m.find("wrong: first_stage_model.decoder.conv_in.weight: got [64, 5, 3, 3], expected [64, 4, 3, 3]"),
              std::string::npos)
        << m;
    EXPECT_EQ(m.find("diffusion_model"), std::string::npos) << m;
  }
}

TEST(SdVae, CorruptFilesAndBadConfigsAreRefused) {
  test::TempDir dir;
  test::write_bytes(dir / "short.safetensors", "\x10\x00\x00\x00\x00\x00\x00\x00{\"a\":");
  EXPECT_THROW(SdAutoencoder::load(dir / "short.safetensors"), Error);
  EXPECT_ERROR_WITH(SdAutoencoder::load(dir / "missing.safetensors"), "missing.safetensors");
  std::filesystem::copy_file(kDir + "diffusers_f32.safetensors", dir / "m.safetensors");
  test::write_bytes(
      dir / "config.json",
      R"({"_class_name": "AutoencoderKL", "block_out_channels": [32, 64], "layers_per_block": 1, "act_fn": "gelu"})");
  EXPECT_ERROR_WITH(SdAutoencoder::load(dir / "m.safetensors"), "'act_fn'");
  test::write_bytes(dir / "config.json", R"({"block_out_channels": [32, 64], "layers_per_block": 1, "resnet_style": 2})");
  EXPECT_ERROR_WITH(SdAutoencoder::load(dir / "m.safetensors"), "unknown key 'resnet_style'");
  test::write_bytes(dir / "config.json", R"({"block_out_channels": [32, 64, 64], "layers_per_block": 1})");
  EXPECT_ERROR_WITH(SdAutoencoder::load(dir / "m.safetensors"), "missing");
}

TEST(SdVae, BadInputsAreRefused) {
  auto vae = SdAutoencoder::load(kDir + "diffusers_f32.safetensors");
  EXPECT_ERROR_WITH(vae->encode(at::zeros({1, 1, 8, 8}), false), "expected [N, 3, H, W]");
  EXPECT_ERROR_WITH(vae->encode(at::zeros({1, 3, 7, 8}), false), "multiples of 2");
  EXPECT_ERROR_WITH(vae->encode(at::full({1, 3, 8, 8}, NAN), false), "NaN");
  EXPECT_ERROR_WITH(vae->decode(at::zeros({1, 3, 8, 8})), "expected [N, 4, h, w]");
  SdTiling bad;
  bad.tile = 5;
  EXPECT_ERROR_WITH(vae->decode(at::zeros({1, 4, 8, 8}), bad), "tile size");
}

TEST(SdVae, TaesdMatchesTheReference) {
  for (bool fast : {false, true}) {
    SdLoadOptions options;
    options.fast = fast;
    auto vae = SdAutoencoder::load(kDir + "taesd/diffusion_pytorch_model.safetensors", options);
    EXPECT_EQ(vae->config().type, "AutoencoderTiny");
    EXPECT_EQ(vae->config().downsampling_factor(), 4);
    EXPECT_DOUBLE_EQ(vae->config().scaling_factor, 1.0);
    EXPECT_TRUE(test::all_close(vae->encode(npy_load(kDir + "image.npy"), false), npy_load(kDir + "taesd/latents.npy"), 0, kTol));
    EXPECT_TRUE(test::all_close(vae->decode(npy_load(kDir + "latents.npy")), npy_load(kDir + "taesd/decoded.npy"), 0, 4 * kTol));
  }
  // Without config.json the stages come from the layer sequence.
  test::TempDir dir;
  std::filesystem::copy_file(kDir + "taesd/diffusion_pytorch_model.safetensors", dir / "taesd.safetensors");
  const SdVaeConfig c = SdAutoencoder::load(dir / "taesd.safetensors")->config();
  EXPECT_EQ(c.num_encoder_blocks, (std::vector<int64_t>{1, 2, 1}));
  EXPECT_EQ(c.num_decoder_blocks, (std::vector<int64_t>{1, 2, 1}));
  EXPECT_EQ(c.decoder_block_out_channels, (std::vector<int64_t>{16, 16, 16}));
}

TEST(SdVae, LdmNamesRoundTrip) {
  for (const std::string n :
       {"decoder.up_blocks.0.resnets.2.conv_shortcut.weight", "decoder.up_blocks.3.upsamplers.0.conv.bias",
        "encoder.down_blocks.1.downsamplers.0.conv.weight", "encoder.mid_block.attentions.0.to_out.0.weight",
        "decoder.mid_block.resnets.1.norm2.bias", "encoder.conv_norm_out.weight", "quant_conv.weight"})
    EXPECT_EQ(sd_name_from_ldm(sd_name_to_ldm(n, 4), 4), n);
  EXPECT_EQ(sd_name_to_ldm("decoder.up_blocks.0.resnets.2.conv_shortcut.weight", 4), "decoder.up.3.block.2.nin_shortcut.weight");
  EXPECT_EQ(sd_name_to_ldm("encoder.mid_block.attentions.0.to_out.0.weight", 4), "encoder.mid.attn_1.proj_out.weight");
}

}  // namespace
}  // namespace latent

namespace latent {
namespace {

TEST(SdVae, TiledDecodeAndEncodeBlendWholeTiles) {
  // Tiles are decoded on their own (GroupNorm statistics and the mid-block attention see only the
  // tile, as in diffusers' tiling), then blended: where one tile alone covers the output it is that
  // tile's decoding exactly; where two overlap, a linear ramp mixes them, so the result never leaves
  // the range of the two; a tile as large as the image is the untiled computation.
  auto vae = SdAutoencoder::load(kDir + "diffusers_f32.safetensors");
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(5);
  const at::Tensor z =
      at::randn({1, 4, 24, 32}, gen);  // scaled latents; tiles of 16 latents start at rows 0, 8 and columns 0, 12, 16
  SdTiling tiling;
  tiling.tile = 32;  // pixels (16 latents), at least 4 latents shared
  int64_t tiles_done = 0;
  tiling.on_tile = [&] { ++tiles_done; };
  const at::Tensor tiled = vae->decode(z, tiling);  // [1, 3, 48, 64]
  EXPECT_EQ(tiles_done, 6);                         // rows 0, 8 x columns 0, 12, 16: each reported
  EXPECT_EQ(vae->tile_count(48, 64, tiling), 6);
  EXPECT_EQ(vae->tile_count(32, 32, tiling), 1);
  ASSERT_EQ(tiled.sizes(), (at::IntArrayRef{1, 3, 48, 64}));
  const at::Tensor unscaled = z / vae->config().scaling_factor;
  const at::Tensor first = vae->decode_unscaled(unscaled.narrow(2, 0, 16).narrow(3, 0, 16).contiguous());  // [1, 3, 32, 32]
  EXPECT_TRUE(test::all_close(tiled.narrow(2, 0, 16).narrow(3, 0, 24), first.narrow(2, 0, 16).narrow(3, 0, 24), 0, 1e-6));
  // Rows 16..31, columns 0..23: tiles (0, 0) and (1, 0) only.
  const at::Tensor below = vae->decode_unscaled(unscaled.narrow(2, 8, 16).narrow(3, 0, 16).contiguous());  // rows 16..47
  const at::Tensor a = first.narrow(2, 16, 16).narrow(3, 0, 24), b = below.narrow(2, 0, 16).narrow(3, 0, 24);
  const at::Tensor mixed = tiled.narrow(2, 16, 16).narrow(3, 0, 24);
  EXPECT_TRUE((mixed >= at::minimum(a, b) - 1e-5).all().item<bool>());
  EXPECT_TRUE((mixed <= at::maximum(a, b) + 1e-5).all().item<bool>());
  // The ramp: at the overlap's first row the upper tile dominates, at its last the lower one.
  EXPECT_LT((mixed.select(2, 0) - a.select(2, 0)).abs().max().item<double>(),
            (mixed.select(2, 0) - b.select(2, 0)).abs().max().item<double>());
  EXPECT_LT((mixed.select(2, 15) - b.select(2, 15)).abs().max().item<double>(),
            (mixed.select(2, 15) - a.select(2, 15)).abs().max().item<double>());
  tiling.tile = 64;
  EXPECT_TRUE(at::equal(vae->decode(z, tiling), vae->decode(z)));

  // Encoding: the same blend of whole tiles, in latent space.
  const at::Tensor image = vae->decode(z).clamp(-1, 1);  // [1, 3, 48, 64]
  tiling.tile = 32;
  const at::Tensor e_tiled = vae->encode(image, false, 0, tiling);  // [1, 4, 24, 32]
  const at::Tensor e_first = vae->encode(image.narrow(2, 0, 32).narrow(3, 0, 32).contiguous(), false);
  EXPECT_TRUE(test::all_close(e_tiled.narrow(2, 0, 8).narrow(3, 0, 12), e_first.narrow(2, 0, 8).narrow(3, 0, 12), 0, 1e-6));
}

}  // namespace
}  // namespace latent
