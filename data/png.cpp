// stb_image PNG decoding with size checks before any pixel buffer is allocated.
#include <luna/data/png.h>

#include <stb/stb_image.h>

#include <climits>
#include <memory>

#include <luna/core/error.h>
#include <luna/data/read_util.h>
#include <luna/data/stb_failure.h>

namespace luna::data {

GrayImage decode_png_gray(std::string_view png, int64_t max_side) {
  static constexpr std::string_view kSignature("\x89PNG\r\n\x1a\n", 8);
  LUNA_CHECK(png.substr(0, 8) == kSignature, "not a PNG file (", png.size(), " bytes starting ",
             detail::quoted(png.substr(0, 8)), ", expected the signature \"\\x89PNG\\r\\n\\x1a\\n\")");
  LUNA_CHECK(png.size() <= size_t(INT_MAX), "PNG of ", png.size(), " bytes is too large to decode");
  const auto* bytes = reinterpret_cast<const stbi_uc*>(png.data());
  const int length = int(png.size());
  int width = 0, height = 0, channels = 0;
  LUNA_CHECK(stbi_info_from_memory(bytes, length, &width, &height, &channels), "corrupt PNG (",
             detail::stb_failure(), ")");
  LUNA_CHECK(width > 0 && height > 0 && width <= max_side && height <= max_side, "PNG of ", width, "x", height,
             " exceeds the largest accepted side ", max_side);
  std::unique_ptr<stbi_uc, void (*)(void*)> pixels(
      stbi_load_from_memory(bytes, length, &width, &height, &channels, /*desired_channels=*/1), &stbi_image_free);
  LUNA_CHECK(pixels != nullptr, "corrupt PNG (", detail::stb_failure(), ")");
  GrayImage image;
  image.width = width;
  image.height = height;
  image.pixels.assign(pixels.get(), pixels.get() + size_t(width) * size_t(height));
  return image;
}

}  // namespace luna::data
