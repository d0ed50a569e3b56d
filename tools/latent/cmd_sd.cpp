// latent sd encode | decode | roundtrip: Stable Diffusion's first-stage autoencoder on image files.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <memory>

#include "common.h"
#include "latent/atomic_file.h"
#include "latent/error.h"
#include "latent/image.h"
#include "latent/npy.h"
#include "latent/progress.h"
#include "latent/sd_vae.h"
#include "latent/train.h"

namespace latent::cli {

namespace {

struct SdArgs {
  std::string vae, taesd, out, precision = "fp32", resize;
  std::vector<std::string> inputs;
  std::optional<double> scaling_factor;
  bool mean = false, winograd = false;
  int64_t tile = 0;
  double overlap = 0.25;
  uint64_t seed = 0;
  int threads = 0;
};

std::unique_ptr<SdAutoencoder> load_vae(const SdArgs& a) {
  if (a.vae.empty() == a.taesd.empty()) throw Error("give the weights with --vae FILE or --taesd FILE (one of them)");
  set_num_threads(a.threads);  // 0: every core
  SdLoadOptions options;
  options.follow_load = a.threads == 0;
  options.scaling_factor = a.scaling_factor;
  options.precision = parse_precision(a.precision);
  options.winograd = a.winograd;
  auto vae = SdAutoencoder::load(a.vae.empty() ? a.taesd : a.vae, options);
  if (!a.taesd.empty() && vae->config().type != "AutoencoderTiny")
    throw Error(a.taesd + " is not a TAESD file (AutoencoderTiny); use --vae");
  const SdVaeConfig& c = vae->config();
  std::fprintf(stderr, "%s: %s, %s, channels", (a.vae.empty() ? a.taesd : a.vae).c_str(), c.type.c_str(),
               vae->file_dtype().c_str());
  for (int64_t ch : c.block_out_channels) std::fprintf(stderr, " %lld", static_cast<long long>(ch));
  std::fprintf(stderr, " (from %s; layout %s), scaling factor %g, %s\n", c.source.c_str(), vae->file_layout().c_str(),
               c.scaling_factor, precision_name(vae->precision()));
  return vae;
}

SdTiling tiling(const SdArgs& a) { return SdTiling{a.tile, a.overlap, {}}; }

// Runs work(i, tiling) for each of n images of height x width pixels under a progress bar: one step
// per image, or, when the images are tiled, one per tile (`passes` tiled passes per image), so a
// single large image shows its progress too.
void for_each_image(const std::string& label, const SdAutoencoder& vae, const SdArgs& a, int64_t n, int64_t height, int64_t width,
                    int64_t passes, const std::function<void(int64_t, const SdTiling&)>& work) {
  SdTiling t = tiling(a);
  const int64_t tiles = vae.tile_count(height, width, t);
  ProgressBar bar(label, tiles > 1 ? n * tiles * passes : n, tiles > 1 ? "tiles" : "images");
  int64_t done = 0;
  if (tiles > 1) t.on_tile = [&] { bar.update(++done); };
  for (int64_t i = 0; i < n; ++i) {
    work(i, t);
    if (tiles == 1) bar.update(++done);
  }
  bar.finish();
}

// Images in [-1, 1] [N, C, H, W] from PNG/JPEG/BMP files (each [C, H, W]) or NPY arrays [N, C, H, W].
at::Tensor load_images(const SdArgs& a, int64_t channels) {
  if (a.inputs.empty()) throw Error("give at least one IMAGE (PNG/JPEG/BMP, or NPY [N, C, H, W] in [-1, 1])");
  int height = 0, width = 0;
  if (!a.resize.empty()) parse_size(a.resize, &height, &width);
  std::vector<at::Tensor> parts;
  for (const std::string& f : a.inputs) {
    at::Tensor x;
    if (ends_with(f, ".npy")) {
      x = npy_load(f).to(at::kFloat);
      if (x.dim() == 3) x = x.unsqueeze(0);
      if (x.dim() != 4) throw Error(f + ": expected an array [N, C, H, W] in [-1, 1]");
      if (x.numel() && (x.min().item<float>() < -1.5f || x.max().item<float>() > 1.5f))
        throw Error(f + ": values outside [-1, 1] (images for SD's autoencoder are in [-1, 1])");
      if (height > 0) x = at::upsample_bilinear2d(x, {height, width}, false);
    } else {
      x = (image_load(f, static_cast<int>(channels), height, width) * 2 - 1).unsqueeze(0);  // [1, C, H, W]
    }
    if (!parts.empty() && x.sizes().slice(1) != parts[0].sizes().slice(1))
      throw Error(f + ": its size differs from " + a.inputs[0] + "'s; use --resize WxH for a batch of differently sized images");
    parts.push_back(x);
  }
  return at::cat(parts, 0);
}

// Images in about [-1, 1] to `out`: .npy holds the raw values; a PNG per image otherwise
// (out.png for one, out-0.png, out-1.png, ... for several). Returns the paths written.
std::vector<std::string> save_images(const at::Tensor& images, const std::string& out) {
  if (ends_with(out, ".npy")) {
    npy_save(out, images.contiguous());
    return {out};
  }
  if (!ends_with(out, ".png")) throw Error("-o " + out + ": write .png or .npy");
  std::vector<std::string> paths;
  const std::string stem = out.substr(0, out.size() - 4);
  for (int64_t i = 0; i < images.size(0); ++i) {
    const std::string path = images.size(0) == 1 ? out : stem + "-" + std::to_string(i) + ".png";
    atomic_write(path, png_encode(((images[i] + 1) * 0.5).clamp(0, 1)));
    paths.push_back(path);
  }
  return paths;
}

void add_weights_options(CLI::App* c, SdArgs& a) {
  c->add_option("--vae", a.vae, "AutoencoderKL weights (safetensors: diffusers, LDM or a whole SD checkpoint)");
  c->add_option("--taesd", a.taesd, "TAESD weights (diffusers AutoencoderTiny safetensors) instead of --vae");
  c->add_option("--scaling-factor", a.scaling_factor, "latents = z x this (default: config.json's, else 0.18215; SDXL 0.13025)")
      ->check(positive());
  c->add_option("--precision", a.precision, "fp32, or bf16 on CPUs with AVX512-BF16 or AMX")
      ->capture_default_str()
      ->check(CLI::IsMember({"fp32", "bf16"}));
  c->add_option("--tile", a.tile, "tile side in pixels for large images (0: whole images)")
      ->capture_default_str()
      ->check(non_negative());
  c->add_option("--tile-overlap", a.overlap, "fraction of a tile shared with its neighbour")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 0.49));
  c->add_option("--threads", a.threads, "CPU threads (0: every core, fewer while other processes keep cores busy)")
      ->check(non_negative());
  c->add_flag("--winograd", a.winograd,
              "Winograd in every fp32 3x3 convolution with its transformed weights all kept (by default: outputs of 128x128 "
              "and up, large weights transformed at each run): ~20% faster, ~2.5x the memory");
}

