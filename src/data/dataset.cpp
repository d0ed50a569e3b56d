#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>

#include "io/text.h"
#include "latent/data.h"
#include "latent/error.h"
#include "latent/npy.h"

namespace latent {
namespace {

constexpr uint64_t kSplitSeed = 0x5eed5eedull;  // the held-out split never depends on the training seed

bool is_idx_name(const std::string& path) {
  const std::string name = lowercase(std::filesystem::path(path).filename().string());
  return name.find("idx") != std::string::npos || name.find("ubyte") != std::string::npos;
}

// Raw arrays -> float32 examples: uint8 scaled to [0, 1]; [N, H, W] gains a channel axis.
at::Tensor to_examples(at::Tensor t, const std::string& origin) {
  if (t.dim() < 1 || t.size(0) == 0) throw Error(origin + ": holds no examples");
  if (t.scalar_type() == at::kByte)
    t = t.to(at::kFloat).div_(255.0f);
  else if (t.scalar_type() == at::kFloat || t.scalar_type() == at::kDouble)
    t = t.to(at::kFloat);
  else
    throw Error(origin + ": examples must be uint8 or float, got " + std::string(c10::toString(t.scalar_type())));
  if (t.dim() == 1) t = t.unsqueeze(1);
  if (t.dim() == 3) t = t.unsqueeze(1);
  if (t.dim() > 4) throw Error(origin + ": examples with " + std::to_string(t.dim() - 1) + " axes are not supported");
  if (!at::isfinite(t).all().item<bool>()) throw Error(origin + ": holds NaN or infinite values");
  return t.contiguous();
}

at::Tensor load_labels(const std::string& path, int64_t n) {
  at::Tensor y = ends_with(lowercase(path), ".npy") ? npy_load(path) : idx_load(path);
  if (y.dim() != 1) throw Error(path + ": labels must be a 1-D array, got " + std::to_string(y.dim()) + " axes");
  if (at::isFloatingType(y.scalar_type()) || y.scalar_type() == at::kBool) throw Error(path + ": labels must be integers");
  if (y.size(0) != n) throw Error(path + ": has " + std::to_string(y.size(0)) + " labels for " + std::to_string(n) + " examples");
  y = y.to(at::kLong);
  if (n > 0 && y.min().item<int64_t>() < 0) throw Error(path + ": labels must be non-negative");
  return y;
}

}  // namespace

std::vector<int64_t> Dataset::example_shape() const {
  auto s = x.sizes().vec();
  s.erase(s.begin());
  return s;
}

Dataset Dataset::select(const at::Tensor& indices) const {
  Dataset d;
  d.x = x.index_select(0, indices);
  if (y.defined()) d.y = y.index_select(0, indices);
  d.classes = classes;
  d.vocabulary = vocabulary;
  d.property_names = property_names;
  if (properties.defined()) d.properties = properties.index_select(0, indices);
  if (!smiles.empty()) {
    const at::Tensor idx = indices.to(at::kLong).contiguous();
    const int64_t* p = idx.data_ptr<int64_t>();
    for (int64_t i = 0; i < idx.numel(); ++i) d.smiles.push_back(smiles.at(static_cast<size_t>(p[i])));
  }
  return d;
}

Dataset Dataset::head(int64_t n) const {
  n = std::min(n, size());
  return select(at::arange(n, at::kLong));
}

std::string fashion_mnist_dir() {
  const char* env = std::getenv("LATENT_FASHION_MNIST_DIR");
  return env && *env ? env : "/usr/share/datasets/fashion-mnist";
}

const std::vector<std::string>& fashion_mnist_classes() {
  static const std::vector<std::string> names = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                                 "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};
  return names;
}

Dataset load_source(const std::string& source, const std::string& labels, const DataSpec& options) {
  namespace fs = std::filesystem;
  Dataset d;
  std::error_code ec;
  if (is_molecule_source(source, options.smiles_column)) {
    if (!labels.empty()) throw Error("labels files apply to IDX and NPY data, not to molecules");
    return molecule_load(source, options.smiles_column);
  }
  if (fs::is_directory(source, ec)) {
    if (!labels.empty()) throw Error("labels files apply to IDX and NPY data; an image folder takes labels from sub-folders");
    d = image_folder_load(source, options.channels, options.height, options.width);
    return d;
  }
  if (!fs::exists(source, ec))
    throw Error(source + ": no such file or folder (expected fashion-mnist, molecules, a folder, .npy, .csv, .smi or IDX data)");
  const std::string name = lowercase(source);
  if (ends_with(name, ".npy")) {
    d.x = to_examples(npy_load(source), source);
  } else if (ends_with(name, ".csv")) {
    d = csv_load(source);
  } else if (is_idx_name(source)) {
    d.x = to_examples(idx_load(source), source);
  } else {
    throw Error(
        source +
        ": cannot tell the format from the name (expected .npy, .csv, an IDX file such as *-idx3-ubyte[.gz], or a folder)");
  }
  if (!labels.empty()) d.y = load_labels(labels, d.size());
  return d;
}

DataSplit load_data(const DataSpec& spec, bool test_only) {
  if (spec.source.empty()) throw Error("no data source given");
  if (!(spec.test_fraction >= 0.0 && spec.test_fraction < 1.0)) throw Error("test fraction must be in [0, 1)");
  DataSplit split;
  const bool own_split = spec.source == "fashion-mnist" || spec.source == "molecules";
  const bool with_train = !test_only || spec.standardize || (!own_split && spec.test_source.empty());
  if (spec.source == "fashion-mnist") {
    const std::string dir = fashion_mnist_dir();
    const std::string probe = dir + "/train-images-idx3-ubyte.gz";
    if (!std::filesystem::exists(probe))
      throw Error("fashion-mnist: " + probe + " not found; install Debian's dataset-fashion-mnist (scripts/setup.sh does)");
    if (with_train) split.train = load_source(probe, dir + "/train-labels-idx1-ubyte.gz", spec);
    split.test = load_source(dir + "/t10k-images-idx3-ubyte.gz", dir + "/t10k-labels-idx1-ubyte.gz", spec);
    split.train.classes = split.test.classes = fashion_mnist_classes();
  } else if (spec.source == "molecules") {  // the pool's own fixed split (its valid part is not used here)
    if (with_train) split.train = molecule_load(spec.source, "", 0);
    split.test = molecule_load(spec.source, "", 2);
  } else if (!spec.test_source.empty()) {
    if (with_train) split.train = load_source(spec.source, spec.labels, spec);
    split.test = load_source(spec.test_source, spec.test_labels, spec);
  } else {
    Dataset all = load_source(spec.source, spec.labels, spec);
    const int64_t n = all.size();
    const int64_t n_test = static_cast<int64_t>(std::llround(spec.test_fraction * static_cast<double>(n)));
    if (n - n_test < 1) throw Error(spec.source + ": too few examples (" + std::to_string(n) + ") to hold out a test split");
    at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(kSplitSeed);
    at::Tensor perm = at::randperm(n, gen, at::TensorOptions().dtype(at::kLong));
    split.test = all.select(perm.narrow(0, 0, n_test));
    split.train = all.select(perm.narrow(0, n_test, n - n_test));
  }
  if (!split.test.smiles.empty() || !split.train.smiles.empty()) {
    if (spec.standardize) throw Error("--standardize applies to numeric data, not to molecules");
    share_vocabulary(split.train, split.test);
  }
  if (with_train && split.test.size() > 0 && split.test.example_shape() != split.train.example_shape())
    throw Error("the test data's example shape differs from the training data's");
  if (!spec.classes.empty()) {  // one-class (or few-class) training, e.g. for anomaly detection
    for (Dataset* d : {&split.train, &split.test}) {
      if (d->size() == 0) continue;
      if (!d->y.defined()) throw Error(spec.source + ": --classes needs labelled data");
      at::Tensor keep = at::zeros({d->size()}, at::kBool);
      for (int64_t c : spec.classes) keep |= d->y == c;
      *d = d->select(keep.nonzero().reshape({-1}));
    }
    if (with_train && split.train.size() == 0)
      throw Error(spec.source + ": no training examples of the classes given by --classes");
  }
  if (spec.standardize) {
    split.mean = split.train.x.mean(0);
    split.std = split.train.x.std(0, /*unbiased=*/false).clamp_min(1e-6);
    split.train.x = (split.train.x - split.mean) / split.std;
    if (split.test.size() > 0) split.test.x = (split.test.x - split.mean) / split.std;
  }
  return split;
}

nlohmann::json DataSpec::to_json() const {
  return {{"source", source},
          {"test_source", test_source},
          {"labels", labels},
          {"test_labels", test_labels},
          {"test_fraction", test_fraction},
          {"channels", channels},
          {"height", height},
          {"width", width},
          {"standardize", standardize},
          {"classes", classes},
          {"smiles_column", smiles_column}};
}

DataSpec DataSpec::from_json(const nlohmann::json& j) {
  DataSpec s;
  s.source = j.value("source", "");
  s.test_source = j.value("test_source", "");
  s.labels = j.value("labels", "");
  s.test_labels = j.value("test_labels", "");
  s.test_fraction = j.value("test_fraction", 0.1);
  s.channels = j.value("channels", 0);
  s.height = j.value("height", 0);
  s.width = j.value("width", 0);
  s.standardize = j.value("standardize", false);
  s.classes = j.value("classes", std::vector<int64_t>{});
  s.smiles_column = j.value("smiles_column", "");
  return s;
}

bool is_image_shape(const std::vector<int64_t>& s) { return s.size() == 3 && (s[0] == 1 || s[0] == 3); }

at::Tensor binarize_fixed(const at::Tensor& x, uint64_t seed) {
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  return at::bernoulli(x, gen);
}

}  // namespace latent
