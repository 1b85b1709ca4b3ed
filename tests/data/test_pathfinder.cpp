// Pathfinder reader: metadata parsing, PNG decoding to pixel tokens, the seeded 80/10/10 split,
// empty images skipped and counted, every bad record (metadata line or image) named, skip mode.
#include "data/data_test_util.h"

#include <stb/stb_image_write.h>

#include <algorithm>
#include <map>
#include <numeric>
#include <set>

#include <luna/data/pathfinder.h>
#include <luna/data/png.h>
#include <luna/data/tokenizers.h>

using namespace luna;
using namespace luna::data;
using luna::testing::require_error;
using luna::testing::TempDir;

namespace {
// A gray side x side PNG: pixel 0 = tag (identifies the image), the rest a gradient.
std::string png_bytes(int side, uint8_t tag, int channels = 1) {
  std::vector<uint8_t> pixels(size_t(side * side * channels));
  for (int i = 0; i < side * side; ++i) {
    for (int c = 0; c < channels; ++c) pixels[size_t(i * channels + c)] = uint8_t(i == 0 ? tag : (i * 3 + c) % 256);
  }
  std::string out;
  auto append = [](void* context, void* data, int size) {
    static_cast<std::string*>(context)->append(static_cast<const char*>(data), size_t(size));
  };
  REQUIRE(stbi_write_png_to_func(append, &out, side, side, channels, pixels.data(), side * channels) != 0);
  return out;
}

std::string metadata_line(int batch, int k, int label) {
  return "imgs/" + std::to_string(batch) + " sample_" + std::to_string(k) + ".png " + std::to_string(k) + " " +
         std::to_string(label) + " 1.0 14 4 2 0.5 1 2\n";
}

// `count` images over two batches (0 and 10, to check numeric ordering); image k has tag k and label k % 2.
void write_folder(const TempDir& dir, int count, int side = 32) {
  std::string meta0, meta10;
  for (int k = 0; k < count; ++k) {
    const int batch = k < count / 2 ? 0 : 10;
    dir.write("imgs/" + std::to_string(batch) + "/sample_" + std::to_string(k) + ".png", png_bytes(side, uint8_t(k)));
    (batch == 0 ? meta0 : meta10) += metadata_line(batch, k, k % 2);
  }
  dir.write("metadata/0.npy", meta0);
  dir.write("metadata/10.npy", meta10);
}

// Every example's tag (pixel 0), in order.
std::vector<int> tags(const ClassificationExamples& examples) {
  std::vector<int> out;
  for (size_t i = 0; i < examples.size(); ++i) out.push_back(examples.tokens[i][0] - 1);
  return out;
}
}  // namespace

TEST_CASE("PNG decoding to gray, and its errors", "[data][pathfinder]") {
  const GrayImage gray = decode_png_gray(png_bytes(8, 42));
  REQUIRE(gray.width == 8);
  REQUIRE(gray.height == 8);
  REQUIRE(gray.pixels[0] == 42);
  REQUIRE(gray.pixels[5] == 15);
  // Colour PNGs are converted by stb (equal channels stay that value).
  REQUIRE(decode_png_gray(png_bytes(4, 200, 3)).pixels[0] == 200);
  require_error([] { decode_png_gray("GIF89a....."); }, {"not a PNG file", "\"GIF89a..\""});
  std::string corrupt = png_bytes(8, 1);
  corrupt.resize(40);
  require_error([&] { decode_png_gray(corrupt); }, {"corrupt PNG ("});
  require_error([] { decode_png_gray(png_bytes(64, 1), 32); }, {"64x64", "largest accepted side 32"});
}

TEST_CASE("Pathfinder split: a seeded 80/10/10 partition", "[data][pathfinder]") {
  const auto train = pathfinder_split_indices(1000, Split::train, 7);
  const auto dev = pathfinder_split_indices(1000, Split::dev, 7);
  const auto test = pathfinder_split_indices(1000, Split::test, 7);
  REQUIRE(train.size() == 800);
  REQUIRE(dev.size() == 100);
  REQUIRE(test.size() == 100);
  std::vector<size_t> all;
  for (const auto* part : {&train, &dev, &test}) {
    REQUIRE(std::is_sorted(part->begin(), part->end()));
    all.insert(all.end(), part->begin(), part->end());
  }
  std::sort(all.begin(), all.end());
  std::vector<size_t> expected(1000);
  std::iota(expected.begin(), expected.end(), 0);
  REQUIRE(all == expected);
  REQUIRE(pathfinder_split_indices(1000, Split::dev, 7) == dev);   // deterministic
  REQUIRE(pathfinder_split_indices(1000, Split::dev, 8) != dev);   // the seed matters
  // Not a contiguous block: the test split is spread over the whole range.
  REQUIRE(test.front() < 200);
  REQUIRE(test.back() > 800);
  REQUIRE(pathfinder_split_indices(0, Split::train, 1).empty());
}

