// Pathfinder generator: the snakes2.py algorithm step by step (function names follow the
// original's), drawing from RandomStream instead of numpy's and Python's generators.
#include <luna/data/pathfinder_generator.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <exception>
#include <map>
#include <mutex>
#include <tuple>

#include <stb/stb_image_write.h>

#include <luna/core/error.h>
#include <luna/core/threads.h>

namespace luna::data {

namespace {

using raster::Grid;
using Coord = std::array<int, 2>;  // (row, col)

constexpr double kPi = 3.14159265358979323846;
constexpr double kDistractorStopAvailability = 0.01;  // make_many_snakes(stop_with_availability=0.01)
constexpr int64_t kMaxTargetAttempts = 100000;       // the original retries forever; we stop and say why

double degrees_to_radians(int64_t degrees) { return double(degrees) * kPi / 180.0; }

using raster::translate_coord;

double flip_by_pi(double orientation) { return orientation < 0 ? orientation + kPi : orientation - kPi; }

bool inside(const Coord& c, int size) { return c[0] >= 0 && c[0] < size && c[1] >= 0 && c[1] < size; }

// One paddle rendered by draw_line_n_mask: its line and occupancy-mask patches, both
// (2R+1, 2R+1) with R = length + ceil(thickness) + margin, centred on the start point. Values are
// rounded to float32 as the original's canvases were.
struct Paddle {
  int top = 0, left = 0;  // image coordinates of patch pixel (0, 0); may lie outside the image
  Grid<float> line;
  Grid<float> mask;
};

// Per-image constants that depend on the drawn margin.
struct Geometry {
  const PathfinderOptions& o;
  int size;
  int margin;
  int radius;  // R of the paddle patches
  Grid<uint8_t> small_kernel;  // disk of the margin: the occupancy dilation of extend_snake

