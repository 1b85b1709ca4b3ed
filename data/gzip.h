// gzip decompression through zlib, for the .gz files Debian ships (Fashion-MNIST IDX).
#pragma once
#include <cstddef>
#include <string>
#include <string_view>

namespace luna::data {

// Whether `bytes` starts with the gzip magic 1f 8b.
bool is_gzip(std::string_view bytes);

// Inflates a gzip stream (concatenated members are joined, as gunzip does). A corrupt or truncated
// stream, or output beyond `max_output` bytes (a guard against decompression bombs), is an error
// naming `source`.
std::string gunzip(std::string_view bytes, const std::string& source, size_t max_output = size_t(1) << 32);

}  // namespace luna::data
