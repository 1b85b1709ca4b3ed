// safetensors reader and writer: round trips of every dtype and layout, metadata, mmap lifetime,
// atomic writes, every corruption the reader must reject (files written byte by byte here), and
// interchange with the Python `safetensors` package through committed fixtures
// (scripts/make_safetensors_fixture.py regenerates them).
#include "test_util.h"

#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>

#include <nlohmann/json.hpp>

#include <luna/core/safetensors.h>

using namespace luna;
namespace fs = std::filesystem;

namespace {

const std::vector<DType> kAllDTypes = {kFloat64, kFloat32, kFloat16, kBFloat16, kInt64,
                                       kInt32,   kInt16,   kInt8,    kUInt8,    kBool};

const fs::path kFixtureDir = fs::path(__FILE__).parent_path().parent_path() / "fixtures" / "safetensors";

// A fresh directory per test case, removed afterwards.
struct ScratchDir {
  fs::path path;
  explicit ScratchDir(const std::string& name) {
    path = fs::temp_directory_path() / ("luna_test_safetensors_" + std::to_string(::getpid()) + "_" + name);
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~ScratchDir() {
    std::error_code ignored;
    fs::remove_all(path, ignored);
  }
  std::string file(const std::string& name) const { return (path / name).string(); }
  std::vector<std::string> listing() const {
    std::vector<std::string> names;
    for (const auto& entry : fs::directory_iterator(path)) names.push_back(entry.path().filename().string());
    std::sort(names.begin(), names.end());
    return names;
  }
};

// ---- reference element access: plain loops over raw storage, never luna ops ----

void store_element(uint8_t* p, DType dtype, double value) {
  switch (dtype) {
    case kFloat64: { const double v = value; std::memcpy(p, &v, 8); break; }
    case kFloat32: { const float v = float(value); std::memcpy(p, &v, 4); break; }
    case kFloat16: { const Half v{float(value)}; std::memcpy(p, &v.bits, 2); break; }
    case kBFloat16: { const BFloat16 v{float(value)}; std::memcpy(p, &v.bits, 2); break; }
    case kInt64: { const int64_t v = int64_t(value); std::memcpy(p, &v, 8); break; }
    case kInt32: { const int32_t v = int32_t(value); std::memcpy(p, &v, 4); break; }
    case kInt16: { const int16_t v = int16_t(value); std::memcpy(p, &v, 2); break; }
    case kInt8: { const int8_t v = int8_t(value); std::memcpy(p, &v, 1); break; }
    case kUInt8: { const uint8_t v = uint8_t(value); std::memcpy(p, &v, 1); break; }
    case kBool: { const uint8_t v = value != 0; std::memcpy(p, &v, 1); break; }
  }
}

double load_element(const uint8_t* p, DType dtype) {
  switch (dtype) {
    case kFloat64: { double v; std::memcpy(&v, p, 8); return v; }
    case kFloat32: { float v; std::memcpy(&v, p, 4); return v; }
    case kFloat16: { Half v; std::memcpy(&v.bits, p, 2); return float(v); }
    case kBFloat16: { BFloat16 v; std::memcpy(&v.bits, p, 2); return float(v); }
    case kInt64: { int64_t v; std::memcpy(&v, p, 8); return double(v); }
    case kInt32: { int32_t v; std::memcpy(&v, p, 4); return v; }
    case kInt16: { int16_t v; std::memcpy(&v, p, 2); return v; }
    case kInt8: { int8_t v; std::memcpy(&v, p, 1); return v; }
    case kUInt8: return *p;
    case kBool: return *p;
  }
  return 0;
}

// Calls fn(pointer to element) for every element of `t` in row-major order, following strides.
template <class Fn>
void for_each_element(const Tensor& t, Fn fn) {
  const int64_t numel = t.numel();
  const uint8_t* base = static_cast<const uint8_t*>(t.impl()->storage()->data());
  std::vector<int64_t> index(size_t(t.dim()), 0);
  for (int64_t linear = 0; linear < numel; ++linear) {
    int64_t offset = t.storage_offset();
    for (int d = 0; d < t.dim(); ++d) offset += index[size_t(d)] * t.stride(d);
    fn(base + offset * int64_t(t.element_size()));
    for (int d = t.dim() - 1; d >= 0; --d) {
      if (++index[size_t(d)] < t.size(d)) break;
      index[size_t(d)] = 0;
    }
  }
}

std::vector<double> element_values(const Tensor& t) {
  std::vector<double> out;
  for_each_element(t, [&](const uint8_t* p) { out.push_back(load_element(p, t.dtype())); });
  return out;
}

std::vector<uint8_t> element_bytes(const Tensor& t) {
  std::vector<uint8_t> out;
  for_each_element(t, [&](const uint8_t* p) { out.insert(out.end(), p, p + t.element_size()); });
  return out;
}

Tensor make_filled(DType dtype, const Dims& shape, const std::vector<double>& values) {
  Tensor t = empty_tensor(shape, dtype, Device::cpu());
  REQUIRE(size_t(t.numel()) == values.size());
  uint8_t* p = static_cast<uint8_t*>(t.data_ptr());
  for (size_t i = 0; i < values.size(); ++i) store_element(p + i * t.element_size(), dtype, values[i]);
  return t;
}

// Distinct values that every dtype represents exactly (k/8 is exact in f16 and bf16 here).
std::vector<double> pattern(DType dtype, int64_t n) {
  std::vector<double> values;
  for (int64_t i = 0; i < n; ++i) {
    if (is_floating_point(dtype)) values.push_back(double(i - 5) * 0.375);
    else if (dtype == kBool) values.push_back(i % 3 == 0);
    else if (dtype == kUInt8) values.push_back(double((i * 37 + 11) % 256));
    else values.push_back(double((i * 37) % 200 - 100));
  }
  return values;
}

std::vector<uint8_t> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  REQUIRE(in.good());
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_file(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
  REQUIRE(out.good());
}

// A file image from a header text and data bytes; `header_length` overrides the 8-byte prefix.
std::vector<uint8_t> file_image(const std::string& header, const std::vector<uint8_t>& data,
                                std::optional<uint64_t> header_length = std::nullopt) {
  const uint64_t length = header_length.value_or(header.size());
  std::vector<uint8_t> bytes(8 + header.size() + data.size());
  for (int i = 0; i < 8; ++i) bytes[size_t(i)] = uint8_t(length >> (8 * i));  // little-endian
  std::copy(header.begin(), header.end(), bytes.begin() + 8);
  std::copy(data.begin(), data.end(), bytes.begin() + 8 + std::ptrdiff_t(header.size()));
  return bytes;
}

template <class Fn>
std::string error_of(Fn&& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  FAIL("expected a luna::Error, none was thrown");
  return "";
}

// Writes `bytes` to `path`, loads it, and checks the error names the file and every fragment;
// the in-memory parser must reject the same bytes with the same reason.
void require_rejected(const std::string& path, const std::vector<uint8_t>& bytes,
                      const std::vector<std::string>& fragments) {
  write_file(path, bytes);
  const std::string message = error_of([&] { load_safetensors(path); });
  INFO("error: " << message);
  CHECK(message.rfind("safetensors: " + path + ": ", 0) == 0);
  for (const std::string& fragment : fragments) CHECK_THAT(message, Catch::Contains(fragment));
  const std::string from_memory = error_of([&] { parse_safetensors(bytes.data(), bytes.size(), "in-memory-image"); });
  CHECK(from_memory == "safetensors: in-memory-image: " + message.substr(("safetensors: " + path + ": ").size()));
}

void require_same_tensor(const Tensor& got, const Tensor& want) {
  REQUIRE(got.dtype() == want.dtype());
  REQUIRE(got.sizes() == want.sizes());
  REQUIRE(got.device() == Device::cpu());
  // is_contiguous() is only asked of tensors with elements: core reports an empty [2,0,3]
  // tensor with row-major strides as non-contiguous.
  if (got.numel() > 0) REQUIRE(got.is_contiguous());
  REQUIRE(element_bytes(got) == element_bytes(want));
}

bool process_maps_mention(const std::string& path) {
  std::ifstream maps("/proc/self/maps");
  std::string line;
  while (std::getline(maps, line))
    if (line.find(path) != std::string::npos) return true;
  return false;
}

// ---- the luna-written interchange fixture: same content here and in the Python script ----

std::vector<std::pair<std::string, Tensor>> interchange_tensors() {
  return {
      {"weight", make_filled(kFloat32, {2, 3}, {0.5, -1.25, 3.0, 0.001, -0.0, 65504.0})},
      {"bias", make_filled(kFloat64, {3}, {0.1, -2.0, 1e-300})},
      {"half", make_filled(kFloat16, {2, 2}, {1.0, -2.5, 0.125, 1024.0})},
      {"brain", make_filled(kBFloat16, {4}, {1.0, -3.5, 256.0, 0.0078125})},
      {"ids", make_filled(kInt64, {3}, {0, -1, 1099511627776.0})},
      {"counts", make_filled(kInt32, {2}, {-2147483648.0, 2147483647.0})},
      {"shorts", make_filled(kInt16, {2}, {-32768, 32767})},
      {"bytes", make_filled(kInt8, {4}, {-128, 127, 0, -1})},
      {"pixels", make_filled(kUInt8, {3}, {0, 255, 7})},
      {"mask", make_filled(kBool, {2, 2}, {1, 0, 0, 1})},
      {"scalar", make_filled(kFloat32, {}, {42.0})},
      {"empty", make_filled(kFloat32, {0, 3}, {})},
  };
}
const std::map<std::string, std::string> kInterchangeMetadata = {{"format", "pt"}, {"written_by", "luna"},
                                                                 {"note", "unicode: \xce\xbb"}};

}  // namespace

TEST_CASE("safetensors round trip of every dtype, 0-dim and empty tensors", "[safetensors]") {
  ScratchDir dir("dtypes");
  std::vector<std::pair<std::string, Tensor>> tensors;
  for (DType dtype : kAllDTypes) {
    const std::string name = safetensors_dtype_name(dtype);
    tensors.push_back({name + ".matrix", make_filled(dtype, {3, 5}, pattern(dtype, 15))});
    tensors.push_back({name + ".scalar", make_filled(dtype, {}, pattern(dtype, 1))});
    tensors.push_back({name + ".empty", make_filled(dtype, {2, 0, 3}, {})});
    tensors.push_back({name + ".rank4", make_filled(dtype, {2, 1, 3, 2}, pattern(dtype, 12))});
  }
  const std::string path = dir.file("all.safetensors");
  save_safetensors(path, tensors);

  const SafetensorsFile file = load_safetensors(path);
  REQUIRE(file.source == path);
  REQUIRE(file.tensors.size() == tensors.size());
  REQUIRE(file.metadata.empty());
  for (const auto& [name, want] : tensors) {
    INFO("tensor " << name);
    REQUIRE(file.contains(name));
    require_same_tensor(file.at(name), want);
    REQUIRE(element_values(file.at(name)) == element_values(want));
  }
  REQUIRE(file.at("F32.scalar").dim() == 0);
  REQUIRE(file.at("F32.scalar").numel() == 1);
  REQUIRE(file.at("BF16.empty").numel() == 0);
  // Written in order with no gaps, so sorting by offset gives back the save order.
  for (size_t i = 0; i < tensors.size(); ++i) REQUIRE(file.tensors[i].first == tensors[i].first);
}

TEST_CASE("safetensors writes the documented layout byte for byte", "[safetensors]") {
  const Tensor w = make_filled(kFloat32, {2}, {1.0, -2.0});
  const Tensor m = make_filled(kBool, {3}, {1, 0, 1});
  const std::vector<uint8_t> bytes = serialize_safetensors({{"w", w}, {"m", m}}, {{"k", "v"}});
  const std::string expected_header =
      R"({"__metadata__":{"k":"v"},"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
      R"("m":{"dtype":"BOOL","shape":[3],"data_offsets":[8,11]}})";
  std::string padded = expected_header;
  padded.append((8 - padded.size() % 8) % 8, ' ');
  std::vector<uint8_t> data = element_bytes(w);
  const std::vector<uint8_t> mask = element_bytes(m);
  data.insert(data.end(), mask.begin(), mask.end());
  REQUIRE(bytes == file_image(padded, data));
  REQUIRE((bytes.size() - data.size()) % 8 == 0);  // the data block starts 8-aligned
}

TEST_CASE("safetensors saves non-contiguous views as their row-major values", "[safetensors]") {
  ScratchDir dir("views");
  for (DType dtype : kAllDTypes) {
    INFO("dtype " << dtype);
    const Tensor base = make_filled(dtype, {4, 6}, pattern(dtype, 24));
    const Tensor row = make_filled(dtype, {1, 6}, pattern(dtype, 6));
    const std::vector<std::pair<std::string, Tensor>> views = {
        {"transposed", base.t()},                              // [6,4], strides (1,6)
        {"strided", base.slice(1, 1, 6, 2)},                   // [4,3], step 2, offset 1
        {"selected", base.select(0, 2)},                       // [6], offset 12
        {"broadcast", row.expand({3, 6})},                     // [3,6], stride 0
        {"permuted", base.view({2, 2, 6}).permute({2, 0, 1})},  // [6,2,2]
    };
    for (const auto& [name, view] : views) REQUIRE((!view.is_contiguous() || view.storage_offset() != 0));
    const std::string path = dir.file(std::string(safetensors_dtype_name(dtype)) + ".safetensors");
    save_safetensors(path, views);
    const SafetensorsFile file = load_safetensors(path);
    for (const auto& [name, view] : views) {
      INFO("view " << name);
      require_same_tensor(file.at(name), view);
    }
  }
}

TEST_CASE("safetensors metadata round trip and header-only reads", "[safetensors]") {
  ScratchDir dir("metadata");
  const std::map<std::string, std::string> metadata = {
      {"step", "1200"}, {"config", R"({"hidden_size": 64, "note": "quoted \"json\""})"}, {"empty", ""},
      {"unicode", "\xe2\x88\x91 \xce\xbb"}, {"newline", "a\nb\tc"}};
  const std::string path = dir.file("meta.safetensors");
  save_safetensors(path, {{"x", make_filled(kFloat32, {2}, {1, 2})}}, metadata);
  REQUIRE(load_safetensors(path).metadata == metadata);
  REQUIRE(load_safetensors_metadata(path) == metadata);

