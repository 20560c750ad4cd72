#include "qkv/plot/loss_plot.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <sstream>
#include <nlohmann/json.hpp>

#include "qkv/error.h"
#include "qkv/error_context.h"
#include "qkv/io/durable_file.h"
#include "qkv/io/regular_file.h"
#include "svg.h"

namespace qkv::plot {
namespace {

struct Range {
  double lo, hi;
  double span() const { return hi - lo; }
};

// About `target` round tick values (1, 2 or 5 times a power of ten apart) inside r.
std::vector<double> nice_ticks(Range r, int target) {
  const double raw = r.span() / target, mag = std::pow(10.0, std::floor(std::log10(raw)));
  const double step = raw / mag < 1.5   ? mag
                      : raw / mag < 3.5 ? 2 * mag
                      : raw / mag < 7.5 ? 5 * mag
                                        : 10 * mag;
  std::vector<double> ticks;
  for (double t = std::ceil(r.lo / step) * step; t <= r.hi + step * 1e-9; t += step)
    ticks.push_back(std::abs(t) < step * 1e-9 ? 0.0 : t);
  return ticks;
}

// Ticks of a log10 axis over r (in log10 units): 1, 2 and 5 times each power of ten while the
// axis spans few decades, the powers alone beyond.
std::vector<double> log_ticks(Range r) {
  const bool dense = r.span() <= 3;
  std::vector<double> ticks;
  for (int k = int(std::floor(r.lo)); k <= int(std::ceil(r.hi)); ++k)
    for (double m : {1.0, 2.0, 5.0}) {
      const double v = m * std::pow(10.0, k), at = std::log10(v);
      if ((dense || m == 1.0) && at >= r.lo - 1e-9 && at <= r.hi + 1e-9) ticks.push_back(v);
    }
  return ticks;
}

// A range holding f(value) for every value of every run, never empty.
template <class F>
Range extent(const std::vector<LossCurves>& runs, bool x, F f) {
  Range r{INFINITY, -INFINITY};
  for (const LossCurves& run : runs)
    for (const auto* s : {&run.train, &run.val})
      for (const auto& p : *s) {
        const double v = f(x ? p.first : p.second);
        r = {std::min(r.lo, v), std::max(r.hi, v)};
      }
  if (!std::isfinite(r.lo)) return {0, 1};
  if (r.span() == 0) return {r.lo - 1, r.hi + 1};
  return r;
}

// The smallest positive loss: where a log axis puts losses of 0.
double smallest_positive(const std::vector<LossCurves>& runs) {
  double m = INFINITY;
  for (const LossCurves& run : runs)
    for (const auto* s : {&run.train, &run.val})
      for (const auto& p : *s)
        if (p.second > 0) m = std::min(m, p.second);
  return std::isfinite(m) ? m : 1.0;
}

}  // namespace

LossCurves read_loss_curves(const std::string& run_dir, std::string name, XAxis x) {
  const std::string path = (std::filesystem::path(run_dir) / "metrics.jsonl").string();
  std::istringstream in(in_context("", [&] { return io::read_regular_file(path); },
                                   fmt::format(" (is {} a run directory?)", run_dir)));
  LossCurves c{std::move(name), {}, {}};
  double seconds = 0;  // of the steps so far: an evaluation sits at the time before it
  for (std::string line; std::getline(in, line);) {
    const auto j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (!j.is_object() || !j.contains("iter") || !j["iter"].is_number()) continue;
    if (j.contains("ms") && j["ms"].is_number()) seconds += j["ms"].get<double>() * 1e-3;
    const double at = x == XAxis::seconds ? seconds : j["iter"].get<double>();
    if (j.contains("loss") && j["loss"].is_number())
      c.train.emplace_back(at, j["loss"].get<double>());
    if (j.contains("val_loss") && j["val_loss"].is_number())
      c.val.emplace_back(at, j["val_loss"].get<double>());
  }
  QKV_CHECK(!c.train.empty() || !c.val.empty(), "{}: holds no losses yet", path);
  return c;
}

LossCurves read_val_csv(const std::string& path, std::string name, XAxis x) {
  std::istringstream in(io::read_regular_file(path));
  const std::string want = x == XAxis::seconds ? "seconds,val_loss" : "iter,val_loss";
  std::string line;
  std::getline(in, line);
  QKV_CHECK(line == want, "{}:1: the header is '{}', this chart needs '{}'{}", path, line, want,
            x == XAxis::seconds ? "" : " (--x seconds plots a time column)");
  LossCurves c{std::move(name), {}, {}};
  for (int n = 2; std::getline(in, line); ++n) {
    double at = 0, loss = 0;
    char comma = 0, rest = 0;
    std::istringstream row(line);
    QKV_CHECK(row >> at >> comma >> loss && comma == ',' && !(row >> rest),
              "{}:{}: '{}' is not two numbers", path, n, line);
    c.val.emplace_back(at, loss);
  }
  QKV_CHECK(!c.val.empty(), "{}: holds no losses", path);
  return c;
}

std::string loss_chart_svg(const std::vector<LossCurves>& runs, std::string_view title,
                           bool log_y, XAxis x) {
  constexpr double kW = 880, kH = 520, kLeft = 70, kTop = 50, kBottom = kH - 60;
  const double right = kW - 220;  // the legend goes beyond
  const double floor_y = smallest_positive(runs);
  auto ty = [&](double y) { return log_y ? std::log10(std::max(y, floor_y)) : y; };
  const Range xr = extent(runs, true, [](double x) { return x; }), y0 = extent(runs, false, ty);
  const Range yr{y0.lo - 0.04 * y0.span(), y0.hi + 0.04 * y0.span()};
  auto px = [&](double x) { return kLeft + (x - xr.lo) / xr.span() * (right - kLeft); };
  auto py = [&](double y) { return kBottom - (ty(y) - yr.lo) / yr.span() * (kBottom - kTop); };

  Svg svg(kW, kH);
  svg.text(kW / 2, 28, title, {.size = 16, .anchor = "middle", .bold = true});
  for (double t : nice_ticks(xr, 8)) {
    svg.line(px(t), kTop, px(t), kBottom, "#e4e4e4");
    svg.line(px(t), kBottom, px(t), kBottom + 5, "#444");
    svg.text(px(t), kBottom + 19, fmt::format("{:g}", t), {.size = 11, .anchor = "middle"});
  }
  for (double t : log_y ? log_ticks(yr) : nice_ticks(yr, 6)) {
    svg.line(kLeft, py(t), right, py(t), "#e4e4e4");
    svg.line(kLeft - 5, py(t), kLeft, py(t), "#444");
    svg.text(kLeft - 8, py(t) + 4, fmt::format("{:g}", t), {.size = 11, .anchor = "end"});
  }
  svg.rect(kLeft, kTop, right - kLeft, kBottom - kTop, "none", "#444");
  svg.text((kLeft + right) / 2, kH - 18,
           x == XAxis::seconds ? "seconds of training (evaluations not counted)" : "iteration",
           {.size = 13, .anchor = "middle"});
  svg.text(22, (kTop + kBottom) / 2,
           log_y ? "loss (nats per character, log scale)" : "loss (nats per character)",
           {.size = 13, .anchor = "middle", .rotate = -90});

  std::vector<std::pair<double, double>> pts;
  auto to_px = [&](const std::vector<std::pair<double, double>>& s) {
    pts.clear();
    for (const auto& [x, y] : s) pts.emplace_back(px(x), py(y));
    return std::span<const std::pair<double, double>>(pts);
  };
  // Every noisy training curve first, so none hides another run's validation curve.
  for (size_t i = 0; i < runs.size(); ++i)
    if (!runs[i].train.empty())
      svg.polyline(to_px(runs[i].train), series_colour(i), 1, "train", 0.45);
  for (size_t i = 0; i < runs.size(); ++i) {
    if (runs[i].val.empty()) continue;
    svg.polyline(to_px(runs[i].val), series_colour(i), 2.5, "val");
    for (const auto& [x, y] : pts) svg.circle(x, y, 3.5, series_colour(i));
  }

  const double lx = right + 20;
  double ly = kTop + 8;
  for (size_t i = 0; i < runs.size(); ++i, ly += 22) {
    svg.line(lx, ly, lx + 24, ly, series_colour(i), 3);
    svg.text(lx + 32, ly + 4, runs[i].name, {.size = 12});
  }
  ly += 14;
  if (std::any_of(runs.begin(), runs.end(), [](const LossCurves& r) { return !r.train.empty(); })) {
    svg.line(lx, ly, lx + 24, ly, "#555", 1);
    svg.text(lx + 32, ly + 4, "train (each step)", {.size = 11, .fill = "#555"});
    ly += 20;
  }
  svg.line(lx, ly, lx + 24, ly, "#555", 2.5);
  svg.circle(lx + 12, ly, 3.5, "#555");
  svg.text(lx + 32, ly + 4, "val (each evaluation)", {.size = 11, .fill = "#555"});
  return svg.str();
}

void write_run_loss_chart(const std::string& run_dir) {
  const std::filesystem::path dir(run_dir);
  const std::string name =
      dir.filename().empty() ? dir.parent_path().filename().string() : dir.filename().string();
  io::replace_file(dir / "loss.svg",
                   loss_chart_svg({read_loss_curves(run_dir, name)}, name + ": loss"));
}

}  // namespace qkv::plot
