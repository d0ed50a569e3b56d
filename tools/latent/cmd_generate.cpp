// latent sample | reconstruct | interpolate | encode | decode: use a trained model.
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <unordered_set>

#include "common.h"
#include "latent/atomic_file.h"
#include "latent/chem.h"
#include "latent/error.h"
#include "latent/image.h"
#include "latent/interpolate.h"
#include "latent/molecule_eval.h"
#include "latent/npy.h"
#include "latent/smiles_vae.h"

namespace latent::cli {
namespace {

struct Args {
  std::string checkpoint, out, npy, data, split = "test", from, to, method = "linear", z_file;
  std::vector<std::string> inputs;
  int64_t n = 64, columns = 8, steps = 10, start = 0, limit = 0;
  double temperature = 1.0, token_temperature = 0.0;
  bool constrained = false;
  uint64_t seed = 0;
};

LoadedCheckpoint load(const Args& a) {
  LoadedCheckpoint ck = checkpoint_load(a.checkpoint);
  ck.model->eval();
  return ck;
}

at::Tensor decode_mean(VaeImpl& vae, const at::Tensor& z) {
  return vae.likelihood_mean(vae.decode(z));  // [N, D...]
}

// Writes decoded examples: a PNG grid for image models, and/or NPY in data space.
void write_outputs(LoadedCheckpoint& ck, const at::Tensor& x, const std::string& png, const std::string& npy, int64_t columns) {
  if (!png.empty()) {
    if (!is_image_model(ck)) throw Error("this model's examples are not images; write them with --npy instead of -o");
    png_save_grid(png, x, columns);
    std::printf("wrote %s\n", png.c_str());
  }
  if (!npy.empty()) {
    npy_save(npy, to_data_space(ck, x));
    std::printf("wrote %s\n", npy.c_str());
  }
}

void add_common(CLI::App* cmd, Args& a) {
  cmd->add_option("checkpoint", a.checkpoint, "checkpoint written by latent train")->required()->check(CLI::ExistingFile);
}

// A molecule model's samples: SMILES per line (.smi), and how many RDKit reads and how many differ.
void sample_smiles(ModelImpl& model, const Args& a) {
  SmilesVaeImpl& m = require_smiles_vae(model, "sampling molecules");
  if (!a.npy.empty()) throw Error("a molecule model's samples are SMILES: write them with -o FILE.smi");
  if (a.out.empty() || !(ends_with(a.out, ".smi") || ends_with(a.out, ".txt")))
    throw Error("a molecule model's samples are SMILES: give -o FILE.smi");
  const auto t0 = std::chrono::steady_clock::now();
  const std::vector<std::string> smiles = sample_molecules(m, a.n, a.seed, a.temperature, a.token_temperature, a.constrained);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::string text;
  for (const auto& s : smiles) text += s + "\n";
  atomic_write(a.out, text);
  int64_t valid = 0;
  std::unordered_set<std::string> distinct;
  for (const auto& s : smiles)
    if (const auto c = s.empty() ? std::nullopt : canonical_smiles(s)) ++valid, distinct.insert(*c);
  std::printf("wrote %s: %zu SMILES decoded in %.2f s, %lld valid (%.1f%%), %zu distinct valid molecules\n", a.out.c_str(),
              smiles.size(), seconds, static_cast<long long>(valid),
              100.0 * static_cast<double>(valid) / static_cast<double>(smiles.size()), distinct.size());
}

void run_sample(Args& a) {
  LoadedCheckpoint ck = load(a);
  if (ck.model->config().type == "smiles_vae") return sample_smiles(*ck.model, a);
  at::NoGradGuard ng;
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(a.seed);
  write_outputs(ck, ck.model->sample(a.n, gen, a.temperature), a.out, a.npy, a.columns);
}

void run_reconstruct(Args& a) {
  LoadedCheckpoint ck = load(a);
  at::NoGradGuard ng;
  at::Tensor x;
  if (!a.inputs.empty()) {
    x = load_inputs(ck, a.inputs);
  } else {
    Dataset d = checkpoint_data(ck, a.data, a.split, a.start + a.n);
    if (a.start >= d.size()) throw Error("--start " + std::to_string(a.start) + " is past the end of the " + a.split + " split");
    x = d.x.narrow(0, a.start, std::min(a.n, d.size() - a.start));
  }
  at::Tensor recon = ck.model->reconstruct(x);  // [N, D...]
  if (!a.out.empty() && !is_image_model(ck)) throw Error("this model's examples are not images; use --npy");
  if (!a.out.empty()) {
    png_save_grid(a.out, interleave_rows(x, recon, a.columns), a.columns);
    std::printf("wrote %s (inputs above their reconstructions)\n", a.out.c_str());
  }
  if (!a.npy.empty()) write_outputs(ck, recon, "", a.npy, a.columns);
}

// A molecule model's walk: the SMILES decoded along the path, printed, and drawn (PNG) or listed (.smi).
void interpolate_smiles(LoadedCheckpoint& ck, const Args& a) {
  SmilesVaeImpl& m = require_smiles_vae(*ck.model, "interpolating molecules");
  auto molecule = [&](const std::string& text) -> std::string {
    if (std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; }) && !text.empty()) {
      const Dataset d = checkpoint_data(ck, a.data, a.split, 0);
      const size_t i = std::stoul(text);
      if (i >= d.smiles.size())
        throw Error("index " + text + " is past the " + a.split + " split's " + std::to_string(d.smiles.size()) + " molecules");
      return d.smiles[i];
    }
    const std::optional<std::string> c = canonical_smiles(text);
    if (!c) throw Error("'" + text + "' is not a molecule RDKit can read");
    return *c;
  };
  const std::string from = molecule(a.from), to = molecule(a.to);
  at::NoGradGuard ng;
  m.eval();
  const at::Tensor z0 = m.encode(m.tokens_of({from})).mu[0], z1 = m.encode(m.tokens_of({to})).mu[0];
  const std::vector<std::string> walk = m.decode_smiles(interpolate_latents(z0, z1, a.steps, a.method));
  std::vector<std::string> legends;
  std::string text;
  for (size_t i = 0; i < walk.size(); ++i) {
    const bool valid = !walk[i].empty() && canonical_smiles(walk[i]).has_value();
    legends.push_back(std::to_string(i) + (valid ? "" : ": invalid"));
    std::printf("%2zu  %-7s %s\n", i, valid ? "valid" : "invalid", walk[i].c_str());
    text += walk[i] + "\n";
  }
  if (ends_with(a.out, ".smi")) {
    atomic_write(a.out, text);
  } else if (!a.out.empty()) {
    atomic_write(a.out, molecule_grid_png(walk, legends, static_cast<int>(std::min<int64_t>(a.steps, 5))));
  }
  if (!a.out.empty()) std::printf("wrote %s (from %s to %s)\n", a.out.c_str(), from.c_str(), to.c_str());
}