  // Metadata alone, no tensors, is a valid file too.
  const std::string only_meta = dir.file("only_meta.safetensors");
  save_safetensors(only_meta, {}, {{"a", "b"}});
  const SafetensorsFile file = load_safetensors(only_meta);
  REQUIRE(file.tensors.empty());
  REQUIRE(file.metadata == std::map<std::string, std::string>{{"a", "b"}});

  // Header-only reads still validate the header against the file size.
  const std::string bad = dir.file("meta_truncated.safetensors");
  std::vector<uint8_t> bytes = read_file(path);
  bytes.pop_back();
  write_file(bad, bytes);
  const std::string message = error_of([&] { load_safetensors_metadata(bad); });
  CHECK_THAT(message, Catch::Contains(bad) && Catch::Contains("tensor 'x'") && Catch::Contains("truncated"));
}

TEST_CASE("safetensors loads through a shared mmap that outlives the file object", "[safetensors]") {
  ScratchDir dir("mmap");
  const std::string path = dir.file("mapped.safetensors");
  const Tensor a = make_filled(kFloat32, {4, 4}, pattern(kFloat32, 16));
  const Tensor b = make_filled(kInt64, {3}, {7, 8, 9});
  save_safetensors(path, {{"a", a}, {"b", b}});

  Tensor kept_view;
  {
    const SafetensorsFile file = load_safetensors(path);
    REQUIRE(process_maps_mention(path));
    kept_view = file.at("a").t();
    // Both tensors point into one mapping: b's data sits 64 bytes after a's.
    const auto* a_data = static_cast<const uint8_t*>(file.at("a").data_ptr());
    const auto* b_data = static_cast<const uint8_t*>(file.at("b").data_ptr());
    REQUIRE(b_data - a_data == 64);
  }
  // The file object is gone; the view still holds the mapping.
  REQUIRE(process_maps_mention(path));
  REQUIRE(element_values(kept_view) == element_values(a.t()));
  kept_view = Tensor();
  REQUIRE_FALSE(process_maps_mention(path));
}

