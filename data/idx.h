// IDX reader (the MNIST / Fashion-MNIST format): a big-endian magic 0x0000TTNN (TT = element type,
// NN = number of dims), NN big-endian uint32 dimensions, then the elements row-major. Only the
// unsigned-byte type 0x08 is read (images 0x00000803, labels 0x00000801). gzip-compressed files are
// inflated through zlib first. Every problem (wrong magic, unsupported type, truncated data,
// trailing bytes) is an error naming the file and the values; an IDX file has no record structure
// to skip to, so these are never skipped.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace luna::data {

struct IdxArray {
  std::vector<int64_t> dims;  // e.g. (60000, 28, 28)
  std::vector<uint8_t> data;  // product(dims) bytes, row-major
  std::string source;
  int64_t numel() const { return int64_t(data.size()); }
};

// The IDX image in `bytes` (already decompressed).
IdxArray parse_idx(std::string_view bytes, const std::string& source);
// Reads `path`, inflating it first when it starts with the gzip magic.
IdxArray read_idx(const std::string& path);

}  // namespace luna::data
