// SVG panels with axes and ticks; numbers are written with a fixed precision so files are stable.
#include "svg.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <sstream>

namespace luna::apps {

namespace {

constexpr double kPanelWidth = 460, kPanelHeight = 300;
constexpr double kLeft = 62, kRight = 14, kTop = 30, kBottom = 44;  // plot margins inside a panel
constexpr double kTitleHeight = 34;
const char* const kPalette[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd",
                                "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f"};

std::string num(double v) {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%.2f", v);
  return buffer;
}

// Tick label: short and without trailing zeros.
std::string tick_label(double v, double step) {
  char buffer[32];
  if (std::abs(v) < step * 1e-6) v = 0;
  const double magnitude = std::max(std::abs(v), step);
  if (magnitude >= 1e5 || magnitude < 1e-3) {
    std::snprintf(buffer, sizeof buffer, "%.2g", v);
  } else {
    const int decimals = std::max(0, int(std::ceil(-std::log10(step) - 1e-9)));
    std::snprintf(buffer, sizeof buffer, "%.*f", std::min(decimals, 6), v);
  }
  return buffer;
}

// About `target` round-numbered ticks covering [low, high]: steps of 1, 2 or 5 times a power of ten.
std::vector<double> nice_ticks(double low, double high, int target, double& step) {
  const double span = high - low;
  const double raw = span / std::max(1, target);
  const double power = std::pow(10.0, std::floor(std::log10(raw)));
  const double fraction = raw / power;
  step = (fraction < 1.5 ? 1 : fraction < 3.5 ? 2 : fraction < 7.5 ? 5 : 10) * power;
  std::vector<double> ticks;
  for (double t = std::ceil(low / step - 1e-9) * step; t <= high + step * 1e-9; t += step) ticks.push_back(t);
  return ticks;
}

struct Range {
  double low = std::numeric_limits<double>::infinity();
  double high = -std::numeric_limits<double>::infinity();
  void add(double v) {
    if (!std::isfinite(v)) return;
    low = std::min(low, v);
    high = std::max(high, v);
  }
  // A usable interval even for no data or a single value.
  void finish(double pad_fraction) {
    if (!(low <= high)) low = 0, high = 1;
    if (high - low < 1e-12 * std::max(1.0, std::abs(high))) {
      const double pad = std::max(std::abs(high) * 0.05, 0.5);
      low -= pad, high += pad;
    } else {
      const double pad = (high - low) * pad_fraction;
      low -= pad, high += pad;
    }
  }
};

void render_panel(std::ostringstream& svg, const Panel& panel, double origin_x, double origin_y) {
  const double plot_x = origin_x + kLeft, plot_y = origin_y + kTop;
  const double plot_w = kPanelWidth - kLeft - kRight, plot_h = kPanelHeight - kTop - kBottom;
  Range xr, yr;
  for (const auto& s : panel.series) {
    for (double v : s.x) xr.add(v);
    for (double v : s.y) yr.add(v);
  }
  if (panel.histogram) xr.add(panel.histogram->low), xr.add(panel.histogram->high);
  xr.finish(0.0);
  yr.finish(0.05);
  if (panel.y_min) yr.low = *panel.y_min;
  if (panel.y_max) yr.high = *panel.y_max;
  auto px = [&](double x) { return plot_x + (x - xr.low) / (xr.high - xr.low) * plot_w; };
  auto py = [&](double y) { return plot_y + plot_h - (y - yr.low) / (yr.high - yr.low) * plot_h; };

  svg << "<g>\n<text x=\"" << num(origin_x + kPanelWidth / 2) << "\" y=\"" << num(origin_y + 18)
      << "\" text-anchor=\"middle\" font-size=\"13\" font-weight=\"bold\">" << svg_escape(panel.title) << "</text>\n";
  svg << "<rect x=\"" << num(plot_x) << "\" y=\"" << num(plot_y) << "\" width=\"" << num(plot_w) << "\" height=\""
      << num(plot_h) << "\" fill=\"#ffffff\" stroke=\"#444444\" stroke-width=\"1\"/>\n";

  if (panel.histogram && !panel.histogram->counts.empty()) {
    const Histogram& h = *panel.histogram;
    const double peak = *std::max_element(h.counts.begin(), h.counts.end());
    const double width = (h.high - h.low) / double(h.counts.size());
    for (size_t i = 0; i < h.counts.size() && peak > 0; ++i) {
      const double x0 = px(h.low + width * double(i)), x1 = px(h.low + width * double(i + 1));
      const double bar = h.counts[i] / peak * plot_h * 0.35;  // the lower third: a backdrop, not a curve
      svg << "<rect x=\"" << num(x0) << "\" y=\"" << num(plot_y + plot_h - bar) << "\" width=\"" << num(x1 - x0)
          << "\" height=\"" << num(bar) << "\" fill=\"#d9d9d9\"/>\n";
    }
  }

  double step = 1;
  for (double t : nice_ticks(xr.low, xr.high, 6, step)) {
    svg << "<line x1=\"" << num(px(t)) << "\" y1=\"" << num(plot_y) << "\" x2=\"" << num(px(t)) << "\" y2=\""
        << num(plot_y + plot_h) << "\" stroke=\"#eeeeee\"/>\n";
    svg << "<text x=\"" << num(px(t)) << "\" y=\"" << num(plot_y + plot_h + 14)
        << "\" text-anchor=\"middle\" font-size=\"10\">" << tick_label(t, step) << "</text>\n";
  }
  for (double t : nice_ticks(yr.low, yr.high, 5, step)) {
    svg << "<line x1=\"" << num(plot_x) << "\" y1=\"" << num(py(t)) << "\" x2=\"" << num(plot_x + plot_w) << "\" y2=\""
        << num(py(t)) << "\" stroke=\"#eeeeee\"/>\n";
    svg << "<text x=\"" << num(plot_x - 5) << "\" y=\"" << num(py(t) + 3)
        << "\" text-anchor=\"end\" font-size=\"10\">" << tick_label(t, step) << "</text>\n";
  }
  svg << "<text x=\"" << num(plot_x + plot_w / 2) << "\" y=\"" << num(origin_y + kPanelHeight - 8)
      << "\" text-anchor=\"middle\" font-size=\"11\">" << svg_escape(panel.x_label) << "</text>\n";
  svg << "<text transform=\"translate(" << num(origin_x + 14) << "," << num(plot_y + plot_h / 2)
      << ") rotate(-90)\" text-anchor=\"middle\" font-size=\"11\">" << svg_escape(panel.y_label) << "</text>\n";

  // Lines are clipped to the plot so a fixed y range cannot spill into neighbours.
  static int clip_id = 0;
  const int clip = clip_id++;
  svg << "<clipPath id=\"clip" << clip << "\"><rect x=\"" << num(plot_x) << "\" y=\"" << num(plot_y) << "\" width=\""
      << num(plot_w) << "\" height=\"" << num(plot_h) << "\"/></clipPath>\n";
  for (size_t s = 0; s < panel.series.size(); ++s) {
    const Series& series = panel.series[s];
    const std::string color = series.color.empty() ? kPalette[s % 10] : series.color;
    std::string points;
    auto flush = [&]() {
      if (points.empty()) return;
      svg << "<polyline clip-path=\"url(#clip" << clip << ")\" fill=\"none\" stroke=\"" << color
          << "\" stroke-width=\"1.6\"" << (series.dashed ? " stroke-dasharray=\"6,4\"" : "") << " points=\"" << points
          << "\"/>\n";
      points.clear();
    };
    const size_t n = std::min(series.x.size(), series.y.size());
    for (size_t i = 0; i < n; ++i) {
      if (!std::isfinite(series.x[i]) || !std::isfinite(series.y[i])) {
        flush();
        continue;
      }
      points += num(px(series.x[i])) + "," + num(py(series.y[i])) + " ";
      if (series.markers)
        svg << "<circle clip-path=\"url(#clip" << clip << ")\" cx=\"" << num(px(series.x[i])) << "\" cy=\""
            << num(py(series.y[i])) << "\" r=\"2.5\" fill=\"" << color << "\"/>\n";
    }
    flush();
    // Legend entry, top right inside the plot.
    const double ly = plot_y + 12 + 14 * double(s);
    svg << "<line x1=\"" << num(plot_x + plot_w - 120) << "\" y1=\"" << num(ly - 4) << "\" x2=\""
        << num(plot_x + plot_w - 100) << "\" y2=\"" << num(ly - 4) << "\" stroke=\"" << color
        << "\" stroke-width=\"2\"" << (series.dashed ? " stroke-dasharray=\"4,3\"" : "") << "/>\n";
    svg << "<text x=\"" << num(plot_x + plot_w - 96) << "\" y=\"" << num(ly) << "\" font-size=\"10\">"
        << svg_escape(series.label) << "</text>\n";
  }
  svg << "</g>\n";
}

}  // namespace

std::string svg_escape(const std::string& text) {
  std::string out;
  for (char ch : text) {
    switch (ch) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      default: out += ch;
    }
  }
  return out;
}

