// Bilinear resizing bit-identical to PIL's Image.resize(resample=BILINEAR) on 8-bit images (the
// resize Hugging Face's ViTImageProcessor runs): PIL's ImagingResample coefficients, 22-bit
// fixed-point weights, one pass per axis in Pillow's order, each rounded and clipped to uint8.
#include <luna/data/images.h>

#include <algorithm>
#include <cmath>

#include <luna/core/error.h>

namespace luna::data {

namespace {
// PIL's 8-bit passes: weights in 32 - 8 - 2 bits (8 for the pixel, 2 spare for overshoot).
constexpr int kPrecisionBits = 32 - 8 - 2;

// GCC contracts a*b+c into one FMA across statements in C++ (-ffp-contract=fast is its default
// there, and -march=x86-64-v3 has FMA); PIL's build rounds every product first. A trip through a
// volatile forces that rounding, so the coefficients (and hence the pixels) stay identical to PIL's.
double rounded(double value) {
  volatile double stored = value;
  return stored;
}

double triangle(double x) {
  if (x < 0.0) x = -x;
  return x < 1.0 ? 1.0 - x : 0.0;
}

// For each output position along one axis: the first input index it reads, how many it reads and
// their fixed-point weights (PIL's precompute_coeffs followed by normalize_coeffs_8bpc).
struct AxisTaps {
  int64_t taps_per_output = 0;  // PIL's ksize
  std::vector<int64_t> first;   // (out)
  std::vector<int64_t> count;   // (out)
  std::vector<int32_t> weights; // (out, taps_per_output), summing to about 1 << kPrecisionBits
};

AxisTaps pil_bilinear_taps(int64_t in_size, int64_t out_size) {
  // PIL's (double)(in1 - in0) / outSize with the box (0, in_size): in0 and in1 are floats, exact here.
  const double scale = double(float(in_size)) / double(out_size);
  // Shrinking widens the triangle by the scale factor, so every input pixel contributes (antialiasing).
  const double filter_scale = std::max(scale, 1.0);
  const double support = filter_scale;  // bilinear support 1.0 × filter_scale
  const double inverse_filter_scale = 1.0 / filter_scale;
  AxisTaps taps;
  taps.taps_per_output = int64_t(std::ceil(support)) * 2 + 1;
  taps.first.resize(size_t(out_size));
  taps.count.resize(size_t(out_size));
  taps.weights.assign(size_t(out_size * taps.taps_per_output), 0);
  std::vector<double> exact(size_t(taps.taps_per_output));
  for (int64_t out = 0; out < out_size; ++out) {
    const double center = rounded((double(out) + 0.5) * scale);
    // int() truncates toward zero, as PIL's C cast does; the order of the additions is PIL's.
    const int64_t first = std::max<int64_t>(int64_t(center - support + 0.5), 0);
    const int64_t end = std::min<int64_t>(int64_t(center + support + 0.5), in_size);
    const int64_t count = end - first;
    double total = 0.0;
    for (int64_t j = 0; j < count; ++j) {
      const double w = triangle(rounded((double(j + first) - center + 0.5) * inverse_filter_scale));
      exact[size_t(j)] = w;
      total += w;
    }
    int32_t* weights = taps.weights.data() + out * taps.taps_per_output;
    for (int64_t j = 0; j < count; ++j) {
      const double w = total != 0.0 ? exact[size_t(j)] / total : exact[size_t(j)];
      // Scaling by a power of two is exact, so no FMA can change this rounding.
      weights[j] = w < 0 ? int32_t(-0.5 + w * (1 << kPrecisionBits)) : int32_t(0.5 + w * (1 << kPrecisionBits));
    }
    taps.first[size_t(out)] = first;
    taps.count[size_t(out)] = count;
  }
  return taps;
}

// PIL's clip8: the accumulator shifted down to 8 bits, clamped to 0..255.
uint8_t clip8(int32_t accumulator) {
  return uint8_t(std::clamp<int32_t>(accumulator >> kPrecisionBits, 0, 255));
}

// Rows of (C, H, W) `in`, rows [row_begin, row_end) only, resampled along W: (C, row_end - row_begin, out_width).
std::vector<uint8_t> resample_rows(const std::vector<uint8_t>& in, int64_t channels, int64_t height, int64_t width,
                                   int64_t row_begin, int64_t row_end, const AxisTaps& taps, int64_t out_width) {
  const int64_t rows = row_end - row_begin;
  std::vector<uint8_t> out(size_t(channels * rows * out_width));
  for (int64_t c = 0; c < channels; ++c) {
    for (int64_t y = 0; y < rows; ++y) {
      const uint8_t* source = in.data() + (c * height + row_begin + y) * width;  // (W)
      uint8_t* destination = out.data() + (c * rows + y) * out_width;          // (out_width)
      for (int64_t x = 0; x < out_width; ++x) {
        const int32_t* weights = taps.weights.data() + x * taps.taps_per_output;
        const uint8_t* read = source + taps.first[size_t(x)];
        int32_t accumulator = 1 << (kPrecisionBits - 1);  // rounds the final shift to nearest
        for (int64_t j = 0; j < taps.count[size_t(x)]; ++j) accumulator += int32_t(read[j]) * weights[j];
        destination[x] = clip8(accumulator);
      }
    }
  }
  return out;
}

// (C, height, width) `in` resampled along H, reading rows from `row_offset` on: (C, out_height, width).
std::vector<uint8_t> resample_columns(const std::vector<uint8_t>& in, int64_t channels, int64_t height, int64_t width,
                                      int64_t row_offset, const AxisTaps& taps, int64_t out_height) {
  std::vector<uint8_t> out(size_t(channels * out_height * width));
  std::vector<int32_t> accumulators(static_cast<size_t>(width));  // (W): one output row at a time, read row by row
  for (int64_t c = 0; c < channels; ++c) {
    const uint8_t* plane = in.data() + c * height * width;  // (height, W)
    for (int64_t y = 0; y < out_height; ++y) {
      std::fill(accumulators.begin(), accumulators.end(), 1 << (kPrecisionBits - 1));
      const int32_t* weights = taps.weights.data() + y * taps.taps_per_output;
      for (int64_t j = 0; j < taps.count[size_t(y)]; ++j) {
        const uint8_t* row = plane + (taps.first[size_t(y)] - row_offset + j) * width;
        const int32_t weight = weights[j];
        for (int64_t x = 0; x < width; ++x) accumulators[size_t(x)] += int32_t(row[x]) * weight;
      }
      uint8_t* destination = out.data() + (c * out_height + y) * width;
      for (int64_t x = 0; x < width; ++x) destination[x] = clip8(accumulators[size_t(x)]);
    }
  }
  return out;
}
}  // namespace

Image resize_bilinear(const Image& image, int64_t height, int64_t width) {
  // Sides up to 2^16: a filter then has at most 2^17 + 1 taps, whose rounded weights sum to less
  // than 2^22 + 2^16, so 255 times that plus the rounding term stays below 2^31.
  constexpr int64_t kMaxSide = int64_t(1) << 16;
  LUNA_CHECK(height > 0 && width > 0 && height <= kMaxSide && width <= kMaxSide, "resize_bilinear: target size ",
             height, "x", width, " (height x width) must have sides in 1..", kMaxSide);
  LUNA_CHECK(image.channels >= 1 && image.channels <= 4 && image.height > 0 && image.width > 0 &&
                 image.height <= kMaxSide && image.width <= kMaxSide,
             "resize_bilinear: image of ", image.channels, " channels and ", image.height, "x", image.width,
             " (expected 1-4 channels and sides in 1..", kMaxSide, ")");
  LUNA_CHECK(int64_t(image.pixels.size()) == image.channels * image.height * image.width,
             "resize_bilinear: image of ", image.channels, "x", image.height, "x", image.width, " holds ",
             image.pixels.size(), " pixels (expected channels*height*width)");
  Image out;
  out.channels = image.channels;
  out.height = height;
  out.width = width;
  if (height == image.height && width == image.width) {
    out.pixels = image.pixels;
    return out;
  }
  // As Pillow: a pass only along an axis whose size changes.
  if (width == image.width) {
    out.pixels = resample_columns(image.pixels, image.channels, image.height, image.width, 0,
                                  pil_bilinear_taps(image.height, height), height);
    return out;
  }
  const AxisTaps horizontal = pil_bilinear_taps(image.width, width);
  if (height == image.height) {
    out.pixels = resample_rows(image.pixels, image.channels, image.height, image.width, 0, image.height, horizontal,
                               width);
    return out;
  }
  const AxisTaps vertical = pil_bilinear_taps(image.height, height);
  // Pillow >= 13 runs the vertical pass first when the height loses more than twice as many pixels
  // as the width (less work); the order changes the rounding, so it is followed here.
  const int64_t height_loss = image.height - height, width_loss = image.width - width;
  if (height_loss > 0 && height_loss > 2 * width_loss) {
    const std::vector<uint8_t> columns =
        resample_columns(image.pixels, image.channels, image.height, image.width, 0, vertical, height);  // (C, height, W)
    out.pixels = resample_rows(columns, image.channels, height, image.width, 0, height, horizontal, width);
    return out;
  }
  // Horizontal first (what every Pillow before 13 does), over only the rows the vertical pass reads.
  const int64_t first_row = vertical.first.front();
  const int64_t end_row = vertical.first.back() + vertical.count.back();
  const std::vector<uint8_t> rows = resample_rows(image.pixels, image.channels, image.height, image.width, first_row,
                                                  end_row, horizontal, width);  // (C, end_row - first_row, width)
  out.pixels = resample_columns(rows, image.channels, end_row - first_row, width, first_row, vertical, height);
  return out;
}

}  // namespace luna::data
