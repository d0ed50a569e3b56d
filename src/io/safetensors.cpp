#include "latent/safetensors.h"

#include <ATen/ATen.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>

#include "latent/atomic_file.h"
#include "latent/error.h"
#include "latent/json.h"

namespace latent {
namespace {

struct DtypeName {
  at::ScalarType type;
  const char* name;
};

constexpr DtypeName kDtypes[] = {
    {at::kFloat, "F32"}, {at::kHalf, "F16"},  {at::kBFloat16, "BF16"}, {at::kDouble, "F64"}, {at::kLong, "I64"},
    {at::kInt, "I32"},   {at::kShort, "I16"}, {at::kChar, "I8"},       {at::kByte, "U8"},    {at::kBool, "BOOL"},
};

const char* dtype_name(at::ScalarType t) {
  for (const auto& d : kDtypes)
    if (d.type == t) return d.name;
  throw Error(std::string("safetensors: unsupported tensor dtype ") + c10::toString(t));
}

bool dtype_from_name(const std::string& name, at::ScalarType* out) {
  for (const auto& d : kDtypes)
    if (name == d.name) {
      *out = d.type;
      return true;
    }
  return false;
}

constexpr uint64_t kMaxHeader = 100ull << 20;  // the limit the reference implementation enforces

}  // namespace

at::Tensor SafetensorsFile::find(const std::string& name) const {
  for (const auto& [n, t] : tensors)
    if (n == name) return t;
  return {};
}

std::string safetensors_serialize(const SafetensorsFile& file) {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!file.metadata.empty()) header["__metadata__"] = file.metadata;
  std::vector<at::Tensor> blobs;
  uint64_t offset = 0;
  for (const auto& [name, tensor] : file.tensors) {
    if (name == "__metadata__") throw Error("safetensors: '__metadata__' is not a tensor name");
    if (header.contains(name)) throw Error("safetensors: duplicate tensor name '" + name + "'");
    at::Tensor t = tensor.detach().to(at::kCPU).contiguous();
    uint64_t bytes = static_cast<uint64_t>(t.numel()) * t.element_size();
    header[name] = {
        {"dtype", dtype_name(t.scalar_type())}, {"shape", t.sizes().vec()}, {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
    blobs.push_back(t);
  }
  std::string json = header.dump();
  json.append((8 - json.size() % 8) % 8, ' ');
  std::string out(8, '\0');
  uint64_t n = json.size();
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  out += json;
  out.reserve(out.size() + offset);
  for (const auto& t : blobs) out.append(static_cast<const char*>(t.data_ptr()), t.numel() * t.element_size());
  return out;
}

namespace {

// A read-only mapping of a whole file, unmapped when the last tensor viewing it goes.
struct Mapping {
  void* data = nullptr;
  size_t size = 0;
  ~Mapping() {
    if (data) munmap(data, size);
  }
};

void release_view(void* ctx) { delete static_cast<std::shared_ptr<Mapping>*>(ctx); }

// Parses `size` bytes at `bytes`; make(type, shape, data, byte count) turns each tensor's bytes into a tensor.
SafetensorsFile parse(const char* bytes, uint64_t size, const std::string& origin,
                      const std::function<at::Tensor(at::ScalarType, const std::vector<int64_t>&, const char*, uint64_t)>& make) {
  auto fail = [&](const std::string& what) { return Error(origin + ": not a valid safetensors file: " + what); };
  if (size < 8) throw fail("shorter than the 8-byte header length");
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= static_cast<uint64_t>(static_cast<unsigned char>(bytes[i])) << (8 * i);
  if (n > kMaxHeader) throw fail("header length " + std::to_string(n) + " exceeds the 100 MB limit");
  if (n > size - 8)
    throw fail("header length " + std::to_string(n) + " runs past the end of the file (" + std::to_string(size) + " bytes)");
  if (n == 0 || bytes[8] != '{') throw fail("header does not start with '{'");
  nlohmann::json header;
  try {
    header = parse_json(std::string_view(bytes + 8, n), "header");
  } catch (const Error& e) {
    throw fail(e.what());
  }
  if (!header.is_object()) throw fail("header is not a JSON object");

  const char* buffer = bytes + 8 + n;
  const uint64_t buffer_size = size - 8 - n;
  SafetensorsFile file;
  struct Span {
    uint64_t begin, end;
    std::string name;
  };
  std::vector<Span> spans;
  for (auto it = header.begin(); it != header.end(); ++it) {
    const std::string& name = it.key();
    const auto& entry = it.value();
    if (name == "__metadata__") {
      if (!entry.is_object()) throw fail("__metadata__ is not an object");
      for (auto m = entry.begin(); m != entry.end(); ++m) {
        if (!m.value().is_string()) throw fail("__metadata__ value of '" + m.key() + "' is not a string");
        file.metadata[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    auto bad = [&](const std::string& what) { return fail("tensor '" + name + "': " + what); };
    if (!entry.is_object()) throw bad("entry is not an object");
    for (auto k = entry.begin(); k != entry.end(); ++k)
      if (k.key() != "dtype" && k.key() != "shape" && k.key() != "data_offsets") throw bad("unknown key '" + k.key() + "'");
    if (!entry.contains("dtype") || !entry["dtype"].is_string()) throw bad("missing dtype");
    at::ScalarType type;
    if (!dtype_from_name(entry["dtype"].get<std::string>(), &type))
      throw bad("unsupported dtype '" + entry["dtype"].get<std::string>() + "'");
    if (!entry.contains("shape") || !entry["shape"].is_array()) throw bad("missing shape");
    std::vector<int64_t> shape;
    uint64_t numel = 1;
    for (const auto& d : entry["shape"]) {
      if (!d.is_number_unsigned()) throw bad("shape entries must be non-negative integers");
      uint64_t v = d.get<uint64_t>();
      if (v > (1ull << 40) || (v > 0 && numel > (1ull << 40) / v)) throw bad("shape is too large");
      numel *= v;
      shape.push_back(static_cast<int64_t>(v));
    }
    const auto& off = entry.contains("data_offsets") ? entry["data_offsets"] : nlohmann::json();
    if (!off.is_array() || off.size() != 2 || !off[0].is_number_unsigned() || !off[1].is_number_unsigned())
      throw bad("data_offsets must be two non-negative integers");
    uint64_t begin = off[0].get<uint64_t>(), end = off[1].get<uint64_t>();
    if (begin > end) throw bad("data_offsets begin after they end");
    if (end > buffer_size)
      throw bad("data_offsets end at " + std::to_string(end) + ", past the data buffer of " + std::to_string(buffer_size) +
                " bytes (truncated file?)");
    uint64_t expected = numel * c10::elementSize(type);
    if (end - begin != expected)
      throw bad("holds " + std::to_string(end - begin) + " bytes, dtype and shape need " + std::to_string(expected));
    file.tensors.emplace_back(name, make(type, shape, buffer + begin, expected));
    spans.push_back({begin, end, name});
  }
  std::sort(spans.begin(), spans.end(),
            [](const Span& a, const Span& b) { return a.begin < b.begin || (a.begin == b.begin && a.end < b.end); });
  uint64_t pos = 0;
  for (const auto& s : spans) {
    if (s.begin < pos) throw fail("tensor '" + s.name + "' overlaps another tensor's bytes");
    if (s.begin > pos) throw fail("the data buffer has a hole before tensor '" + s.name + "'");
    pos = s.end;
  }
  if (pos != buffer_size) throw fail(std::to_string(buffer_size - pos) + " bytes after the last tensor belong to no tensor");
  // Tensors in the order of their bytes, which is the order the writer used.
  std::map<std::string, at::Tensor> by_name(file.tensors.begin(), file.tensors.end());
  file.tensors.clear();
  for (const auto& s : spans) file.tensors.emplace_back(s.name, by_name.at(s.name));
  return file;
}

}  // namespace

SafetensorsFile safetensors_parse(const std::string& bytes, const std::string& origin) {
  return parse(bytes.data(), bytes.size(), origin,
               [](at::ScalarType type, const std::vector<int64_t>& shape, const char* data, uint64_t count) {
                 at::Tensor t = at::empty(shape, at::TensorOptions().dtype(type));
                 if (count > 0) std::memcpy(t.data_ptr(), data, count);
                 return t;
               });
}

SafetensorsFile safetensors_map(const std::string& path) {
  // O_NONBLOCK: opening a FIFO would otherwise wait for a writer; fstat then refuses it.
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) throw Error(path + ": cannot open (" + std::strerror(errno) + ")");
  struct stat st {};
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    throw Error(path + ": not a regular file");
  }
  auto mapping = std::make_shared<Mapping>();
  mapping->size = static_cast<size_t>(st.st_size);
  if (mapping->size > 0) {
    void* p = mmap(nullptr, mapping->size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      ::close(fd);
      throw Error(path + ": cannot map (" + std::strerror(errno) + ")");
    }
    mapping->data = p;
  }
  ::close(fd);
  return parse(static_cast<const char*>(mapping->data), mapping->size, path,
               [&](at::ScalarType type, const std::vector<int64_t>& shape, const char* data, uint64_t) {
                 return at::for_blob(const_cast<char*>(data), shape)
                     .context(new std::shared_ptr<Mapping>(mapping), &release_view)
                     .options(at::TensorOptions().dtype(type))
                     .make_tensor();
               });
}

bool safetensors_drop_pages(const at::Tensor& t) {
  if (!t.defined() || !t.has_storage() || t.storage().data_ptr().get_deleter() != &release_view) return false;
  const long page = sysconf(_SC_PAGESIZE);
  const auto begin = reinterpret_cast<uintptr_t>(t.data_ptr());
  const auto end = begin + t.numel() * t.element_size();
  const uintptr_t first = (begin + page - 1) / page * page, last = end / page * page;  // whole pages only
  if (last > first) madvise(reinterpret_cast<void*>(first), last - first, MADV_DONTNEED);
  return true;
}

void safetensors_save(const std::string& path, const SafetensorsFile& file) { atomic_write(path, safetensors_serialize(file)); }

SafetensorsFile safetensors_load(const std::string& path) { return safetensors_parse(read_file(path), path); }

}  // namespace latent