void run_interpolate(Args& a) {
  LoadedCheckpoint ck = load(a);
  if (ck.model->config().type == "smiles_vae") return interpolate_smiles(ck, a);
  if (a.out.empty() && a.npy.empty()) throw Error("give -o FILE.png and/or --npy FILE.npy");
  VaeImpl& vae = ck.vae("latent interpolate");
  at::NoGradGuard ng;
  at::Tensor x0 = load_one_input(ck, a.from, a.data), x1 = load_one_input(ck, a.to, a.data);
  at::Tensor z0 = vae.encode(x0).mu[0], z1 = vae.encode(x1).mu[0];   // [d]
  at::Tensor path = interpolate_latents(z0, z1, a.steps, a.method);  // [steps, d]
  write_outputs(ck, decode_mean(vae, path), a.out, a.npy, a.steps);
}

void run_encode(Args& a) {
  LoadedCheckpoint ck = load(a);
  VaeImpl& vae = ck.vae("latent encode");
  at::NoGradGuard ng;
  at::Tensor x = a.inputs.empty() ? checkpoint_data(ck, a.data, a.split, a.limit).x : load_inputs(ck, a.inputs);
  std::vector<at::Tensor> mus, logvars;
  for (int64_t i = 0; i < x.size(0); i += 1000) {
    Posterior q = vae.encode(x.narrow(0, i, std::min<int64_t>(1000, x.size(0) - i)));
    mus.push_back(q.mu);
    logvars.push_back(q.logvar);
  }
  at::Tensor codes = at::stack({at::cat(mus), at::cat(logvars)}, 1);  // [N, 2, d]
  npy_save(a.out, codes);
  std::printf("wrote %s: [%lld, 2, %lld] (codes[:, 0] = mu, codes[:, 1] = logvar)\n", a.out.c_str(),
              static_cast<long long>(codes.size(0)), static_cast<long long>(codes.size(2)));
}

