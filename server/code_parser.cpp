#include "code_parser.h"

#include <charconv>
#include <cmath>

namespace latent::server {
namespace {

bool is_digit(char c) { return c >= '0' && c <= '9'; }

class Cursor {
 public:
  explicit Cursor(std::string_view s) : p_(s.data()), end_(s.data() + s.size()) {}

  void skip_space() {
    while (p_ < end_ && (*p_ == ' ' || *p_ == '\t' || *p_ == '\n' || *p_ == '\r')) ++p_;
  }
  bool eat(char c) {  // after any whitespace
    skip_space();
    if (p_ == end_ || *p_ != c) return false;
    ++p_;
    return true;
  }
  bool eat_string(std::string_view s) {  // a JSON string without escapes equal to s
    if (!eat('"') || static_cast<size_t>(end_ - p_) < s.size() + 1 || std::string_view(p_, s.size()) != s || p_[s.size()] != '"')
      return false;
    p_ += s.size() + 1;
    return true;
  }
  // A number as JSON writes it: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?
  bool number(double& value) {
    skip_space();
    const char* start = p_;
    const char* q = p_;
    if (q < end_ && *q == '-') ++q;
    if (q < end_ && *q == '0') {
      ++q;
    } else {
      if (q == end_ || !is_digit(*q)) return false;
      while (q < end_ && is_digit(*q)) ++q;
    }
    if (q < end_ && *q == '.') {
      if (++q == end_ || !is_digit(*q)) return false;
      while (q < end_ && is_digit(*q)) ++q;
    }
    if (q < end_ && (*q == 'e' || *q == 'E')) {
      if (++q < end_ && (*q == '+' || *q == '-')) ++q;
      if (q == end_ || !is_digit(*q)) return false;
      while (q < end_ && is_digit(*q)) ++q;
    }
    const auto [stop, ec] = std::from_chars(start, q, value);
    if (ec != std::errc() || stop != q) return false;  // out of double's range included
    p_ = q;
    return true;
  }
  bool at_end() {
    skip_space();
    return p_ == end_;
  }

 private:
  const char* p_;
  const char* end_;
};

}  // namespace

bool parse_code_rows(std::string_view body, std::string_view key, int64_t d, int64_t max_rows, double bound,
                     std::vector<float>& out) {
  out.clear();
  Cursor c(body);
  if (!c.eat('{') || !c.eat_string(key) || !c.eat(':') || !c.eat('[')) return false;
  int64_t rows = 0;
  do {
    if (++rows > max_rows || !c.eat('[')) return false;
    for (int64_t i = 0; i < d; ++i) {
      double v = 0;
      if ((i > 0 && !c.eat(',')) || !c.number(v) || !(std::abs(v) <= bound)) return false;
      out.push_back(static_cast<float>(v));
    }
    if (!c.eat(']')) return false;
  } while (c.eat(','));
  return c.eat(']') && c.eat('}') && c.at_end();
}

}  // namespace latent::server
