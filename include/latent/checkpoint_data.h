/// @brief The data a checkpoint was trained on, as its model sees it.
///
/// Every program that starts from a checkpoint (eval, sample, the explorer) finds its examples here:
/// the same split, the same standardization statistics and the same fixed binarization as in training.
#pragma once

#include <ATen/Tensor.h>

#include <cstdint>
#include <string>

#include "latent/checkpoint.h"
#include "latent/data.h"

namespace latent {

/// The examples of a checkpoint's data: `split` "test" or "train", from the checkpoint's data
/// spec or `source_override` ("all": every example of `source_override`, a file or folder, in order); standardized with the
/// checkpoint's statistics and binarized as in training when the run was binarized. `limit` > 0 keeps the first `limit` examples.
Dataset checkpoint_data(const LoadedCheckpoint& ck, const std::string& source_override, const std::string& split, int64_t limit);

/// Model input/output space -> data space: undoes standardization. [N, D...]
at::Tensor to_data_space(const LoadedCheckpoint& ck, const at::Tensor& x);

/// True when the checkpoint's examples are images ([C, H, W] with C = 1 or 3).
bool is_image_model(const LoadedCheckpoint& ck);

}  // namespace latent
