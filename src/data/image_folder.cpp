// Image folders: every PNG/JPEG/BMP below FOLDER, in sorted path order. When FOLDER has
// sub-folders holding images, each sub-folder is a class (labels by sorted folder name).
#include <ATen/ATen.h>

#include <algorithm>
#include <filesystem>

#include "latent/data.h"
#include "latent/error.h"
#include "latent/image.h"

namespace latent {
namespace {

bool is_image(const std::filesystem::path& p) {
  std::string ext = p.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
  return ext == ".png" || ext == ".jpg" || ext == ".jpeg" || ext == ".bmp";
}

std::vector<std::filesystem::path> images_below(const std::filesystem::path& dir) {
  std::vector<std::filesystem::path> out;
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir))
    if (e.is_regular_file() && is_image(e.path())) out.push_back(e.path());
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

Dataset image_folder_load(const std::string& path, int channels, int height, int width) {
  namespace fs = std::filesystem;
  if (!fs::is_directory(path)) throw Error(path + ": not a folder");
  std::vector<fs::path> class_dirs;
  for (const auto& e : fs::directory_iterator(path))
    if (e.is_directory() && !images_below(e.path()).empty()) class_dirs.push_back(e.path());
  std::sort(class_dirs.begin(), class_dirs.end());

  std::vector<std::pair<fs::path, int64_t>> files;
  Dataset d;
  if (class_dirs.empty()) {
    for (const auto& f : images_below(path)) files.emplace_back(f, -1);
  } else {
    for (size_t c = 0; c < class_dirs.size(); ++c) {
      d.classes.push_back(class_dirs[c].filename().string());
      for (const auto& f : images_below(class_dirs[c])) files.emplace_back(f, static_cast<int64_t>(c));
    }
  }
  if (files.empty()) throw Error(path + ": no PNG, JPEG or BMP images in this folder");

  at::Tensor first = image_load(files[0].first.string(), channels, height, width);
  const int64_t C = first.size(0), H = first.size(1), W = first.size(2);
  d.x = at::empty({static_cast<int64_t>(files.size()), C, H, W}, at::kFloat);
  d.x[0].copy_(first);
  for (size_t i = 1; i < files.size(); ++i) {
    at::Tensor img = image_load(files[i].first.string(), static_cast<int>(C), height, width);
    if (img.size(1) != H || img.size(2) != W)
      throw Error(files[i].first.string() + ": image is " + std::to_string(img.size(2)) + "x" + std::to_string(img.size(1)) +
                  ", the first image is " + std::to_string(W) + "x" + std::to_string(H) + " (use --resize WxH)");
    d.x[static_cast<int64_t>(i)].copy_(img);
  }
  if (!class_dirs.empty()) {
    d.y = at::empty({static_cast<int64_t>(files.size())}, at::kLong);
    for (size_t i = 0; i < files.size(); ++i) d.y[static_cast<int64_t>(i)] = files[i].second;
  }
  return d;
}

}  // namespace latent
