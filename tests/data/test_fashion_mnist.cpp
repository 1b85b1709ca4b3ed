// Fashion-MNIST reader: IDX pairs to pixel tokens, the 11/12 train-dev split, label and count
// errors, skip mode; and the real files of Debian's dataset-fashion-mnist when installed.
#include "data/data_test_util.h"

#include <zlib.h>

#include <filesystem>

#include <luna/data/fashion_mnist.h>
#include <luna/data/tokenizers.h>

using namespace luna;
using namespace luna::data;
using luna::testing::require_error;
using luna::testing::TempDir;

namespace {
std::string be32(uint32_t value) { return {char(value >> 24), char(value >> 16), char(value >> 8), char(value)}; }

// n images of 2x3 whose pixels are (i * 6 + p) % 256, and their labels.
void write_pair(const TempDir& dir, const std::string& prefix, const std::vector<uint8_t>& labels, bool gzipped) {
  const uint32_t n = uint32_t(labels.size());
  std::string images = be32(0x00000803) + be32(n) + be32(2) + be32(3);
  for (uint32_t i = 0; i < n; ++i)
    for (int p = 0; p < 6; ++p) images += char((i * 6 + p) % 256);
  std::string label_bytes = be32(0x00000801) + be32(n);
  for (uint8_t label : labels) label_bytes += char(label);
  if (!gzipped) {
    dir.write(prefix + "-images-idx3-ubyte", images);
    dir.write(prefix + "-labels-idx1-ubyte", label_bytes);
    return;
  }
  for (const auto& [name, data] : {std::pair{prefix + "-images-idx3-ubyte.gz", images},
                                   std::pair{prefix + "-labels-idx1-ubyte.gz", label_bytes}}) {
    gzFile file = gzopen((dir.path() / name).c_str(), "wb");
    REQUIRE(file != nullptr);
    REQUIRE(gzwrite(file, data.data(), unsigned(data.size())) == int(data.size()));
    REQUIRE(gzclose(file) == Z_OK);
  }
}

std::vector<uint8_t> cycling_labels(size_t n) {
  std::vector<uint8_t> labels(n);
  for (size_t i = 0; i < n; ++i) labels[i] = uint8_t(i % 10);
  return labels;
}
}  // namespace

TEST_CASE("Fashion-MNIST: IDX pairs, pixel tokens and the split", "[data][fashion_mnist]") {
  TempDir dir;
  write_pair(dir, "train", cycling_labels(24), /*gzipped=*/true);
  write_pair(dir, "t10k", {4, 2, 0}, /*gzipped=*/false);  // the uncompressed names work too
  const ClassificationExamples train = read_fashion_mnist(dir.str(), Split::train);
  const ClassificationExamples dev = read_fashion_mnist(dir.str(), Split::dev);
  const ClassificationExamples test = read_fashion_mnist(dir.str(), Split::test);
  REQUIRE(train.size() == 22);  // the last twelfth (2 of 24) is dev
  REQUIRE(dev.size() == 2);
  REQUIRE(test.size() == 3);
  REQUIRE(dev.labels == std::vector<int64_t>{2, 3});  // records 22, 23
  REQUIRE(test.labels == std::vector<int64_t>{4, 2, 0});
  REQUIRE(train.max_len == 6);
  REQUIRE(train.vocabulary.vocab_size == 258);
  REQUIRE(train.num_classes == 10);
  for (size_t i = 0; i < train.size(); ++i) {
    REQUIRE(train.labels[i] == int64_t(i % 10));
    REQUIRE(train.tokens.length(i) == 6);
    for (int p = 0; p < 6; ++p) REQUIRE(train.tokens[i][size_t(p)] == int32_t((i * 6 + p) % 256) + 1);
  }
  REQUIRE(dev.tokens[1][0] == int32_t(23 * 6 % 256) + 1);

  ReadOptions options;
  options.add_cls = true;
  const ClassificationExamples cls = read_fashion_mnist(dir.str(), Split::test, options);
  REQUIRE(cls.max_len == 7);
  REQUIRE(cls.tokens[2][0] == kPixelClsId);
  REQUIRE(cls.tokens[2][1] == 2 * 6 + 1);
  options = {};
  options.max_examples = 5;
  REQUIRE(read_fashion_mnist(dir.str(), Split::train, options).size() == 5);
}

