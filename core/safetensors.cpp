// safetensors reader and writer: header parsing with strict validation, mmap loading that hands
// out borrowed tensors, and atomic writes. The format is in spec/CHECKPOINTS.md; layout:
// [u64 little-endian N][N bytes of JSON header, space-padded][data block].
#include <luna/core/safetensors.h>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <functional>
#include <limits>
#include <optional>
#include <set>
#include <sstream>
#include <tuple>

#include <nlohmann/json.hpp>

namespace luna {
namespace {

static_assert(std::endian::native == std::endian::little,
              "safetensors data is little-endian; luna copies it without byte swapping");

using json = nlohmann::json;
using ordered_json = nlohmann::ordered_json;

constexpr size_t kLengthPrefixBytes = 8;
// The reference implementation (huggingface/safetensors) refuses headers above 100 MB; a length
// beyond that means a corrupt file or not a safetensors file at all.
constexpr uint64_t kMaxHeaderBytes = 100'000'000;
constexpr const char* kMetadataKey = "__metadata__";
constexpr const char* kSupportedDTypes = "F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL";

struct DTypeName {
  DType dtype;
  const char* name;
};
constexpr DTypeName kDTypeNames[] = {
    {kFloat64, "F64"}, {kFloat32, "F32"}, {kFloat16, "F16"}, {kBFloat16, "BF16"}, {kInt64, "I64"},
    {kInt32, "I32"},   {kInt16, "I16"},   {kInt8, "I8"},     {kUInt8, "U8"},      {kBool, "BOOL"},
};

std::optional<DType> find_dtype(const std::string& name) {
  for (const DTypeName& entry : kDTypeNames)
    if (name == entry.name) return entry.dtype;
  return std::nullopt;
}

// Every error starts with "safetensors: <file>: " so a user with many checkpoints knows which one.
template <class... Parts>
[[noreturn]] void fail(const std::string& source, const Parts&... parts) {
  detail::throw_error("safetensors: ", source, ": ", parts...);
}

// A JSON value as it appeared, shortened so a corrupt header cannot flood the message.
std::string describe(const json& value) {
  std::string text = value.dump(-1, ' ', false, json::error_handler_t::replace);
  constexpr size_t kMaxShown = 80;
  if (text.size() > kMaxShown) text = text.substr(0, kMaxShown - 3) + "...";
  return text;
}

std::string offsets_text(uint64_t begin, uint64_t end) {
  std::ostringstream text;
  text << '[' << begin << ',' << end << ']';
  return text.str();
}

// One tensor as the header describes it; offsets are relative to the data block.
struct HeaderEntry {
  std::string name;
  DType dtype = kFloat32;
  Dims shape;
  uint64_t begin = 0;
  uint64_t end = 0;
};

struct ParsedHeader {
  std::vector<HeaderEntry> entries;  // sorted by (begin, end, name)
  std::map<std::string, std::string> metadata;
};

// N from the first 8 bytes, checked against what the file can hold.
uint64_t read_header_length(const uint8_t* prefix, uint64_t file_size, const std::string& source) {
  if (file_size < kLengthPrefixBytes)
    fail(source, "file is ", file_size, " bytes, shorter than the 8-byte header length that starts every "
         "safetensors file (truncated or not a safetensors file)");
  uint64_t header_bytes = 0;
  std::memcpy(&header_bytes, prefix, sizeof(header_bytes));
  if (header_bytes > kMaxHeaderBytes)
    fail(source, "header length ", header_bytes, " bytes is absurdly large (limit ", kMaxHeaderBytes,
         "); the file is corrupt or not a safetensors file");
  if (header_bytes > file_size - kLengthPrefixBytes)
    fail(source, "header length ", header_bytes, " bytes runs past the end of the file (only ",
         file_size - kLengthPrefixBytes, " bytes follow the 8-byte length; truncated file?)");
  return header_bytes;
}

// nlohmann keeps the last of repeated keys silently; a repeated tensor name would hide a tensor,
// so the parse callback records the first key seen twice within any one object.
json parse_json_rejecting_duplicates(const char* first, const char* last, const std::string& source) {
  std::vector<std::set<std::string>> open_objects;
  std::optional<std::string> duplicate;
  bool duplicate_is_tensor_name = false;
  const json::parser_callback_t callback = [&](int, json::parse_event_t event, json& parsed) {
    if (event == json::parse_event_t::object_start) {
      open_objects.emplace_back();
    } else if (event == json::parse_event_t::object_end) {
      if (!open_objects.empty()) open_objects.pop_back();
    } else if (event == json::parse_event_t::key && !open_objects.empty() && !duplicate) {
      const std::string& key = parsed.get_ref<const std::string&>();
      if (!open_objects.back().insert(key).second) {
        duplicate = key;
        duplicate_is_tensor_name = open_objects.size() == 1;
      }
    }
    return true;
  };
  json header;
  try {
    header = json::parse(first, last, callback);
  } catch (const json::exception& e) {
    fail(source, "header is not valid JSON (", e.what(), ")");
  }
  if (duplicate) {
    if (duplicate_is_tensor_name) fail(source, "tensor '", *duplicate, "' appears twice in the header");
    fail(source, "the header repeats the key \"", *duplicate, "\" inside one object");
  }
  return header;
}

uint64_t unsigned_or_fail(const json& value, const std::string& source, const std::string& what,
                          const std::string& context) {
  if (!value.is_number_unsigned())
    fail(source, what, " is ", describe(value), context, "; it must be a non-negative integer");
  return value.get<uint64_t>();
}

HeaderEntry parse_entry(const std::string& name, const json& value, uint64_t data_size, const std::string& source) {
  const std::string tensor = "tensor '" + name + "'";
  if (!value.is_object())
    fail(source, tensor, " is described by ", describe(value), ", expected an object with dtype, shape and data_offsets");
  const auto field = [&](const char* key) -> const json& {
    const auto it = value.find(key);
    if (it == value.end()) fail(source, tensor, " has no \"", key, "\" field (entry ", describe(value), ")");
    return *it;
  };

  HeaderEntry entry;
  entry.name = name;

  const json& dtype = field("dtype");
  if (!dtype.is_string()) fail(source, tensor, " has dtype ", describe(dtype), ", expected a string such as \"F32\"");
  const std::optional<DType> found = find_dtype(dtype.get_ref<const std::string&>());
  if (!found) fail(source, tensor, " has unknown dtype ", describe(dtype), " (luna reads ", kSupportedDTypes, ")");
  entry.dtype = *found;

  const json& shape = field("shape");
  if (!shape.is_array()) fail(source, tensor, " has shape ", describe(shape), ", expected an array of non-negative integers");
  if (shape.size() > size_t(kMaxDims))
    fail(source, tensor, " has ", shape.size(), " dims (shape ", describe(shape), "); luna supports at most ", kMaxDims);
  // `extent` bounds every row-major stride (zero-size dims count as 1), so checking it keeps the
  // element count and all strides of the Tensor we build inside int64.
  uint64_t numel = 1, extent = 1;
  for (size_t i = 0; i < shape.size(); ++i) {
    const uint64_t size = unsigned_or_fail(shape[i], source, tensor + " shape entry " + std::to_string(i),
                                           " (shape " + describe(shape) + ")");
    if (__builtin_mul_overflow(extent, std::max<uint64_t>(size, 1), &extent) ||
        extent > uint64_t(std::numeric_limits<int64_t>::max()))
      fail(source, tensor, " has shape ", describe(shape), ", whose element count does not fit in 64 bits");
    numel *= size;
    entry.shape.push_back(int64_t(size));
  }

  const json& offsets = field("data_offsets");
  if (!offsets.is_array() || offsets.size() != 2)
    fail(source, tensor, " has data_offsets ", describe(offsets), ", expected [begin, end]");
  entry.begin = unsigned_or_fail(offsets[0], source, tensor + " data_offsets begin", " (data_offsets " + describe(offsets) + ")");
  entry.end = unsigned_or_fail(offsets[1], source, tensor + " data_offsets end", " (data_offsets " + describe(offsets) + ")");
  if (entry.begin > entry.end)
    fail(source, tensor, " has data_offsets ", offsets_text(entry.begin, entry.end), " with begin after end");

  const char* dtype_name = safetensors_dtype_name(entry.dtype);
  uint64_t nbytes = 0;
  if (__builtin_mul_overflow(numel, uint64_t(element_size(entry.dtype)), &nbytes))
    fail(source, tensor, " has shape ", entry.shape, ", more than 2^64 bytes as ", dtype_name);
  if (nbytes != entry.end - entry.begin)
    fail(source, tensor, " has shape ", entry.shape, " (", nbytes, " bytes as ", dtype_name, ") but data_offsets ",
         offsets_text(entry.begin, entry.end), " span ", entry.end - entry.begin, " bytes");
  if (entry.end > data_size)
    fail(source, tensor, " has data_offsets ", offsets_text(entry.begin, entry.end), " but the data block holds only ",
         data_size, " bytes (truncated file?)");
  return entry;
}

std::map<std::string, std::string> parse_metadata(const json& value, const std::string& source) {
  if (!value.is_object())
    fail(source, "__metadata__ is ", describe(value), ", expected an object mapping strings to strings");
  std::map<std::string, std::string> metadata;
  for (const auto& [key, item] : value.items()) {
    if (!item.is_string())
      fail(source, "__metadata__ entry '", key, "' is ", describe(item), ", expected a string");
    metadata.emplace(key, item.get<std::string>());
  }
  return metadata;
}

// Validates the whole header against a data block of `data_size` bytes. Gaps between tensors are
// accepted (some writers align tensors), overlaps are not: two tensors must never share bytes.
ParsedHeader parse_header(const char* text, size_t text_size, uint64_t data_size, const std::string& source) {
  const json header = parse_json_rejecting_duplicates(text, text + text_size, source);
  if (!header.is_object())
    fail(source, "header is ", describe(header), ", expected a JSON object mapping tensor names to "
         "{dtype, shape, data_offsets}");
  ParsedHeader parsed;
  for (const auto& [name, value] : header.items()) {
    if (name == kMetadataKey) parsed.metadata = parse_metadata(value, source);
    else parsed.entries.push_back(parse_entry(name, value, data_size, source));
  }
  std::sort(parsed.entries.begin(), parsed.entries.end(), [](const HeaderEntry& a, const HeaderEntry& b) {
    return std::tie(a.begin, a.end, a.name) < std::tie(b.begin, b.end, b.name);
  });
  // Empty tensors own no bytes, so they overlap nothing; among the others, sorted by begin, each
  // must start at or after the end of the one before.
  const HeaderEntry* previous = nullptr;
  for (const HeaderEntry& entry : parsed.entries) {
    if (entry.begin == entry.end) continue;
    if (previous && entry.begin < previous->end)
      fail(source, "tensors '", previous->name, "' (data_offsets ", offsets_text(previous->begin, previous->end),
           ") and '", entry.name, "' (data_offsets ", offsets_text(entry.begin, entry.end), ") overlap");
    previous = &entry;
  }
  return parsed;
}

// A bool tensor whose bytes are not 0/1 would be undefined behaviour in every kernel that reads it.
void check_bool_bytes(const uint8_t* bytes, const HeaderEntry& entry, const std::string& source) {
  for (uint64_t i = 0; i < entry.end - entry.begin; ++i)
    if (bytes[i] > 1)
      fail(source, "tensor '", entry.name, "' (BOOL) has byte value ", int(bytes[i]), " at element ", i,
           "; BOOL data must be 0 or 1");
}

Tensor tensor_from_bytes(const uint8_t* bytes, const HeaderEntry& entry, const std::shared_ptr<const void>& keep_alive) {
  const size_t nbytes = size_t(entry.end - entry.begin);
  const bool aligned = reinterpret_cast<uintptr_t>(bytes) % element_size(entry.dtype) == 0;
  if (keep_alive && aligned) {
    // The storage only borrows the bytes; its deleter's copy of `keep_alive` keeps the owner (the
    // mapping) alive until the last tensor and view sharing this storage is destroyed.
    auto storage = std::make_shared<StorageImpl>(const_cast<uint8_t*>(bytes), nbytes, Device::cpu(),
                                                 [keep_alive](void*) {});
    return make_tensor(std::move(storage), entry.shape, contiguous_strides(entry.shape), 0, entry.dtype);
  }
  Tensor owned = empty_tensor(entry.shape, entry.dtype, Device::cpu());
  if (nbytes) std::memcpy(owned.data_ptr(), bytes, nbytes);
  return owned;
}

// ---------------------------------------------------------------------------------------------
// Writing

struct PreparedTensor {
  const std::string* name;
  Tensor data;  // contiguous, on the CPU
  uint64_t nbytes;
};

std::vector<PreparedTensor> prepare_tensors(const std::vector<std::pair<std::string, Tensor>>& tensors,
                                            const std::string& target) {
  std::vector<PreparedTensor> prepared;
  prepared.reserve(tensors.size());
  std::set<std::string> seen;
  for (const auto& [name, tensor] : tensors) {
    if (name == kMetadataKey) fail(target, "a tensor cannot be named \"", kMetadataKey, "\" (reserved for metadata)");
    if (!seen.insert(name).second) fail(target, "tensor '", name, "' is given twice; names must be unique");
    if (!tensor.defined()) fail(target, "tensor '", name, "' is undefined");
    // detach: saving is not part of any graph, and the copies below must not record history.
    Tensor data = tensor.detach().to(Device::cpu()).contiguous();
    prepared.push_back({&name, data, uint64_t(data.nbytes())});
  }
  return prepared;
}

std::string build_header(const std::vector<PreparedTensor>& tensors, const std::map<std::string, std::string>& metadata,
                         const std::string& target) {
  ordered_json header = ordered_json::object();
  if (!metadata.empty()) {
    ordered_json meta = ordered_json::object();
    for (const auto& [key, value] : metadata) meta[key] = value;
    header[kMetadataKey] = std::move(meta);
  }
  uint64_t offset = 0;
  for (const PreparedTensor& tensor : tensors) {
    ordered_json entry = ordered_json::object();
    entry["dtype"] = safetensors_dtype_name(tensor.data.dtype());
    entry["shape"] = tensor.data.sizes().vec();
    entry["data_offsets"] = ordered_json::array({offset, offset + tensor.nbytes});
    header[*tensor.name] = std::move(entry);
    offset += tensor.nbytes;
  }
  std::string text;
  try {
    text = header.dump();
  } catch (const ordered_json::exception& e) {
    fail(target, "cannot encode the header (", e.what(), "); tensor names and metadata must be valid UTF-8");
  }
  // Space padding to a multiple of 8 puts the data block on an 8-byte boundary, so every tensor
  // whose offset is a multiple of its element size is aligned when the file is mapped.
  text.append((8 - text.size() % 8) % 8, ' ');
  return text;
}

// Streams the file image to `emit` piece by piece, so large tensors are never copied twice.
void emit_safetensors(const std::vector<PreparedTensor>& tensors, const std::string& header,
                      const std::function<void(const void*, size_t)>& emit) {
  const uint64_t header_bytes = header.size();
  emit(&header_bytes, sizeof(header_bytes));
  emit(header.data(), header.size());
  for (const PreparedTensor& tensor : tensors)
    if (tensor.nbytes) emit(tensor.data.data_ptr(), size_t(tensor.nbytes));
}

std::string errno_text(int error) { return std::strerror(error); }

// Owns the temp file of one save: until `commit()`, destruction closes and removes it.
class TempFile {
 public:
  TempFile(std::string path, int fd) : path_(std::move(path)), fd_(fd) {}
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
  ~TempFile() {
    if (fd_ >= 0) ::close(fd_);
    if (!committed_) ::unlink(path_.c_str());
  }
  int fd() const { return fd_; }
  const std::string& path() const { return path_; }
  // Closes the descriptor, returning close()'s errno (0 on success): on NFS a failed write can
  // first surface here.
  int close() {
    const int result = ::close(fd_);
    fd_ = -1;
    return result == 0 ? 0 : errno;
  }
  void commit() { committed_ = true; }

