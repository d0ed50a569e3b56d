// latent train: train a VAE and write its checkpoint, metrics and pictures.
#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include "common.h"
#include "latent/error.h"
#include "latent/json.h"
#include "latent/train.h"
#include "launch.h"
#include "signals.h"

namespace latent::cli {
namespace {

constexpr const char* kDefaultModel = R"({"type": "mlp_vae", "hidden": [400], "latent": 20, "likelihood": "bernoulli"})";

struct TrainArgs {
  std::string data = "fashion-mnist", config = kDefaultModel, resume, test_data, labels, test_labels, resize, smiles_column;
  int channels = 0;
  bool no_fused = false, quiet = false, standardize = false;
  int nproc = 0;
  double test_fraction = 0.1;
  std::vector<int64_t> classes;
  TrainOptions opt;
  DistOptions dist;
};

/// Trains (or resumes) as `a` says and prints the outcome; returns the checkpoint's path, or ""
/// when Ctrl-C interrupted it (the exit status is then 130). `epochs_given`: --epochs was on the
/// command line (with --resume it is the new total; otherwise the checkpoint's count stands).
// The checkpoint --resume names: "auto" is --out's when there is one (so a job restarted by
// torchrun, Slurm or by hand continues where it stopped), else none.
std::string resume_path(const TrainArgs& a) {
  if (a.resume != "auto") return a.resume;
  if (a.opt.out.empty()) throw Error("--resume auto needs --out: the folder whose checkpoint to continue");
  const std::string path = a.opt.out + "/model.safetensors";
  if (!std::filesystem::exists(path)) return "";
  const CheckpointInfo held = checkpoint_load(path).info;
  const nlohmann::json want = ModelConfig::from_text_or_file(a.config).to_json();
  if (held.model.to_json() != want)
    throw Error("--resume auto: " + path + " holds another model (" + json_excerpt(held.model.to_json(), 120) +
                "); choose another --out or remove it");
  return path;
}

// Options the command line left alone, set as a molecule model trains best: longer, with the KL
// warmed up and floored per dimension so that the decoder cannot ignore z (posterior collapse).
// Returns what it set ("--epochs 40 ..."), for the closing line.
std::string molecule_defaults(TrainArgs& a, const CLI::App& cmd) {
  if (!a.resume.empty() || ModelConfig::from_text_or_file(a.config).type != "smiles_vae") return "";
  std::string said;
  auto set = [&](const char* flag, auto& value, auto v) {
    if (cmd.count(flag) > 0) return;
    value = v;
    char text[64];
    std::snprintf(text, sizeof(text), "%s%s %g", said.empty() ? "" : " ", flag, static_cast<double>(v));
    said += text;
  };
  set("--epochs", a.opt.epochs, int64_t{40});
  if (cmd.count("--kl-cycle") == 0) set("--kl-warmup", a.opt.kl_warmup, 5.0);
  set("--free-bits", a.opt.free_bits, 0.2);
  return said;
}

std::string run_train(const TrainArgs& a, bool epochs_given, const std::string& defaults_set = "") {
  set_graceful_stop(true);  // the first Ctrl-C saves a checkpoint; a second one exits at once
  if (a.nproc > 0) {
    run_as_workers(a.nproc);
    return "";
  }
  RankInfo ranks = rank_info_from_environment();
  const bool writer = ranks.rank == 0;
  TrainResult r;
  const std::string resume = resume_path(a);
  if (!resume.empty()) {
    if (a.resume == "auto" && writer) std::fprintf(stderr, "resuming from %s\n", resume.c_str());
    r = train_resume(resume, epochs_given ? a.opt.epochs : 0, a.opt.out, !a.quiet, ranks, a.dist);
  } else {
    if (a.opt.out.empty()) throw Error("--out is required: the folder for the checkpoint and metrics");
    DataSpec spec;
    spec.source = a.data;
    spec.test_source = a.test_data;
    spec.labels = a.labels;
    spec.test_labels = a.test_labels;
    spec.test_fraction = a.test_fraction;
    spec.channels = a.channels;
    spec.standardize = a.standardize;
    spec.classes = a.classes;
    spec.smiles_column = a.smiles_column;
    if (!a.resize.empty()) parse_size(a.resize, &spec.height, &spec.width);
    TrainOptions opt = a.opt;
    opt.fused = !a.no_fused;
    opt.progress = !a.quiet;
    opt.ranks = ranks;
    opt.dist = a.dist;
    r = train(ModelConfig::from_text_or_file(a.config), spec, opt);
  }
  set_graceful_stop(false);
  if (!writer) return r.checkpoint;  // rank 0 speaks for the job
  if (r.interrupted) {
    std::fprintf(stderr, "interrupted: checkpoint saved to %s; continue with: latent train --resume %s\n", r.checkpoint.c_str(),
                 r.checkpoint.c_str());
    exit_status() = 130;
    return "";
  }
  std::string summary = "saved " + r.checkpoint;
  if (r.last_metrics.is_object() && r.last_metrics.contains("test_elbo")) {
    char buf[160];
    std::snprintf(buf, sizeof(buf), " (test ELBO %.2f nats, %.0f samples/s)", r.last_metrics["test_elbo"].get<double>(),
                  r.last_metrics["samples_per_s"].get<double>());
    summary += buf;
  }
  if (!defaults_set.empty()) summary += "; smiles_vae defaults: " + defaults_set;
  std::printf("%s\n", summary.c_str());
  return r.checkpoint;
}

}  // namespace

std::string train_default_model(const std::string& out) {
  TrainArgs defaults;
  defaults.opt.out = out;
  return run_train(defaults, false);
}

void add_train(CLI::App& app) {
  auto args = std::make_shared<TrainArgs>();
  CLI::App* cmd = app.add_subcommand(
      "train", "Train a VAE; writes model.safetensors, metrics.jsonl, samples.png and reconstructions.png under --out");
  cmd->add_option("--data", args->data,
                  "fashion-mnist, an image folder, FILE.npy, FILE.csv or an IDX file; molecules (the built-in pool), FILE.smi "
                  "or a CSV with a SMILES column for a smiles_vae")
      ->capture_default_str();
  cmd->add_option("--smiles-column", args->smiles_column,
                  "CSV molecules: the column holding SMILES (default: the one named smiles); numeric columns become properties");
  cmd->add_option("--config", args->config, "model config: JSON text or a JSON file")->capture_default_str();
  cmd->add_option("--out", args->opt.out, "output folder");
  cmd->add_option("--epochs", args->opt.epochs, "epochs (with --resume: the new total)")
      ->capture_default_str()
      ->check(non_negative());
  cmd->add_option("--batch-size", args->opt.batch_size, "examples per step")->capture_default_str()->check(positive());
  cmd->add_option("--lr", args->opt.adam.lr, "Adam learning rate")->capture_default_str()->check(positive());
  cmd->add_option("--beta1", args->opt.adam.beta1, "Adam beta1")->capture_default_str()->check(CLI::Range(0.0, 0.999999));
  cmd->add_option("--beta2", args->opt.adam.beta2, "Adam beta2")->capture_default_str()->check(CLI::Range(0.0, 0.999999));
  cmd->add_option("--seed", args->opt.seed, "random seed (same seed and --threads: same numbers)")->capture_default_str();
  cmd->add_option("--threads", args->opt.threads, "CPU threads (0: every core)")->capture_default_str()->check(non_negative());
  cmd->add_flag("--binarize", args->opt.binarize, "dynamic binarization: each batch samples x ~ Bernoulli(pixel)");
  cmd->add_option("--beta", args->opt.beta, "KL weight (default: the config's beta, 1)")->check(non_negative());
  cmd->add_option("--kl-warmup", args->opt.kl_warmup, "epochs of linear KL warm-up from 0 to beta")->check(non_negative());
  cmd->add_option("--kl-cycle", args->opt.kl_cycle, "cyclical KL annealing: cycle length in epochs (Fu et al. 2019)")
      ->check(non_negative());
  cmd->add_option("--kl-cycle-ratio", args->opt.kl_cycle_ratio, "fraction of each cycle spent rising from 0 to beta")
      ->capture_default_str()
      ->check(CLI::Range(0.01, 1.0));
  cmd->add_option("--free-bits", args->opt.free_bits, "KL floor per latent dimension in nats (Kingma et al. 2016)")
      ->check(non_negative());
  cmd->add_option("--objective", args->opt.objective, "elbo, or iwae: the k-sample importance-weighted bound (Burda et al. 2015)")
      ->capture_default_str()
      ->check(CLI::IsMember({"elbo", "iwae"}));
  cmd->add_option("--k", args->opt.iwae_k, "importance samples per example for --objective iwae")
      ->capture_default_str()
      ->check(CLI::Range(1, 100000));
  cmd->add_option("--limit", args->opt.limit, "train on the first N training examples only")->check(non_negative());
  cmd->add_option("--test-data", args->test_data, "separate test data (same format as --data)");
  cmd->add_option("--labels", args->labels, "labels file (IDX or NPY) for --data");
  cmd->add_option("--test-labels", args->test_labels, "labels file for --test-data");
  cmd->add_option("--test-fraction", args->test_fraction, "fraction held out for testing when the data has no test split")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 0.99));
  cmd->add_option("--channels", args->channels, "image folders: 1 (grayscale) or 3 (RGB); default as stored")
      ->check(CLI::IsMember({1, 3}));
  cmd->add_option("--resize", args->resize, "image folders: resize every image to WxH");
  cmd->add_flag("--standardize", args->standardize, "z-score each feature with the training split's mean and std (tables)");
  cmd->add_option("--classes", args->classes, "train (and test) on the examples of these labels only, e.g. --classes 3")
      ->delimiter(',');
  cmd->add_option("--resume", args->resume,
                  "continue training from a checkpoint; auto: from --out's checkpoint when there is one (what a restarted job "
                  "wants)");
  cmd->add_option("--nproc", args->nproc,
                  "start N workers on this machine, one job of N ranks (each trains on its share of every batch; the "
                  "numbers match one process's). torchrun and Slurm's srun start latent as they start any program")
      ->check(CLI::Range(1, 256));
  cmd->add_option("--iface", args->dist.iface, "distributed: the network interface the ranks talk over (as GLOO_SOCKET_IFNAME)");
  cmd->add_option("--dist-timeout", args->dist.join_timeout_s, "distributed: seconds every rank has to arrive")
      ->capture_default_str()
      ->check(CLI::Range(1.0, 86400.0));
  cmd->add_flag("--no-fused", args->no_fused, "use the autograd step even where the fused MLP step applies");
  cmd->add_option("--precision", args->opt.precision,
                  "fp32, or bf16: mixed precision (bfloat16 products with float32 sums, weights and Adam state; mlp_vae "
                  "with ReLU; CPUs with AVX512-BF16 or AMX). Each metrics record names it and the CPU path (\"cpu\")")
      ->capture_default_str()
      ->check(CLI::IsMember({"fp32", "bf16"}));
  cmd->add_flag("--quiet", args->quiet, "no progress bar");
  cmd->footer(
      "Example:\n  latent train --data fashion-mnist --config '{\"type\": \"mlp_vae\", \"hidden\": [400], \"latent\": 20}' "
      "--epochs 10 --out runs/fmnist\n"
      "  latent train --data molecules --config '{\"type\": \"smiles_vae\"}' --out runs/molecules\n"
      "  latent train --resume runs/fmnist/model.safetensors --epochs 20\n"
      "  latent train --objective iwae --k 50 --binarize --out runs/iwae50\n"
      "  latent train --nproc 2 --threads 1 --out runs/two-ranks\n"
      "  torchrun --no-python --nproc_per_node 2 latent train --resume auto --out runs/ddp   (MASTER_ADDR, MASTER_PORT, "
      "RANK, WORLD_SIZE and LOCAL_RANK as torchrun sets them; Slurm's srun works the same way)");
  cmd->callback([args, cmd]() {
    const std::string set = molecule_defaults(*args, *cmd);
    run_train(*args, cmd->count("--epochs") > 0, set);
  });
}

}  // namespace latent::cli
