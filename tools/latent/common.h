// Helpers shared by the subcommands: loading a checkpoint's data, reading inputs, printing.
#pragma once

#include <CLI/CLI.hpp>
#include <string>
#include <vector>

#include "latent/checkpoint.h"
#include "latent/checkpoint_data.h"
#include "latent/data.h"

namespace latent::cli {

void add_train(CLI::App& app);
void add_eval(CLI::App& app);
void add_generate(CLI::App& app);  // sample, reconstruct, interpolate, encode, decode
void add_serve(CLI::App& app);
void add_score(CLI::App& app);  // calibrate, score
void add_sd(CLI::App& app);     // sd encode, sd decode, sd roundtrip
void add_info(CLI::App& app);
void add_molecules(CLI::App& app);  // optimize

/// Trains the default model (mlp_vae 784-400-20, Bernoulli, Fashion-MNIST, 10 epochs) into `out`
/// with a progress bar; returns the checkpoint's path, or "" when Ctrl-C interrupted it.
std::string train_default_model(const std::string& out);

/// Inputs for a model: image files (resized to the model's size) or one .npy of examples;
/// standardized as the training data was. Returns [N, D...].
at::Tensor load_inputs(const LoadedCheckpoint& ck, const std::vector<std::string>& files);

/// One input: an index into the checkpoint's test split, or an image/npy file.
at::Tensor load_one_input(const LoadedCheckpoint& ck, const std::string& index_or_file, const std::string& source_override);

/// The process's exit status when a command succeeds in its own way (130 after Ctrl-C).
/// main returns it: commands never call exit(), so every destructor runs in order.
int& exit_status();

/// Option checks that refuse NaN and infinities and say the bound plainly (CLI11's own print
/// DBL_MAX as a 309-digit number): a finite number >= 0, and a finite number > 0.
const CLI::Validator& non_negative();
const CLI::Validator& positive();

/// Whether `s` ends with `suffix` (file names: ".npy", ".smi").
bool ends_with(const std::string& s, const std::string& suffix);

/// "--resize 64x64" -> (64, 64)
void parse_size(const std::string& text, int* height, int* width);

}  // namespace latent::cli