TEST_CASE("safetensors loaded tensors are copy-on-write and never change the file", "[safetensors]") {
  ScratchDir dir("cow");
  const std::string path = dir.file("cow.safetensors");
  save_safetensors(path, {{"x", make_filled(kFloat32, {3}, {1, 2, 3})}});
  const std::vector<uint8_t> before = read_file(path);
  {
    const SafetensorsFile file = load_safetensors(path);
    float* data = file.at("x").data_ptr<float>();
    data[0] = 100.0f;
    REQUIRE(element_values(file.at("x")) == std::vector<double>{100, 2, 3});
  }
  REQUIRE(read_file(path) == before);
  REQUIRE(element_values(load_safetensors(path).at("x")) == std::vector<double>{1, 2, 3});
}

TEST_CASE("safetensors copies tensors whose data is not aligned to their element size", "[safetensors]") {
  ScratchDir dir("align");
  // A 3-byte BOOL tensor first puts the F32 tensor at data offset 3.
  const Tensor mask = make_filled(kBool, {3}, {1, 0, 1});
  const Tensor values = make_filled(kFloat32, {2}, {1.5, -2.25});
  const std::string path = dir.file("unaligned.safetensors");
  save_safetensors(path, {{"mask", mask}, {"values", values}});
  const SafetensorsFile file = load_safetensors(path);
  REQUIRE(reinterpret_cast<uintptr_t>(file.at("values").data_ptr()) % 4 == 0);
  require_same_tensor(file.at("values"), values);
  require_same_tensor(file.at("mask"), mask);
}

