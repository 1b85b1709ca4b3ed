// CIFAR-10 binary reader: record layout (label, R, G, B planes), exact grayscale rounding, the
// 9/10 train-dev split over the five batches, bad labels and truncated records, skip mode.
#include "data/data_test_util.h"

#include <luna/data/cifar10.h>
#include <luna/data/tokenizers.h>

using namespace luna;
using namespace luna::data;
using luna::testing::require_error;
using luna::testing::TempDir;

namespace {
// A record whose label is `label` and whose pixel p has R = (p + seed) % 256, G = 2p % 256,
// B = (p * 7 + seed) % 256; pixel 0 is pure red, 1 pure green, 2 pure blue, 3 white.
std::string record(uint8_t label, int seed) {
  std::string bytes(size_t(kCifarRecordBytes), '\0');
  bytes[0] = char(label);
  for (int p = 0; p < kCifarPixels; ++p) {
    bytes[size_t(1 + p)] = char((p + seed) % 256);
    bytes[size_t(1 + kCifarPixels + p)] = char((2 * p) % 256);
    bytes[size_t(1 + 2 * kCifarPixels + p)] = char((p * 7 + seed) % 256);
  }
  auto set = [&](int p, uint8_t r, uint8_t g, uint8_t b) {
    bytes[size_t(1 + p)] = char(r);
    bytes[size_t(1 + kCifarPixels + p)] = char(g);
    bytes[size_t(1 + 2 * kCifarPixels + p)] = char(b);
  };
  set(0, 255, 0, 0);
  set(1, 0, 255, 0);
  set(2, 0, 0, 255);
  set(3, 255, 255, 255);
  return bytes;
}

// Five batches of 4 records (labels 0..9 cycling), a test batch of 3.
void write_release(const TempDir& dir) {
  int index = 0;
  for (int batch = 1; batch <= 5; ++batch) {
    std::string bytes;
    for (int r = 0; r < 4; ++r, ++index) bytes += record(uint8_t(index % 10), index);
    dir.write("data_batch_" + std::to_string(batch) + ".bin", bytes);
  }
  dir.write("test_batch.bin", record(3, 100) + record(4, 101) + record(5, 102));
}
}  // namespace

TEST_CASE("Grayscale is 0.299R + 0.587G + 0.114B rounded, exactly", "[data][cifar10]") {
  REQUIRE(grayscale(255, 0, 0) == 76);    // 76.245
  REQUIRE(grayscale(0, 255, 0) == 150);   // 149.685
  REQUIRE(grayscale(0, 0, 255) == 29);    // 29.07
  REQUIRE(grayscale(255, 255, 255) == 255);
  REQUIRE(grayscale(0, 0, 0) == 0);
  REQUIRE(grayscale(10, 20, 30) == 18);   // 18.15
  // Against a double-precision reference on a sweep (ties cannot occur at 3 decimals + 0.5).
  for (int r = 0; r < 256; r += 5)
    for (int g = 0; g < 256; g += 7)
      for (int b = 0; b < 256; b += 11) {
        const double want = std::floor(0.299 * r + 0.587 * g + 0.114 * b + 0.5 + 1e-9);
        REQUIRE(int(grayscale(uint8_t(r), uint8_t(g), uint8_t(b))) == int(want));
      }
}

