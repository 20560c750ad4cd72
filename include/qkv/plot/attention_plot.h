// Attention weights as SVG heatmaps (`qkv attention`): one panel per (layer, head), a row per
// query position and a column per key, labelled with their characters.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace qkv::plot {

struct AttentionPanel {
  std::string title;           // "layer 1 · head 0"
  std::vector<float> weights;  // [rows, cols], row-major, each in [0, 1]
};

struct AttentionChart {
  std::string title, subtitle;
  std::vector<std::string> row_labels, col_labels;  // one per row / column
  std::vector<AttentionPanel> panels;
  int64_t panels_per_row = 1;  // panels fill a grid row by row
};

// The labels' form of a character: '␣' for a space, '⏎' for a newline, '⇥' for a tab, the
// character itself otherwise (UTF-8).
std::string display_char(char32_t c);

// Throws qkv::Error when a panel's weights do not match the labels.
std::string attention_chart_svg(const AttentionChart& chart);

}  // namespace qkv::plot