double psnr(const at::Tensor& a, const at::Tensor& b) {  // on [0, 1] pixels
  const double mse = ((a + 1) * 0.5 - ((b + 1) * 0.5).clamp(0, 1)).square().mean().item<double>();
  return mse > 0 ? 10 * std::log10(1.0 / mse) : INFINITY;
}

}  // namespace

void add_sd(CLI::App& app) {
  CLI::App* sd =
      app.add_subcommand("sd", "Stable Diffusion's first-stage autoencoder: images <-> latents (512x512 RGB <-> 4x64x64)");
  sd->require_subcommand(1);
  auto a = std::make_shared<SdArgs>();

  CLI::App* e = sd->add_subcommand("encode", "Images -> scaled latents (NPY [N, 4, H/8, W/8])");
  add_weights_options(e, *a);
  e->add_option("images", a->inputs, "PNG/JPEG/BMP files, or NPY [N, 3, H, W] in [-1, 1]; H and W multiples of 8")->required();
  e->add_option("-o,--out", a->out, "output .npy")->required();
  e->add_flag("--mean", a->mean, "the posterior mean instead of a sample");
  e->add_option("--seed", a->seed, "seed of the sample")->capture_default_str();
  e->add_option("--resize", a->resize, "resize every image to WxH first");
  e->footer("Example:\n  latent sd encode --vae vae/diffusion_pytorch_model.safetensors photo.png -o latents.npy --mean");
  e->callback([a]() {
    auto vae = load_vae(*a);
    if (!ends_with(a->out, ".npy")) throw Error("-o " + a->out + ": latents are written as .npy");
    const at::Tensor x = load_images(*a, vae->config().in_channels);
    std::vector<at::Tensor> out;
    for_each_image("sd encode", *vae, *a, x.size(0), x.size(2), x.size(3), 1, [&](int64_t i, const SdTiling& t) {
      out.push_back(vae->encode(x.narrow(0, i, 1), !a->mean, a->seed + i, t));
    });
    const at::Tensor z = at::cat(out, 0);
    npy_save(a->out, z);
    std::printf("wrote %s: latents [%lld, %lld, %lld, %lld]\n", a->out.c_str(), static_cast<long long>(z.size(0)),
                static_cast<long long>(z.size(1)), static_cast<long long>(z.size(2)), static_cast<long long>(z.size(3)));
  });

  CLI::App* d = sd->add_subcommand("decode", "Scaled latents (NPY [N, 4, h, w]) -> images");
  add_weights_options(d, *a);
  d->add_option("latents", a->inputs, "NPY [N, 4, h, w] or [4, h, w] of scaled latents")->required()->expected(1);
  d->add_option("-o,--out", a->out, "out.png (out-0.png, out-1.png, ... for several) or .npy of the raw values")->required();
  d->footer("Example:\n  latent sd decode --vae vae/diffusion_pytorch_model.safetensors latents.npy -o out.png");
  d->callback([a]() {
    auto vae = load_vae(*a);
    at::Tensor z = npy_load(a->inputs.at(0)).to(at::kFloat);
    if (z.dim() == 3) z = z.unsqueeze(0);
    std::vector<at::Tensor> out;
    const int64_t f = vae->config().downsampling_factor();
    for_each_image("sd decode", *vae, *a, z.size(0), z.size(2) * f, z.size(3) * f, 1,
                   [&](int64_t i, const SdTiling& t) { out.push_back(vae->decode(z.narrow(0, i, 1), t)); });
    for (const std::string& p : save_images(at::cat(out, 0), a->out)) std::printf("wrote %s\n", p.c_str());
  });

  CLI::App* r = sd->add_subcommand("roundtrip", "Encode (posterior mean) and decode images; prints PSNR");
  add_weights_options(r, *a);
  r->add_option("images", a->inputs, "PNG/JPEG/BMP files, or NPY [N, 3, H, W] in [-1, 1]")->required();
  r->add_option("-o,--out", a->out, "out.png (out-0.png, ... for several) or .npy");
  r->add_option("--resize", a->resize, "resize every image to WxH first");
  r->footer("Example:\n  latent sd roundtrip --vae vae/diffusion_pytorch_model.safetensors photo.png -o photo-vae.png");
  r->callback([a]() {
    auto vae = load_vae(*a);
    const at::Tensor x = load_images(*a, vae->config().in_channels);
    std::vector<at::Tensor> out;
    for_each_image("sd roundtrip", *vae, *a, x.size(0), x.size(2), x.size(3), 2, [&](int64_t i, const SdTiling& t) {
      out.push_back(vae->decode(vae->encode(x.narrow(0, i, 1), false, 0, t), t));
    });
    const at::Tensor y = at::cat(out, 0);
    for (int64_t i = 0; i < x.size(0); ++i)
      std::printf("image %lld: PSNR %.2f dB\n", static_cast<long long>(i), psnr(x[i], y[i]));
    if (!a->out.empty())
      for (const std::string& p : save_images(y, a->out)) std::printf("wrote %s\n", p.c_str());
  });
}

}  // namespace latent::cli