TEST_CASE("Pathfinder: metadata, pixels as tokens, splits cover every image once", "[data][pathfinder]") {
  TempDir dir;
  write_folder(dir, 20);
  std::vector<int> seen;
  std::map<Split, size_t> sizes;
  for (Split split : {Split::train, Split::dev, Split::test}) {
    const ClassificationExamples examples = read_pathfinder(dir.str(), split);
    sizes[split] = examples.size();
    REQUIRE(examples.num_classes == 2);
    REQUIRE(examples.vocabulary.vocab_size == 258);
    REQUIRE(examples.max_len == 1024);
    REQUIRE(examples.report.records == 20);
    for (size_t i = 0; i < examples.size(); ++i) {
      const int tag = examples.tokens[i][0] - 1;
      REQUIRE(examples.labels[i] == tag % 2);
      REQUIRE(examples.tokens.length(i) == 1024);
      REQUIRE(examples.tokens[i][5] == 15 + 1);  // gradient pixel 5 = 15, token + 1
      REQUIRE(examples.tokens[i][1023] == (1023 * 3) % 256 + 1);
      seen.push_back(tag);
    }
  }
  REQUIRE(sizes[Split::train] == 16);
  REQUIRE(sizes[Split::dev] == 2);
  REQUIRE(sizes[Split::test] == 2);
  std::sort(seen.begin(), seen.end());
  std::vector<int> expected(20);
  std::iota(expected.begin(), expected.end(), 0);
  REQUIRE(seen == expected);

  // The entries are in batch order 0, 10 (numeric), so the split equals the index split over 0..19.
  const ClassificationExamples test = read_pathfinder(dir.str(), Split::test);
  const auto test_indices = pathfinder_split_indices(20, Split::test, 0);
  REQUIRE(tags(test) == std::vector<int>(test_indices.begin(), test_indices.end()));

  ReadOptions options;
  options.split_seed = 3;
  const auto seeded = pathfinder_split_indices(20, Split::test, 3);
  REQUIRE(tags(read_pathfinder(dir.str(), Split::test, options)) == std::vector<int>(seeded.begin(), seeded.end()));

  options = {};
  options.max_examples = 5;
  const ClassificationExamples capped = read_pathfinder(dir.str(), Split::train, options);
  REQUIRE(capped.size() == 5);
  const auto train_indices = pathfinder_split_indices(20, Split::train, 0);
  for (int tag : tags(capped)) REQUIRE(std::count(train_indices.begin(), train_indices.end(), size_t(tag)) == 1);

  options = {};
  options.add_cls = true;
  const ClassificationExamples cls = read_pathfinder(dir.str(), Split::dev, options);
  REQUIRE(cls.max_len == 1025);
  REQUIRE(cls.tokens[0][0] == kPixelClsId);
  REQUIRE(cls.tokens.length(0) == 1025);
}

TEST_CASE("Pathfinder: empty image files are skipped and counted", "[data][pathfinder]") {
  TempDir dir;
  write_folder(dir, 10);
  const auto train_indices = pathfinder_split_indices(10, Split::train, 0);
  const size_t empty_index = train_indices[2];
  dir.write("imgs/0/sample_" + std::to_string(empty_index) + ".png", "");
  if (empty_index >= 5) dir.write("imgs/10/sample_" + std::to_string(empty_index) + ".png", "");
  const ClassificationExamples train = read_pathfinder(dir.str(), Split::train);
  REQUIRE(train.size() == train_indices.size() - 1);
  REQUIRE(train.report.skipped_empty == 1);
  REQUIRE(train.report.skipped_bad == 0);
  const std::vector<int> got = tags(train);
  REQUIRE(std::find(got.begin(), got.end(), int(empty_index)) == got.end());
}

