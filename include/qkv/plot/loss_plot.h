// Loss curves as an SVG chart: `qkv plot RUN...` compares runs, and the trainer redraws
// RUN/loss.svg at each evaluation.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace qkv::plot {

// What a chart's x axis counts: iterations, or seconds of training (the sum of the steps' own
// times, evaluations not counted, as bench/time_to_loss.sh counts them), which compares runs
// whose steps cost differently.
enum class XAxis { iteration, seconds };

struct LossCurves {
  std::string name;                                   // the legend's label
  std::vector<std::pair<double, double>> train, val;  // (x, loss), in file order
};

// Reads RUN/metrics.jsonl: training lines {"iter", "loss", "ms"} and eval lines {"iter",
// "val_loss"}; a line cut short by a crash is skipped. Throws qkv::Error when the file is
// missing or holds no loss.
LossCurves read_loss_curves(const std::string& run_dir, std::string name,
                            XAxis x = XAxis::iteration);

// Reads val losses from a CSV whose header is "iter,val_loss" or "seconds,val_loss" (as
// bench/time_to_loss.sh writes for both qkv and PyTorch), so that runs of other programs share
// a chart. Throws qkv::Error naming the file and line when the header's x is not `x` or a row
// is not two numbers.
LossCurves read_val_csv(const std::string& path, std::string name, XAxis x);

// Training loss (thin) and validation loss (thick, with a dot per evaluation) against x, one
// colour per run, with axes, ticks, a legend and the title. log_y: a log10 loss axis (a loss of
// 0 sits at the smallest positive one).
std::string loss_chart_svg(const std::vector<LossCurves>& runs, std::string_view title,
                           bool log_y = false, XAxis x = XAxis::iteration);

// RUN/loss.svg from RUN/metrics.jsonl, replaced atomically.
void write_run_loss_chart(const std::string& run_dir);

}  // namespace qkv::plot
