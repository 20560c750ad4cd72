#include "qkv/plot/attention_plot.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "qkv/data/utf8.h"
#include "qkv/error.h"
#include "svg.h"

namespace qkv::plot {
namespace {

constexpr const char* kLow = "#ffffff";
constexpr const char* kHigh = "#08306b";

// Linear from white (0) to dark blue (1), the colour bar's scale.
std::string weight_colour(float w) {
  const float t = std::clamp(w, 0.0f, 1.0f);
  auto mix = [t](int lo, int hi) { return int(std::lround(lo + (hi - lo) * t)); };
  return fmt::format("#{:02x}{:02x}{:02x}", mix(0xff, 0x08), mix(0xff, 0x30), mix(0xff, 0x6b));
}

size_t label_chars(const std::vector<std::string>& labels) {
  size_t n = 1;
  for (const auto& l : labels) n = std::max(n, data::decode_utf8(l, "label").size());
  return n;
}

}  // namespace

std::string display_char(char32_t c) {
  if (c == U' ') return "\u2423";
  if (c == U'\n') return "\u23ce";
  if (c == U'\t') return "\u21e5";
  std::string s;
  data::append_utf8(s, c);
  return s;
}

std::string attention_chart_svg(const AttentionChart& chart) {
  const int64_t rows = int64_t(chart.row_labels.size()), cols = int64_t(chart.col_labels.size());
  QKV_CHECK(rows > 0 && cols > 0 && !chart.panels.empty() && chart.panels_per_row > 0,
            "attention chart: nothing to draw ({} rows, {} columns, {} panels)", rows, cols,
            chart.panels.size());
  for (const AttentionPanel& p : chart.panels)
    QKV_CHECK(int64_t(p.weights.size()) == rows * cols,
              "attention chart: panel '{}' has {} weights for {} x {} labels", p.title,
              p.weights.size(), rows, cols);

  // Cells shrink for long texts so a panel stays about 600 pixels at most.
  const double cell = std::clamp(600.0 / double(std::max(rows, cols)), 7.0, 16.0);
  const double font = std::max(6.0, cell * 0.75), char_w = font * 0.62;
  const bool rotate_cols = label_chars(chart.col_labels) > 1;
  const double left = double(label_chars(chart.row_labels)) * char_w + 8;
  const double top = 20 + (rotate_cols ? double(label_chars(chart.col_labels)) * char_w : font) + 6;
  const double panel_w = left + double(cols) * cell + 24, panel_h = top + double(rows) * cell + 20;
  const int64_t per_row = std::min<int64_t>(chart.panels_per_row, int64_t(chart.panels.size()));
  const int64_t grid_rows = (int64_t(chart.panels.size()) + per_row - 1) / per_row;
  const double header = 88;
  // Wide enough for the title and subtitle too, at about 0.6 em per character.
  const double text_w = std::max(double(data::decode_utf8(chart.title).size()) * 16 * 0.6,
                                 double(data::decode_utf8(chart.subtitle).size()) * 12 * 0.55);
  const double width = std::max(double(per_row) * panel_w, text_w) + 20;
  Svg svg(width, header + double(grid_rows) * panel_h + 10);

  svg.text(10, 24, chart.title, {.size = 16, .bold = true});
  svg.text(10, 44, chart.subtitle, {.size = 12, .fill = "#555"});
  svg.text(10, 66, "weight 0", {.size = 11});
  svg.gradient_rect(62, 56, 110, 12, "attention-scale", kLow, kHigh);
  svg.text(178, 66, "1", {.size = 11});

  for (size_t p = 0; p < chart.panels.size(); ++p) {
    const AttentionPanel& panel = chart.panels[p];
    svg.begin_group("panel", 10 + double(int64_t(p) % per_row) * panel_w,
                    header + double(int64_t(p) / per_row) * panel_h);
    svg.text(left, 12, panel.title, {.size = 12, .bold = true});
    for (int64_t j = 0; j < cols; ++j) {
      const double x = left + (double(j) + 0.5) * cell;
      if (rotate_cols)
        svg.text(x + font * 0.35, top - 4, chart.col_labels[size_t(j)],
                 {.size = font, .rotate = -90, .monospace = true});
      else
        svg.text(x, top - 4, chart.col_labels[size_t(j)],
                 {.size = font, .anchor = "middle", .monospace = true});
    }
    for (int64_t i = 0; i < rows; ++i) {
      const double y = top + double(i) * cell;
      svg.text(left - 4, y + cell * 0.5 + font * 0.35, chart.row_labels[size_t(i)],
               {.size = font, .anchor = "end", .monospace = true});
      // Near-white cells are left to the background, which keeps long prompts' files small.
      for (int64_t j = 0; j < cols; ++j)
        if (const float w = panel.weights[size_t(i * cols + j)]; w >= 0.005f)
          svg.rect(left + double(j) * cell, y, cell, cell, weight_colour(w));
    }
    svg.rect(left, top, double(cols) * cell, double(rows) * cell, "none", "#888");
    svg.end_group();
  }
  return svg.str();
}

}  // namespace qkv::plot