  Geometry(const PathfinderOptions& options, int paddle_margin)
      : o(options),
        size(options.window_size),
        margin(paddle_margin),
        radius(options.paddle_length + int(std::ceil(options.paddle_thickness)) + paddle_margin),
        small_kernel(raster::disk_kernel(paddle_margin)) {}
};

// draw_line_n_mask: the paddle's patches placed with their centre on `start`, the line scaled to
// 0-1 and by `contrast`.
//
// The patches depend on the orientation only through the large line's integer end point, so they
// are cached per thread under that end point (a few hundred entries at most): the generator
// draws thousands of paddles per image from a few dozen distinct shapes.
const raster::PaddlePatches& cached_patches(const Geometry& g, double orientation) {
  const int aa = g.o.antialias_scale;
  const int centre = g.radius * aa;
  const Coord head = translate_coord({centre, centre}, orientation, double(g.o.paddle_length * aa));
  using Key = std::tuple<int, double, int, int, int, int>;
  thread_local std::map<Key, raster::PaddlePatches> cache;
  const Key key{g.o.paddle_length, g.o.paddle_thickness, g.margin, aa, head[0], head[1]};
  auto it = cache.find(key);
  if (it == cache.end()) {
    if (cache.size() > 100000) cache.clear();  // bounded even across many option sets
    it = cache.emplace(key, raster::draw_paddle_patches(g.o.paddle_length, g.o.paddle_thickness, g.margin, aa,
                                                        orientation)).first;
  }
  return it->second;
}

Paddle draw_paddle(const Geometry& g, const Coord& start, double orientation, double contrast) {
  const raster::PaddlePatches& patches = cached_patches(g, orientation);
  Paddle p;
  p.top = start[0] - g.radius;
  p.left = start[1] - g.radius;
  p.line = patches.line;
  for (float& v : p.line.pixels) {
    double value = double(v) / 255.0;
    if (contrast != 1.0) value *= contrast;
    v = float(value);
  }
  p.mask = Grid<float>(patches.mask.height, patches.mask.width);
  for (size_t i = 0; i < patches.mask.pixels.size(); ++i) p.mask.pixels[i] = float(double(patches.mask.pixels[i]) / 255.0);
  return p;
}

// target = max(target, patch) over the patch's part inside the image (np.maximum with a canvas
// that is 0 elsewhere: target >= 0, so outside the patch nothing changes).
void max_into(Grid<double>& target, const Grid<float>& patch, int top, int left) {
  for (int y = 0; y < patch.height; ++y)
    for (int x = 0; x < patch.width; ++x)
      if (target.contains(top + y, left + x))
        target(top + y, left + x) = std::max(target(top + y, left + x), double(patch(y, x)));
}

// np.max(mask + m_im) < 1.8; outside the patch the sum is the mask itself, always <= 1.
bool paddle_fits(const Grid<double>& mask, const Paddle& p) {
  for (int y = 0; y < p.mask.height; ++y)
    for (int x = 0; x < p.mask.width; ++x)
      if (mask.contains(p.top + y, p.left + x) && !(mask(p.top + y, p.left + x) + double(p.mask(y, x)) < 1.8))
        return false;
  return true;
}

// The head-centric dilation kernel of seed_snake: the paddle mask drawn from (L+m+1, L+m+1) on a
// (2(L+m)+1)^2 canvas; `struct.astype(np.uint8)` keeps only the cells that are exactly 1.0.
Grid<uint8_t> seed_kernel(const Geometry& g, double orientation) {
  const int size = (g.o.paddle_length + g.margin) * 2 + 1;
  const int head = g.o.paddle_length + g.margin + 1;
  const Paddle p = draw_paddle(g, {head, head}, orientation, 1.0);
  Grid<uint8_t> kernel(size, size, 0);
  for (int y = 0; y < p.mask.height; ++y)
    for (int x = 0; x < p.mask.width; ++x)
      if (kernel.contains(p.top + y, p.left + x)) kernel(p.top + y, p.left + x) = p.mask(y, x) == 1.0f ? 1 : 0;
  return kernel;
}

// find_available_coordinates(np.ceil(cv2.dilate(lined, kernel) - 0.3)): the row-major positions
// whose dilated value is <= 0.3, computed without the full dilation (a pixel is decided at its
// first occupied tap). A pixel no kernel cell reaches (OpenCV: -DBL_MAX) made the original report
// no position at all ("mystery"); without the quirk such a pixel is simply occupied.
std::vector<Coord> available_after_dilation(const Grid<double>& lined, const Grid<uint8_t>& kernel, bool opencv_quirk) {
  std::vector<Coord> taps;  // (dy, dx) of the kernel's cells relative to its centre
  for (int ky = 0; ky < kernel.height; ++ky)
    for (int kx = 0; kx < kernel.width; ++kx)
      if (kernel(ky, kx)) taps.push_back({ky - kernel.height / 2, kx - kernel.width / 2});
  const int h = lined.height, w = lined.width;
  const int reach = std::max(kernel.height, kernel.width) / 2;
  const auto reached = [&](int y, int x) {  // some tap lands inside the image
    if (y >= reach && y < h - reach && x >= reach && x < w - reach) return true;
    for (const Coord& t : taps)
      if (lined.contains(y + t[0], x + t[1])) return true;
    return false;
  };
  // A pixel is occupied when one of its taps reads an occupied (> 0.3) pixel. Mostly occupied
  // planes (the first seed's wide band) are decided per pixel at the first such tap; mostly free
  // ones by spreading each occupied pixel to the pixels whose taps read it.
  const auto occupied_count = std::count_if(lined.pixels.begin(), lined.pixels.end(), [](double v) { return v > 0.3; });
  Grid<uint8_t> blocked(h, w, 0);
  if (2 * occupied_count > int64_t(lined.pixels.size())) {
    for (int y = 0; y < h; ++y)
      for (int x = 0; x < w; ++x)
        for (const Coord& t : taps)
          if (lined.contains(y + t[0], x + t[1]) && lined(y + t[0], x + t[1]) > 0.3) {
            blocked(y, x) = 1;
            break;
          }
  } else {
    for (int y = 0; y < h; ++y)
      for (int x = 0; x < w; ++x) {
        if (!(lined(y, x) > 0.3)) continue;
        for (const Coord& t : taps)
          if (blocked.contains(y - t[0], x - t[1])) blocked(y - t[0], x - t[1]) = 1;
      }
  }
  std::vector<Coord> free;
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      if (!reached(y, x)) {
        if (opencv_quirk) return {};
        continue;
      }
      if (!blocked(y, x)) free.push_back({y, x});
    }
  return free;
}

int64_t count_free(const Grid<double>& mask) {
  return std::count_if(mask.pixels.begin(), mask.pixels.end(), [](double v) { return v <= 0.3; });
}

// Candidate heads on a circle around the pivot and their cumulative probabilities (get_coords_cmf).
struct Candidates {
  std::vector<Coord> heads;
  std::vector<double> orientations;
  std::vector<double> cmf;
};

// `mask` is dilated by `kernel` only at the candidates, the only pixels the original read of its
// fully dilated mask.
bool coords_cmf(const Coord& pivot, double last_orientation, double step, const Grid<double>& mask,
                const Grid<uint8_t>& kernel, double continuity, Candidates& out) {
  const int size = mask.height;
  // One sample per pixel of arc: numpy.arange(0, 360, deg_per_pixel).
  const double deg_per_pixel = 360.0 / (2.0 * step * kPi);
  const auto samples = int64_t(std::ceil(360.0 / deg_per_pixel));
  std::vector<Coord> coords;
  for (int64_t i = 0; i < samples; ++i) {
    const double radians = double(i) * deg_per_pixel * kPi / 180.0;
    const double y = double(pivot[0]) + step * std::sin(radians);
    const double x = double(pivot[1]) + step * std::cos(radians);
    if (y >= size || y < 0 || x >= size || x < 0) continue;
    coords.push_back({int(y), int(x)});  // astype(int): toward zero
  }
  if (coords.empty()) return false;
  std::sort(coords.begin(), coords.end());  // np.unique(axis=0): lexicographic (row, col)
  coords.erase(std::unique(coords.begin(), coords.end()), coords.end());

  out.heads = coords;
  out.orientations.resize(coords.size());
  std::vector<double> pmf(coords.size());
  double total = 0.0;
  for (size_t i = 0; i < coords.size(); ++i) {
    const double orientation = std::atan2(double(coords[i][0] - pivot[0]), double(coords[i][1] - pivot[1]));
    const double difference = std::abs(orientation - last_orientation);
    double delta = std::min(difference, 2 * kPi - difference);
    delta = std::min(delta * continuity, 0.5 * kPi);
    const double weight = std::pow(std::max(std::cos(delta), 0.0), 2);
    out.orientations[i] = orientation;
    pmf[i] = (1.0 - raster::dilate_at(mask, kernel, coords[i][0], coords[i][1])) * weight;
    total += pmf[i];
  }
  if (total < 1e-4) return false;
  out.cmf.resize(pmf.size());
  double running = 0.0;
  for (size_t i = 0; i < pmf.size(); ++i) out.cmf[i] = running += pmf[i] / total;
  return true;
}

// A snake being grown: its last pivot and orientation, and its newest paddle, which joins the
// occupancy mask only when the next paddle is placed (so consecutive paddles may touch).
struct SnakeTip {
  Coord pivot{};
  double orientation = 0;
  Paddle last;
  Coord head{};
};

// extend_snake: one more paddle L + 2m ahead of the last pivot, its head drawn from the cmf; up to
// 1 + max_paddle_retrial draws must give one that does not overlap the occupancy mask.
bool extend_snake(RandomStream& rng, const Geometry& g, SnakeTip& tip, Grid<double>& image, Grid<double>& mask,
                  double contrast) {
  const Coord new_pivot =
      translate_coord(tip.pivot, tip.orientation, double(g.o.paddle_length + 2 * g.margin));
  Candidates c;
  if (!coords_cmf(new_pivot, tip.orientation, double(g.o.paddle_length + g.margin), mask, g.small_kernel,
                  g.o.continuity, c))
    return false;
  for (int trial = 0; trial <= g.o.max_paddle_retrial; ++trial) {
    const double r = rng.uniform();
    size_t index = 0;  // np.argmax(cmf - r > 0): the first index past r, 0 when there is none
    for (size_t i = 0; i < c.cmf.size(); ++i)
      if (c.cmf[i] - r > 0) {
        index = i;
        break;
      }
    Paddle paddle = draw_paddle(g, c.heads[index], flip_by_pi(c.orientations[index]), contrast);
    if (!paddle_fits(mask, paddle)) continue;
    max_into(image, paddle.line, paddle.top, paddle.left);
    max_into(mask, tip.last.mask, tip.last.top, tip.last.left);
    tip.pivot = new_pivot;
    tip.orientation = c.orientations[index];
    tip.head = c.heads[index];
    tip.last = std::move(paddle);
    return true;
  }
  return false;
}

// Draws a seed's tail among `available`, its head L ahead and its pivot L + m behind the head;
// false when the head or pivot leaves the image.
bool place_seed(const Geometry& g, const Coord& tail, double orientation, SnakeTip& tip) {
  const Coord head = translate_coord(tail, orientation, double(g.o.paddle_length));
  const Coord pivot = translate_coord(head, flip_by_pi(orientation), double(g.o.paddle_length + g.margin));
  if (!inside(head, g.size) || !inside(pivot, g.size)) return false;
  tip.pivot = pivot;
  tip.orientation = orientation;
  return true;
}

// seed_snake: a first paddle at a free point, for a distractor.
bool seed_snake(RandomStream& rng, const Geometry& g, Grid<double>& image, const Grid<double>& mask, double contrast,
                SnakeTip& tip) {
  for (int trial = 0; trial <= g.o.max_paddle_retrial;) {
    const double orientation = degrees_to_radians(rng.randint(-180, 180));
    const Grid<uint8_t> kernel = seed_kernel(g, orientation);
    Grid<double> lined = mask;
    for (int i = 0; i < g.size; ++i) lined(0, i) = lined(g.size - 1, i) = lined(i, 0) = lined(i, g.size - 1) = 1.0;
    const std::vector<Coord> free = available_after_dilation(lined, kernel, g.o.opencv_seed_border_quirk);
    if (double(count_free(mask)) / double(g.size * g.size) < kDistractorStopAvailability) return false;
    if (free.empty()) return false;
    const Coord tail = free[size_t(rng.randint(0, int64_t(free.size())))];
    if (!place_seed(g, tail, orientation, tip)) {
      ++trial;
      continue;
    }
    tip.last = draw_paddle(g, tail, orientation, contrast);
    tip.head = tail;
    max_into(image, tip.last.line, tip.last.top, tip.last.left);
    return true;
  }
  return false;
}

int64_t draw_index(RandomStream& rng, size_t count) { return count > 0 ? rng.randint(0, int64_t(count)) : 0; }

// make_snake: a distractor of int(distractor_length) paddles; on failure image and mask are left
// as they were.
bool make_snake(RandomStream& rng, const Geometry& g, Grid<double>& image, Grid<double>& mask) {
  const std::vector<double>& contrasts = g.o.snake_contrasts;
  Grid<double> new_image = image, new_mask = mask;
  SnakeTip tip;
  if (!seed_snake(rng, g, new_image, new_mask, contrasts[size_t(draw_index(rng, contrasts.size()))], tip)) return false;
  const int segments = int(g.o.distractor_length);
  for (int s = 0; s < segments - 1; ++s) {
    const double contrast = contrasts[size_t(draw_index(rng, contrasts.size()))];
    if (!extend_snake(rng, g, tip, new_image, new_mask, contrast)) return false;
  }
  max_into(new_mask, tip.last.mask, tip.last.top, tip.last.left);
  image = std::move(new_image);
  mask = std::move(new_mask);
  return true;
}

struct TwoSnakes {
  Grid<double> images[2];
  Grid<double> mask;
  Coord origin_tips[2]{};
  Coord terminal_tips[2]{};
};

// initialize_two_seeds + two_snakes: the first seed at a free point at least 2 * seed_distance
// from the borders, the second with its tail exactly seed_distance (rounded) from the first's,
// then both grown contour_length - 1 paddles in turn. Any failure fails the whole attempt.
bool two_snakes(RandomStream& rng, const Geometry& g, TwoSnakes& out) {
  const PathfinderOptions& o = g.o;
  // Each target snake's contrast centre: snake_contrasts * 2, shuffled, the first two.
  std::vector<double> centres = o.snake_contrasts;
  centres.insert(centres.end(), o.snake_contrasts.begin(), o.snake_contrasts.end());
  shuffle_in_place(centres, rng);

  const int size = g.size;
  out.mask = Grid<double>(size, size, 0.0);
  for (int y = 0; y < size; ++y)
    for (int x = 0; x < size; ++x)
      if (y < o.padding || y >= size - o.padding || x < o.padding || x >= size - o.padding) out.mask(y, x) = 1.0;
  out.images[0] = out.images[1] = Grid<double>(size, size, 0.0);
  SnakeTip tips[2];

  const auto pick_paddle_contrast = [&] {  // initialize_two_seeds draws only when there is a choice
    return o.paddle_contrasts.size() > 1 ? o.paddle_contrasts[size_t(rng.randint(0, int64_t(o.paddle_contrasts.size())))]
                                         : o.paddle_contrasts[0];
  };
  // First seed.
  double contrast = pick_paddle_contrast() * centres[0];
  const int band = 2 * o.seed_distance;
  Coord tail1{};
  int trial = 0;
  for (; trial <= o.max_paddle_retrial; ++trial) {
    const int64_t degrees = rng.randint(-180, 180);
    const double orientation = degrees_to_radians(degrees);
    // The mask is only the padding here, so the free points depend on the settings and the
    // orientation alone: cached per thread (the step is retried hundreds of times per Path-X image).
    using Key = std::tuple<int, int, int, int, double, int, int, bool, int64_t>;
    thread_local std::map<Key, std::vector<Coord>> first_seed_free;
    const Key key{size, o.padding, band, o.paddle_length, o.paddle_thickness, g.margin, o.antialias_scale,
                  o.opencv_seed_border_quirk, degrees};
    auto cached = first_seed_free.find(key);
    if (cached == first_seed_free.end()) {
      if (first_seed_free.size() > 100000) first_seed_free.clear();
      Grid<double> lined = out.mask;
      for (int y = 0; y < size; ++y)
        for (int x = 0; x < size; ++x)
          if (y < band || y >= size - band || x < band || x >= size - band) lined(y, x) = 1.0;
      cached = first_seed_free
                   .emplace(key, available_after_dilation(lined, seed_kernel(g, orientation), o.opencv_seed_border_quirk))
                   .first;
    }
    const std::vector<Coord>& free = cached->second;
    if (free.empty()) return false;
    tail1 = free[size_t(rng.randint(0, int64_t(free.size())))];
    if (place_seed(g, tail1, orientation, tips[0])) break;
  }
  if (trial > o.max_paddle_retrial) return false;
  tips[0].last = draw_paddle(g, tail1, tips[0].orientation, contrast);
  max_into(out.images[0], tips[0].last.line, tips[0].last.top, tips[0].last.left);

  // Second seed: its tail on the circle of radius seed_distance around the first's.
  contrast = pick_paddle_contrast() * centres[1];
  Coord tail2{};
  for (trial = 0; trial <= o.max_paddle_retrial; ++trial) {
    const double orientation = degrees_to_radians(rng.randint(-180, 180));
    const double around = degrees_to_radians(rng.randint(0, 360));
    tail2 = {int(std::nearbyint(tail1[0] + o.seed_distance * std::sin(around))),  // np.round_: half to even
             int(std::nearbyint(tail1[1] + o.seed_distance * std::cos(around)))};
    if (place_seed(g, tail2, orientation, tips[1])) break;
  }
  if (trial > o.max_paddle_retrial) return false;
  tips[1].last = draw_paddle(g, tail2, tips[1].orientation, contrast);
  max_into(out.images[1], tips[1].last.line, tips[1].last.top, tips[1].last.left);
  out.origin_tips[0] = tail1;
  out.origin_tips[1] = tail2;

  for (int s = 0; s < o.contour_length - 1; ++s) {
    const double paddle_contrast = o.paddle_contrasts[size_t(draw_index(rng, o.paddle_contrasts.size()))];
    for (int k = 0; k < 2; ++k)
      if (!extend_snake(rng, g, tips[k], out.images[k], out.mask, paddle_contrast * centres[size_t(k)])) return false;
  }
  // As the original: only the second snake's newest paddle joins the mask here.
  max_into(out.mask, tips[1].last.mask, tips[1].last.top, tips[1].last.left);
  for (int k = 0; k < 2; ++k) out.terminal_tips[k] = tips[k].head;
  return true;
}

// Python's str() of a float: the shortest round-trip digits, ".0" added to whole numbers.
std::string python_float(double value) {
  char buffer[64];
  const auto [end, error] = std::to_chars(buffer, buffer + sizeof(buffer), value);
  std::string text(buffer, end);
  if (text.find_first_of(".eE") == std::string::npos && text.find_first_of("ni") == std::string::npos) text += ".0";
  return text;
}

struct FileCloser {
  void operator()(FILE* f) const {
    if (f) std::fclose(f);
  }
};

void write_file(const std::filesystem::path& path, const std::string& bytes) {
  std::unique_ptr<FILE, FileCloser> f(std::fopen(path.c_str(), "wb"));
  LUNA_CHECK(f, "pathfinder generator: cannot write ", path, ": ", std::strerror(errno));
  const size_t written = std::fwrite(bytes.data(), 1, bytes.size(), f.get());
  LUNA_CHECK(written == bytes.size(), "pathfinder generator: writing ", path, " failed: ", std::strerror(errno));
  FILE* raw = f.release();
  LUNA_CHECK(std::fclose(raw) == 0, "pathfinder generator: closing ", path, " failed: ", std::strerror(errno));
}

}  // namespace

