// IDX parser.
#include <luna/data/idx.h>

#include <cstdio>

#include <luna/core/error.h>
#include <luna/data/gzip.h>
#include <luna/data/read_util.h>

namespace luna::data {

namespace {
uint32_t big_endian_u32(std::string_view bytes, size_t offset) {
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data() + offset);
  return uint32_t(p[0]) << 24 | uint32_t(p[1]) << 16 | uint32_t(p[2]) << 8 | uint32_t(p[3]);
}

std::string hex32(uint32_t value) {
  char text[16];
  std::snprintf(text, sizeof(text), "0x%08x", value);
  return text;
}
}  // namespace

IdxArray parse_idx(std::string_view bytes, const std::string& source) {
  LUNA_CHECK(bytes.size() >= 4, "idx: ", source, ": truncated: ", bytes.size(), " bytes, too short for the 4-byte magic");
  const uint32_t magic = big_endian_u32(bytes, 0);
  const uint32_t type = (magic >> 8) & 0xff, ndims = magic & 0xff;
  LUNA_CHECK((magic >> 16) == 0 && ndims >= 1, "idx: ", source, ": wrong magic ", hex32(magic),
             " (expected 0x00000801 for labels or 0x00000803 for images: two zero bytes, the type, the number of dims)");
  LUNA_CHECK(type == 0x08, "idx: ", source, ": magic ", hex32(magic), " has element type ", hex32(type),
             "; only 0x08 (unsigned byte) is supported");
  const size_t header = 4 + 4 * size_t(ndims);
  LUNA_CHECK(bytes.size() >= header, "idx: ", source, ": truncated header: ", ndims, " dims need ", header,
             " bytes, the file has ", bytes.size());

  IdxArray out;
  out.source = source;
  uint64_t numel = 1;
  std::string shape;
  for (uint32_t d = 0; d < ndims; ++d) {
    const uint32_t size = big_endian_u32(bytes, 4 + 4 * size_t(d));
    out.dims.push_back(int64_t(size));
    shape += (d ? "x" : "") + std::to_string(size);
    // Saturate instead of overflowing; anything past the file size fails the check below anyway.
    numel = (size != 0 && numel > (uint64_t(1) << 62) / size) ? (uint64_t(1) << 62) : numel * size;
  }
  const size_t available = bytes.size() - header;
  LUNA_CHECK(numel <= available, "idx: ", source, ": truncated: the header's shape ", shape, " needs ", numel,
             " bytes of data, the file has ", available);
  LUNA_CHECK(numel == available, "idx: ", source, ": ", available - numel, " unexpected bytes after the ", shape,
             " data");
  const auto* data = reinterpret_cast<const uint8_t*>(bytes.data() + header);
  out.data.assign(data, data + numel);
  return out;
}

IdxArray read_idx(const std::string& path) {
  const std::string bytes = detail::read_file(path, "idx");
  if (is_gzip(bytes)) return parse_idx(gunzip(bytes, path), path);
  return parse_idx(bytes, path);
}

}  // namespace luna::data
