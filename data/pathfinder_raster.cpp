// PIL/OpenCV-equivalent raster primitives for the Pathfinder generator. Each function states the
// behaviour it reproduces; the rounding helpers mirror PIL's, because the generator's thresholds
// (mask == 1.0 exactly, sums < 1.8) see every last bit of these values.
#include <luna/data/pathfinder_raster.h>

#include <algorithm>
#include <cfloat>
#include <cmath>

#include <luna/core/error.h>

namespace luna::data::raster {

namespace {

constexpr double kPi = 3.14159265358979323846;
constexpr double kLanczosSupport = 3.0;
constexpr int kPrecisionBits = 32 - 8 - 2;  // PIL's fixed-point weights for 8-bit images

double sinc(double x) {
  if (x == 0.0) return 1.0;
  x *= kPi;
  return std::sin(x) / x;
}

double lanczos(double x) { return (-3.0 <= x && x < 3.0) ? sinc(x) * sinc(x / 3.0) : 0.0; }

// PIL's resampling weights for one axis: output pixel i reads inputs first[i] .. first[i]+count[i]-1
// with weights[i * taps_per_output + t].
struct AxisWeights {
  int taps_per_output = 0;
  std::vector<int> first, count;
  std::vector<double> weights;
};

AxisWeights lanczos_weights(int in_size, int out_size) {
  const double scale = double(in_size) / double(out_size);
  const double filter_scale = std::max(scale, 1.0);
  const double support = kLanczosSupport * filter_scale;
  AxisWeights w;
  w.taps_per_output = int(std::ceil(support)) * 2 + 1;
  w.first.resize(size_t(out_size));
  w.count.resize(size_t(out_size));
  w.weights.assign(size_t(out_size) * size_t(w.taps_per_output), 0.0);
  for (int i = 0; i < out_size; ++i) {
    const double center = (i + 0.5) * scale;
    // PIL rounds the window ends by truncating x + 0.5 (toward zero), then clamps.
    const int lo = std::max(int(center - support + 0.5), 0);
    const int hi = std::min(int(center + support + 0.5), in_size);
    double* k = &w.weights[size_t(i) * size_t(w.taps_per_output)];
    double total = 0.0;
    for (int t = 0; t < hi - lo; ++t) {
      k[t] = lanczos((t + lo - center + 0.5) / filter_scale);
      total += k[t];
    }
    if (total != 0.0)
      for (int t = 0; t < hi - lo; ++t) k[t] /= total;
    w.first[size_t(i)] = lo;
    w.count[size_t(i)] = hi - lo;
  }
  return w;
}

// PIL's normalize_coeffs_8bpc: weights to signed fixed point, rounded half away from zero.
std::vector<int32_t> fixed_point(const AxisWeights& w) {
  std::vector<int32_t> out(w.weights.size());
  for (size_t i = 0; i < out.size(); ++i) {
    const double scaled = w.weights[i] * double(1 << kPrecisionBits);
    out[i] = int32_t(scaled < 0 ? scaled - 0.5 : scaled + 0.5);
  }
  return out;
}

uint8_t clip8(int64_t accumulated) {
  const int64_t value = accumulated >> kPrecisionBits;  // arithmetic shift: floor
  return uint8_t(std::clamp<int64_t>(value, 0, 255));
}

// PIL's ROUND_UP / ROUND_DOWN: round half away from zero / half toward zero.
int round_up(double f) { return f >= 0.0 ? int(std::floor(f + 0.5)) : -int(std::floor(std::fabs(f) + 0.5)); }
int round_down(double f) { return f >= 0.0 ? int(std::ceil(f - 0.5)) : -int(std::ceil(std::fabs(f) - 0.5)); }

void put_point(Grid<float>& canvas, int x, int y, float ink) {
  if (canvas.contains(y, x)) canvas(y, x) = ink;
}

void put_hline(Grid<float>& canvas, int x0, int y, int x1, float ink) {
  if (y < 0 || y >= canvas.height) return;
  if (x0 > x1) std::swap(x0, x1);
  x0 = std::max(x0, 0);
  x1 = std::min(x1, canvas.width - 1);
  for (int x = x0; x <= x1; ++x) canvas(y, x) = ink;
}

// Bresenham as PIL's line32 (the last point excluded) followed by the end point, as PIL's
// draw_lines does for width <= 1.
void thin_line(Grid<float>& canvas, int x0, int y0, int x1, int y1, float ink) {
  int dx = x1 - x0, dy = y1 - y0;
  const int xs = dx < 0 ? -1 : 1, ys = dy < 0 ? -1 : 1;
  dx = std::abs(dx);
  dy = std::abs(dy);
  int x = x0, y = y0;
  if (dx == 0) {
    for (int i = 0; i < dy; ++i, y += ys) put_point(canvas, x, y, ink);
  } else if (dy == 0) {
    for (int i = 0; i < dx; ++i, x += xs) put_point(canvas, x, y, ink);
  } else if (dx > dy) {
    int error = 2 * dy - dx;
    for (int i = 0; i < dx; ++i) {
      put_point(canvas, x, y, ink);
      if (error >= 0) {
        y += ys;
        error -= 2 * dx;
      }
      error += 2 * dy;
      x += xs;
    }
  } else {
    int error = 2 * dx - dy;
    for (int i = 0; i < dy; ++i) {
      put_point(canvas, x, y, ink);
      if (error >= 0) {
        x += xs;
        error -= 2 * dy;
      }
      error += 2 * dx;
      y += ys;
    }
  }
  put_point(canvas, x1, y1, ink);
}

struct Edge {
  int xmin, xmax, ymin, ymax;
  int x0, y0;    // the edge's first vertex
  float slope;   // dx/dy in float, as PIL stores it
};

Edge make_edge(int x0, int y0, int x1, int y1) {
  Edge e{};
  e.xmin = std::min(x0, x1);
  e.xmax = std::max(x0, x1);
  e.ymin = std::min(y0, y1);
  e.ymax = std::max(y0, y1);
  e.slope = y0 == y1 ? 0.0f : float(x1 - x0) / float(y1 - y0);
  e.x0 = x0;
  e.y0 = y0;
  return e;
}

// PIL's horizontal-edge pass of its scan-line fill: a horizontal edge on row y is drawn only
// where it starts at or before `x_pos`, the first pixel not yet painted on the row.
void horizontal_edges(Grid<float>& canvas, const std::vector<Edge>& edges, int y, int& x_pos, float ink) {
  for (const Edge& e : edges) {
    if (e.ymin != y || e.ymin != e.ymax) continue;
    if (x_pos < e.xmin) continue;
    const int start = std::max(e.xmin, x_pos);
    if (e.xmax < start) continue;
    put_hline(canvas, start, y, e.xmax, ink);
    x_pos = e.xmax + 1;
  }
}

// PIL's scan-line polygon fill (polygon_generic, no even-odd), for the wide line's four edges.
void fill_polygon(Grid<float>& canvas, const std::vector<Edge>& edges, float ink) {
  int ymin = canvas.height - 1, ymax = 0;
  std::vector<const Edge*> sloped;
  for (const Edge& e : edges) {
    ymin = std::min(ymin, e.ymin);
    ymax = std::max(ymax, e.ymax);
    if (e.ymin != e.ymax) sloped.push_back(&e);
  }
  ymin = std::max(ymin, 0);
  ymax = std::min(ymax, canvas.height);
  std::vector<float> crossings;
  for (int y = ymin; y <= ymax; ++y) {
    crossings.clear();
    for (const Edge* e : sloped) {
      if (y >= e->ymin && y <= e->ymax) crossings.push_back(float(y - e->y0) * e->slope + float(e->x0));
      // A vertex where one edge ends and the next begins counts twice, so spans pair up.
      if (y == e->ymax && y < ymax) crossings.push_back(crossings.back());
    }
    std::sort(crossings.begin(), crossings.end());
    int x_pos = 0;
    for (size_t i = 1; i < crossings.size(); i += 2) {
      const int x_end = round_down(crossings[i]);
      if (x_end < x_pos) continue;
      horizontal_edges(canvas, edges, y, x_pos, ink);
      if (x_end < x_pos) continue;
      const int x_start = std::max(round_up(crossings[i - 1]), x_pos);
      if (x_end < x_start) continue;
      put_hline(canvas, x_start, y, x_end, ink);
      x_pos = x_end + 1;
    }
    horizontal_edges(canvas, edges, y, x_pos, ink);
  }
}

// PIL's ImagingDrawWideLine: a rectangle around the segment, offset by the rounded half-width
// along the normal, filled as a polygon.
void wide_line(Grid<float>& canvas, int x0, int y0, int x1, int y1, float ink, int width) {
  const int dx = x1 - x0, dy = y1 - y0;
  if (dx == 0 && dy == 0) {
    put_point(canvas, x0, y0, ink);
    return;
  }
  const double length = std::hypot(double(dx), double(dy));
  const double half = (width - 1) / 2.0;
  const double ratio_max = round_up(half) / length;
  const double ratio_min = round_down(half) / length;
  const int dx_min = round_down(ratio_min * dy), dx_max = round_down(ratio_max * dy);
  const int dy_min = round_down(ratio_min * dx), dy_max = round_down(ratio_max * dx);
  const int vx[4] = {x0 - dx_min, x1 - dx_min, x1 + dx_max, x0 + dx_max};
  const int vy[4] = {y0 + dy_max, y1 + dy_max, y1 - dy_min, y0 - dy_min};
  std::vector<Edge> edges;
  for (int i = 0; i < 4; ++i) edges.push_back(make_edge(vx[i], vy[i], vx[(i + 1) % 4], vy[(i + 1) % 4]));
  fill_polygon(canvas, edges, ink);
}

}  // namespace

Grid<float> resize_lanczos(const Grid<float>& in, int out_height, int out_width) {
  LUNA_CHECK(in.height > 0 && in.width > 0 && out_height > 0 && out_width > 0, "resize_lanczos: sizes must be > 0, got ",
             in.height, "x", in.width, " -> ", out_height, "x", out_width);
  const AxisWeights wx = lanczos_weights(in.width, out_width);
  const AxisWeights wy = lanczos_weights(in.height, out_height);
  Grid<float> horizontal(in.height, out_width);  // (in H, out W)
  for (int y = 0; y < in.height; ++y)
    for (int x = 0; x < out_width; ++x) {
      const double* k = &wx.weights[size_t(x) * size_t(wx.taps_per_output)];
      double sum = 0.0;
      for (int t = 0; t < wx.count[size_t(x)]; ++t) sum += double(in(y, wx.first[size_t(x)] + t)) * k[t];
      horizontal(y, x) = float(sum);
    }
  Grid<float> out(out_height, out_width);
  for (int y = 0; y < out_height; ++y) {
    const double* k = &wy.weights[size_t(y) * size_t(wy.taps_per_output)];
    for (int x = 0; x < out_width; ++x) {
      double sum = 0.0;
      for (int t = 0; t < wy.count[size_t(y)]; ++t) sum += double(horizontal(wy.first[size_t(y)] + t, x)) * k[t];
      out(y, x) = float(sum);
    }
  }
  return out;
}

Grid<uint8_t> resize_lanczos(const Grid<uint8_t>& in, int out_height, int out_width) {
  LUNA_CHECK(in.height > 0 && in.width > 0 && out_height > 0 && out_width > 0, "resize_lanczos: sizes must be > 0, got ",
             in.height, "x", in.width, " -> ", out_height, "x", out_width);
  const AxisWeights wx = lanczos_weights(in.width, out_width);
  const AxisWeights wy = lanczos_weights(in.height, out_height);
  const std::vector<int32_t> kx = fixed_point(wx), ky = fixed_point(wy);
  constexpr int64_t kHalf = int64_t(1) << (kPrecisionBits - 1);
  Grid<uint8_t> horizontal(in.height, out_width);  // (in H, out W)
  for (int y = 0; y < in.height; ++y)
    for (int x = 0; x < out_width; ++x) {
      const int32_t* k = &kx[size_t(x) * size_t(wx.taps_per_output)];
      int64_t sum = kHalf;
      for (int t = 0; t < wx.count[size_t(x)]; ++t) sum += int64_t(in(y, wx.first[size_t(x)] + t)) * k[t];
      horizontal(y, x) = clip8(sum);
    }
  Grid<uint8_t> out(out_height, out_width);
  for (int y = 0; y < out_height; ++y) {
    const int32_t* k = &ky[size_t(y) * size_t(wy.taps_per_output)];
    for (int x = 0; x < out_width; ++x) {
      int64_t sum = kHalf;
      for (int t = 0; t < wy.count[size_t(y)]; ++t) sum += int64_t(horizontal(wy.first[size_t(y)] + t, x)) * k[t];
      out(y, x) = clip8(sum);
    }
  }
  return out;
}

void draw_line(Grid<float>& canvas, int x0, int y0, int x1, int y1, float ink, int width) {
  if (width <= 1)
    thin_line(canvas, x0, y0, x1, y1, ink);
  else
    wide_line(canvas, x0, y0, x1, y1, ink, width);
}

Grid<uint8_t> disk_kernel(int radius) {
  LUNA_CHECK(radius >= 0, "disk_kernel: radius must be >= 0, got ", radius);
  Grid<uint8_t> k(2 * radius + 1, 2 * radius + 1, 0);
  for (int y = -radius; y <= radius; ++y)
    for (int x = -radius; x <= radius; ++x)
      if (x * x + y * y <= radius * radius) k(y + radius, x + radius) = 1;
  return k;
}

Grid<double> dilate(const Grid<double>& src, const Grid<uint8_t>& kernel) {
  const int cy = kernel.height / 2, cx = kernel.width / 2;
  Grid<double> out(src.height, src.width, -DBL_MAX);
  for (int ky = 0; ky < kernel.height; ++ky)
    for (int kx = 0; kx < kernel.width; ++kx) {
      if (!kernel(ky, kx)) continue;
      const int oy = ky - cy, ox = kx - cx;
      // Output rows/cols whose tap (y + oy, x + ox) lies inside the image.
      const int y_lo = std::max(0, -oy), y_hi = std::min(src.height, src.height - oy);
      const int x_lo = std::max(0, -ox), x_hi = std::min(src.width, src.width - ox);
      for (int y = y_lo; y < y_hi; ++y) {
        double* o = &out(y, 0);
        const double* s = &src(y + oy, 0);
        for (int x = x_lo; x < x_hi; ++x) o[x] = std::max(o[x], s[x + ox]);
      }
    }
  return out;
}

double dilate_at(const Grid<double>& src, const Grid<uint8_t>& kernel, int y, int x) {
  const int cy = kernel.height / 2, cx = kernel.width / 2;
  double out = -DBL_MAX;
  for (int ky = 0; ky < kernel.height; ++ky)
    for (int kx = 0; kx < kernel.width; ++kx)
      if (kernel(ky, kx) && src.contains(y + ky - cy, x + kx - cx)) out = std::max(out, src(y + ky - cy, x + kx - cx));
  return out;
}

std::array<int, 2> translate_coord(const std::array<int, 2>& coord, double orientation, double distance) {
  return {int(std::ceil(double(coord[0]) + distance * std::sin(orientation))),
          int(std::ceil(double(coord[1]) + distance * std::cos(orientation)))};
}

PaddlePatches draw_paddle_patches(int length, double thickness, int margin, int antialias_scale, double orientation) {
  LUNA_CHECK(length >= 1 && thickness > 0 && margin >= 0 && antialias_scale >= 1,
             "draw_paddle_patches: bad paddle (length ", length, ", thickness ", thickness, ", margin ", margin,
             ", scale ", antialias_scale, ")");
  const int radius = length + int(std::ceil(thickness)) + margin;
  const int blown_size = radius * 2 * antialias_scale + 1;
  const int centre = radius * antialias_scale;
  const std::array<int, 2> head = translate_coord({centre, centre}, orientation, double(length * antialias_scale));
  PaddlePatches p;
  p.blown = Grid<float>(blown_size, blown_size, 0.0f);  // PIL mode 'F'; 'white' is 255
  draw_line(p.blown, centre, centre, head[1], head[0], 255.0f, int(std::nearbyint(thickness * antialias_scale)));
  const int patch = radius * 2 + 1;
  p.line = resize_lanczos(p.blown, patch, patch);
  Grid<double> blown_double(blown_size, blown_size);
  std::copy(p.blown.pixels.begin(), p.blown.pixels.end(), blown_double.pixels.begin());
  const Grid<double> dilated = dilate(blown_double, disk_kernel(margin * antialias_scale));
  Grid<uint8_t> mask_bytes(blown_size, blown_size);  // .astype(np.uint8) of 0/255 values
  for (size_t i = 0; i < dilated.pixels.size(); ++i) mask_bytes.pixels[i] = uint8_t(dilated.pixels[i]);
  p.mask = resize_lanczos(mask_bytes, patch, patch);
  return p;
}

Grid<uint8_t> draw_circle(int window_size, int row, int col, double radius, int antialias_scale) {
  const int big = window_size * antialias_scale;
  const double limit = (radius * antialias_scale) * (radius * antialias_scale);
  Grid<uint8_t> canvas(big, big, 0);
  for (int i = 0; i < big; ++i)
    for (int j = 0; j < big; ++j) {
      const double y = double(i - row * antialias_scale), x = double(j - col * antialias_scale);
      if (x * x + y * y <= limit) canvas(i, j) = 255;
    }
  return resize_lanczos(canvas, window_size, window_size);
}

}  // namespace luna::data::raster