void run_decode(Args& a) {
  LoadedCheckpoint ck = load(a);
  VaeImpl& vae = ck.vae("latent decode");
  at::NoGradGuard ng;
  at::Tensor z = npy_load(a.z_file).to(at::kFloat);
  const int64_t d = vae.latent_dim();
  if (z.dim() == 1) z = z.unsqueeze(0);
  if (z.dim() == 3 && z.size(1) == 2) z = z.select(1, 0);  // the output of latent encode: take mu
  if (z.dim() != 2 || z.size(1) != d)
    throw Error(a.z_file + ": expected codes of shape [N, " + std::to_string(d) + "] (or encode's [N, 2, " + std::to_string(d) +
                "])");
  if (z.size(0) == 0) throw Error(a.z_file + ": holds no codes");
  if (!at::isfinite(z).all().item<bool>()) throw Error(a.z_file + ": holds NaN or infinite values");
  write_outputs(ck, decode_mean(vae, z), a.out, a.npy, a.columns);
}

}  // namespace

void add_generate(CLI::App& app) {
  auto a = std::make_shared<Args>();
  CLI::App* s = app.add_subcommand("sample", "Decode z ~ N(0, I) into new examples (PNG grid and/or NPY)");
  add_common(s, *a);
  s->add_option("-n", a->n, "how many")->capture_default_str()->check(CLI::Range(1, 100000));
  s->add_option("-o,--out", a->out, "PNG grid");
  s->add_option("--npy", a->npy, "NPY of the decoded means (data space)");
  s->add_option("--seed", a->seed, "seed")->capture_default_str();
  s->add_option("--temperature", a->temperature, "scale of z (1: the prior)")->capture_default_str()->check(non_negative());
  s->add_option("--columns", a->columns, "grid columns")->capture_default_str()->check(CLI::Range(1, 1000));
  s->add_option("--token-temperature", a->token_temperature,
                "molecule models: 0 writes the most likely token at each step; above 0 draws tokens at that temperature")
      ->capture_default_str()
      ->check(non_negative());
  s->add_flag("--constrained", a->constrained,
              "molecule models: decode only tokens that keep the SMILES whole and every valence legal");
  s->footer(
      "Example:\n  latent sample runs/fmnist/model.safetensors -n 64 -o samples.png --npy samples.npy\n"
      "  latent sample runs/molecules/model.safetensors -n 10000 -o samples.smi [--constrained]");
  s->callback([a]() {
    if (a->out.empty() && a->npy.empty()) throw Error("give -o FILE.png (FILE.smi for molecules) and/or --npy FILE.npy");
    run_sample(*a);
  });

  CLI::App* r = app.add_subcommand("reconstruct", "Show inputs beside their reconstructions (PNG)");
  add_common(r, *a);
  r->add_option("inputs", a->inputs, "image or .npy files (default: examples of the checkpoint's data)");
  r->add_option("-n", a->n, "how many dataset examples")->capture_default_str()->check(CLI::Range(1, 10000));
  r->add_option("--start", a->start, "first dataset index")->capture_default_str()->check(non_negative());
  r->add_option("--data", a->data, "other data (default: the checkpoint's)");
  r->add_option("--split", a->split, "test or train")->capture_default_str();
  r->add_option("-o,--out", a->out, "PNG");
  r->add_option("--npy", a->npy, "NPY of the reconstructions");
  r->add_option("--columns", a->columns, "columns")->capture_default_str()->check(CLI::Range(1, 1000));
  r->footer("Example:\n  latent reconstruct runs/fmnist/model.safetensors -n 16 -o recon.png");
  r->callback([a]() {
    if (a->out.empty() && a->npy.empty()) throw Error("give -o FILE.png and/or --npy FILE.npy");
    run_reconstruct(*a);
  });

  CLI::App* i = app.add_subcommand("interpolate", "Decode the latent path between two inputs (PNG strip)");
  add_common(i, *a);
  i->add_option("--from", a->from, "test-set index or image/.npy file (a SMILES for molecule models)")->required();
  i->add_option("--to", a->to, "test-set index or image/.npy file (a SMILES for molecule models)")->required();
  i->add_option("--steps", a->steps, "images in the strip, endpoints included")
      ->capture_default_str()
      ->check(CLI::Range(2, 1000));
  i->add_option("--method", a->method, "linear or slerp")->capture_default_str()->check(CLI::IsMember({"linear", "slerp"}));
  i->add_option("--data", a->data, "data for indices (default: the checkpoint's)");
  i->add_option("-o,--out", a->out, "PNG strip (molecules: PNG of the structures, or .smi)");
  i->add_option("--npy", a->npy, "NPY of the decoded path");
  i->footer(
      "Example:\n  latent interpolate runs/fmnist/model.safetensors --from 0 --to 1 --steps 10 --method slerp -o strip.png\n"
      "  latent interpolate runs/molecules/model.safetensors --from 'CCOc1ccccc1' --to 'c1ccc2ccccc2c1' --steps 10 -o "
      "walk.png");
  i->callback([a]() { run_interpolate(*a); });

  CLI::App* e = app.add_subcommand("encode", "Encode inputs to q(z|x): NPY [N, 2, d] of mu and logvar");
  add_common(e, *a);
  e->add_option("inputs", a->inputs, "image or .npy files (default: the checkpoint's data split)");
  e->add_option("--data", a->data, "other data (default: the checkpoint's)");
  e->add_option("--split", a->split, "test or train")->capture_default_str();
  e->add_option("--limit", a->limit, "first N examples")->check(non_negative());
  e->add_option("-o,--out", a->out, "output .npy")->required();
  e->footer(
      "Example:\n  latent encode runs/fmnist/model.safetensors --limit 1000 -o codes.npy\n  latent encode "
      "runs/fmnist/model.safetensors shirt.png -o shirt.npy");
  e->callback([a]() { run_encode(*a); });

  CLI::App* d = app.add_subcommand("decode", "Decode codes from an NPY [N, d] into examples (PNG grid and/or NPY)");
  add_common(d, *a);
  d->add_option("codes", a->z_file, "NPY of codes [N, d] (or encode's [N, 2, d]: mu is used)")
      ->required()
      ->check(CLI::ExistingFile);
  d->add_option("-o,--out", a->out, "PNG grid");
  d->add_option("--npy", a->npy, "NPY of the decoded means");
  d->add_option("--columns", a->columns, "grid columns")->capture_default_str()->check(CLI::Range(1, 1000));
  d->footer("Example:\n  latent decode runs/fmnist/model.safetensors codes.npy -o decoded.png");
  d->callback([a]() {
    if (a->out.empty() && a->npy.empty()) throw Error("give -o FILE.png and/or --npy FILE.npy");
    run_decode(*a);
  });
}

}  // namespace latent::cli
