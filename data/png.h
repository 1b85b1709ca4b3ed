// PNG decoding to 8-bit grayscale through stb_image (Debian libstb), for the Pathfinder images.
#pragma once
#include <cstdint>
#include <string_view>
#include <vector>

namespace luna::data {

struct GrayImage {
  int64_t width = 0;
  int64_t height = 0;
  std::vector<uint8_t> pixels;  // (height, width), row-major
};

// Decodes a PNG file image; colour images are converted to gray by stb_image, 16-bit ones reduced
// to 8 bits. Anything that is not a decodable PNG, or larger than max_side on either side, is an
// error saying why (stb's reason included); the caller adds the file name. Only the PNG decoder is
// ever reached: the signature is checked before stb_image sees the bytes.
GrayImage decode_png_gray(std::string_view png, int64_t max_side = 4096);

}  // namespace luna::data