 private:
  std::string path_;
  int fd_;
  bool committed_ = false;
};

void write_fully(const TempFile& file, const void* data, size_t size, const std::string& target) {
  const char* cursor = static_cast<const char*>(data);
  while (size > 0) {
    const ssize_t written = ::write(file.fd(), cursor, size);
    if (written < 0) {
      if (errno == EINTR) continue;
      const int error = errno;
      fail(target, "cannot write the temp file '", file.path(), "': ", errno_text(error));
    }
    cursor += written;
    size -= size_t(written);
  }
}

// After rename the new name lives in the directory's data; fsync it so a crash cannot lose it.
void fsync_directory(const std::string& target) {
  std::filesystem::path directory = std::filesystem::path(target).parent_path();
  if (directory.empty()) directory = ".";
  const int fd = ::open(directory.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    const int error = errno;
    fail(target, "written, but cannot open its directory '", directory.string(), "' to fsync it: ", errno_text(error));
  }
  const int result = ::fsync(fd);
  const int error = errno;
  ::close(fd);
  // Some filesystems cannot fsync a directory (EINVAL); there is nothing more to make durable.
  if (result != 0 && error != EINVAL)
    fail(target, "written, but fsync of its directory '", directory.string(), "' failed: ", errno_text(error));
}

// pread until `size` bytes arrived; a short file is reported like a truncated one.
void read_exactly(int fd, void* data, size_t size, uint64_t offset, const std::string& path) {
  char* cursor = static_cast<char*>(data);
  while (size > 0) {
    const ssize_t got = ::pread(fd, cursor, size, off_t(offset));
    if (got < 0) {
      if (errno == EINTR) continue;
      const int error = errno;
      fail(path, "cannot read: ", errno_text(error));
    }
    if (got == 0) fail(path, "file ended early while reading its header (truncated file?)");
    cursor += got;
    offset += uint64_t(got);
    size -= size_t(got);
  }
}

// An open read-only descriptor of a regular file and its size.
class InputFile {
 public:
  explicit InputFile(const std::string& path) {
    fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd_ < 0) {
      const int error = errno;
      fail(path, "cannot open: ", errno_text(error));
    }
    struct stat info {};
    if (::fstat(fd_, &info) != 0) {
      const int error = errno;
      ::close(fd_);
      fail(path, "cannot stat: ", errno_text(error));
    }
    if (!S_ISREG(info.st_mode)) {
      ::close(fd_);
      fail(path, "is not a regular file");
    }
    size_ = uint64_t(info.st_size);
  }
  InputFile(const InputFile&) = delete;
  InputFile& operator=(const InputFile&) = delete;
  ~InputFile() { ::close(fd_); }
  int fd() const { return fd_; }
  uint64_t size() const { return size_; }

