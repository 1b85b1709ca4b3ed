// Raster primitives of the original Pathfinder generator (snakes2.py), which took them from PIL
// and OpenCV, re-implemented here to give the same pixels: PIL's LANCZOS resize of float ('F')
// and 8-bit ('L') images, PIL's ImageDraw line (1-pixel Bresenham and the wide-line polygon), and
// OpenCV's grey-level dilation. tests/data/test_pathfinder_generator.cpp compares them with PIL's
// output (fixture written by scripts/make_pathfinder_raster_fixture.py).
#pragma once
#include <array>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace luna::data::raster {

// A row-major (height, width) plane.
template <class T>
struct Grid {
  int height = 0;
  int width = 0;
  std::vector<T> pixels;  // (height, width)

  Grid() = default;
  Grid(int h, int w, T fill = T()) : height(h), width(w), pixels(size_t(h) * size_t(w), fill) {}
  T& operator()(int y, int x) { return pixels[size_t(y) * size_t(width) + size_t(x)]; }
  const T& operator()(int y, int x) const { return pixels[size_t(y) * size_t(width) + size_t(x)]; }
  bool contains(int y, int x) const { return y >= 0 && y < height && x >= 0 && x < width; }
};

// PIL Image.resize(size, Image.LANCZOS) of a mode 'F' image: separable, horizontal pass first,
// double-precision weights, float results (no clipping, so ringing can go below 0).
Grid<float> resize_lanczos(const Grid<float>& in, int out_height, int out_width);
// The same for a mode 'L' image: PIL's 22-bit fixed-point weights, each pass rounded and clipped
// to 0-255.
Grid<uint8_t> resize_lanczos(const Grid<uint8_t>& in, int out_height, int out_width);

// PIL ImageDraw.line([(x0, y0), (x1, y1)], fill=ink, width=width) on a mode 'F' image: width <= 1
// is a Bresenham line with both end points, wider lines are PIL's filled four-sided polygon.
void draw_line(Grid<float>& canvas, int x0, int y0, int x1, int y1, float ink, int width);

// snakes2.generate_dilation_struct(radius): 1 where x^2 + y^2 <= radius^2 on a (2r+1)^2 grid.
Grid<uint8_t> disk_kernel(int radius);

// cv2.dilate(src, kernel) with OpenCV's defaults (anchor at the kernel centre, constant border at
// the lowest value): out(y, x) = max of src(y + ky - cy, x + kx - cx) over the kernel's non-zero
// cells that land inside the image, and -DBL_MAX (OpenCV's border value for a float64 dilation)
// where none does, which happens only for a kernel whose centre cell is 0.
Grid<double> dilate(const Grid<double>& src, const Grid<uint8_t>& kernel);
// One pixel of dilate(src, kernel), for callers that read only a few.
double dilate_at(const Grid<double>& src, const Grid<uint8_t>& kernel, int y, int x);

// snakes2.translate_coord: (row, col) moved `distance` along `orientation` (radians, rows grow
// downward), each coordinate rounded up.
std::array<int, 2> translate_coord(const std::array<int, 2>& coord, double orientation, double distance);

// The patches of snakes2.draw_line_n_mask before placement and contrast, each square with its
// centre on the paddle's start: a line of `length` along `orientation`, drawn antialias_scale times
// larger with width round(thickness * scale) and ink 255 (`blown`), LANCZOS-downsampled (`line`,
// 0-255 floats); `mask` is the blown line dilated by disk_kernel(margin * scale), downsampled as
// an 8-bit image. Patch side 2R+1 with R = length + ceil(thickness) + margin.
struct PaddlePatches {
  Grid<float> blown;   // (2R*scale+1, 2R*scale+1)
  Grid<float> line;    // (2R+1, 2R+1)
  Grid<uint8_t> mask;  // (2R+1, 2R+1)
};
PaddlePatches draw_paddle_patches(int length, double thickness, int margin, int antialias_scale, double orientation);

// snakes2.draw_circle: a disk of radius * scale around (row, col) * scale on a canvas
// antialias_scale times larger, as 0/255 bytes, LANCZOS-downsampled to (window, window).
Grid<uint8_t> draw_circle(int window_size, int row, int col, double radius, int antialias_scale);

}  // namespace luna::data::raster