PathfinderOptions PathfinderOptions::pathfinder32() { return PathfinderOptions{}; }

PathfinderOptions PathfinderOptions::pathfinder128() {
  PathfinderOptions o;
  o.window_size = 128;
  o.padding = 1;
  o.paddle_length = 5;
  o.paddle_thickness = 1.5;
  o.paddle_margins = {2, 3};
  o.antialias_scale = 2;
  o.marker_radius = 3;
  o.seed_distance = 20;
  o.continuity = 1.8;
  o.contour_length = 14;
  o.distractor_length = 14.0 / 3.0;  // the original's contour_length / 3, a float
  o.distractor_length_is_float = true;
  o.num_distractor_snakes = 8;       // `while isnake < 35 / (14 / 3)` = 7.5 runs 8 times
  o.snake_contrasts = {0.9};
  o.paddle_contrasts = {1.0};
  return o;
}

PathfinderOptions PathfinderOptions::preset(const std::string& name) {
  if (name == "pathfinder32") return pathfinder32();
  if (name == "pathfinder128" || name == "pathx") return pathfinder128();
  LUNA_FAIL("pathfinder generator: unknown preset \"", name, "\" (expected pathfinder32 or pathfinder128)");
}

void PathfinderOptions::validate() const {
  LUNA_CHECK(window_size >= 8 && window_size <= 4096, "pathfinder generator: window_size must be in [8, 4096], got ",
             window_size);
  LUNA_CHECK(padding >= 1 && 2 * padding < window_size, "pathfinder generator: padding must be >= 1 and < half the ",
             "window, got ", padding);
  LUNA_CHECK(paddle_length >= 1, "pathfinder generator: paddle_length must be >= 1, got ", paddle_length);
  LUNA_CHECK(antialias_scale >= 1 && antialias_scale <= 16, "pathfinder generator: antialias_scale must be in [1, 16], got ",
             antialias_scale);
  LUNA_CHECK(paddle_thickness > 0 && std::nearbyint(paddle_thickness * antialias_scale) == paddle_thickness * antialias_scale,
             "pathfinder generator: paddle_thickness * antialias_scale must be a positive integer, got ",
             paddle_thickness, " * ", antialias_scale);
  LUNA_CHECK(!paddle_margins.empty(), "pathfinder generator: paddle_margins is empty");
  for (const int m : paddle_margins)
    LUNA_CHECK(m >= 0 && m <= 64, "pathfinder generator: paddle margin must be in [0, 64], got ", m);
  LUNA_CHECK(marker_radius > 0, "pathfinder generator: marker_radius must be > 0, got ", marker_radius);
  LUNA_CHECK(seed_distance >= 1 && 4 * seed_distance < window_size, "pathfinder generator: seed_distance must be >= 1 ",
             "and leave a free centre (4 * seed_distance < window_size), got ", seed_distance);
  LUNA_CHECK(continuity >= 0, "pathfinder generator: continuity must be >= 0, got ", continuity);
  LUNA_CHECK(contour_length >= 2, "pathfinder generator: contour_length must be >= 2, got ", contour_length);
  LUNA_CHECK(num_distractor_snakes >= 0, "pathfinder generator: num_distractor_snakes must be >= 0, got ",
             num_distractor_snakes);
  LUNA_CHECK(num_distractor_snakes == 0 || distractor_length >= 1, "pathfinder generator: distractor_length must be ",
             ">= 1, got ", distractor_length);
  LUNA_CHECK(distractor_length_is_float || distractor_length == std::floor(distractor_length),
             "pathfinder generator: distractor_length ", distractor_length,
             " is not a whole number; set distractor_length_is_float to spell it as a float");
  LUNA_CHECK(!snake_contrasts.empty() && !paddle_contrasts.empty(),
             "pathfinder generator: snake_contrasts and paddle_contrasts must not be empty");
  LUNA_CHECK(max_paddle_retrial >= 0 && max_distractor_contour_retrial >= 0,
             "pathfinder generator: retrial counts must be >= 0, got ", max_paddle_retrial, " and ",
             max_distractor_contour_retrial);
}