 private:
  int fd_ = -1;
  uint64_t size_ = 0;
};

}  // namespace

// ---------------------------------------------------------------------------------------------
// Public API

const char* safetensors_dtype_name(DType dtype) {
  for (const DTypeName& entry : kDTypeNames)
    if (entry.dtype == dtype) return entry.name;
  LUNA_FAIL("safetensors: dtype ", dtype, " has no safetensors name");
}

DType safetensors_dtype_from_name(const std::string& name) {
  const std::optional<DType> dtype = find_dtype(name);
  LUNA_CHECK(dtype.has_value(), "safetensors: unknown dtype \"", name, "\" (luna reads ", kSupportedDTypes, ")");
  return *dtype;
}

bool SafetensorsFile::contains(const std::string& name) const {
  return std::any_of(tensors.begin(), tensors.end(), [&](const auto& entry) { return entry.first == name; });
}

const Tensor& SafetensorsFile::at(const std::string& name) const {
  for (const auto& [tensor_name, tensor] : tensors)
    if (tensor_name == name) return tensor;
  std::string listed;
  constexpr size_t kMaxListed = 10;
  for (size_t i = 0; i < tensors.size() && i < kMaxListed; ++i) listed += (i ? ", '" : "'") + tensors[i].first + "'";
  if (tensors.size() > kMaxListed) listed += ", ...";
  fail(source, "no tensor named '", name, "' (the file has ", tensors.size(), " tensors",
       tensors.empty() ? "" : ": ", listed, ")");
}

