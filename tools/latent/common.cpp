#include "common.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <cmath>
#include <filesystem>
#include <regex>
#include <thread>

#include "latent/checkpoint_data.h"
#include "latent/error.h"
#include "latent/image.h"
#include "latent/json.h"
#include "latent/npy.h"

namespace latent::cli {

at::Tensor load_inputs(const LoadedCheckpoint& ck, const std::vector<std::string>& files) {
  if (files.empty()) throw Error("no inputs given");
  std::vector<at::Tensor> xs;
  const auto& shape = ck.info.data_shape;
  for (const auto& f : files) {
    const std::string ext = std::filesystem::path(f).extension().string();
    if (ext == ".npy") {
      at::Tensor t = npy_load(f);
      if (t.scalar_type() == at::kByte) t = t.to(at::kFloat).div_(255);
      t = t.to(at::kFloat);
      std::vector<int64_t> want{-1};
      want.insert(want.end(), shape.begin(), shape.end());
      int64_t per = 1;
      for (int64_t s : shape) per *= s;
      if (t.dim() < 1 || t.numel() % per != 0 || t.numel() == 0)
        throw Error(f + ": an array of " + std::to_string(t.numel()) + " values does not hold whole examples of " +
                    std::to_string(per) + " values");
      t = t.reshape(want);
      if (ck.info.data_mean.defined()) t = (t - ck.info.data_mean) / ck.info.data_std;
      xs.push_back(t);
    } else {
      if (!is_image_model(ck))
        throw Error(f + ": image inputs need a model trained on images; this model takes " + std::to_string(shape.size()) +
                    "-D examples");
      xs.push_back(
          image_load(f, static_cast<int>(shape[0]), static_cast<int>(shape[1]), static_cast<int>(shape[2])).unsqueeze(0));
    }
  }
  return at::cat(xs);
}

at::Tensor load_one_input(const LoadedCheckpoint& ck, const std::string& index_or_file, const std::string& source_override) {
  if (std::regex_match(index_or_file, std::regex("[0-9]{1,12}"))) {
    Dataset d = checkpoint_data(ck, source_override, "test", 0);
    const int64_t i = std::stoll(index_or_file);
    if (i >= d.size())
      throw Error("index " + index_or_file + " is out of range: the test split has " + std::to_string(d.size()) + " examples");
    return d.x.narrow(0, i, 1);
  }
  at::Tensor x = load_inputs(ck, {index_or_file});
  if (x.size(0) != 1) throw Error(index_or_file + ": holds " + std::to_string(x.size(0)) + " examples, expected one");
  return x;
}

int& exit_status() {
  static int status = 0;
  return status;
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

void parse_size(const std::string& text, int* height, int* width) {
  std::smatch m;
  if (!std::regex_match(text, m, std::regex("([0-9]{1,5})x([0-9]{1,5})")) || std::stoi(m[1]) < 1 || std::stoi(m[2]) < 1)
    throw Error("--resize takes WxH, e.g. 64x64; got '" + text + "'");
  *width = std::stoi(m[1]);
  *height = std::stoi(m[2]);
}

namespace {

CLI::Validator number_check(bool strict) {
  return CLI::Validator(
      [strict](std::string& text) -> std::string {
        double v = 0;
        size_t used = 0;
        try {
          v = std::stod(text, &used);
        } catch (const std::exception&) {
          used = 0;
        }
        if (used != text.size() || !std::isfinite(v) || v < 0 || (strict && v == 0))
          return std::string("must be a ") + (strict ? "positive" : "non-negative") + " finite number, got '" +
                 text_excerpt(text, 40) + "'";
        return "";
      },
      strict ? "> 0" : ">= 0");
}

}  // namespace

const CLI::Validator& non_negative() {
  static const CLI::Validator v = number_check(false);
  return v;
}

const CLI::Validator& positive() {
  static const CLI::Validator v = number_check(true);
  return v;
}

}  // namespace latent::cli
