// latent serve: the explorer page on a trained model.
#include <cstdio>
#include <filesystem>

#include "common.h"
#include "explorer_server.h"
#include "latent/cpu.h"
#include "latent/error.h"
#include "latent/sd_vae.h"
#include "latent/train.h"
#include "signals.h"

namespace latent::cli {
namespace {

constexpr const char* kDefaultCheckpoint = "runs/fmnist/model.safetensors";

struct ServeArgs {
  std::string checkpoint, vae, taesd, runs = "runs/explorer";
  int64_t sd_size = 256;
  server::ServeOptions opt;
};

void run_serve(const ServeArgs& a) {
  std::string path = a.checkpoint;
  if (path.empty()) {
    path = kDefaultCheckpoint;
    if (!std::filesystem::exists(path)) {
      std::printf("no model at %s yet: training the default model (once; later starts reuse it)\n", path.c_str());
      path = train_default_model(std::filesystem::path(path).parent_path().string());
      if (path.empty()) return;  // interrupted
    }
  }
  ServeArgs args = a;  // the SD autoencoder first: a bad file fails before any training or waiting
  if (!a.vae.empty() || !a.taesd.empty()) {
    if (!a.vae.empty() && !a.taesd.empty()) throw Error("give --vae or --taesd, not both");
    const std::string file = a.vae.empty() ? a.taesd : a.vae;
    args.opt.sd = std::make_shared<server::SdApi>(SdAutoencoder::load(file, SdLoadOptions{}), file, a.sd_size);
  }
  // One thread per request: concurrent requests run side by side instead of contending for a pool.
  set_num_threads(1);
  LoadedCheckpoint ck = checkpoint_load(path);
  if (ck.info.model.type != "smiles_vae") {  // the Train tab: Fashion-MNIST, and the served model's own data
    server::TrainJobOptions t;
    t.run_folder = a.runs;
    t.datasets["fashion-mnist"] = "fashion-mnist";
    if (!ck.info.data.source.empty()) t.datasets.emplace(ck.info.data.source, ck.info.data.source);
    args.opt.train = std::make_shared<server::TrainJobs>(t);
  }
  server::ExplorerServer server(std::move(ck), path, args.opt);
  std::printf("latent explorer: %s  (model %s, %s on %s%s; Ctrl-C stops)\n", server.address().c_str(), path.c_str(),
              server.shows_molecules() ? "molecules" : (server.api().precision() + " decoding").c_str(), cpu_summary().c_str(),
              args.opt.sd ? ("; SD latents from " + args.opt.sd->info()["file"].get<std::string>()).c_str() : "");
  std::fflush(stdout);
  server.run();
}

}  // namespace

void add_serve(CLI::App& app) {
  auto a = std::make_shared<ServeArgs>();
  CLI::App* cmd =
      app.add_subcommand("serve", "Serve the explorer: the manifold, KL, reparameterization, walk and training views");
  cmd->add_option("checkpoint", a->checkpoint,
                  std::string("checkpoint written by latent train (default: ") + kDefaultCheckpoint + ", trained on first use)")
      ->check(CLI::ExistingFile);
  cmd->add_option("--port", a->opt.port, "TCP port (0: any free port)")->capture_default_str()->check(CLI::Range(0, 65535));
  cmd->add_option("--host", a->opt.host, "address to bind (0.0.0.0 exposes the explorer to the network)")->capture_default_str();
  cmd->add_option("--threads", a->opt.threads,
                  "connections served at once (each holds a thread while open; threads start as connections come)")
      ->capture_default_str()
      ->check(CLI::Range(1, 4096));
  cmd->add_option("--precision", a->opt.precision,
                  "decoder products for images: fp32, bf16 (CPUs with AMX or AVX512-BF16: ~2x the requests/s; "
                  "8% of pixels move, nearly all by 1 of 255 levels), or auto: bf16 where the CPU has it, else fp32 "
                  "(/api/info says which, and the CPU path under \"cpu\")")
      ->capture_default_str()
      ->check(CLI::IsMember({"auto", "fp32", "bf16"}));
  cmd->add_option("--vae", a->vae, "Stable Diffusion autoencoder weights (safetensors) for the SD latents view")
      ->check(CLI::ExistingFile);
  cmd->add_option("--taesd", a->taesd, "TAESD weights for the SD latents view instead of --vae")->check(CLI::ExistingFile);
  cmd->add_option("--runs", a->runs, "folder of the runs trained from the explorer's Train tab, one folder each")
      ->capture_default_str();
  cmd->add_option("--sd-size", a->sd_size, "side of the SD latents view's square images, in pixels")->capture_default_str();
  cmd->footer(
      "Examples:\n  latent serve runs/fmnist/model.safetensors --port 8080\n  then open http://127.0.0.1:8080/ in a browser\n"
      "  latent serve --vae sd-vae/diffusion_pytorch_model.safetensors   (adds the SD latents tab)");
  cmd->callback([a] { run_serve(*a); });
}

}  // namespace latent::cli