TEST_CASE("safetensors parse_safetensors copies or borrows a memory image", "[safetensors]") {
  const Tensor x = make_filled(kFloat64, {2, 2}, {1, 2, 3, 4});
  auto image = std::make_shared<std::vector<uint8_t>>(serialize_safetensors({{"x", x}}));
  const uint8_t* data_block = image->data() + image->size() - 32;

  const SafetensorsFile copied = parse_safetensors(image->data(), image->size(), "copied");
  REQUIRE(copied.at("x").data_ptr() != static_cast<const void*>(data_block));
  require_same_tensor(copied.at("x"), x);

  const SafetensorsFile borrowed = parse_safetensors(image->data(), image->size(), "borrowed", image);
  REQUIRE(borrowed.at("x").data_ptr() == static_cast<const void*>(data_block));
  REQUIRE(image.use_count() == 2);  // the storage's deleter holds the image alive
  require_same_tensor(borrowed.at("x"), x);
}

TEST_CASE("safetensors at() names the file and the missing tensor", "[safetensors]") {
  const std::vector<uint8_t> image = serialize_safetensors({{"encoder.weight", make_filled(kFloat32, {1}, {1})}});
  const SafetensorsFile file = parse_safetensors(image.data(), image.size(), "model.safetensors");
  REQUIRE(error_of([&] { file.at("decoder.weight"); }) ==
          "safetensors: model.safetensors: no tensor named 'decoder.weight' (the file has 1 tensors: 'encoder.weight')");
  REQUIRE_FALSE(file.contains("decoder.weight"));
}

