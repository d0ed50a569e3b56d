// IDX files (LeCun's MNIST format), raw or gzip-compressed:
//   magic: 0x00 0x00 <type> <ndims>, then ndims big-endian uint32 sizes, then the data (big-endian).
#include <ATen/ATen.h>
#include <zlib.h>

#include <algorithm>
#include <cstring>

#include "latent/atomic_file.h"
#include "latent/data.h"
#include "latent/error.h"

namespace latent {

std::string gunzip_if_needed(const std::string& bytes, const std::string& origin) {
  if (bytes.size() < 2 || static_cast<unsigned char>(bytes[0]) != 0x1f || static_cast<unsigned char>(bytes[1]) != 0x8b) {
    return bytes;
  }
  z_stream zs{};
  if (inflateInit2(&zs, 16 + MAX_WBITS) != Z_OK) throw Error(origin + ": cannot start gzip decoder");
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(bytes.data()));
  zs.avail_in = static_cast<uInt>(bytes.size());
  std::string out;
  char buf[1 << 16];
  int rc = Z_OK;
  while (rc != Z_STREAM_END) {
    zs.next_out = reinterpret_cast<Bytef*>(buf);
    zs.avail_out = sizeof(buf);
    rc = inflate(&zs, Z_NO_FLUSH);
    if (rc != Z_OK && rc != Z_STREAM_END) {
      std::string why = rc == Z_BUF_ERROR ? "truncated gzip stream" : (zs.msg ? zs.msg : "corrupt gzip stream");
      inflateEnd(&zs);
      throw Error(origin + ": " + why);
    }
    out.append(buf, sizeof(buf) - zs.avail_out);
    if (out.size() > (size_t{8} << 30)) {
      inflateEnd(&zs);
      throw Error(origin + ": decompressed size exceeds 8 GiB");
    }
  }
  inflateEnd(&zs);
  return out;
}

at::Tensor idx_load(const std::string& path) {
  const std::string bytes = gunzip_if_needed(read_file(path), path);
  auto fail = [&](const std::string& what) { return Error(path + ": not a valid IDX file: " + what); };
  if (bytes.size() < 4 || bytes[0] != 0 || bytes[1] != 0) throw fail("bad magic number");
  const int type = static_cast<unsigned char>(bytes[2]);
  const int ndims = static_cast<unsigned char>(bytes[3]);
  at::ScalarType dtype;
  switch (type) {
    case 0x08:
      dtype = at::kByte;
      break;
    case 0x09:
      dtype = at::kChar;
      break;
    case 0x0B:
      dtype = at::kShort;
      break;
    case 0x0C:
      dtype = at::kInt;
      break;
    case 0x0D:
      dtype = at::kFloat;
      break;
    case 0x0E:
      dtype = at::kDouble;
      break;
    default:
      throw fail("unknown data type code " + std::to_string(type));
  }
  if (ndims < 1) throw fail("zero dimensions");
  if (bytes.size() < 4 + 4 * static_cast<size_t>(ndims)) throw fail("truncated dimension sizes");
  std::vector<int64_t> shape;
  uint64_t numel = 1;
  for (int i = 0; i < ndims; ++i) {
    const auto* p = reinterpret_cast<const unsigned char*>(bytes.data() + 4 + 4 * i);
    uint64_t d = (uint64_t{p[0]} << 24) | (uint64_t{p[1]} << 16) | (uint64_t{p[2]} << 8) | p[3];
    if (d > 0 && numel > (uint64_t{1} << 40) / d) throw fail("dimensions are too large");
    numel *= d;
    shape.push_back(static_cast<int64_t>(d));
  }
  const size_t start = 4 + 4 * static_cast<size_t>(ndims);
  const uint64_t need = numel * c10::elementSize(dtype), have = bytes.size() - start;
  if (have < need)
    throw fail("truncated: the header promises " + std::to_string(need) + " data bytes, the file has " + std::to_string(have));
  if (have > need) throw fail(std::to_string(have - need) + " unexpected bytes after the data");
  at::Tensor t = at::empty(shape, dtype);
  if (need > 0) std::memcpy(t.data_ptr(), bytes.data() + start, need);  // an empty tensor has no data pointer
  if (c10::elementSize(dtype) > 1) {                                    // big-endian on disk
    auto* b = static_cast<unsigned char*>(t.data_ptr());
    const size_t w = c10::elementSize(dtype);
    for (uint64_t i = 0; i < numel; ++i) std::reverse(b + i * w, b + (i + 1) * w);
  }
  return t;
}

}  // namespace latent
