// safetensors reader and writer (spec/CHECKPOINTS.md): the one tensor file format luna reads and
// writes. Files load through mmap without copying, writes are atomic (temp file, fsync, rename),
// and every malformed input is rejected with an error naming the file, the tensor and the values.
#pragma once
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <luna/core/tensor.h>

namespace luna {

// The tensors and metadata of one safetensors file.
struct SafetensorsFile {
  // Sorted by data offset: JSON objects have no reliable order, the data block does.
  std::vector<std::pair<std::string, Tensor>> tensors;
  std::map<std::string, std::string> metadata;
  // Where the tensors came from (a path, or the name given to parse_safetensors); used in errors.
  std::string source;

  bool contains(const std::string& name) const;
  // The tensor called `name`; an error naming the file and the tensor if it is absent.
  const Tensor& at(const std::string& name) const;
};

// Writes `tensors` (any device, dtype and layout; copied to contiguous CPU memory as needed) in
// the given order with no gaps. The header is padded with spaces so the data block starts at a
// multiple of 8 bytes. Atomic: the data goes to "<path>.tmp.<pid>.<n>" in the same directory,
// which is fsynced and renamed over `path`, then the directory is fsynced; on failure the temp
// file is removed and the error names the path and the system's reason.
void save_safetensors(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata = {});

// The exact bytes save_safetensors writes, in memory.
std::vector<uint8_t> serialize_safetensors(const std::vector<std::pair<std::string, Tensor>>& tensors,
                                           const std::map<std::string, std::string>& metadata = {});

// Maps `path` (MAP_PRIVATE, copy-on-write) and returns tensors that borrow the mapping; it is
// unmapped when the last of them goes away. Writing to a loaded tensor never touches the file.
// Tensors whose data is not aligned to their element size are copied instead (some writers pack
// 1-byte tensors before wider ones). The file must not be truncated while tensors are alive.
SafetensorsFile load_safetensors(const std::string& path);

// Only the header's "__metadata__" (the whole header is still validated); reads no tensor data.
std::map<std::string, std::string> load_safetensors_metadata(const std::string& path);

// Parses a whole file image held in memory. `name_for_errors` stands in for the path in errors.
// Without `keep_alive` the tensors get their own copies of the data; with it they borrow `data`
// directly and hold `keep_alive` (the owner of `data`) until the last of them is gone.
SafetensorsFile parse_safetensors(const uint8_t* data, size_t size, const std::string& name_for_errors,
                                  std::shared_ptr<const void> keep_alive = nullptr);

// The safetensors dtype string ("F32", "BF16", ...) and back; an unknown string is an error.
const char* safetensors_dtype_name(DType dtype);
DType safetensors_dtype_from_name(const std::string& name);

}  // namespace luna