TEST_CASE("CIFAR-10: records, planes, pixel tokens and the train/dev/test split", "[data][cifar10]") {
  TempDir dir;
  write_release(dir);
  const ClassificationExamples train = read_cifar10(dir.str(), Split::train);
  const ClassificationExamples dev = read_cifar10(dir.str(), Split::dev);
  const ClassificationExamples test = read_cifar10(dir.str(), Split::test);
  REQUIRE(train.size() == 18);  // 20 records: the last tenth is dev
  REQUIRE(dev.size() == 2);
  REQUIRE(test.size() == 3);
  for (size_t i = 0; i < train.size(); ++i) REQUIRE(train.labels[i] == int64_t(i % 10));
  REQUIRE(dev.labels == std::vector<int64_t>{8, 9});
  REQUIRE(test.labels == std::vector<int64_t>{3, 4, 5});
  REQUIRE(train.vocabulary.vocab_size == 258);
  REQUIRE(train.max_len == 1024);
  REQUIRE(train.report.records == 20);

  // Every token of record 5 (train index 5, seed 5) against the formula on its planes.
  const std::string bytes = record(5, 5);
  const auto tokens = train.tokens[5];
  REQUIRE(tokens.size() == 1024);
  for (int p = 0; p < kCifarPixels; ++p) {
    const auto r = uint8_t(bytes[size_t(1 + p)]), g = uint8_t(bytes[size_t(1 + kCifarPixels + p)]),
               b = uint8_t(bytes[size_t(1 + 2 * kCifarPixels + p)]);
    REQUIRE(tokens[size_t(p)] == int32_t(grayscale(r, g, b)) + 1);
  }
  REQUIRE(tokens[0] == 77);   // red 76, +1
  REQUIRE(tokens[1] == 151);  // green 150
  REQUIRE(tokens[2] == 30);   // blue 29
  REQUIRE(tokens[3] == 256);  // white 255
  // dev is records 18, 19 of the concatenation.
  const std::string record19 = record(9, 19);
  REQUIRE(dev.tokens[1][10] == int32_t(grayscale(uint8_t(record19[11]), uint8_t(record19[1 + 1024 + 10]),
                                                 uint8_t(record19[1 + 2048 + 10]))) + 1);

  ReadOptions options;
  options.add_cls = true;
  const ClassificationExamples cls = read_cifar10(dir.str(), Split::test, options);
  REQUIRE(cls.max_len == 1025);
  REQUIRE(cls.tokens.length(0) == 1025);
  REQUIRE(cls.tokens[0][0] == kPixelClsId);
  REQUIRE(cls.tokens[0][1] == 77);
  options = {};
  options.max_examples = 2;
  REQUIRE(read_cifar10(dir.str(), Split::test, options).labels == std::vector<int64_t>{3, 4});
  REQUIRE(read_cifar10(dir.str(), Split::dev, options).labels == std::vector<int64_t>{8, 9});
}

TEST_CASE("CIFAR-10: bad labels, truncated records, missing batches", "[data][cifar10]") {
  TempDir dir;
  write_release(dir);
  const std::string test_path = dir.write("test_batch.bin", record(3, 0) + record(4, 1) + record(12, 2) + record(5, 3));
  require_error([&] { read_cifar10(dir.str(), Split::test); },
                {"cifar10: " + test_path + " record 2 (byte offset 6146):", "label 12 is outside 0-9"});
  dir.write("test_batch.bin", record(3, 0) + record(4, 1).substr(0, 100));
  require_error([&] { read_cifar10(dir.str(), Split::test); },
                {test_path + " record 1 (byte offset 3073):", "truncated record: 100 of 3073 bytes"});

  dir.write("test_batch.bin", record(3, 0) + record(200, 1) + record(4, 2) + record(5, 3).substr(0, 3000));
  ReadOptions options;
  options.skip_bad_records = true;
  const ClassificationExamples skipped = read_cifar10(dir.str(), Split::test, options);
  REQUIRE(skipped.labels == std::vector<int64_t>{3, 4});
  REQUIRE(skipped.report.records == 4);
  REQUIRE(skipped.report.skipped_bad == 2);
  REQUIRE(skipped.report.first_errors.at(0).find("label 200") != std::string::npos);
  REQUIRE(skipped.report.first_errors.at(1).find("truncated record: 3000 of 3073") != std::string::npos);

  std::filesystem::remove(dir.path() / "data_batch_3.bin");
  require_error([&] { read_cifar10(dir.str(), Split::train); },
                {"cifar10: cannot read '" + (dir.path() / "data_batch_3.bin").string() + "'", "No such file"});
}