SafetensorsFile parse_safetensors(const uint8_t* data, size_t size, const std::string& name_for_errors,
                                  std::shared_ptr<const void> keep_alive) {
  const uint64_t header_bytes = read_header_length(data, size, name_for_errors);
  const uint64_t data_start = kLengthPrefixBytes + header_bytes;
  ParsedHeader header = parse_header(reinterpret_cast<const char*>(data + kLengthPrefixBytes), size_t(header_bytes),
                                     size - data_start, name_for_errors);
  SafetensorsFile file;
  file.source = name_for_errors;
  file.metadata = std::move(header.metadata);
  file.tensors.reserve(header.entries.size());
  const uint8_t* block = data + data_start;
  for (const HeaderEntry& entry : header.entries) {
    const uint8_t* bytes = block + entry.begin;
    if (entry.dtype == kBool) check_bool_bytes(bytes, entry, name_for_errors);
    file.tensors.emplace_back(entry.name, tensor_from_bytes(bytes, entry, keep_alive));
  }
  return file;
}

SafetensorsFile load_safetensors(const std::string& path) {
  const InputFile input(path);
  // mmap cannot map 0 bytes; the parser reports the too-short file.
  if (input.size() < kLengthPrefixBytes) {
    uint8_t prefix[kLengthPrefixBytes] = {};
    read_exactly(input.fd(), prefix, size_t(input.size()), 0, path);
    return parse_safetensors(prefix, size_t(input.size()), path);
  }
  // PROT_WRITE on a MAP_PRIVATE mapping is copy-on-write: in-place ops on loaded tensors change
  // only this process's pages, never the file, instead of crashing on read-only memory.
  void* base = ::mmap(nullptr, size_t(input.size()), PROT_READ | PROT_WRITE, MAP_PRIVATE, input.fd(), 0);
  if (base == MAP_FAILED) {
    const int error = errno;
    fail(path, "cannot mmap ", input.size(), " bytes: ", errno_text(error));
  }
  const size_t mapped_bytes = size_t(input.size());
  std::shared_ptr<const void> mapping(base, [mapped_bytes](const void* p) { ::munmap(const_cast<void*>(p), mapped_bytes); });
  return parse_safetensors(static_cast<const uint8_t*>(base), mapped_bytes, path, mapping);
}