TEST_CASE("safetensors save rejects bad input with the path and the tensor", "[safetensors]") {
  ScratchDir dir("save_errors");
  const std::string path = dir.file("bad.safetensors");
  const Tensor x = make_filled(kFloat32, {1}, {1});
  CHECK(error_of([&] { save_safetensors(path, {{"w", x}, {"w", x}}); }) ==
        "safetensors: " + path + ": tensor 'w' is given twice; names must be unique");
  CHECK_THAT(error_of([&] { save_safetensors(path, {{"__metadata__", x}}); }), Catch::Contains("reserved for metadata"));
  CHECK_THAT(error_of([&] { save_safetensors(path, {{"u", Tensor()}}); }),
             Catch::Contains(path) && Catch::Contains("tensor 'u' is undefined"));
  CHECK_THAT(error_of([&] { save_safetensors(path, {{"bad\xff", x}}); }),
             Catch::Contains(path) && Catch::Contains("valid UTF-8"));
  CHECK_THAT(error_of([&] { serialize_safetensors({{"w", x}, {"w", x}}); }), Catch::Contains("tensor 'w' is given twice"));
  // Nothing was created by the failed saves.
  REQUIRE(dir.listing().empty());

  const std::string missing_dir = dir.file("no/such/dir/x.safetensors");
  CHECK_THAT(error_of([&] { save_safetensors(missing_dir, {{"w", x}}); }),
             Catch::Contains(missing_dir) && Catch::Contains("No such file or directory"));
}

TEST_CASE("safetensors save is atomic: replaces the old file and leaves no temp file", "[safetensors]") {
  ScratchDir dir("atomic");
  const std::string path = dir.file("model.safetensors");
  save_safetensors(path, {{"old", make_filled(kFloat32, {2}, {1, 2})}});
  save_safetensors(path, {{"new", make_filled(kInt32, {3}, {4, 5, 6})}}, {{"v", "2"}});
  REQUIRE(dir.listing() == std::vector<std::string>{"model.safetensors"});
  const SafetensorsFile file = load_safetensors(path);
  REQUIRE(file.tensors.size() == 1);
  REQUIRE(element_values(file.at("new")) == std::vector<double>{4, 5, 6});
  REQUIRE(file.metadata.at("v") == "2");

  // A failing rename (the target is a non-empty directory) removes the temp file and says why.
  const std::string blocked = dir.file("blocked.safetensors");
  fs::create_directories(fs::path(blocked) / "inside");
  const std::string message = error_of([&] { save_safetensors(blocked, {{"x", make_filled(kFloat32, {1}, {1})}}); });
  CHECK_THAT(message, Catch::Contains(blocked) && Catch::Contains("cannot rename the temp file") &&
                          Catch::Contains("Is a directory"));
  REQUIRE(dir.listing() == std::vector<std::string>{"blocked.safetensors", "model.safetensors"});

  // A loaded (mapped) file can be overwritten in place: the mapping keeps the old inode alive.
  const SafetensorsFile old_file = load_safetensors(path);
  save_safetensors(path, {{"new", make_filled(kInt32, {3}, {7, 8, 9})}});
  REQUIRE(element_values(old_file.at("new")) == std::vector<double>{4, 5, 6});
  REQUIRE(element_values(load_safetensors(path).at("new")) == std::vector<double>{7, 8, 9});
}

