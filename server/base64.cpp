#include "base64.h"

#include <array>
#include <cstdint>
#include <cstring>

#include "latent/error.h"

namespace latent::server {
namespace {

constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

std::array<int8_t, 256> decode_table() {
  std::array<int8_t, 256> t{};
  t.fill(-1);
  for (int i = 0; i < 64; ++i) t[static_cast<unsigned char>(kAlphabet[i])] = static_cast<int8_t>(i);
  return t;
}

// Two output characters for each 12-bit value: a 3-byte group becomes two lookups.
std::array<uint16_t, 4096> pair_table() {
  std::array<uint16_t, 4096> t{};
  for (int v = 0; v < 4096; ++v) {
    const char pair[2] = {kAlphabet[v >> 6], kAlphabet[v & 63]};
    std::memcpy(&t[v], pair, 2);
  }
  return t;
}

}  // namespace

std::string base64_encode(const std::string& bytes) {
  std::string out;
  base64_append(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), out);
  return out;
}

void base64_append(const uint8_t* in, size_t n, std::string& out) {
  const size_t at = out.size();
  out.resize(at + (n + 2) / 3 * 4, '=');
  char* o = out.data() + at;
  size_t i = 0;
  static const std::array<uint16_t, 4096> pairs = pair_table();
  for (; i + 2 < n; i += 3, o += 4) {
    const uint32_t v = in[i] << 16 | in[i + 1] << 8 | in[i + 2];
    std::memcpy(o, &pairs[v >> 12], 2);
    std::memcpy(o + 2, &pairs[v & 4095], 2);
  }
  if (i < n) {  // one or two bytes left: the rest of the group stays '='
    const uint32_t v = in[i] << 16 | (i + 1 < n ? in[i + 1] << 8 : 0);
    o[0] = kAlphabet[v >> 18];
    o[1] = kAlphabet[v >> 12 & 63];
    if (i + 1 < n) o[2] = kAlphabet[v >> 6 & 63];
  }
}

std::string base64_decode(const std::string& text, const std::string& what) {
  static const std::array<int8_t, 256> table = decode_table();
  size_t start = 0;
  if (text.rfind("data:", 0) == 0) {
    const size_t comma = text.find(";base64,");
    if (comma == std::string::npos) throw Error(what + ": a data URL must be base64 (';base64,')");
    start = comma + 8;
  }
  const size_t n = text.size() - start;
  if (n % 4 != 0) throw Error(what + ": not base64 (length " + std::to_string(n) + " is not a multiple of 4)");
  std::string out;
  out.reserve(n / 4 * 3);
  for (size_t i = start; i < text.size(); i += 4) {
    int v[4];
    int pad = 0;
    for (int k = 0; k < 4; ++k) {
      const char c = text[i + k];
      const bool last_group = i + 4 == text.size();
      if (c == '=' && last_group && k >= 2 && (k == 3 || text[i + 3] == '=')) {
        v[k] = 0;
        ++pad;
      } else if ((v[k] = table[static_cast<unsigned char>(c)]) < 0 || pad > 0) {
        throw Error(what + ": not base64 (bad character at offset " + std::to_string(i + k - start) + ")");
      }
    }
    const uint32_t w = v[0] << 18 | v[1] << 12 | v[2] << 6 | v[3];
    out += static_cast<char>(w >> 16);
    if (pad < 2) out += static_cast<char>(w >> 8 & 255);
    if (pad < 1) out += static_cast<char>(w & 255);
  }
  return out;
}

}  // namespace latent::server
