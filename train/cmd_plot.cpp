// `qkv plot`: the loss curves of one or more runs on one SVG chart, to compare experiments.
#include <fmt/ranges.h>

#include <filesystem>
#include <map>
#include <memory>

#include "commands.h"
#include "qkv/error.h"
#include "qkv/io/durable_file.h"
#include "qkv/plot/loss_plot.h"

namespace qkv::cli {
namespace {

// A run's directory name, or the path as given when two runs share a name.
std::vector<std::string> run_labels(const std::vector<std::string>& runs) {
  auto base = [](const std::string& r) {
    const std::filesystem::path p(r);
    return (p.filename().empty() ? p.parent_path().filename() : p.filename()).string();
  };
  std::map<std::string, int> count;
  for (const auto& r : runs) ++count[base(r)];
  std::vector<std::string> labels;
  for (const auto& r : runs) labels.push_back(count[base(r)] > 1 ? r : base(r));
  return labels;
}

}  // namespace

void add_plot(CLI::App& app, std::function<int()>& run) {
  struct Args {
    std::vector<std::string> runs, labels;
    std::string out = "loss.svg", title, x = "iter";
    bool log_y = false;
  };
  auto a = std::make_shared<Args>();
  CLI::App* cmd = app.add_subcommand(
      "plot", "Plot train and val loss of runs (their metrics.jsonl) on one SVG chart");
  cmd->add_option("runs", a->runs,
                  "Run directories, or CSV files of val losses (a header 'iter,val_loss' or "
                  "'seconds,val_loss', as bench/time_to_loss.sh writes)")
      ->required();
  cmd->add_option("--x", a->x,
                  "The x axis: iter, or seconds of training (the steps' own times, "
                  "evaluations not counted)")
      ->check(CLI::IsMember({"iter", "seconds"}))
      ->capture_default_str();
  cmd->add_option("--label", a->labels,
                  "The legend's name for each input, in order (default: its file or directory "
                  "name); give one per input");
  cmd->add_option("-o,--out", a->out, "SVG file to write")->capture_default_str();
  cmd->add_option("--title", a->title, "Chart title (default: the run names)");
  cmd->add_flag("--log-y", a->log_y, "Log-scale loss axis, to tell apart losses near 0");
  on_run(*cmd, run, [a]() -> int {
    QKV_CHECK(a->labels.empty() || a->labels.size() == a->runs.size(),
              "--label given {} times for {} inputs: give one per input, in order",
              a->labels.size(), a->runs.size());
    const std::vector<std::string> labels = a->labels.empty() ? run_labels(a->runs) : a->labels;
    const plot::XAxis x = a->x == "seconds" ? plot::XAxis::seconds : plot::XAxis::iteration;
    std::vector<plot::LossCurves> curves;
    for (size_t i = 0; i < a->runs.size(); ++i)
      curves.push_back(a->runs[i].ends_with(".csv")
                           ? plot::read_val_csv(a->runs[i], labels[i], x)
                           : plot::read_loss_curves(a->runs[i], labels[i], x));
    const std::string title =
        a->title.empty() ? fmt::format("loss: {}", fmt::join(labels, ", ")) : a->title;
    io::replace_file(a->out, plot::loss_chart_svg(curves, title, a->log_y, x));
    fmt::print("wrote {} ({} run{})\n", a->out, curves.size(), curves.size() == 1 ? "" : "s");
    return 0;
  });
}

}  // namespace qkv::cli
