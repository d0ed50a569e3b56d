#include "latent/checkpoint_data.h"

#include <ATen/ATen.h>

#include "latent/data.h"
#include "latent/error.h"
#include "models/registry.h"

namespace latent {

bool is_image_model(const LoadedCheckpoint& ck) { return is_image_shape(ck.info.data_shape); }

Dataset checkpoint_data(const LoadedCheckpoint& ck, const std::string& source_override, const std::string& split, int64_t limit) {
  if (split != "test" && split != "train" && split != "all")
    throw Error("the split must be test, train or all, got '" + split + "'");
  if (split == "all" && (source_override.empty() || source_override == "fashion-mnist"))
    throw Error("--split all takes every example of a file or folder given as the data; built-in data has test and train splits");
  DataSpec spec = ck.info.data;
  if (!source_override.empty()) {
    spec = DataSpec{};
    spec.source = source_override;
    spec.channels = static_cast<int>(ck.info.data_shape.size() == 3 ? ck.info.data_shape[0] : 0);
    if (ck.info.data_shape.size() == 3) {
      spec.height = static_cast<int>(ck.info.data_shape[1]);
      spec.width = static_cast<int>(ck.info.data_shape[2]);
    }
    spec.test_fraction = ck.info.data.test_fraction;
    spec.smiles_column = ck.info.data.smiles_column;
  }
  // Standardization uses the checkpoint's statistics, never the new data's.
  spec.standardize = false;
  Dataset d;
  if (split == "all") {  // every example, in file order
    d = load_source(spec.source, spec.labels, spec);
  } else {
    DataSplit data = load_data(spec, split == "test");
    d = split == "test" ? data.test : data.train;
  }
  if (d.size() == 0) throw Error("the " + split + " split of " + spec.source + " is empty");
  ModelConfig config = ck.info.model;
  prepare_model_data(config, d, /*fit=*/false);
  if (d.example_shape() != ck.info.data_shape)
    throw Error(spec.source + ": examples of shape " + std::to_string(d.example_shape().size()) +
                "-D do not match the model's data shape");
  if (limit > 0) d = d.head(limit);
  if (ck.info.data_mean.defined()) d.x = (d.x - ck.info.data_mean) / ck.info.data_std;
  if (ck.info.train.value("binarize", false)) d.x = binarize_fixed(d.x, kTestBinarizeSeed);
  return d;
}

at::Tensor to_data_space(const LoadedCheckpoint& ck, const at::Tensor& x) {
  return ck.info.data_mean.defined() ? x * ck.info.data_std + ck.info.data_mean : x;
}

}  // namespace latent