TEST_CASE("safetensors load reports unreadable paths", "[safetensors]") {
  ScratchDir dir("paths");
  const std::string missing = dir.file("missing.safetensors");
  REQUIRE(error_of([&] { load_safetensors(missing); }) ==
          "safetensors: " + missing + ": cannot open: No such file or directory");
  REQUIRE(error_of([&] { load_safetensors(dir.path.string()); }) ==
          "safetensors: " + dir.path.string() + ": is not a regular file");
}

TEST_CASE("safetensors rejects malformed prefixes and headers", "[safetensors]") {
  ScratchDir dir("bad_headers");
  const std::vector<uint8_t> f32x2(8, 0);
  const std::string good_entry = R"("w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]})";

  require_rejected(dir.file("empty.safetensors"), {}, {"file is 0 bytes, shorter than the 8-byte header length"});
  require_rejected(dir.file("five_bytes.safetensors"), {1, 2, 3, 4, 5}, {"file is 5 bytes"});
  require_rejected(dir.file("length_past_end.safetensors"), file_image("{}", {}, 1000),
                   {"header length 1000 bytes runs past the end of the file (only 2 bytes follow"});
  require_rejected(dir.file("length_absurd.safetensors"), file_image("{}", {}, uint64_t(1) << 62),
                   {"header length 4611686018427387904 bytes is absurdly large"});
  require_rejected(dir.file("bad_json.safetensors"), file_image(R"({"w":{"dtype":"F32",)", {}),
                   {"header is not valid JSON", "parse error"});
  require_rejected(dir.file("empty_header.safetensors"), file_image("", {}), {"header is not valid JSON"});
  require_rejected(dir.file("trailing_garbage.safetensors"), file_image("{} x", {}), {"header is not valid JSON"});
  require_rejected(dir.file("not_object.safetensors"), file_image("[1,2]", {}),
                   {"header is [1,2], expected a JSON object"});
  require_rejected(dir.file("duplicate.safetensors"), file_image("{" + good_entry + "," + good_entry + "}", f32x2),
                   {"tensor 'w' appears twice in the header"});
  require_rejected(dir.file("duplicate_field.safetensors"),
                   file_image(R"({"w":{"dtype":"F32","dtype":"F64","shape":[2],"data_offsets":[0,8]}})", f32x2),
                   {"repeats the key \"dtype\""});
  require_rejected(dir.file("metadata_not_object.safetensors"), file_image(R"({"__metadata__":"v1"})", {}),
                   {"__metadata__ is \"v1\", expected an object"});
  require_rejected(dir.file("metadata_value.safetensors"),
                   file_image(R"({"__metadata__":{"ok":"yes","step":12}})", {}),
                   {"__metadata__ entry 'step' is 12, expected a string"});
}

