// Numeric CSV tables: comma-separated, one example per row, an optional header row (detected:
// a first row with any non-numeric field). Every row must have the same number of fields, every
// field a finite number.
#include <ATen/ATen.h>

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <sstream>

#include "latent/atomic_file.h"
#include "latent/data.h"
#include "latent/error.h"
#include "latent/json.h"

namespace latent {
namespace {

std::string trim(const std::string& s) {
  size_t b = s.find_first_not_of(" \t\r"), e = s.find_last_not_of(" \t\r");
  return b == std::string::npos ? "" : s.substr(b, e - b + 1);
}

std::vector<std::string> split(const std::string& line) {
  std::vector<std::string> out;
  std::string field;
  std::istringstream ss(line);
  while (std::getline(ss, field, ',')) out.push_back(trim(field));
  if (!line.empty() && line.back() == ',') out.emplace_back();
  return out;
}

// A number spelled in full; values below double's range (1e-320: ERANGE, but a tiny finite number)
// count, overflow (HUGE_VAL) does not.
bool parse_number(const std::string& s, double* v) {
  if (s.empty()) return false;
  char* end = nullptr;
  errno = 0;
  *v = std::strtod(s.c_str(), &end);
  return end == s.c_str() + s.size() && !(errno == ERANGE && std::isinf(*v));
}

}  // namespace

Dataset csv_load(const std::string& path) {
  const std::string text = read_file(path);
  std::istringstream in(text);
  std::string line;
  std::vector<float> values;
  size_t columns = 0, rows = 0, line_no = 0;
  bool first = true;
  while (std::getline(in, line)) {
    ++line_no;
    if (trim(line).empty()) continue;
    std::vector<std::string> fields = split(line);
    if (first) {
      first = false;
      columns = fields.size();
      double v;
      bool numeric = true;
      for (const auto& f : fields) numeric = numeric && parse_number(f, &v);
      if (!numeric) continue;  // header row
    }
    if (fields.size() != columns)
      throw Error(path + ": line " + std::to_string(line_no) + " has " + std::to_string(fields.size()) + " fields, expected " +
                  std::to_string(columns));
    for (size_t c = 0; c < fields.size(); ++c) {
      double v;
      const std::string where = path + ": line " + std::to_string(line_no) + ", column " + std::to_string(c + 1) + ": '" +
                                text_excerpt(fields[c], 40) + "'";
      if (!parse_number(fields[c], &v) || !std::isfinite(v)) throw Error(where + " is not a finite number");
      if (std::fabs(v) > std::numeric_limits<float>::max())
        throw Error(where + " is beyond float32's range (about 3.4e38 in magnitude)");
      values.push_back(static_cast<float>(v));
    }
    ++rows;
  }
  if (rows == 0) throw Error(path + ": no data rows");
  Dataset d;
  d.x = at::from_blob(values.data(), {static_cast<int64_t>(rows), static_cast<int64_t>(columns)}, at::kFloat).clone();
  return d;
}

}  // namespace latent
