// Loss curves as an SVG chart: `qkv plot RUN...` compares runs, and the trainer redraws
// RUN/loss.svg at each evaluation.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace qkv::plot {

struct LossCurves {
  std::string name;                                   // the legend's label
  std::vector<std::pair<double, double>> train, val;  // (iter, loss), in file order
};

// Reads RUN/metrics.jsonl: training lines {"iter", "loss"} and eval lines {"iter", "val_loss"};
// a line cut short by a crash is skipped. Throws qkv::Error when the file is missing or holds
// no loss.
LossCurves read_loss_curves(const std::string& run_dir, std::string name);

// Training loss (thin) and validation loss (thick, with a dot per evaluation) against the
// iteration, one colour per run, with axes, ticks, a legend and the title. log_y: a log10 loss
// axis (a loss of 0 sits at the smallest positive one).
std::string loss_chart_svg(const std::vector<LossCurves>& runs, std::string_view title,
                           bool log_y = false);

// RUN/loss.svg from RUN/metrics.jsonl, replaced atomically.
void write_run_loss_chart(const std::string& run_dir);

}  // namespace qkv::plot