std::string PathfinderOptions::difficulty_name() const {
  return contour_length == 6 ? "curv_baseline" : "curv_contour_length_" + std::to_string(contour_length);
}

PathfinderImage generate_pathfinder_image(RandomStream& rng, const PathfinderOptions& o) {
  o.validate();
  PathfinderImage result;
  result.label = int(rng.randint(0, 2));
  result.paddle_margin = o.paddle_margins[size_t(rng.randint(0, int64_t(o.paddle_margins.size())))];
  const Geometry g(o, result.paddle_margin);

  TwoSnakes targets;
  do {
    ++result.target_attempts;
    LUNA_CHECK(result.target_attempts <= kMaxTargetAttempts, "pathfinder generator: ", kMaxTargetAttempts,
               " attempts failed to grow two target snakes of ", o.contour_length, " paddles in a ", o.window_size,
               "px window; the settings leave no room");
  } while (!two_snakes(rng, g, targets));

  Grid<double> image(g.size, g.size);
  for (size_t i = 0; i < image.pixels.size(); ++i)
    image.pixels[i] = std::max(targets.images[0].pixels[i], targets.images[1].pixels[i]);
  Grid<double> mask = std::move(targets.mask);
  // make_many_snakes with allow_incomplete: a distractor that fails every try is left out.
  for (int d = 0; d < o.num_distractor_snakes; ++d)
    for (int attempt = 0; attempt <= o.max_distractor_contour_retrial; ++attempt)
      if (make_snake(rng, g, image, mask)) {
        ++result.distractors_drawn;
        break;
      }

  const int origin = int(rng.randint(0, 2));
  const int terminal = result.label == 0 ? 1 - origin : origin;
  result.origin_snake = origin;
  result.origin_marker = targets.origin_tips[origin];
  result.terminal_marker = targets.terminal_tips[terminal];
  const Grid<uint8_t> origin_disk = raster::draw_circle(o.window_size, result.origin_marker[0],
                                                        result.origin_marker[1], o.marker_radius, o.antialias_scale);
  const Grid<uint8_t> terminal_disk = raster::draw_circle(o.window_size, result.terminal_marker[0],
                                                          result.terminal_marker[1], o.marker_radius, o.antialias_scale);
  double lowest = 0, highest = 0;
  for (size_t i = 0; i < image.pixels.size(); ++i) {
    const double marker = double(std::max(origin_disk.pixels[i], terminal_disk.pixels[i])) / 255.0;
    image.pixels[i] = std::max(image.pixels[i], marker);
    lowest = i == 0 ? image.pixels[i] : std::min(lowest, image.pixels[i]);
    highest = i == 0 ? image.pixels[i] : std::max(highest, image.pixels[i]);
  }
  // scipy.misc.imsave's bytescale: min-max to 0-255, then + 0.5 and truncate.
  const double range = highest - lowest == 0 ? 1.0 : highest - lowest;
  const auto to_bytes = [&](const Grid<double>& plane) {
    Grid<uint8_t> bytes(plane.height, plane.width);
    for (size_t i = 0; i < plane.pixels.size(); ++i) {
      const double scaled = std::clamp((plane.pixels[i] - lowest) * (255.0 / range), 0.0, 255.0);
      bytes.pixels[i] = uint8_t(scaled + 0.5);
    }
    return bytes;
  };
  result.pixels = to_bytes(image);
  for (int k = 0; k < 2; ++k) result.target_layers[size_t(k)] = to_bytes(targets.images[k]);
  return result;
}