std::map<std::string, std::string> load_safetensors_metadata(const std::string& path) {
  const InputFile input(path);
  uint8_t prefix[kLengthPrefixBytes] = {};
  read_exactly(input.fd(), prefix, size_t(std::min<uint64_t>(input.size(), kLengthPrefixBytes)), 0, path);
  const uint64_t header_bytes = read_header_length(prefix, input.size(), path);
  std::string text(size_t(header_bytes), '\0');
  read_exactly(input.fd(), text.data(), text.size(), kLengthPrefixBytes, path);
  return parse_header(text.data(), text.size(), input.size() - kLengthPrefixBytes - header_bytes, path).metadata;
}

std::vector<uint8_t> serialize_safetensors(const std::vector<std::pair<std::string, Tensor>>& tensors,
                                           const std::map<std::string, std::string>& metadata) {
  const std::string target = "(in memory)";
  const std::vector<PreparedTensor> prepared = prepare_tensors(tensors, target);
  const std::string header = build_header(prepared, metadata, target);
  size_t total = kLengthPrefixBytes + header.size();
  for (const PreparedTensor& tensor : prepared) total += size_t(tensor.nbytes);
  std::vector<uint8_t> bytes(total);
  size_t filled = 0;
  emit_safetensors(prepared, header, [&](const void* data, size_t size) {
    std::memcpy(bytes.data() + filled, data, size);
    filled += size;
  });
  return bytes;
}

