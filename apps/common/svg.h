// Hand-written SVG line charts for the apps' curves.svg and train_lra's kernels.svg: a grid of panels, each
// with axes, "nice" ticks, a legend, line series and optional background histogram bars.
#pragma once
#include <optional>
#include <string>
#include <vector>

namespace luna::apps {

struct Series {
  std::string label;
  std::vector<double> x, y;  // same length; non-finite points break the line
  std::string color;         // any SVG colour; empty = from the palette
  bool dashed = false;
  bool markers = false;      // a dot at every point (sparse series such as dev evaluations)
};

// Grey bars behind the lines (e.g. how often each u was seen); heights are scaled to the panel.
struct Histogram {
  double low = 0, high = 1;
  std::vector<double> counts;
  std::string label;
};

struct Panel {
  std::string title, x_label, y_label;
  std::vector<Series> series;
  std::optional<Histogram> histogram;
  std::optional<double> y_min, y_max;  // fixed range; otherwise fitted to the data
};

// The whole document: `columns` panels per row under a title.
std::string render_svg(const std::string& title, const std::vector<Panel>& panels, int columns = 2);

// Escapes &, <, >, " for SVG text and attributes.
std::string svg_escape(const std::string& text);

}  // namespace luna::apps
