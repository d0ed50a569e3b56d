#include "latent/npy.h"

#include <ATen/ATen.h>

#include <cstring>
#include <regex>

#include "latent/atomic_file.h"
#include "latent/error.h"

namespace latent {
namespace {

struct Descr {
  const char* text;
  at::ScalarType type;
};
constexpr Descr kDescrs[] = {{"|u1", at::kByte},  {"<i4", at::kInt},    {"<i8", at::kLong},
                             {"<f4", at::kFloat}, {"<f8", at::kDouble}, {"|b1", at::kBool}};

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
  if (header_start + header_len > bytes.size()) throw fail("header runs past the end of the file");
  const std::string header = bytes.substr(header_start, header_len);

  std::smatch m;
  if (!std::regex_search(header, m, std::regex(R"('descr'\s*:\s*'([^']*)')"))) throw fail("header has no 'descr'");
  const std::string descr = m[1];
  at::ScalarType type = at::kFloat;
  bool known = false;
  for (const auto& d : kDescrs)
    if (descr == d.text) {
      type = d.type;
      known = true;
    }
  if (!known) throw fail("unsupported dtype '" + descr + "' (expected uint8, int32, int64, float32 or float64, little-endian)");
  if (!std::regex_search(header, m, std::regex(R"('fortran_order'\s*:\s*(True|False))")))
    throw fail("header has no 'fortran_order'");
  if (m[1] == "True") throw fail("Fortran-ordered arrays are not supported; save with np.ascontiguousarray");
  if (!std::regex_search(header, m, std::regex(R"('shape'\s*:\s*\(([^)]*)\))"))) throw fail("header has no 'shape'");
  std::vector<int64_t> shape;
  const std::string dims = m[1];
  static const std::regex kDigits(R"(\d+)");
  std::sregex_iterator it(dims.begin(), dims.end(), kDigits), end;
  uint64_t numel = 1;
  for (; it != end; ++it) {
    uint64_t v = std::stoull(it->str());
    if (v > (1ull << 40) || (v > 0 && numel > (1ull << 40) / v)) throw fail("shape is too large");
    numel *= v;
    shape.push_back(static_cast<int64_t>(v));
  }
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
