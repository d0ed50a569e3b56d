#include "latent/npy.h"

#include <ATen/ATen.h>

#include <cstring>
#include <functional>
#include <optional>
#include <string_view>

#include "latent/atomic_file.h"
#include "latent/error.h"
#include "latent/json.h"

namespace latent {
namespace {

struct Descr {
  const char* text;
  at::ScalarType type;
};
constexpr Descr kDescrs[] = {{"|u1", at::kByte},  {"<i4", at::kInt},    {"<i8", at::kLong},
                             {"<f4", at::kFloat}, {"<f8", at::kDouble}, {"|b1", at::kBool}};

// numpy writes headers of a few dozen characters (padded to 64 bytes); anything near this is not one.
constexpr size_t kMaxNpyHeader = 64 * 1024;

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

// The text after `'key':` in the header's dict (spaces skipped), or nothing when the key is absent.
// A plain scan, no regex: std::regex recursed once per character on long fields and overflowed the stack.
std::optional<std::string_view> value_of(std::string_view header, std::string_view key) {
  const std::string quoted = "'" + std::string(key) + "'";
  const size_t at = header.find(quoted);
  if (at == std::string_view::npos) return std::nullopt;
  size_t i = at + quoted.size();
  while (i < header.size() && is_space(header[i])) ++i;
  if (i >= header.size() || header[i] != ':') return std::nullopt;
  ++i;
  while (i < header.size() && is_space(header[i])) ++i;
  return header.substr(i);
}

// The shape tuple at the start of `v` ("(2, 3)", "(4,)", "()"): non-negative integers only.
std::vector<int64_t> parse_shape(std::string_view v, const std::function<Error(const std::string&)>& fail) {
  if (v.empty() || v[0] != '(') throw fail("'shape' is not a tuple");
  std::vector<int64_t> shape;
  uint64_t numel = 1;
  size_t i = 1;
  bool expect_number = true;
  while (true) {
    while (i < v.size() && is_space(v[i])) ++i;
    if (i >= v.size()) throw fail("'shape' is not closed");
    if (v[i] == ')') break;
    if (!expect_number) throw fail("'shape' holds something other than integers");
    size_t j = i;
    uint64_t d = 0;
    while (j < v.size() && v[j] >= '0' && v[j] <= '9' && j - i < 13) d = d * 10 + static_cast<uint64_t>(v[j++] - '0');
    if (j == i || (j < v.size() && v[j] >= '0' && v[j] <= '9'))
      throw fail("'shape' must hold non-negative integers of at most 12 digits");
    if (d > (1ull << 40) || (d > 0 && numel > (1ull << 40) / d)) throw fail("shape is too large");
    numel *= d;
    shape.push_back(static_cast<int64_t>(d));
    i = j;
    while (i < v.size() && is_space(v[i])) ++i;
    if (i < v.size() && v[i] == ',') {
      ++i;
      continue;
    }
    expect_number = false;
  }
  return shape;
}

}  // namespace

at::Tensor npy_parse(const std::string& bytes, const std::string& origin) {
  auto fail = [&](const std::string& what) { return Error(origin + ": not a valid .npy file: " + what); };
  if (bytes.size() < 10 || std::memcmp(bytes.data(), "\x93NUMPY", 6) != 0) throw fail("missing the \\x93NUMPY magic");
  const int major = static_cast<unsigned char>(bytes[6]);
  size_t header_len = 0, header_start = 0;
  if (major == 1) {
    header_len = static_cast<unsigned char>(bytes[8]) | (static_cast<unsigned char>(bytes[9]) << 8);
    header_start = 10;
  } else if (major == 2 || major == 3) {
    if (bytes.size() < 12) throw fail("truncated header");
    for (int i = 0; i < 4; ++i) header_len |= static_cast<size_t>(static_cast<unsigned char>(bytes[8 + i])) << (8 * i);
    header_start = 12;
  } else {
    throw fail("unsupported format version " + std::to_string(major));
  }
  if (header_len > kMaxNpyHeader) throw fail("header of " + std::to_string(header_len) + " bytes (at most 64 KB)");
  if (header_start + header_len > bytes.size()) throw fail("header runs past the end of the file");
  const std::string_view header(bytes.data() + header_start, header_len);

  const auto descr_value = value_of(header, "descr");
  if (!descr_value || descr_value->empty() || (*descr_value)[0] != '\'') throw fail("header has no 'descr'");
  const size_t close = descr_value->find('\'', 1);
  if (close == std::string_view::npos) throw fail("header has no 'descr'");
  const std::string descr(descr_value->substr(1, close - 1));
  at::ScalarType type = at::kFloat;
  bool known = false;
  for (const auto& d : kDescrs)
    if (descr == d.text) {
      type = d.type;
      known = true;
    }
  if (!known)
    throw fail("unsupported dtype '" + text_excerpt(descr, 20) +
               "' (expected uint8, int32, int64, float32 or float64, little-endian)");
  const auto fortran = value_of(header, "fortran_order");
  if (!fortran || (fortran->substr(0, 4) != "True" && fortran->substr(0, 5) != "False"))
    throw fail("header has no 'fortran_order'");
  if (fortran->substr(0, 4) == "True") throw fail("Fortran-ordered arrays are not supported; save with np.ascontiguousarray");
  const auto shape_value = value_of(header, "shape");
  if (!shape_value) throw fail("header has no 'shape'");
  const std::vector<int64_t> shape = parse_shape(*shape_value, fail);
  uint64_t numel = 1;
  for (int64_t d : shape) numel *= static_cast<uint64_t>(d);
  const size_t data_start = header_start + header_len;
  const uint64_t need = numel * c10::elementSize(type);
  const uint64_t have = bytes.size() - data_start;
  if (have != need)
    throw fail("holds " + std::to_string(have) + " data bytes, shape and dtype need " + std::to_string(need) +
               (have < need ? " (truncated file?)" : ""));
  at::Tensor t = at::empty(shape, at::TensorOptions().dtype(type));
  if (need > 0) std::memcpy(t.data_ptr(), bytes.data() + data_start, need);
  return t;
}

at::Tensor npy_load(const std::string& path) { return npy_parse(read_file(path), path); }

std::string npy_serialize(const at::Tensor& tensor) {
  at::Tensor t = tensor.detach().to(at::kCPU).contiguous();
  const char* descr = nullptr;
  for (const auto& d : kDescrs)
    if (d.type == t.scalar_type()) descr = d.text;
  if (descr == nullptr) throw Error(std::string("cannot write dtype ") + c10::toString(t.scalar_type()) + " to .npy");
  std::string shape;
  for (int64_t i = 0; i < t.dim(); ++i) shape += std::to_string(t.size(i)) + (i + 1 < t.dim() ? ", " : "");
  if (t.dim() == 1) shape += ",";  // Python's one-element tuple
  std::string header = std::string("{'descr': '") + descr + "', 'fortran_order': False, 'shape': (" + shape + "), }";
  // Pad so that the data starts on a 64-byte boundary, ending the header with '\n'.
  size_t total = 10 + header.size() + 1;
  header.append((64 - total % 64) % 64, ' ');
  header += '\n';
  std::string out("\x93NUMPY\x01\x00", 8);
  out += static_cast<char>(header.size() & 0xff);
  out += static_cast<char>((header.size() >> 8) & 0xff);
  out += header;
  out.append(static_cast<const char*>(t.data_ptr()), t.numel() * t.element_size());
  return out;
}

void npy_save(const std::string& path, const at::Tensor& tensor) { atomic_write(path, npy_serialize(tensor)); }

}  // namespace latent
