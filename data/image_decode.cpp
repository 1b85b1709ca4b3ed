// Image files to planar 8-bit pixels through stb_image (Debian libstb): the size is read with
// stbi_info before any pixel buffer is allocated, the file's channel count is kept, and stb's
// interleaved (H, W, C) rows become luna's planar (C, H, W).
#include <luna/data/images.h>

#include <stb/stb_image.h>

#include <climits>
#include <memory>

#include <luna/core/error.h>
#include <luna/data/read_util.h>
#include <luna/data/stb_failure.h>

namespace luna::data {

Image decode_image(std::string_view bytes, int64_t max_side) {
  LUNA_CHECK(max_side > 0, "decode_image: max_side must be > 0, got ", max_side);
  LUNA_CHECK(!bytes.empty(), "empty file (0 bytes), not an image");
  LUNA_CHECK(bytes.size() <= size_t(INT_MAX), "image file of ", bytes.size(), " bytes is too large to decode");
  const auto* data = reinterpret_cast<const stbi_uc*>(bytes.data());
  const int length = int(bytes.size());
  int width = 0, height = 0, channels = 0;
  LUNA_CHECK(stbi_info_from_memory(data, length, &width, &height, &channels),
             "not an image stb_image can decode (", detail::stb_failure(), "; ", bytes.size(), " bytes starting ",
             detail::quoted(bytes.substr(0, 8)), ")");
  auto check_size = [&](int w, int h) {
    LUNA_CHECK(w > 0 && h > 0 && w <= max_side && h <= max_side, "image of ", w, "x", h,
               " (width x height) exceeds the largest accepted side ", max_side);
  };
  check_size(width, height);
  int loaded_width = 0, loaded_height = 0, loaded_channels = 0;
  // desired_channels = 0: the file's own channel count; 16-bit files come back as 8 bits.
  std::unique_ptr<stbi_uc, void (*)(void*)> interleaved(
      stbi_load_from_memory(data, length, &loaded_width, &loaded_height, &loaded_channels, /*desired_channels=*/0),
      &stbi_image_free);
  LUNA_CHECK(interleaved != nullptr, "corrupt or unsupported image (", detail::stb_failure(), "; ", width, "x", height,
             " announced)");
  // The header stb read for stbi_info is the one it decoded; a disagreement would be a decoder bug,
  // and the checks below are what keep the copy inside the buffer stb returned.
  LUNA_CHECK(loaded_width == width && loaded_height == height, "image announced as ", width, "x", height,
             " decoded as ", loaded_width, "x", loaded_height);
  LUNA_CHECK(loaded_channels >= 1 && loaded_channels <= 4, "image decoded with ", loaded_channels,
             " channels (expected 1 to 4)");

  Image image;
  image.channels = loaded_channels;
  image.height = height;
  image.width = width;
  const size_t plane = size_t(width) * size_t(height);
  image.pixels.resize(plane * size_t(loaded_channels));  // (C, H, W)
  const stbi_uc* source = interleaved.get();             // (H, W, C)
  for (size_t c = 0; c < size_t(loaded_channels); ++c) {
    uint8_t* destination = image.pixels.data() + c * plane;
    for (size_t p = 0; p < plane; ++p) destination[p] = source[p * size_t(loaded_channels) + c];
  }
  return image;
}

Image read_image(const std::string& path, int64_t max_side) {
  const std::string bytes = detail::read_file(path, nullptr);
  try {
    return decode_image(bytes, max_side);
  } catch (const Error& error) {
    throw Error(path + ": " + error.what());
  }
}

}  // namespace luna::data
