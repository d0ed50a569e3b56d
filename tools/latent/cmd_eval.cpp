// latent eval: test ELBO, reconstruction, KL, active units and the IWAE NLL estimate.
#include <chrono>
#include <cstdio>

#include "common.h"
#include "latent/cpu.h"
#include "latent/eval.h"
#include "latent/molecule_eval.h"
#include "latent/smiles_vae.h"
#include "latent/train.h"
#include "launch.h"

namespace latent::cli {
namespace {

struct EvalArgs {
  std::string checkpoint, data, split = "test";
  int64_t limit = 0, iwae_k = 5000, batch_size = 500, samples = 10000;
  uint64_t seed = 1;
  std::string precision = "auto";
  int threads = 0, nproc = 0;
  bool json = false;
};

// One line per metric the model gave, in this order where present (the JSON has them all).
void print_metrics(const nlohmann::json& j, const ModelImpl& model) {
  auto number = [&](const char* key, const char* label, const char* unit) {
    if (j.contains(key)) std::printf("  %-13s %10.3f%s\n", label, j[key].get<double>(), unit);
  };
  number("elbo", "ELBO", " nats");
  number("recon", "recon", " nats");
  number("kl", "KL", " nats");
  if (j.contains("iwae_nll"))
    std::printf("  NLL (IWAE k=%lld) %7.3f nats (%s products)\n", j["iwae_k"].get<long long>(), j["iwae_nll"].get<double>(),
                j["iwae_precision"].get<std::string>().c_str());
  number("commitment", "commitment", "");
  if (j.contains("usage"))
    std::printf("  codebook use  %9.1f%% of %lld codes\n", 100 * j["usage"].get<double>(),
                static_cast<long long>(model.config().codebook));
  if (j.contains("perplexity")) std::printf("  perplexity    %10.1f\n", j["perplexity"].get<double>());
  if (j.contains("active_units")) {
    std::printf("  active units  %10lld of %zu\n", j["active_units"].get<long long>(), j["kl_per_dim"].size());
    std::printf("  KL per dim   ");
    for (double k : j["kl_per_dim"]) std::printf(" %.2f", k);
    std::printf("\n");
  }
  if (j.contains("token_accuracy")) number("token_accuracy", "token accuracy", "");
  if (j.contains("reconstruction")) {
    const auto& r = j["reconstruction"];
    std::printf("  reconstructed %10.3f greedy, %.3f from z ~ q(z|x) (%lld molecules)\n", r["greedy"].get<double>(),
                r["sampled"].get<double>(), r["molecules"].get<long long>());
  }
  for (const char* which : {"prior", "prior_constrained"}) {
    if (!j.contains(which)) continue;
    const auto& p = j[which];
    std::printf("  %s samples %lld%s\n", which == std::string("prior") ? "prior" : "prior, constrained decoding,",
                p["samples"].get<long long>(), which == std::string("prior") ? "" : " (the same z)");
    for (const char* key : {"validity", "uniqueness", "novelty", "internal_diversity", "nn_similarity", "filters"})
      if (p.contains(key)) std::printf("    %-19s %7.3f\n", key, p[key].get<double>());
    if (p.contains("properties"))
      for (auto it = p["properties"].begin(); it != p["properties"].end(); ++it)
        std::printf("    %-5s samples %8.3f +- %-7.3f test %8.3f +- %-7.3f W1 %.3f\n", it.key().c_str(),
                    it.value()["samples"]["mean"].get<double>(), it.value()["samples"]["std"].get<double>(),
                    it.value()["test"]["mean"].get<double>(), it.value()["test"]["std"].get<double>(),
                    it.value()["wasserstein"].get<double>());
  }
  number("seconds", "time", " s");
}

// A molecule model: its held-out ELBO terms and token accuracy, reconstruction of the split, and
// MOSES's metrics of `samples` molecules from the prior.
nlohmann::json molecule_eval(LoadedCheckpoint& ck, const Dataset& d, const EvalArgs& a) {
  SmilesVaeImpl& model = require_smiles_vae(*ck.model, "molecule evaluation");
  nlohmann::json j = model.evaluate(d, a.seed, a.batch_size);
  j["reconstruction"] = reconstruction_metrics(model, d, 0, a.seed);
  if (a.samples > 0) {
    const Dataset train = checkpoint_data(ck, a.data, "train", 0);
    j["prior"] = generation_metrics(sample_molecules(model, a.samples, a.seed), train.smiles, d.smiles);
    j["prior_constrained"] =
        generation_metrics(sample_molecules(model, a.samples, a.seed, 1.0, 0.0, /*constrained=*/true), train.smiles, d.smiles);
  }
  return j;
}

void run_eval(const EvalArgs& a) {
  if (a.nproc > 0) return run_as_workers(a.nproc);
  LoadedCheckpoint ck = checkpoint_load(a.checkpoint);
  Dataset d = checkpoint_data(ck, a.data, a.split, a.limit);
  // Under a launcher the ranks split the IWAE estimate's images; rank 0 reports.
  const std::unique_ptr<Communicator> comm = join_job_if_launched(
      {{"command", "eval"},
       {"model", ck.model->config().to_json()},
       {"examples", d.size()},
       {"options", {{"iwae_k", a.iwae_k}, {"seed", a.seed}, {"batch_size", a.batch_size}, {"precision", a.precision}}}},
      a.threads);
  if (comm && !ck.model->gaussian_latent()) {  // nothing to split: rank 0 evaluates
    comm->close();
    if (comm->rank() != 0) return;
  }
  nlohmann::json j;
  if (VaeImpl* vae = ck.model->gaussian_latent()) {  // the ELBO's terms and the IWAE estimate
    EvalOptions o;
    o.comm = comm.get();
    o.batch_size = a.batch_size;
    o.seed = a.seed;
    o.iwae_k = a.iwae_k;
    o.iwae_precision = a.precision == "auto" ? float32_accurate_precision() : parse_precision(a.precision);
    o.progress = !a.json;
    j = evaluate(*vae, d, o).to_json();
    if (comm) {
      j["world_size"] = comm->world();
      comm->close();
      if (comm->rank() != 0) return;
    }
  } else {  // the family's own metrics (a vq_vae: reconstruction, commitment and code statistics)
    const auto t0 = std::chrono::steady_clock::now();
    j = ck.model->config().type == "smiles_vae" ? molecule_eval(ck, d, a) : ck.model->evaluate(d, a.seed, a.batch_size);
    j["cpu"] = cpu_info();
    j["seconds"] = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }
  if (a.json) {
    j["checkpoint"] = a.checkpoint;
    j["split"] = a.split;
    std::printf("%s\n", j.dump(2).c_str());
    return;
  }
  std::printf("%s, %s split, %lld examples (%s)\n", a.checkpoint.c_str(), a.split.c_str(), j["examples"].get<long long>(),
              ck.model->config().type.c_str());
  print_metrics(j, *ck.model);
}

}  // namespace

void add_eval(CLI::App& app) {
  auto a = std::make_shared<EvalArgs>();
  CLI::App* cmd = app.add_subcommand("eval", "Evaluate a checkpoint: ELBO, recon, KL, active units, IWAE NLL");
  cmd->add_option("checkpoint", a->checkpoint, "checkpoint written by latent train")->required()->check(CLI::ExistingFile);
  cmd->add_option("--data", a->data, "evaluate on other data (default: the checkpoint's)");
  cmd->add_option("--split", a->split, "test or train")->capture_default_str();
  cmd->add_option("--limit", a->limit, "first N examples only")->check(non_negative());
  cmd->add_option("--iwae-k", a->iwae_k, "importance samples for the NLL estimate (0: skip)")
      ->capture_default_str()
      ->check(non_negative());
  cmd->add_option(
         "--precision", a->precision,
         "the IWAE estimate's decoder products (mlp_vae with ReLU and Bernoulli): fp32; bf16x3, three bfloat16 "
         "products per float32 one (~17 of float32's 24 bits; the estimate moved by 2e-7 nats on Fashion-MNIST); bf16; auto: "
         "bf16x3 on CPUs with AMX, else fp32. bf16 and bf16x3 need AVX512-BF16 or AMX. The JSON output names the precision "
         "(\"iwae_precision\") and the CPU path (\"cpu\": kernels, oneDNN's ISA, bf16, amx, cap)")
      ->capture_default_str()
      ->check(CLI::IsMember({"auto", "fp32", "bf16x3", "bf16"}));
  cmd->add_option("--batch-size", a->batch_size, "examples per batch")->capture_default_str()->check(positive());
  cmd->add_option("--samples", a->samples, "molecule models: prior samples for validity, uniqueness, novelty, ... (0: skip)")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{0}, int64_t{1000000}));
  cmd->add_option("--seed", a->seed, "noise seed")->capture_default_str();
  cmd->add_option("--threads", a->threads, "CPU threads (0: every core)")->check(non_negative());
  cmd->add_flag("--json", a->json, "print JSON");
  cmd->add_option("--nproc", a->nproc,
                  "N local workers split the IWAE estimate's images (the same numbers as one process); torchrun and srun "
                  "start latent eval the same way")
      ->check(CLI::Range(1, 256));
  cmd->footer(
      "Example:\n  latent eval runs/fmnist/model.safetensors --iwae-k 5000 --limit 1000 --json\n"
      "  latent eval runs/molecules/model.safetensors --samples 10000 --json\n"
      "  LATENT_MAX_CPU_ISA=avx2 latent eval runs/fmnist/model.safetensors   (as on a CPU without AVX-512)");
  cmd->callback([a]() { run_eval(*a); });
}

}  // namespace latent::cli
