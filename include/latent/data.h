/// @brief Datasets: the tensors a VAE trains on, and the loaders for every supported source.
///
/// A Dataset holds float32 x [N, D...] (images in [0, 1] as [N, C, H, W]; tables as [N, F]) and
/// optional int64 labels y [N]. Sources (DataSpec::source):
///   fashion-mnist       the Debian package's IDX files (train/test split as published)
///   FILE.idx[.gz]       IDX images or tables (uint8 is scaled to [0, 1]); labels from DataSpec::labels
///   FOLDER/             PNG/JPEG/BMP images; labels from sub-folder names when there are sub-folders
///   FILE.npy            uint8 (scaled to [0, 1]) or float arrays [N, ...]
///   FILE.csv            numeric table, header row optional; with a SMILES column, molecules (below)
///   molecules           the built-in pool of drug-like molecules (include/latent/chem.h), fixed split
///   FILE.smi            molecules, a SMILES per line
/// Molecule data (needs RDKit) keeps each example's canonical SMILES in `smiles` and numeric CSV
/// columns (the pool: logp, mw, tpsa, qed, sa) in `properties`; x holds the SMILES's token ids
/// (include/latent/smiles_tokens.h) under `vocabulary`, as float32 [N, T], rows padded with 0. A
/// model re-encodes them with its own vocabulary (prepare_data in models/registry.h).
/// Every loader checks sizes and contents and throws latent::Error naming the file and the fault.
#pragma once

#include <ATen/Tensor.h>

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace latent {

struct Dataset {
  at::Tensor x;                      // float32 [N, D...]
  at::Tensor y;                      // int64 [N], or undefined when unlabeled
  std::vector<std::string> classes;  // class names by label, may be empty
  // Molecule data only (empty otherwise):
  std::vector<std::string> smiles;          // [N] canonical SMILES
  std::vector<std::string> vocabulary;      // the token of each id in x
  std::vector<std::string> property_names;  // the columns of `properties`
  at::Tensor properties;                    // float64 [N, P], or undefined

  int64_t size() const { return x.defined() ? x.size(0) : 0; }
  /// The shape of one example, [D...].
  std::vector<int64_t> example_shape() const;
  /// The examples at `indices` (int64 [M]).
  Dataset select(const at::Tensor& indices) const;
  Dataset head(int64_t n) const;
};

struct DataSpec {
  std::string source;            // see above
  std::string test_source;       // an explicit test file or folder (optional)
  std::string labels;            // labels file for IDX/NPY sources (optional)
  std::string test_labels;       // labels for test_source (optional)
  double test_fraction = 0.1;    // held out from `source` when it has no test split of its own
  int channels = 0;              // image folders: 1 grayscale, 3 RGB, 0 as stored
  int height = 0, width = 0;     // image folders: resize to this size (0: keep)
  bool standardize = false;      // per-feature z-score with the training split's mean and std
  std::vector<int64_t> classes;  // keep only examples of these labels, in both splits (empty: all)
  std::string smiles_column;     // CSV molecules: the SMILES column (empty: the one named "smiles")

  nlohmann::json to_json() const;
  static DataSpec from_json(const nlohmann::json& j);
};

struct DataSplit {
  Dataset train, test;
  at::Tensor mean, std;  // standardization statistics [D...] (undefined unless spec.standardize)
};

/// Loads `spec` and splits it. The held-out split is a fixed permutation, so the same spec
/// always gives the same split (eval finds the test set of a training run from its checkpoint).
/// `test_only`: the train split stays empty where the test split has files of its own (fashion-mnist,
/// test_source) and nothing needs the training data (no standardization), so eval and the explorer
/// skip reading it.
DataSplit load_data(const DataSpec& spec, bool test_only = false);

/// Loads one source (no split).
Dataset load_source(const std::string& source, const std::string& labels, const DataSpec& options);

// The individual loaders.
at::Tensor idx_load(const std::string& path);  // raw IDX tensor in its stored dtype
/// The bytes, decompressed when they are a gzip stream.
std::string gunzip_if_needed(const std::string& bytes, const std::string& origin);
Dataset csv_load(const std::string& path);
Dataset image_folder_load(const std::string& path, int channels, int height, int width);
/// Molecules (see above) from a .smi/.csv file, or the built-in pool's split `pool_split` (0 train,
/// 2 test) for source "molecules"; throws latent::Error naming the file.
Dataset molecule_load(const std::string& source, const std::string& smiles_column, int pool_split = 0);
/// Whether `source` is molecule data: "molecules", a .smi/.smiles file, or a CSV file with a
/// SMILES column (`smiles_column`, or a header field named "smiles").
bool is_molecule_source(const std::string& source, const std::string& smiles_column);
/// x of molecule data `d` rewritten with `vocabulary`, rows of `width` tokens (kBos ... kEos, then
/// kPad); tokens it lacks become kUnk. Throws latent::Error naming the first molecule that needs
/// more than `width`.
void encode_molecules(Dataset& d, const std::vector<std::string>& vocabulary, int64_t width);
/// Encodes two molecule splits with one vocabulary (every token of either) and one width.
void share_vocabulary(Dataset& a, Dataset& b);

/// Where the named dataset "fashion-mnist" lives (LATENT_FASHION_MNIST_DIR overrides).
std::string fashion_mnist_dir();
const std::vector<std::string>& fashion_mnist_classes();

/// True for an image example shape ([C, H, W] with C = 1 or 3).
bool is_image_shape(const std::vector<int64_t>& shape);

/// The seed of the fixed binarization of held-out data for dynamically binarized models.
constexpr uint64_t kTestBinarizeSeed = 0xb1aa7ull;

/// Binarizes x once with a fixed seed (the test set of a dynamically binarized run).
at::Tensor binarize_fixed(const at::Tensor& x, uint64_t seed);

}  // namespace latent