TEST_CASE("Fashion-MNIST: bad labels, mismatched files, missing files", "[data][fashion_mnist]") {
  TempDir dir;
  write_pair(dir, "t10k", {1, 10, 3, 255}, /*gzipped=*/false);
  const std::string labels_path = (dir.path() / "t10k-labels-idx1-ubyte").string();
  require_error([&] { read_fashion_mnist(dir.str(), Split::test); },
                {"fashion_mnist: " + labels_path + " record 1:", "label 10 is outside 0-9"});
  ReadOptions options;
  options.skip_bad_records = true;
  const ClassificationExamples skipped = read_fashion_mnist(dir.str(), Split::test, options);
  REQUIRE(skipped.labels == std::vector<int64_t>{1, 3});
  REQUIRE(skipped.tokens[1][0] == 2 * 6 + 1);  // record 2's pixels
  REQUIRE(skipped.report.records == 4);
  REQUIRE(skipped.report.skipped_bad == 2);

  // Counts that disagree, or arrays of the wrong rank, are errors about the files.
  dir.write("t10k-labels-idx1-ubyte", be32(0x00000801) + be32(3) + std::string("\1\2\3", 3));
  require_error([&] { read_fashion_mnist(dir.str(), Split::test); }, {"holds 4 images but", "holds 3 labels"});
  dir.write("t10k-labels-idx1-ubyte", be32(0x00000803) + be32(4) + be32(1) + be32(1) + std::string("\1\2\3\4", 4));
  require_error([&] { read_fashion_mnist(dir.str(), Split::test); }, {labels_path, "expected labels of shape (N), got 3 dims"});
  dir.write("t10k-labels-idx1-ubyte", be32(0x00000901) + be32(4) + std::string("\1\2\3\4", 4));
  require_error([&] { read_fashion_mnist(dir.str(), Split::test); }, {labels_path, "element type 0x00000009"});
  const std::string missing = (dir.path() / "train-images-idx3-ubyte.gz").string();
  require_error([&] { read_fashion_mnist(dir.str(), Split::train); }, {"cannot read '" + missing + "'", "No such file"});
}

TEST_CASE("Fashion-MNIST from Debian's dataset-fashion-mnist", "[data][fashion_mnist][debian]") {
  const std::string dir = kFashionMnistDebianDir;
  if (!std::filesystem::exists(dir + "/train-images-idx3-ubyte.gz")) {
    WARN("SKIPPED: " << dir << " is absent; install the Debian package dataset-fashion-mnist "
                     "(scripts/install_deps.sh does) to test the real files");
    return;
  }
  const IdxArray train_labels = read_idx(dir + "/train-labels-idx1-ubyte.gz");
  REQUIRE(train_labels.dims == std::vector<int64_t>{60000});
  const ClassificationExamples train = read_fashion_mnist(dir, Split::train);
  const ClassificationExamples dev = read_fashion_mnist(dir, Split::dev);
  const ClassificationExamples test = read_fashion_mnist(dir, Split::test);
  REQUIRE(train.size() == 55000);
  REQUIRE(dev.size() == 5000);
  REQUIRE(test.size() == 10000);
  REQUIRE(train.max_len == 784);
  REQUIRE(train.tokens.total_tokens() == 55000 * 784);
  REQUIRE(test.tokens.total_tokens() == 10000 * 784);
  REQUIRE(train.report.skipped_bad == 0);
  // The 60,000 training images hold exactly 6,000 of each class, the 10,000 test images 1,000.
  std::vector<int64_t> histogram = train.label_histogram();
  const std::vector<int64_t> dev_histogram = dev.label_histogram();
  for (size_t c = 0; c < 10; ++c) histogram[c] += dev_histogram[c];
  REQUIRE(histogram == std::vector<int64_t>(10, 6000));
  REQUIRE(test.label_histogram() == std::vector<int64_t>(10, 1000));
  // Tokens are pixels + 1: never the pad id, and images are not blank.
  int32_t lowest = 1000, highest = -1;
  for (int32_t id : test.tokens.ids()) {
    lowest = std::min(lowest, id);
    highest = std::max(highest, id);
  }
  REQUIRE(lowest == 1);     // black background
  REQUIRE(highest == 256);  // saturated white somewhere
  // The dev split is the tail of the training file: its first label is the file's record 55000.
  REQUIRE(dev.labels[0] == int64_t(train_labels.data[55000]));
}
