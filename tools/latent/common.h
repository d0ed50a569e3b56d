// Helpers shared by the subcommands: loading a checkpoint's data, reading inputs, printing.
#pragma once

#include <CLI/CLI.hpp>
#include <string>
#include <vector>

#include "latent/checkpoint.h"
#include "latent/data.h"

namespace latent::cli {

void add_train(CLI::App& app);
void add_eval(CLI::App& app);
void add_generate(CLI::App& app);  // sample, reconstruct, interpolate, encode, decode

/// The examples of a checkpoint's data: `split` "test" or "train", from the checkpoint's data
/// spec or `source_override`; binarized as in training when the run was binarized.
Dataset checkpoint_data(const LoadedCheckpoint& ck, const std::string& source_override, const std::string& split, int64_t limit);

/// Inputs for a model: image files (resized to the model's size) or one .npy of examples;
/// standardized as the training data was. Returns [N, D...].
at::Tensor load_inputs(const LoadedCheckpoint& ck, const std::vector<std::string>& files);

/// One input: an index into the checkpoint's test split, or an image/npy file.
at::Tensor load_one_input(const LoadedCheckpoint& ck, const std::string& index_or_file, const std::string& source_override);

/// Model output -> data space: undoes standardization. [N, D...]
at::Tensor to_data_space(const LoadedCheckpoint& ck, const at::Tensor& x);

bool is_image_model(const LoadedCheckpoint& ck);

/// The process's exit status when a command succeeds in its own way (130 after Ctrl-C).
/// main returns it: commands never call exit(), so every destructor runs in order.
int& exit_status();

/// "--resize 64x64" -> (64, 64)
void parse_size(const std::string& text, int* height, int* width);

}  // namespace latent::cli
