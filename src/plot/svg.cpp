#include "svg.h"

#include <fmt/format.h>

#include <cassert>

namespace qkv::plot {

std::string xml_escape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    const char* entity = c == '&'    ? "&amp;"
                         : c == '<'  ? "&lt;"
                         : c == '>'  ? "&gt;"
                         : c == '"'  ? "&quot;"
                         : c == '\'' ? "&apos;"
                                     : nullptr;
    if (entity)
      out += entity;
    else
      out += c;
  }
  return out;
}

std::string_view series_colour(size_t i) {
  static const char* const kColours[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                                         "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};
  return kColours[i % 10];
}

Svg::Svg(double width, double height) : width_(width), height_(height) {
  rect(0, 0, width, height, "white");
}

void Svg::rect(double x, double y, double w, double h, std::string_view fill,
               std::string_view stroke) {
  body_ += fmt::format(R"(<rect x="{:.1f}" y="{:.1f}" width="{:.1f}" height="{:.1f}" fill="{}")", x,
                       y, w, h, fill);
  if (stroke != "none") body_ += fmt::format(R"( stroke="{}")", stroke);
  body_ += "/>\n";
}

void Svg::line(double x1, double y1, double x2, double y2, std::string_view stroke, double width) {
  body_ += fmt::format(
      R"(<line x1="{:.1f}" y1="{:.1f}" x2="{:.1f}" y2="{:.1f}" stroke="{}" stroke-width="{}"/>)"
      "\n",
      x1, y1, x2, y2, stroke, width);
}

void Svg::polyline(std::span<const std::pair<double, double>> points, std::string_view stroke,
                   double width, std::string_view cls, double opacity) {
  body_ += fmt::format(R"(<polyline class="{}" fill="none" stroke="{}" stroke-width="{}")",
                       xml_escape(cls), stroke, width);
  if (opacity < 1.0) body_ += fmt::format(R"( stroke-opacity="{}")", opacity);
  body_ += R"( stroke-linejoin="round" points=")";
  for (const auto& [x, y] : points) body_ += fmt::format("{:.1f},{:.1f} ", x, y);
  body_ += "\"/>\n";
}

void Svg::circle(double cx, double cy, double r, std::string_view fill) {
  body_ += fmt::format(R"(<circle cx="{:.1f}" cy="{:.1f}" r="{}" fill="{}"/>)"
                       "\n",
                       cx, cy, r, fill);
}

void Svg::text(double x, double y, std::string_view text, const TextStyle& s) {
  body_ += fmt::format(R"(<text x="{:.1f}" y="{:.1f}" font-size="{}" text-anchor="{}" fill="{}")",
                       x, y, s.size, s.anchor, s.fill);
  if (s.bold) body_ += R"( font-weight="bold")";
  if (s.monospace) body_ += R"( font-family="monospace")";
  if (s.rotate != 0)
    body_ += fmt::format(" transform=\"rotate({} {:.1f} {:.1f})\"", s.rotate, x, y);
  body_ += fmt::format(">{}</text>\n", xml_escape(text));
}

void Svg::gradient_rect(double x, double y, double w, double h, std::string_view id,
                        std::string_view from, std::string_view to) {
  body_ += fmt::format(
      R"(<defs><linearGradient id="{0}"><stop offset="0" stop-color="{1}"/>)"
      R"(<stop offset="1" stop-color="{2}"/></linearGradient></defs>)"
      "\n"
      R"~(<rect x="{3:.1f}" y="{4:.1f}" width="{5:.1f}" height="{6:.1f}" fill="url(#{0})" )~"
      R"(stroke="#888"/>)"
      "\n",
      xml_escape(id), from, to, x, y, w, h);
}

void Svg::begin_group(std::string_view cls, double dx, double dy) {
  body_ += fmt::format(R"~(<g class="{}" transform="translate({:.1f} {:.1f})">)~"
                       "\n",
                       xml_escape(cls), dx, dy);
  ++open_groups_;
}

void Svg::end_group() {
  assert(open_groups_ > 0);
  body_ += "</g>\n";
  --open_groups_;
}

std::string Svg::str() const {
  assert(open_groups_ == 0);
  return fmt::format(
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
      R"(<svg xmlns="http://www.w3.org/2000/svg" width="{0:.0f}" height="{1:.0f}" )"
      R"(viewBox="0 0 {0:.0f} {1:.0f}" font-family="sans-serif">)"
      "\n{2}</svg>\n",
      width_, height_, body_);
}

}  // namespace qkv::plot
