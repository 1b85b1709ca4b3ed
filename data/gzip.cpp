// gzip through zlib's inflate with gzip header decoding (windowBits 16 + 15).
#include <luna/data/gzip.h>

#include <zlib.h>

#include <algorithm>
#include <climits>

#include <luna/core/error.h>

namespace luna::data {

bool is_gzip(std::string_view bytes) {
  return bytes.size() >= 2 && static_cast<unsigned char>(bytes[0]) == 0x1f && static_cast<unsigned char>(bytes[1]) == 0x8b;
}

std::string gunzip(std::string_view bytes, const std::string& source, size_t max_output) {
  LUNA_CHECK(is_gzip(bytes), "gzip: ", source, ": not a gzip stream (no 1f 8b magic)");
  z_stream stream{};
  LUNA_CHECK(inflateInit2(&stream, 16 + MAX_WBITS) == Z_OK, "gzip: ", source, ": zlib inflateInit2 failed");
  struct End {
    z_stream* s;
    ~End() { inflateEnd(s); }
  } end{&stream};

  std::string out;
  size_t consumed = 0;  // bytes of input handed to zlib so far
  char buffer[1 << 16];
  while (true) {
    if (stream.avail_in == 0 && consumed < bytes.size()) {
      const size_t chunk = std::min<size_t>(bytes.size() - consumed, UINT_MAX);
      stream.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(bytes.data() + consumed));
      stream.avail_in = uInt(chunk);
      consumed += chunk;
    }
    stream.next_out = reinterpret_cast<Bytef*>(buffer);
    stream.avail_out = sizeof(buffer);
    const int status = inflate(&stream, Z_NO_FLUSH);
    const size_t produced = sizeof(buffer) - stream.avail_out;
    LUNA_CHECK(out.size() + produced <= max_output, "gzip: ", source, ": decompresses to more than ", max_output,
               " bytes");
    out.append(buffer, produced);
    if (status == Z_STREAM_END) {
      const size_t remaining = stream.avail_in + (bytes.size() - consumed);
      if (remaining == 0) return out;
      // Another member follows (gzip allows concatenation); trailing zero padding is tolerated.
      const std::string_view rest = bytes.substr(bytes.size() - remaining);
      if (rest.find_first_not_of('\0') == std::string_view::npos) return out;
      LUNA_CHECK(is_gzip(rest), "gzip: ", source, ": ", remaining, " bytes of trailing garbage after the gzip stream");
      LUNA_CHECK(inflateReset(&stream) == Z_OK, "gzip: ", source, ": zlib inflateReset failed");
      continue;
    }
    if (status == Z_OK) continue;
    if (status == Z_BUF_ERROR && stream.avail_in == 0 && consumed == bytes.size()) {
      LUNA_FAIL("gzip: ", source, ": truncated gzip stream (ends after ", out.size(), " decompressed bytes)");
    }
    LUNA_FAIL("gzip: ", source, ": corrupt gzip data (zlib: ", stream.msg ? stream.msg : zError(status), ")");
  }
}

}  // namespace luna::data
