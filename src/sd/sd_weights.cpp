#include "sd/sd_weights.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <array>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "latent/atomic_file.h"
#include "latent/error.h"
#include "latent/json.h"
#include "latent/safetensors.h"

namespace latent {

namespace {

using json = nlohmann::json;
using Shape = std::vector<int64_t>;

bool starts_with(const std::string& s, const std::string& p) { return s.compare(0, p.size(), p) == 0; }

bool replace_first(std::string& s, const std::string& from, const std::string& to) {
  const size_t at = s.find(from);
  if (at == std::string::npos) return false;
  s.replace(at, from.size(), to);
  return true;
}

// "<head><index>.<rest>" -> index and rest; false when `name` does not start that way.
bool split_index(const std::string& name, const std::string& head, int64_t& index, std::string& rest) {
  if (!starts_with(name, head)) return false;
  size_t pos = head.size(), end = pos;
  while (end < name.size() && std::isdigit(static_cast<unsigned char>(name[end]))) ++end;
  if (end == pos || end - pos > 9 || end >= name.size() || name[end] != '.') return false;
  index = std::stoll(name.substr(pos, end - pos));
  rest = name.substr(end + 1);
  return true;
}

// Attention sub-layer names of the three layouts: LDM, legacy diffusers, diffusers.
const std::vector<std::array<const char*, 3>> kAttentionNames = {
    {"norm.", "group_norm.", "group_norm."},  {"q.", "query.", "to_q."}, {"k.", "key.", "to_k."}, {"v.", "value.", "to_v."},
    {"proj_out.", "proj_attn.", "to_out.0."},
};

// Sizes a config.json may give (SD's largest is 512 channels, 4 levels, 2-3 resnets per level): an
// absurd layers_per_block once ran for 16 s into std::bad_alloc.
constexpr int64_t kMaxSdSize = 8192, kMaxSdList = 16;

std::vector<int64_t> int_list(const json& v, const std::string& key, const std::string& origin) {
  if (!v.is_array() || v.empty() || v.size() > static_cast<size_t>(kMaxSdList))
    throw Error(origin + ": '" + key + "' must be a list of 1 to " + std::to_string(kMaxSdList) + " integers");
  std::vector<int64_t> out;
  for (const auto& x : v) {
    if (!x.is_number_integer() || x.get<int64_t>() < 1 || x.get<int64_t>() > kMaxSdSize)
      throw Error(origin + ": '" + key + "' must be a list of integers from 1 to " + std::to_string(kMaxSdSize));
    out.push_back(x.get<int64_t>());
  }
  return out;
}

int64_t positive(const json& v, const std::string& key, const std::string& origin) {
  if (!v.is_number_integer() || v.get<int64_t>() < 1 || v.get<int64_t>() > kMaxSdSize)
    throw Error(origin + ": '" + key + "' must be an integer from 1 to " + std::to_string(kMaxSdSize));
  return v.get<int64_t>();
}

void expect_string(const json& v, const std::string& key, const std::string& want, const std::string& origin) {
  if (!v.is_string() || v.get<std::string>() != want)
    throw Error(origin + ": '" + key + "' is " + json_excerpt(v) + "; latent implements \"" + want + "\"");
}

void expect_strings(const json& v, const std::string& key, const std::string& want, const std::string& origin) {
  if (!v.is_array()) throw Error(origin + ": '" + key + "' must be a list");
  for (const auto& x : v) expect_string(x, key, want, origin);
}

// A diffusers config.json. Keys that only matter to diffusers' pipelines are accepted and ignored;
// anything else is an error, so an architecture latent does not implement is never run as another.
SdVaeConfig read_config(const std::string& path, bool tiny) {
  const json j = parse_json(read_file(path), path);
  if (!j.is_object()) throw Error(path + ": expected a JSON object");
  SdVaeConfig c;
  c.type = tiny ? "AutoencoderTiny" : "AutoencoderKL";
  c.source = "config.json";
  if (tiny) c.scaling_factor = 1.0;
  static const std::set<std::string> ignored = {"_diffusers_version", "_name_or_path", "sample_size",      "force_upcast",
                                                "latents_mean",       "latents_std",   "latent_magnitude", "latent_shift"};
  for (const auto& [key, v] : j.items()) {
    if (ignored.count(key)) continue;
    if (key == "_class_name") {
      expect_string(v, key, c.type, path + " (the tensors are " + c.type + "'s)");
    } else if (key == "in_channels") {
      c.in_channels = positive(v, key, path);
    } else if (key == "out_channels") {
      c.out_channels = positive(v, key, path);
    } else if (key == "latent_channels") {
      c.latent_channels = positive(v, key, path);
    } else if (key == "scaling_factor") {
      if (!v.is_number() || v.get<double>() <= 0) throw Error(path + ": 'scaling_factor' must be a positive number");
      c.scaling_factor = v.get<double>();
    } else if (key == "shift_factor") {
      if (!v.is_null() && !v.is_number()) throw Error(path + ": 'shift_factor' must be a number or null");
      c.shift_factor = v.is_null() ? 0.0 : v.get<double>();
    } else if (!tiny && key == "block_out_channels") {
      c.block_out_channels = int_list(v, key, path);
    } else if (!tiny && key == "layers_per_block") {
      c.layers_per_block = positive(v, key, path);
    } else if (!tiny && key == "norm_num_groups") {
      c.norm_num_groups = positive(v, key, path);
    } else if (!tiny && key == "act_fn") {
      expect_string(v, key, "silu", path);
    } else if (!tiny && key == "down_block_types") {
      expect_strings(v, key, "DownEncoderBlock2D", path);
    } else if (!tiny && key == "up_block_types") {
      expect_strings(v, key, "UpDecoderBlock2D", path);
    } else if (!tiny && (key == "use_quant_conv" || key == "use_post_quant_conv" || key == "mid_block_add_attention")) {
      if (!v.is_boolean()) throw Error(path + ": '" + key + "' must be true or false");
      (key == "use_quant_conv"        ? c.use_quant_conv
       : key == "use_post_quant_conv" ? c.use_post_quant_conv
                                      : c.mid_block_add_attention) = v.get<bool>();
    } else if (tiny && key == "encoder_block_out_channels") {
      c.block_out_channels = int_list(v, key, path);
    } else if (tiny && (key == "decoder_block_out_channels" || key == "block_out_channels")) {
      c.decoder_block_out_channels = int_list(v, key, path);
    } else if (tiny && key == "num_encoder_blocks") {
      c.num_encoder_blocks = int_list(v, key, path);
    } else if (tiny && key == "num_decoder_blocks") {
      c.num_decoder_blocks = int_list(v, key, path);
    } else if (tiny && key == "act_fn") {
      expect_string(v, key, "relu", path);
    } else if (tiny && key == "upsample_fn") {
      expect_string(v, key, "nearest", path);
    } else if (tiny && key == "upsampling_scaling_factor") {
      if (positive(v, key, path) != 2) throw Error(path + ": 'upsampling_scaling_factor' must be 2");
    } else {
      throw Error(path + ": unknown key '" + key + "' for " + c.type);
    }
  }
  if (c.block_out_channels.empty())
    throw Error(path + ": '" + std::string(tiny ? "encoder_block_out_channels" : "block_out_channels") + "' is missing");
  if (tiny) {
    if (c.decoder_block_out_channels.empty()) throw Error(path + ": 'decoder_block_out_channels' is missing");
    if (c.num_encoder_blocks.size() != c.block_out_channels.size() ||
        c.num_decoder_blocks.size() != c.decoder_block_out_channels.size())
      throw Error(path + ": each block count list must be as long as its channel list");
  }
  return c;
}

Shape shape_of(const std::map<std::string, at::Tensor>& t, const std::string& name) {
  auto it = t.find(name);
  return it == t.end() ? Shape{} : Shape(it->second.sizes().begin(), it->second.sizes().end());
}

// The architecture from the tensors' shapes (no config.json beside the file).
SdVaeConfig infer_kl(const std::map<std::string, at::Tensor>& t, const std::string& origin) {
  SdVaeConfig c;
  c.source = "tensor shapes";
  const Shape in = shape_of(t, "encoder.conv_in.weight"), dec_in = shape_of(t, "decoder.conv_in.weight"),
              out = shape_of(t, "decoder.conv_out.weight");
  if (in.size() != 4 || dec_in.size() != 4 || out.size() != 4)
    throw Error(
        origin +
        ": cannot tell the architecture: encoder.conv_in, decoder.conv_in or decoder.conv_out weights missing or not 4-D");
  c.in_channels = in[1];
  c.latent_channels = dec_in[1];
  c.out_channels = out[0];
  for (int64_t i = 0;; ++i) {
    const Shape s = shape_of(t, "encoder.down_blocks." + std::to_string(i) + ".resnets.0.conv1.weight");
    if (s.empty()) break;
    c.block_out_channels.push_back(s[0]);
  }
  if (c.block_out_channels.empty())
    throw Error(origin + ": cannot tell the architecture: no encoder level (encoder.down_blocks.0.resnets.0)");
  c.layers_per_block = 0;
  while (t.count("encoder.down_blocks.0.resnets." + std::to_string(c.layers_per_block) + ".conv1.weight")) ++c.layers_per_block;
  c.use_quant_conv = t.count("quant_conv.weight") > 0;
  c.use_post_quant_conv = t.count("post_quant_conv.weight") > 0;
  c.mid_block_add_attention = t.count("encoder.mid_block.attentions.0.to_q.weight") > 0;
  for (int64_t ch : c.block_out_channels)
    if (ch % c.norm_num_groups != 0)
      throw Error(origin + ": " + std::to_string(ch) +
                  " channels do not divide into the usual 32 GroupNorm groups; put the model's config.json (norm_num_groups) "
                  "beside the file");
  return c;
}

SdVaeConfig infer_tiny(const std::map<std::string, at::Tensor>& t, const std::string& origin) {
  SdVaeConfig c;
  c.type = "AutoencoderTiny";
  c.source = "tensor shapes";
  c.scaling_factor = 1.0;
  // Each half is a sequence of layers: plain convs (".weight") and blocks (".conv.0.weight").
  auto walk = [&](const std::string& half, std::vector<Shape>& convs, std::vector<int64_t>& blocks_after) {
    std::map<int64_t, bool> layers;  // index -> is a block
    for (const auto& [name, v] : t) {
      int64_t i;
      std::string rest;
      if (split_index(name, half + ".layers.", i, rest)) layers[i] = layers[i] || starts_with(rest, "conv.");
    }
    for (const auto& [i, is_block] : layers) {
      if (is_block) {
        if (blocks_after.empty()) throw Error(origin + ": " + half + " starts with a block, not a convolution");
        ++blocks_after.back();
      } else {
        convs.push_back(shape_of(t, half + ".layers." + std::to_string(i) + ".weight"));
        blocks_after.push_back(0);
      }
    }
    for (const Shape& s : convs)
      if (s.size() != 4)
        throw Error(origin + ": cannot tell the TAESD architecture: a " + half + " convolution weight is not 4-D");
    if (convs.size() < 2)
      throw Error(origin + ": cannot tell the TAESD architecture: the " + half + " has fewer than two convolutions");
  };
  std::vector<Shape> enc, dec;
  std::vector<int64_t> enc_blocks, dec_blocks;
  walk("encoder", enc, enc_blocks);
  walk("decoder", dec, dec_blocks);
  // encoder: [conv_in, blocks], [stride conv, blocks] ..., conv_out
  c.in_channels = enc.front()[1];
  c.latent_channels = enc.back()[0];
  for (size_t s = 0; s + 1 < enc.size(); ++s) {
    c.block_out_channels.push_back(enc[s][0]);
    c.num_encoder_blocks.push_back(enc_blocks[s]);
  }
  // decoder: conv_in, [blocks, conv] per stage
  c.out_channels = dec.back()[0];
  for (size_t s = 1; s < dec.size(); ++s) {
    c.decoder_block_out_channels.push_back(dec[s][1]);
    c.num_decoder_blocks.push_back(dec_blocks[s - 1]);
  }
  return c;
}

}  // namespace

int64_t SdVaeConfig::downsampling_factor() const {
  return int64_t{1} << (block_out_channels.empty() ? 0 : block_out_channels.size() - 1);
}

std::string sd_name_from_ldm(const std::string& name, int64_t levels) {
  std::string n = name;
  replace_first(n, ".mid.block_1.", ".mid_block.resnets.0.");
  replace_first(n, ".mid.block_2.", ".mid_block.resnets.1.");
  if (replace_first(n, ".mid.attn_1.", ".mid_block.attentions.0."))
    for (const auto& names : kAttentionNames)
      if (replace_first(n, std::string("attentions.0.") + names[0], std::string("attentions.0.") + names[2])) break;
  replace_first(n, ".nin_shortcut.", ".conv_shortcut.");
  if (n == "encoder.norm_out.weight" || n == "encoder.norm_out.bias" || n == "decoder.norm_out.weight" ||
      n == "decoder.norm_out.bias")
    replace_first(n, ".norm_out.", ".conv_norm_out.");
  int64_t i;
  std::string rest;
  if (split_index(n, "encoder.down.", i, rest)) {
    if (!replace_first(rest, "block.", "resnets.")) replace_first(rest, "downsample.", "downsamplers.0.");
    n = "encoder.down_blocks." + std::to_string(i) + "." + rest;
  } else if (split_index(n, "decoder.up.", i, rest)) {
    if (!replace_first(rest, "block.", "resnets.")) replace_first(rest, "upsample.", "upsamplers.0.");
    n = "decoder.up_blocks." + std::to_string(levels - 1 - i) + "." + rest;
  }
  return n;
}

std::string sd_name_to_ldm(const std::string& name, int64_t levels) {
  std::string n = name;
  replace_first(n, ".mid_block.resnets.0.", ".mid.block_1.");
  replace_first(n, ".mid_block.resnets.1.", ".mid.block_2.");
  if (replace_first(n, ".mid_block.attentions.0.", ".mid.attn_1."))
    for (const auto& names : kAttentionNames)
      if (replace_first(n, std::string("attn_1.") + names[2], std::string("attn_1.") + names[0])) break;
  replace_first(n, ".conv_shortcut.", ".nin_shortcut.");
  replace_first(n, ".conv_norm_out.", ".norm_out.");
  int64_t i;
  std::string rest;
  if (split_index(n, "encoder.down_blocks.", i, rest)) {
    if (!replace_first(rest, "resnets.", "block.")) replace_first(rest, "downsamplers.0.", "downsample.");
    n = "encoder.down." + std::to_string(i) + "." + rest;
  } else if (split_index(n, "decoder.up_blocks.", i, rest)) {
    if (!replace_first(rest, "resnets.", "block.")) replace_first(rest, "upsamplers.0.", "upsample.");
    n = "decoder.up." + std::to_string(levels - 1 - i) + "." + rest;
  }
  return n;
}

SdWeights sd_weights_load(const std::string& path, std::optional<double> scaling_factor) {
  const SafetensorsFile file = safetensors_map(path);
  // A whole SD checkpoint keeps the autoencoder under a prefix; everything else in it is ignored.
  std::string prefix;
  for (const char* p : {"first_stage_model.", "vae."})
    for (const auto& [name, t] : file.tensors)
      if (prefix.empty() && starts_with(name, p)) prefix = p;
  std::vector<std::pair<std::string, at::Tensor>> named;  // names without the prefix
  for (const auto& [name, t] : file.tensors)
    if (starts_with(name, prefix)) named.push_back({name.substr(prefix.size()), t});
  if (named.empty()) throw Error(path + ": no tensors");

  bool tiny = false, ldm = false, legacy = false;
  int64_t ldm_levels = 0;
  for (const auto& [name, t] : named) {
    tiny = tiny || starts_with(name, "encoder.layers.") || starts_with(name, "decoder.layers.");
    int64_t i;
    std::string rest;
    if (split_index(name, "decoder.up.", i, rest)) ldm_levels = std::max(ldm_levels, i + 1);
    ldm = ldm || starts_with(name, "encoder.down.") || starts_with(name, "decoder.up.") ||
          name.find(".mid.block_1.") != std::string::npos;
    legacy = legacy || name.find("attentions.0.query.") != std::string::npos ||
             name.find("attentions.0.proj_attn.") != std::string::npos;
  }
  SdWeights w;
  w.layout = tiny ? "diffusers AutoencoderTiny" : ldm ? "ldm" : legacy ? "diffusers (legacy attention names)" : "diffusers";
  if (!prefix.empty()) w.layout += ", prefix " + prefix;

  // Rename into diffusers names, remembering each file name for the messages.
  w.path = path;
  w.file_prefix = prefix;
  w.ldm_names = ldm;
  w.ldm_levels = ldm_levels;
  for (auto& [name, t] : named) {
    std::string n = ldm ? sd_name_from_ldm(name, ldm_levels) : name;
    if (legacy)
      for (const auto& names : kAttentionNames)
        if (replace_first(n, std::string("attentions.0.") + names[1], std::string("attentions.0.") + names[2])) break;
    at::Tensor v = t;
    // Attention projections stored as 1x1 convolutions [C, C, 1, 1] (LDM) are Linear weights.
    if (n.find(".attentions.0.to_") != std::string::npos && v.dim() == 4 && v.size(2) == 1 && v.size(3) == 1)
      v = v.reshape({v.size(0), v.size(1)});
    if (!w.file_names.emplace(n, prefix + name).second) {
      w.problems.push_back("duplicate: " + prefix + name + " and " + w.file_names[n] + " are the same tensor");
      continue;
    }
    w.tensors[n] = v;
  }

  const std::string dir = std::filesystem::path(path).parent_path().string();
  const std::string config_path = (dir.empty() ? std::string(".") : dir) + "/config.json";
  w.config = std::filesystem::exists(config_path) ? read_config(config_path, tiny)
             : tiny                               ? infer_tiny(w.tensors, path)
                                                  : infer_kl(w.tensors, path);
  if (scaling_factor) {
    if (!(*scaling_factor > 0)) throw Error("--scaling-factor must be positive");
    w.config.scaling_factor = *scaling_factor;
  }

  return w;
}

at::Tensor SdWeights::take(const std::string& name, const std::vector<int64_t>& shape) {
  taken_.insert(name);
  auto it = tensors.find(name);
  if (it == tensors.end()) {
    missing_.push_back(file_prefix + (ldm_names ? sd_name_to_ldm(name, ldm_levels) : name) + " " + shape_text(shape));
    return {};
  }
  const at::Tensor t = it->second;
  const Shape got(t.sizes().begin(), t.sizes().end());
  if (got != shape) shaped_.push_back(file_names[name] + ": got " + shape_text(got) + ", expected " + shape_text(shape));
  const auto dtype = t.scalar_type();
  if (dtype == at::kFloat)
    dtypes_.insert("F32");
  else if (dtype == at::kHalf)
    dtypes_.insert("F16");
  else if (dtype == at::kBFloat16)
    dtypes_.insert("BF16");
  else
    shaped_.push_back(file_names[name] + ": dtype " + std::string(c10::toString(dtype)) + ", expected F32, F16 or BF16");
  // Float32 for the models, except 3x3 convolution kernels, which stay as the file has them (mapped,
  // F16/BF16 or F32): the oneDNN path converts each when it lays it out, the ATen one when it runs.
  return t.dim() == 4 && t.size(2) == 3 ? t : t.to(at::kFloat).contiguous();
}

void SdWeights::check_all_taken() {
  std::vector<std::string> unexpected;
  for (const auto& [n, t] : tensors)
    if (!taken_.count(n)) unexpected.push_back(file_names[n] + " " + shape_text(Shape(t.sizes().begin(), t.sizes().end())));
  if (!missing_.empty() || !shaped_.empty() || !unexpected.empty() || !problems.empty()) {
    std::ostringstream msg;
    std::string arch = config.type + " " + shape_text(config.block_out_channels);
    if (config.type == "AutoencoderKL") arch += " x " + std::to_string(config.layers_per_block) + " resnets";
    msg << path << " does not fit " << arch << ", latent " << config.latent_channels << " (architecture from " << config.source
        << ", layout " << layout << "): " << missing_.size() << " missing, " << unexpected.size() << " unexpected, "
        << shaped_.size() << " wrongly shaped";
    for (const auto& p : problems) msg << "\n  " << p;
    for (const auto& m : missing_) msg << "\n  missing: " << m;
    for (const auto& u : unexpected) msg << "\n  unexpected: " << u;
    for (const auto& s : shaped_) msg << "\n  wrong: " << s;
    throw Error(msg.str());
  }
  dtype = dtypes_.size() == 1 ? *dtypes_.begin() : "mixed";
  tensors.clear();  // every tensor now lives in a layer
}

}  // namespace latent