std::string render_svg(const std::string& title, const std::vector<Panel>& panels, int columns) {
  columns = std::max(1, std::min<int>(columns, std::max<int>(1, int(panels.size()))));
  const int rows = (int(panels.size()) + columns - 1) / columns;
  // Wide enough for the title too (about 8 px per character at 15 px).
  const double width = std::max(kPanelWidth * columns, 8.0 * double(title.size()) + 40), height = kTitleHeight + kPanelHeight * std::max(rows, 1);
  std::ostringstream svg;
  svg << "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
  svg << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << num(width) << "\" height=\"" << num(height)
      << "\" viewBox=\"0 0 " << num(width) << " " << num(height) << "\" font-family=\"sans-serif\">\n";
  svg << "<rect width=\"100%\" height=\"100%\" fill=\"#fafafa\"/>\n";
  svg << "<text x=\"" << num(width / 2) << "\" y=\"22\" text-anchor=\"middle\" font-size=\"15\">" << svg_escape(title)
      << "</text>\n";
  for (size_t i = 0; i < panels.size(); ++i) {
    const double x = kPanelWidth * double(i % size_t(columns));
    const double y = kTitleHeight + kPanelHeight * double(i / size_t(columns));
    render_panel(svg, panels[i], x, y);
  }
  svg << "</svg>\n";
  return svg.str();
}

}  // namespace luna::apps
