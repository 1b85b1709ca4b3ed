// IDX and gzip: big-endian header parsing, gzip through zlib (including concatenated members),
// and every malformed-file error: wrong magic, unsupported type, truncation, trailing bytes,
// corrupt or truncated gzip, the decompression cap, a missing file.
#include "data/data_test_util.h"

#include <zlib.h>

#include <luna/data/gzip.h>
#include <luna/data/idx.h>

using namespace luna;
using namespace luna::data;
using luna::testing::require_error;
using luna::testing::TempDir;

namespace {
std::string be32(uint32_t value) {
  return {char(value >> 24), char(value >> 16), char(value >> 8), char(value)};
}

std::string idx_bytes(uint32_t magic, const std::vector<uint32_t>& dims, const std::string& data) {
  std::string bytes = be32(magic);
  for (uint32_t d : dims) bytes += be32(d);
  return bytes + data;
}

// gzip through zlib's deflate (windowBits 16 + 15 writes the gzip wrapper).
std::string gzip(const std::string& data) {
  z_stream stream{};
  REQUIRE(deflateInit2(&stream, 6, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY) == Z_OK);
  std::string out(deflateBound(&stream, uLong(data.size())) + 32, '\0');
  stream.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  stream.avail_in = uInt(data.size());
  stream.next_out = reinterpret_cast<Bytef*>(out.data());
  stream.avail_out = uInt(out.size());
  REQUIRE(deflate(&stream, Z_FINISH) == Z_STREAM_END);
  out.resize(stream.total_out);
  deflateEnd(&stream);
  return out;
}
}  // namespace

TEST_CASE("IDX: images and labels headers, raw and gzip'd", "[data][idx]") {
  std::string pixels;
  for (int i = 0; i < 2 * 3 * 4; ++i) pixels += char(i * 10);
  const std::string images = idx_bytes(0x00000803, {2, 3, 4}, pixels);
  const IdxArray parsed = parse_idx(images, "mem");
  REQUIRE(parsed.dims == std::vector<int64_t>{2, 3, 4});
  REQUIRE(parsed.numel() == 24);
  REQUIRE(parsed.data[23] == 230);
  REQUIRE(parsed.source == "mem");

  const IdxArray labels = parse_idx(idx_bytes(0x00000801, {3}, std::string("\x07\x00\x09", 3)), "labels");
  REQUIRE(labels.dims == std::vector<int64_t>{3});
  REQUIRE(labels.data == std::vector<uint8_t>{7, 0, 9});

  // Dimension sizes above 2^24 are read big-endian, not truncated (zero-size data is fine).
  REQUIRE(parse_idx(idx_bytes(0x00000802, {0x01020304, 0}, ""), "m").dims == std::vector<int64_t>{0x01020304, 0});

  TempDir dir;
  const std::string raw_path = dir.write("images-idx3-ubyte", images);
  const std::string gz_path = dir.write("images-idx3-ubyte.gz", gzip(images));
  REQUIRE(read_idx(raw_path).data == parsed.data);
  const IdxArray from_gz = read_idx(gz_path);
  REQUIRE(from_gz.dims == parsed.dims);
  REQUIRE(from_gz.data == parsed.data);
  REQUIRE(from_gz.source == gz_path);
}

TEST_CASE("IDX: malformed files are errors naming the file and the values", "[data][idx]") {
  require_error([] { parse_idx(std::string("\x00\x00", 2), "f.idx"); }, {"idx: f.idx:", "truncated", "2 bytes"});
  require_error([] { parse_idx(idx_bytes(0x08030000, {1}, "x"), "f.idx"); },
                {"idx: f.idx:", "wrong magic 0x08030000", "0x00000803"});
  require_error([] { parse_idx(idx_bytes(0x00000800, {}, ""), "f.idx"); }, {"wrong magic 0x00000800"});
  require_error([] { parse_idx(idx_bytes(0x00000d01, {1}, "abcd"), "f.idx"); },
                {"idx: f.idx:", "element type 0x0000000d", "only 0x08"});
  require_error([] { parse_idx(be32(0x00000803) + be32(2), "f.idx"); },
                {"idx: f.idx:", "truncated header: 3 dims need 16 bytes, the file has 8"});
  require_error([] { parse_idx(idx_bytes(0x00000803, {2, 2, 3}, std::string(11, 'a')), "f.idx"); },
                {"idx: f.idx:", "truncated", "shape 2x2x3 needs 12 bytes of data, the file has 11"});
  require_error([] { parse_idx(idx_bytes(0x00000801, {2}, "abc"), "f.idx"); },
                {"idx: f.idx:", "1 unexpected bytes after the 2 data"});
  // Dims whose product overflows 64 bits are rejected as truncation, not wrapped around.
  require_error([] { parse_idx(idx_bytes(0x00000804, {0xffffffff, 0xffffffff, 0xffffffff, 2}, "ab"), "f.idx"); },
                {"truncated", "4294967295x4294967295x4294967295x2"});

  TempDir dir;
  const std::string missing = (dir.path() / "absent.gz").string();
  require_error([&] { read_idx(missing); }, {"idx: cannot read '" + missing + "'", "No such file"});
  const std::string gz = gzip(idx_bytes(0x00000803, {1, 28, 28}, std::string(784, 'p')));
  const std::string cut = dir.write("cut.gz", gz.substr(0, gz.size() / 2));
  require_error([&] { read_idx(cut); }, {"gzip: " + cut + ":", "truncated gzip stream"});
  std::string damaged = gz;
  damaged[damaged.size() - 6] ^= 0x5a;  // inside the CRC-32 trailer
  const std::string bad_crc = dir.write("crc.gz", damaged);
  require_error([&] { read_idx(bad_crc); }, {"gzip: " + bad_crc + ":", "corrupt gzip data", "incorrect data check"});
  const std::string wrong_magic_gz = dir.write("magic.gz", gzip(idx_bytes(0x01020304, {1}, "x")));
  require_error([&] { read_idx(wrong_magic_gz); }, {"idx: " + wrong_magic_gz + ":", "wrong magic 0x01020304"});
}

TEST_CASE("gzip: concatenated members, trailing garbage, the output cap", "[data][idx]") {
  const std::string two = gzip("hello ") + gzip("world");
  REQUIRE(gunzip(two, "two") == "hello world");
  REQUIRE(gunzip(gzip("pad") + std::string(8, '\0'), "padded") == "pad");
  REQUIRE(gunzip(gzip(""), "empty").empty());
  require_error([&] { gunzip(gzip("x") + "junk", "junk.gz"); }, {"gzip: junk.gz:", "4 bytes of trailing garbage"});
  require_error([] { gunzip("plain", "plain.txt"); }, {"gzip: plain.txt:", "not a gzip stream"});
  const std::string big = gzip(std::string(100000, 'z'));
  REQUIRE(gunzip(big, "big", 100000).size() == 100000);
  require_error([&] { gunzip(big, "big", 99999); }, {"gzip: big:", "decompresses to more than 99999 bytes"});
}