TEST_CASE("Pathfinder: bad metadata lines name the file and line", "[data][pathfinder]") {
  TempDir dir;
  write_folder(dir, 4);
  auto with_line = [&](const std::string& line) {
    dir.write("metadata/0.npy", metadata_line(0, 0, 0) + line + metadata_line(0, 1, 1));
    return read_pathfinder(dir.str(), Split::train);
  };
  const std::string folder = dir.str();
  require_error([&] { with_line("imgs/0 sample_1.png 1 1 1.0\n"); },
                {"pathfinder: " + folder + " metadata/0.npy line 2:", "expected 11", "got 5"});
  require_error([&] { with_line("imgs/0 sample_1.png 1 2 1.0 14 4 2 0.5 1 2\n"); },
                {"metadata/0.npy line 2:", "label \"2\" is not 0 or 1"});
  require_error([&] { with_line("imgs/0 sample_1.png 1 yes 1.0 14 4 2 0.5 1 2\n"); },
                {"metadata/0.npy line 2:", "label \"yes\" is not 0 or 1"});
  require_error([&] { with_line("../../etc passwd 1 1 1.0 14 4 2 0.5 1 2\n"); },
                {"metadata/0.npy line 2:", "\"../../etc/passwd\" leaves the difficulty folder"});
  require_error([&] { with_line("/abs sample_1.png 1 1 1.0 14 4 2 0.5 1 2\n"); },
                {"metadata/0.npy line 2:", "must be relative"});
  // Blank lines (a trailing one is usual) are not records.
  REQUIRE(with_line("\n   \n").report.records == 2 + 2);

  require_error([&] { read_pathfinder((dir.path() / "nowhere").string(), Split::train); },
                {"pathfinder: '" + (dir.path() / "nowhere" / "metadata").string() + "' is not a folder"});
  std::filesystem::remove_all(dir.path() / "metadata");
  std::filesystem::create_directories(dir.path() / "metadata");
  require_error([&] { read_pathfinder(dir.str(), Split::train); }, {"holds no .npy metadata files"});
}

TEST_CASE("Pathfinder: bad images are errors naming the image; skip mode counts them", "[data][pathfinder]") {
  TempDir dir;
  write_folder(dir, 10);
  // All breakage goes into train images after its first (good) one, so the size check has a reference.
  const auto train = pathfinder_split_indices(10, Split::train, 0);
  REQUIRE(train.size() == 8);
  auto image_name = [](size_t k) { return "imgs/" + std::string(k < 5 ? "0" : "10") + "/sample_" + std::to_string(k) + ".png"; };
  auto origin = [](size_t k) {
    return "(metadata/" + std::string(k < 5 ? "0" : "10") + ".npy line " + std::to_string(k % 5 + 1) + "):";
  };
  std::string corrupt = png_bytes(32, 1);
  corrupt.resize(60);
  struct Breakage {
    size_t image;
    std::function<void()> apply;
    std::vector<std::string> pieces;
  };
  const std::vector<Breakage> breakages = {
      {train[1], [&] { dir.write(image_name(train[1]), corrupt); }, {"corrupt PNG ("}},
      {train[2], [&] { dir.write(image_name(train[2]), "not a png at all"); }, {"not a PNG file"}},
      {train[3], [&] { std::filesystem::remove(dir.path() / image_name(train[3])); }, {"cannot read", "No such file"}},
      {train[4], [&] { dir.write(image_name(train[4]), png_bytes(16, 8)); }, {"16x16 but the images before it are 32x32"}},
      {train[5], [&] { dir.write(image_name(train[5]), png_bytes(32, 8).substr(0, 8) + std::string(50, '\0')); },
       {"corrupt PNG ("}},
  };
  for (const Breakage& breakage : breakages) {
    breakage.apply();
    std::vector<std::string> pieces = breakage.pieces;
    pieces.push_back("pathfinder: " + dir.str() + " " + image_name(breakage.image) + " " + origin(breakage.image));
    require_error([&] { read_pathfinder(dir.str(), Split::train); }, pieces);
    dir.write(image_name(breakage.image), png_bytes(32, uint8_t(breakage.image)));  // repair
  }
  REQUIRE(read_pathfinder(dir.str(), Split::train).size() == 8);

  for (const Breakage& breakage : breakages) breakage.apply();
  ReadOptions options;
  options.skip_bad_records = true;
  const ClassificationExamples examples = read_pathfinder(dir.str(), Split::train, options);
  REQUIRE(examples.size() == 3);
  REQUIRE(examples.report.skipped_bad == 5);
  REQUIRE(examples.report.skipped_empty == 0);
  REQUIRE(examples.report.first_errors.size() == 5);
  REQUIRE(tags(examples) == std::vector<int>{int(train[0]), int(train[6]), int(train[7])});
  // The other splits do not read train's images.
  REQUIRE(read_pathfinder(dir.str(), Split::dev).size() == 1);
}