TEST_CASE("safetensors rejects bad tensor entries, naming the tensor and the value", "[safetensors]") {
  ScratchDir dir("bad_entries");
  const std::vector<uint8_t> f32x2(8, 0);
  const auto entry = [](const std::string& body) { return R"({"ok":{"dtype":"U8","shape":[0],"data_offsets":[0,0]},"w":)" + body + "}"; };
  const auto rejected = [&](const std::string& file, const std::string& body, const std::vector<std::string>& fragments) {
    require_rejected(dir.file(file), file_image(entry(body), f32x2), fragments);
  };

  rejected("entry_number.safetensors", "5", {"tensor 'w' is described by 5, expected an object"});
  rejected("no_dtype.safetensors", R"({"shape":[2],"data_offsets":[0,8]})", {"tensor 'w' has no \"dtype\" field"});
  rejected("no_shape.safetensors", R"({"dtype":"F32","data_offsets":[0,8]})", {"tensor 'w' has no \"shape\" field"});
  rejected("no_offsets.safetensors", R"({"dtype":"F32","shape":[2]})", {"tensor 'w' has no \"data_offsets\" field"});
  rejected("dtype_number.safetensors", R"({"dtype":4,"shape":[2],"data_offsets":[0,8]})",
           {"tensor 'w' has dtype 4, expected a string"});
  rejected("unknown_dtype.safetensors", R"({"dtype":"F8_E4M3","shape":[8],"data_offsets":[0,8]})",
           {"tensor 'w' has unknown dtype \"F8_E4M3\"", "F64, F32, F16, BF16"});
  rejected("lowercase_dtype.safetensors", R"({"dtype":"f32","shape":[2],"data_offsets":[0,8]})",
           {"tensor 'w' has unknown dtype \"f32\""});
  rejected("shape_not_array.safetensors", R"({"dtype":"F32","shape":2,"data_offsets":[0,8]})",
           {"tensor 'w' has shape 2, expected an array"});
  rejected("negative_shape.safetensors", R"({"dtype":"F32","shape":[-2,-1],"data_offsets":[0,8]})",
           {"tensor 'w' shape entry 0 is -2 (shape [-2,-1])", "non-negative integer"});
  rejected("fractional_shape.safetensors", R"({"dtype":"F32","shape":[1,2.5],"data_offsets":[0,8]})",
           {"tensor 'w' shape entry 1 is 2.5"});
  rejected("string_shape.safetensors", R"({"dtype":"F32","shape":["2"],"data_offsets":[0,8]})",
           {"tensor 'w' shape entry 0 is \"2\""});
  rejected("nine_dims.safetensors", R"({"dtype":"F32","shape":[1,1,1,1,1,1,1,1,2],"data_offsets":[0,8]})",
           {"tensor 'w' has 9 dims", "at most 8"});
  rejected("huge_shape.safetensors", R"({"dtype":"F32","shape":[4294967296,4294967296,0],"data_offsets":[0,0]})",
           {"tensor 'w' has shape [4294967296,4294967296,0], whose element count does not fit in 64 bits"});
  rejected("offsets_not_pair.safetensors", R"({"dtype":"F32","shape":[2],"data_offsets":[8]})",
           {"tensor 'w' has data_offsets [8], expected [begin, end]"});
  rejected("negative_offset.safetensors", R"({"dtype":"F32","shape":[2],"data_offsets":[-8,0]})",
           {"tensor 'w' data_offsets begin is -8"});
  rejected("begin_after_end.safetensors", R"({"dtype":"F32","shape":[2],"data_offsets":[8,0]})",
           {"tensor 'w' has data_offsets [8,0] with begin after end"});
  rejected("past_block.safetensors", R"({"dtype":"F32","shape":[4],"data_offsets":[0,16]})",
           {"tensor 'w' has data_offsets [0,16] but the data block holds only 8 bytes (truncated file?)"});

  // The message format the architecture promises, exactly.
  const std::string path = dir.file("size_mismatch.safetensors");
  write_file(path, file_image(R"({"w":{"dtype":"F32","shape":[2,3],"data_offsets":[0,20]}})", std::vector<uint8_t>(20)));
  REQUIRE(error_of([&] { load_safetensors(path); }) ==
          "safetensors: " + path + ": tensor 'w' has shape [2,3] (24 bytes as F32) but data_offsets [0,20] span 20 bytes");
}

TEST_CASE("safetensors rejects overlaps, accepts gaps, and validates BOOL bytes", "[safetensors]") {
  ScratchDir dir("ranges");
  std::vector<uint8_t> data(24);
  for (size_t i = 0; i < data.size(); ++i) data[i] = uint8_t(i);

  require_rejected(dir.file("overlap.safetensors"),
                   file_image(R"({"a":{"dtype":"U8","shape":[8],"data_offsets":[0,8]},)"
                              R"("b":{"dtype":"U8","shape":[8],"data_offsets":[4,12]}})", data),
                   {"tensors 'a' (data_offsets [0,8]) and 'b' (data_offsets [4,12]) overlap"});
  require_rejected(dir.file("same_range.safetensors"),
                   file_image(R"({"a":{"dtype":"I32","shape":[2],"data_offsets":[0,8]},)"
                              R"("b":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", data),
                   {"tensors 'a'", "'b'", "overlap"});

  // Gaps (some writers align tensors) and an empty tensor inside another's range are fine.
  const std::string gaps = dir.file("gaps.safetensors");
  write_file(gaps, file_image(R"({"late":{"dtype":"U8","shape":[4],"data_offsets":[16,20]},)"
                              R"("early":{"dtype":"U8","shape":[2,2],"data_offsets":[2,6]},)"
                              R"("none":{"dtype":"F64","shape":[0],"data_offsets":[3,3]}})", data));
  const SafetensorsFile file = load_safetensors(gaps);
  REQUIRE(file.tensors.size() == 3);
  REQUIRE(file.tensors[0].first == "early");  // sorted by data offset, not by header order
  REQUIRE(file.tensors[1].first == "none");
  REQUIRE(file.tensors[2].first == "late");
  REQUIRE(element_values(file.at("early")) == std::vector<double>{2, 3, 4, 5});
  REQUIRE(element_values(file.at("late")) == std::vector<double>{16, 17, 18, 19});

  std::vector<uint8_t> bools = {0, 1, 1, 2};
  require_rejected(dir.file("bool_bytes.safetensors"),
                   file_image(R"({"mask":{"dtype":"BOOL","shape":[4],"data_offsets":[0,4]}})", bools),
                   {"tensor 'mask' (BOOL) has byte value 2 at element 3"});
}

