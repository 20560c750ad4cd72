// Svg: an SVG document built as text, with the few elements qkv's charts draw (`qkv plot`,
// `qkv attention`). Pixels, origin top left; text and attribute values are escaped for XML.
#pragma once

#include <span>
#include <string>
#include <string_view>
#include <utility>

namespace qkv::plot {

// &, <, >, " and ' as entities, so any text (a prompt, a run name) is safe in content and in
// attribute values.
std::string xml_escape(std::string_view text);

// The i-th of ten distinct colours (matplotlib's tab10), cycling.
std::string_view series_colour(size_t i);

struct TextStyle {
  double size = 12;
  std::string_view anchor = "start";  // start | middle | end
  bool bold = false;
  double rotate = 0;  // degrees, about (x, y)
  std::string_view fill = "#222";
  bool monospace = false;
};

class Svg {
 public:
  Svg(double width, double height);  // a white canvas

  void rect(double x, double y, double w, double h, std::string_view fill,
            std::string_view stroke = "none");
  void line(double x1, double y1, double x2, double y2, std::string_view stroke,
            double width = 1.0);
  // A polyline of class `cls` (what tests and style sheets select on).
  void polyline(std::span<const std::pair<double, double>> points, std::string_view stroke,
                double width, std::string_view cls, double opacity = 1.0);
  void circle(double cx, double cy, double r, std::string_view fill);
  void text(double x, double y, std::string_view text, const TextStyle& style = {});
  // A horizontal colour bar from `from` to `to` (a linearGradient with this id).
  void gradient_rect(double x, double y, double w, double h, std::string_view id,
                     std::string_view from, std::string_view to);
  // <g class="cls" transform="translate(dx, dy)">; every begin needs an end.
  void begin_group(std::string_view cls, double dx = 0, double dy = 0);
  void end_group();

  // The complete document.
  std::string str() const;

 private:
  double width_, height_;
  std::string body_;
  int open_groups_ = 0;
};

}  // namespace qkv::plot
