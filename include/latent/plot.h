/// @brief Line plots as PNG: axes from 0 to 1 with ticks and labels, a title and a legend (the
/// text drawn with stb_easy_font, so no font file is needed). For ROC and precision-recall curves.
#pragma once

#include <string>
#include <vector>

namespace latent {

struct PlotSeries {
  std::string name;
  std::vector<double> x, y;  // in [0, 1]
};

/// Writes a 720 x 560 RGB PNG atomically. `diagonal` adds the dashed chance line y = x (ROC).
void png_save_plot(const std::string& path, const std::vector<PlotSeries>& series, const std::string& title,
                   const std::string& x_label, const std::string& y_label, bool diagonal);

}  // namespace latent