void save_safetensors(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata) {
  const std::vector<PreparedTensor> prepared = prepare_tensors(tensors, path);
  const std::string header = build_header(prepared, metadata, path);

  // pid keeps processes apart, the counter keeps threads of one process apart.
  static std::atomic<uint64_t> save_counter{0};
  const std::string temp_path = path + ".tmp." + std::to_string(::getpid()) + "." + std::to_string(save_counter++);
  const int fd = ::open(temp_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
  if (fd < 0) {
    const int error = errno;
    fail(path, "cannot create the temp file '", temp_path, "': ", errno_text(error));
  }
  TempFile temp(temp_path, fd);
  emit_safetensors(prepared, header, [&](const void* data, size_t size) { write_fully(temp, data, size, path); });
  if (::fsync(temp.fd()) != 0) {
    const int error = errno;
    fail(path, "fsync of the temp file '", temp_path, "' failed: ", errno_text(error));
  }
  if (const int error = temp.close(); error != 0)
    fail(path, "closing the temp file '", temp_path, "' failed: ", errno_text(error));
  if (::rename(temp_path.c_str(), path.c_str()) != 0) {
    const int error = errno;
    fail(path, "cannot rename the temp file '", temp_path, "' over it: ", errno_text(error));
  }
  temp.commit();
  fsync_directory(path);
}

}  // namespace luna