std::string encode_png_gray(const Grid<uint8_t>& image) {
  LUNA_CHECK(image.height > 0 && image.width > 0 && image.pixels.size() == size_t(image.height) * size_t(image.width),
             "encode_png_gray: bad image ", image.height, "x", image.width, " with ", image.pixels.size(), " pixels");
  std::string png;
  const auto append = [](void* context, void* data, int size) {
    static_cast<std::string*>(context)->append(static_cast<const char*>(data), size_t(size));
  };
  const int ok = stbi_write_png_to_func(append, &png, image.width, image.height, 1, image.pixels.data(), image.width);
  LUNA_CHECK(ok != 0 && !png.empty(), "encode_png_gray: stb_image_write failed on a ", image.height, "x", image.width,
             " image");
  return png;
}

std::string pathfinder_metadata_line(int64_t batch, int64_t index, int label, int paddle_margin,
                                     const PathfinderOptions& o) {
  // The original's distractor_length was an int at 32 px (14 // 3) and a float at 128 px (14 / 3).
  const std::string distractor = o.distractor_length_is_float ? python_float(o.distractor_length)
                                                              : std::to_string(int64_t(o.distractor_length));
  std::string line = "imgs/" + std::to_string(batch) + " sample_" + std::to_string(index) + ".png ";
  line += std::to_string(index) + " " + std::to_string(label) + " " + python_float(o.continuity) + " ";
  line += std::to_string(o.contour_length) + " " + distractor + " " + std::to_string(o.paddle_length) + " ";
  line += python_float(o.paddle_thickness) + " " + std::to_string(paddle_margin) + " ";
  line += std::to_string(o.paddle_contrasts.size());
  return line;
}

