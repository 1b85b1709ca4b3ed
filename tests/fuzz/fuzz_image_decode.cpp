// libFuzzer target for decode_image (`make fuzz`): any bytes either decode to an image whose
// channel count, sides and pixel count agree, or throw luna::Error; a decoded image is then resized
// (to a size picked by the input's first and last bytes) and must come back with consistent dims.
#include "fuzz_data_common.h"

#include <luna/data/images.h>

namespace {
constexpr const char* kTarget = "fuzz_image_decode";
// Small enough that stb's buffers stay a few MB, large enough for every format's header paths.
constexpr int64_t kMaxSide = 256;

void check_image(const luna::data::Image& image, int64_t max_side) {
  if (image.channels < 1 || image.channels > 4) luna::fuzz::fail(kTarget, "channel count outside 1-4");
  if (image.height < 1 || image.width < 1 || image.height > max_side || image.width > max_side) {
    luna::fuzz::fail(kTarget, "sides outside 1..max_side");
  }
  if (image.pixels.size() != size_t(image.channels * image.height * image.width)) {
    luna::fuzz::fail(kTarget, "pixel count is not channels * height * width");
  }
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view bytes = luna::fuzz::as_text(data, size);
  std::optional<luna::data::Image> image = luna::fuzz::read_or_reject([&] { return luna::data::decode_image(bytes, kMaxSide); });
  if (!image) return 0;
  check_image(*image, kMaxSide);
  const int64_t height = 1 + data[0] % 40, width = 1 + data[size - 1] % 40;
  const luna::data::Image resized = luna::data::resize_bilinear(*image, height, width);
  check_image(resized, 40);
  if (resized.channels != image->channels || resized.height != height || resized.width != width) {
    luna::fuzz::fail(kTarget, "resize_bilinear returned other dims than asked for");
  }
  // A same-size resize is a copy.
  if (luna::data::resize_bilinear(*image, image->height, image->width).pixels != image->pixels) {
    luna::fuzz::fail(kTarget, "same-size resize changed the pixels");
  }
  return 0;
}
