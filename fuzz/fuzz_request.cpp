// What the explorer reads from a request body: the fast decode parser (codes as {"z": [[...]]}),
// the general JSON path with its depth bound, base64 PNG uploads and their decoding. A body the
// fast parser takes must give what the general path gives.
#include <cmath>
#include <string>
#include <vector>

#include "base64.h"
#include "code_parser.h"
#include "latent/error.h"
#include "latent/image.h"
#include "latent/json.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string body(reinterpret_cast<const char*>(data), size);
  std::vector<float> codes;
  const bool fast = latent::server::parse_code_rows(body, "z", 3, 64, 1e6, codes);
  const int64_t rows = static_cast<int64_t>(codes.size()) / 3;
  try {
    const nlohmann::json j = latent::parse_json(body, "body");
    (void)latent::json_excerpt(j);
    if (fast) {  // the same numbers through the JSON tree
      const auto& z = j.at("z");
      if (static_cast<int64_t>(z.size()) != rows) __builtin_trap();
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t c = 0; c < 3; ++c)
          if (static_cast<float>(z[r][c].get<double>()) != codes[r * 3 + c]) __builtin_trap();
    }
    if (j.is_object() && j.contains("png") && j["png"].is_string())
      latent::image_decode(latent::server::base64_decode(j["png"].get<std::string>(), "png"), "upload", 1, 28, 28,
                           int64_t{1} << 22);
  } catch (const latent::Error&) {
    if (fast) __builtin_trap();  // the fast parser took a body the JSON path refuses
  } catch (const nlohmann::json::exception&) {
    if (fast) __builtin_trap();
  }
  return 0;
}