void write_pathfinder_dataset(const std::filesystem::path& difficulty_dir, const PathfinderOptions& options,
                              const PathfinderWriteOptions& w, const GeneratorProgress& progress) {
  options.validate();
  LUNA_CHECK(w.num_images > 0 && w.images_per_batch > 0, "pathfinder generator: num_images and images_per_batch ",
             "must be > 0, got ", w.num_images, " and ", w.images_per_batch);
  const std::filesystem::path metadata_dir = difficulty_dir / "metadata";
  std::error_code error;
  std::filesystem::create_directories(metadata_dir, error);
  LUNA_CHECK(!error, "pathfinder generator: cannot create ", metadata_dir, ": ", error.message());
  const int64_t batches = (w.num_images + w.images_per_batch - 1) / w.images_per_batch;

  std::atomic<int64_t> done{0};
  std::mutex progress_mutex;
  std::exception_ptr failure;
  std::atomic<bool> failed{false};
#pragma omp parallel for schedule(dynamic, 1) num_threads(get_num_threads())
  for (int64_t b = 0; b < batches; ++b) {
    if (failed.load()) continue;
    try {
      const std::filesystem::path image_dir = difficulty_dir / "imgs" / std::to_string(b);
      std::error_code dir_error;
      std::filesystem::create_directories(image_dir, dir_error);
      LUNA_CHECK(!dir_error, "pathfinder generator: cannot create ", image_dir, ": ", dir_error.message());
      RandomStream rng(w.seed, uint64_t(b));
      const int64_t count = std::min(w.images_per_batch, w.num_images - b * w.images_per_batch);
      std::string metadata;
      for (int64_t k = 0; k < count; ++k) {
        const PathfinderImage image = generate_pathfinder_image(rng, options);
        write_file(image_dir / ("sample_" + std::to_string(k) + ".png"), encode_png_gray(image.pixels));
        metadata += pathfinder_metadata_line(b, k, image.label, image.paddle_margin, options) + "\n";
        const int64_t finished = ++done;
        if (progress) {
          std::lock_guard<std::mutex> lock(progress_mutex);
          progress(finished, w.num_images);
        }
      }
      const std::filesystem::path metadata_file = metadata_dir / (std::to_string(b) + ".npy");
      std::filesystem::path temporary = metadata_file;
      temporary += ".tmp";
      write_file(temporary, metadata);
      std::filesystem::rename(temporary, metadata_file, dir_error);
      LUNA_CHECK(!dir_error, "pathfinder generator: cannot rename ", temporary, ": ", dir_error.message());
    } catch (...) {
      std::lock_guard<std::mutex> lock(progress_mutex);
      if (!failure) failure = std::current_exception();
      failed = true;
    }
  }
  if (failure) std::rethrow_exception(failure);
}

}  // namespace luna::data