TEST_CASE("safetensors rejects every truncation and survives every byte flip", "[safetensors]") {
  ScratchDir dir("truncation");
  const std::vector<uint8_t> image = serialize_safetensors(
      {{"a", make_filled(kFloat32, {2, 2}, {1, 2, 3, 4})}, {"last", make_filled(kInt16, {3}, {1, 2, 3})}},
      {{"k", "v"}});
  // Cut inside the data block: the error names the tensor that no longer fits.
  std::vector<uint8_t> cut(image.begin(), image.end() - 1);
  require_rejected(dir.file("cut.safetensors"), cut, {"tensor 'last'", "truncated file?"});
  for (size_t size = 0; size < image.size(); ++size) {
    INFO("prefix of " << size << " bytes");
    CHECK_THAT(error_of([&] { parse_safetensors(image.data(), size, "prefix"); }), Catch::StartsWith("safetensors: prefix: "));
  }
  // Each single-bit flip must load or fail with luna::Error; nothing else (crash, other exception).
  size_t loaded = 0, rejected = 0;
  for (size_t byte = 0; byte < image.size(); ++byte) {
    for (int bit = 0; bit < 8; ++bit) {
      std::vector<uint8_t> flipped = image;
      flipped[byte] ^= uint8_t(1 << bit);
      try {
        parse_safetensors(flipped.data(), flipped.size(), "flipped");
        ++loaded;
      } catch (const Error&) {
        ++rejected;
      }
    }
  }
  REQUIRE(loaded + rejected == image.size() * 8);
  REQUIRE(rejected > 0);
  REQUIRE(loaded > 0);  // flips inside float data load fine
}

TEST_CASE("safetensors reads a file written by the Python safetensors package", "[safetensors][fixture]") {
  const std::string path = (kFixtureDir / "python_written.safetensors").string();
  std::ifstream expected_file(kFixtureDir / "python_written.json");
  REQUIRE(expected_file.good());
  const nlohmann::json expected = nlohmann::json::parse(expected_file);

  const SafetensorsFile file = load_safetensors(path);
  REQUIRE(file.metadata == expected.at("metadata").get<std::map<std::string, std::string>>());
  REQUIRE(file.tensors.size() == expected.at("tensors").size());
  for (const auto& [name, want] : expected.at("tensors").items()) {
    INFO("tensor " << name);
    const Tensor& got = file.at(name);
    REQUIRE(safetensors_dtype_name(got.dtype()) == want.at("dtype").get<std::string>());
    REQUIRE(got.sizes().vec() == want.at("shape").get<std::vector<int64_t>>());
    REQUIRE(element_values(got) == want.at("values").get<std::vector<double>>());
  }
  REQUIRE(file.at("scalar").dim() == 0);
}

TEST_CASE("safetensors files written by luna are read by the Python safetensors package", "[safetensors][fixture]") {
  // The committed file is what the Python package read (its record is checked below); luna must
  // still write exactly those bytes, or the record no longer vouches for the writer.
  const std::vector<uint8_t> committed = read_file((kFixtureDir / "luna_written.safetensors").string());
  REQUIRE(serialize_safetensors(interchange_tensors(), kInterchangeMetadata) == committed);

  std::ifstream record_file(kFixtureDir / "luna_written.python_read.json");
  REQUIRE(record_file.good());
  const nlohmann::json record = nlohmann::json::parse(record_file);
  INFO("reader: " << record.at("reader"));
  REQUIRE(record.at("metadata").get<std::map<std::string, std::string>>() == kInterchangeMetadata);
  const auto tensors = interchange_tensors();
  REQUIRE(record.at("tensors").size() == tensors.size());
  for (const auto& [name, tensor] : tensors) {
    INFO("tensor " << name);
    const nlohmann::json& read = record.at("tensors").at(name);
    REQUIRE(read.at("dtype").get<std::string>() == safetensors_dtype_name(tensor.dtype()));
    REQUIRE(read.at("shape").get<std::vector<int64_t>>() == tensor.sizes().vec());
    REQUIRE(read.at("values").get<std::vector<double>>() == element_values(tensor));
  }
}

// Hidden (not run by default): scripts/make_safetensors_fixture.py runs it to regenerate the
// luna-written fixture before the Python package reads it back.
TEST_CASE("write the luna interchange fixture", "[.write-luna-fixture]") {
  const std::string path = (kFixtureDir / "luna_written.safetensors").string();
  save_safetensors(path, interchange_tensors(), kInterchangeMetadata);
  const SafetensorsFile file = load_safetensors(path);
  for (const auto& [name, tensor] : interchange_tensors()) require_same_tensor(file.at(name), tensor);
}
