#include "latent/plot.h"

#include <ATen/ATen.h>
#include <stb_easy_font.h>  // all static: nothing to define

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "latent/atomic_file.h"
#include "latent/image.h"

namespace latent {
namespace {

struct Rgb {
  uint8_t r, g, b;
};

// Colour-blind-safe categorical colours (Okabe-Ito).
const Rgb kColours[] = {{0, 114, 178}, {213, 94, 0}, {0, 158, 115}, {204, 121, 167}, {230, 159, 0}, {86, 180, 233}, {0, 0, 0}};

class Canvas {
 public:
  Canvas(int w, int h) : w_(w), h_(h), px_(static_cast<size_t>(w) * h * 3, 255) {}

  void dot(int x, int y, Rgb c) {
    if (x < 0 || y < 0 || x >= w_ || y >= h_) return;
    uint8_t* p = &px_[(static_cast<size_t>(y) * w_ + x) * 3];
    p[0] = c.r;
    p[1] = c.g;
    p[2] = c.b;
  }
  void rect(int x0, int y0, int x1, int y1, Rgb c) {
    for (int y = y0; y < y1; ++y)
      for (int x = x0; x < x1; ++x) dot(x, y, c);
  }
  // A line `width` pixels wide; dashed when `dash` > 0 (pixels on, then off).
  void line(double x0, double y0, double x1, double y1, Rgb c, int width, int dash = 0) {
    const int steps = static_cast<int>(std::ceil(std::max(std::abs(x1 - x0), std::abs(y1 - y0)))) + 1;
    for (int i = 0; i <= steps; ++i) {
      if (dash > 0 && (i / dash) % 2 == 1) continue;
      const double t = static_cast<double>(i) / steps;
      const int x = static_cast<int>(std::lround(x0 + t * (x1 - x0))), y = static_cast<int>(std::lround(y0 + t * (y1 - y0)));
      rect(x - width / 2, y - width / 2, x - width / 2 + width, y - width / 2 + width, c);
    }
  }
  // Text with its top-left corner at (x, y), stb_easy_font's glyphs scaled `scale` times.
  void text(int x, int y, const std::string& s, Rgb c, int scale = 2) {
    std::vector<char> buf(s.size() * 300 + 1000);
    std::string copy = s;
    const int quads = stb_easy_font_print(0, 0, copy.data(), nullptr, buf.data(), static_cast<int>(buf.size()));
    const float* v = reinterpret_cast<const float*>(buf.data());
    for (int q = 0; q < quads; ++q) {
      const float* a = v + q * 16;  // 4 vertices of x, y, z, colour
      const float* b = a + 8;       // the opposite corner
      rect(x + static_cast<int>(a[0]) * scale, y + static_cast<int>(a[1]) * scale, x + static_cast<int>(b[0]) * scale,
           y + static_cast<int>(b[1]) * scale, c);
    }
  }
  static int text_width(const std::string& s, int scale = 2) {
    std::string copy = s;
    return stb_easy_font_width(copy.data()) * scale;
  }
  // Text turned 90 degrees counter-clockwise, its top-left corner (before turning) at (x, y + width).
  void text_vertical(int x, int y, const std::string& s, Rgb c, int scale = 2) {
    const int w = text_width(s, scale) + 2, h = 8 * scale;
    Canvas tmp(w, h);
    tmp.text(0, 0, s, c, scale);
    for (int ty = 0; ty < h; ++ty)
      for (int tx = 0; tx < w; ++tx) {
        const uint8_t* p = &tmp.px_[(static_cast<size_t>(ty) * w + tx) * 3];
        if (p[0] != 255 || p[1] != 255 || p[2] != 255) dot(x + ty, y + w - tx, {p[0], p[1], p[2]});
      }
  }
  at::Tensor tensor() const {  // [3, H, W] in [0, 1]
    at::Tensor t = at::from_blob(const_cast<uint8_t*>(px_.data()), {h_, w_, 3}, at::kByte).permute({2, 0, 1});
    return t.to(at::kFloat) / 255.0;
  }

 private:
  int w_, h_;
  std::vector<uint8_t> px_;
};

}  // namespace

void png_save_plot(const std::string& path, const std::vector<PlotSeries>& series, const std::string& title,
                   const std::string& x_label, const std::string& y_label, bool diagonal) {
  const int W = 720, H = 560, left = 90, right = 30, top = 60, bottom = 80;
  const int pw = W - left - right, ph = H - top - bottom;
  Canvas c(W, H);
  auto X = [&](double v) { return left + v * pw; };
  auto Y = [&](double v) { return top + (1 - v) * ph; };
  const Rgb grid{225, 225, 225}, axis{60, 60, 60}, ink{30, 30, 30};
  for (int i = 0; i <= 5; ++i) {  // grid and ticks at 0, 0.2, ..., 1
    const double v = i / 5.0;
    c.line(X(v), Y(0), X(v), Y(1), grid, 1);
    c.line(X(0), Y(v), X(1), Y(v), grid, 1);
    char tick[8];
    std::snprintf(tick, sizeof(tick), "%.1f", v);
    c.text(static_cast<int>(X(v)) - Canvas::text_width(tick) / 2, static_cast<int>(Y(0)) + 10, tick, ink);
    c.text(left - 12 - Canvas::text_width(tick), static_cast<int>(Y(v)) - 7, tick, ink);
  }
  c.line(X(0), Y(0), X(1), Y(0), axis, 2);
  c.line(X(0), Y(0), X(0), Y(1), axis, 2);
  if (diagonal) c.line(X(0), Y(0), X(1), Y(1), {150, 150, 150}, 1, 6);
  for (size_t s = 0; s < series.size(); ++s) {
    const Rgb col = kColours[s % (sizeof(kColours) / sizeof(kColours[0]))];
    const auto& se = series[s];
    for (size_t i = 1; i < se.x.size(); ++i) c.line(X(se.x[i - 1]), Y(se.y[i - 1]), X(se.x[i]), Y(se.y[i]), col, 3);
  }
  c.text((W - Canvas::text_width(title, 3)) / 2, 18, title, ink, 3);
  c.text(left + (pw - Canvas::text_width(x_label)) / 2, H - 40, x_label, ink);
  c.text_vertical(20, top + (ph - Canvas::text_width(y_label)) / 2, y_label, ink);
  // The legend in the lower right corner, where good ROC curves (hugging the top left) never pass.
  int legend_w = 0;
  for (const auto& se : series) legend_w = std::max(legend_w, Canvas::text_width(se.name));
  legend_w += 50;
  const int legend_h = static_cast<int>(series.size()) * 22 + 12;
  const int lx = left + pw - legend_w - 10, ly = top + ph - legend_h - 10;
  c.rect(lx, ly, lx + legend_w, ly + legend_h, {250, 250, 250});
  c.line(lx, ly, lx + legend_w, ly, grid, 1);
  c.line(lx, ly + legend_h, lx + legend_w, ly + legend_h, grid, 1);
  c.line(lx, ly, lx, ly + legend_h, grid, 1);
  c.line(lx + legend_w, ly, lx + legend_w, ly + legend_h, grid, 1);
  for (size_t s = 0; s < series.size(); ++s) {
    const Rgb col = kColours[s % (sizeof(kColours) / sizeof(kColours[0]))];
    const int y = ly + 10 + static_cast<int>(s) * 22;
    c.line(lx + 8, y + 7, lx + 34, y + 7, col, 3);
    c.text(lx + 42, y, series[s].name, ink);
  }
  atomic_write(path, png_encode(c.tensor()));
}

}  // namespace latent
