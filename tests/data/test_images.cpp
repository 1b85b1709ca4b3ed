// images.h: decoding PNG/JPEG/BMP (written here with stb_image_write) with their own channel
// counts, PIL-identical bilinear resizing (tests/fixtures/resize, made by
// scripts/make_resize_fixture.py), load_image_set on image folders, synthetic CIFAR-10 and
// Fashion-MNIST files (and Debian's real ones when installed), and normalize_images.
#include "data/data_test_util.h"

#include <stb/stb_image_write.h>
#include <zlib.h>

#include <algorithm>
#include <filesystem>
#include <set>

#include <luna/core/safetensors.h>
#include <luna/data/cifar10.h>
#include <luna/data/fashion_mnist.h>
#include <luna/data/gzip.h>
#include <luna/data/images.h>
#include <luna/data/read_util.h>
#include <luna/ops/factories.h>

using namespace luna;
using namespace luna::data;
using luna::testing::require_error;
using luna::testing::TempDir;

namespace {
void append_to_string(void* context, void* data, int size) {
  static_cast<std::string*>(context)->append(static_cast<const char*>(data), size_t(size));
}

// Interleaved (H, W, C) test pixels: every channel and position differs.
std::vector<uint8_t> pattern(int width, int height, int channels, int seed = 0) {
  std::vector<uint8_t> pixels(size_t(width * height * channels));
  for (int y = 0; y < height; ++y)
    for (int x = 0; x < width; ++x)
      for (int c = 0; c < channels; ++c)
        pixels[size_t((y * width + x) * channels + c)] = uint8_t((x * 40 + y * 17 + c * 70 + seed * 11 + 3) % 256);
  return pixels;
}

std::string png(const std::vector<uint8_t>& interleaved, int width, int height, int channels) {
  std::string bytes;
  REQUIRE(stbi_write_png_to_func(append_to_string, &bytes, width, height, channels, interleaved.data(),
                                 width * channels) != 0);
  return bytes;
}

std::string bmp(const std::vector<uint8_t>& interleaved, int width, int height, int channels) {
  std::string bytes;
  REQUIRE(stbi_write_bmp_to_func(append_to_string, &bytes, width, height, channels, interleaved.data()) != 0);
  return bytes;
}

std::string jpeg(const std::vector<uint8_t>& interleaved, int width, int height, int channels) {
  std::string bytes;
  REQUIRE(stbi_write_jpg_to_func(append_to_string, &bytes, width, height, channels, interleaved.data(), 100) != 0);
  return bytes;
}

// A solid w x h image of `value` in every channel, as PNG.
std::string solid_png(int width, int height, int channels, uint8_t value) {
  return png(std::vector<uint8_t>(size_t(width * height * channels), value), width, height, channels);
}

// Requires `image` to be the planar form of the interleaved `expected`.
void require_planar(const Image& image, const std::vector<uint8_t>& expected, int width, int height, int channels) {
  REQUIRE(image.channels == channels);
  REQUIRE(image.height == height);
  REQUIRE(image.width == width);
  REQUIRE(image.pixels.size() == expected.size());
  for (int c = 0; c < channels; ++c)
    for (int y = 0; y < height; ++y)
      for (int x = 0; x < width; ++x) {
        INFO("c " << c << " y " << y << " x " << x);
        REQUIRE(image.pixels[size_t((c * height + y) * width + x)] == expected[size_t((y * width + x) * channels + c)]);
      }
}

std::string be32(uint32_t value) { return {char(value >> 24), char(value >> 16), char(value >> 8), char(value)}; }

std::string png_chunk(const std::string& type, const std::string& data) {
  const std::string body = type + data;
  const uLong crc = crc32(0, reinterpret_cast<const Bytef*>(body.data()), uInt(body.size()));
  return be32(uint32_t(data.size())) + body + be32(uint32_t(crc));
}

// A 16-bit gray PNG of one row holding `samples` (stb_image_write only writes 8 bits).
std::string png16_gray_row(const std::vector<uint16_t>& samples) {
  std::string raw(1, '\0');  // filter type 0 (none)
  for (uint16_t s : samples) raw += {char(s >> 8), char(s & 0xff)};
  std::string compressed(compressBound(uLong(raw.size())), '\0');
  uLongf size = uLongf(compressed.size());
  REQUIRE(compress(reinterpret_cast<Bytef*>(compressed.data()), &size, reinterpret_cast<const Bytef*>(raw.data()),
                   uLong(raw.size())) == Z_OK);
  compressed.resize(size);
  const std::string header = be32(uint32_t(samples.size())) + be32(1) + std::string("\x10\x00\x00\x00\x00", 5);
  return std::string("\x89PNG\r\n\x1a\n", 8) + png_chunk("IHDR", header) + png_chunk("IDAT", compressed) +
         png_chunk("IEND", "");
}

// Image i of a uint8 (N, C, S, S) tensor.
std::vector<uint8_t> image_at(const Tensor& images, int64_t i) {
  const int64_t size = images.size(1) * images.size(2) * images.size(3);
  const uint8_t* data = images.contiguous().data_ptr<uint8_t>() + i * size;
  return std::vector<uint8_t>(data, data + size);
}

std::vector<int64_t> labels_of(const ImageClassificationSet& set) {
  const Tensor labels = set.labels.contiguous();
  REQUIRE(labels.dtype() == kInt64);
  return std::vector<int64_t>(labels.data_ptr<int64_t>(), labels.data_ptr<int64_t>() + labels.numel());
}

ImageSetOptions sized(int64_t image_size) {
  ImageSetOptions options;
  options.image_size = image_size;
  return options;
}
}  // namespace

TEST_CASE("decode_image: PNG keeps 1-4 channels, planar, 16-bit reduced to 8", "[data][images]") {
  for (int channels = 1; channels <= 4; ++channels) {
    INFO("channels " << channels);
    const std::vector<uint8_t> pixels = pattern(5, 3, channels);
    require_planar(decode_image(png(pixels, 5, 3, channels)), pixels, 5, 3, channels);
  }
  // stb keeps the high byte of each 16-bit sample.
  const Image deep = decode_image(png16_gray_row({0x1234, 0xff01, 0x00ff}));
  REQUIRE(deep.channels == 1);
  REQUIRE(deep.width == 3);
  REQUIRE(deep.pixels == std::vector<uint8_t>{0x12, 0xff, 0x00});
}

TEST_CASE("decode_image: BMP exact, JPEG close, both RGB", "[data][images]") {
  const std::vector<uint8_t> rgb = pattern(6, 4, 3);
  require_planar(decode_image(bmp(rgb, 6, 4, 3)), rgb, 6, 4, 3);
  const std::vector<uint8_t> rgba = pattern(3, 5, 4);
  require_planar(decode_image(bmp(rgba, 3, 5, 4)), rgba, 3, 5, 4);

  // A smooth 16x16 image survives quality-100 JPEG to within a few levels.
  std::vector<uint8_t> smooth(16 * 16 * 3);
  for (int p = 0; p < 256; ++p)
    for (int c = 0; c < 3; ++c) smooth[size_t(p * 3 + c)] = uint8_t(60 + (p % 16) * 4 + (p / 16) * 2 + c * 30);
  const Image decoded = decode_image(jpeg(smooth, 16, 16, 3));
  REQUIRE(decoded.channels == 3);
  REQUIRE(decoded.height == 16);
  REQUIRE(decoded.width == 16);
  int worst = 0;
  for (int c = 0; c < 3; ++c)
    for (int p = 0; p < 256; ++p)
      worst = std::max(worst, std::abs(int(decoded.pixels[size_t(c * 256 + p)]) - int(smooth[size_t(p * 3 + c)])));
  REQUIRE(worst <= 6);
}

TEST_CASE("decode_image and read_image: corrupt, truncated, too large, missing", "[data][images]") {
  require_error([] { decode_image(""); }, {"empty file"});
  require_error([] { decode_image("hello, this is not an image"); },
                {"not an image stb_image can decode", "\"hello, t\""});
  const std::string whole = png(pattern(16, 16, 3), 16, 16, 3);
  // The header survives, the pixel data does not.
  require_error([&] { decode_image(whole.substr(0, whole.size() / 2)); }, {"corrupt or unsupported image", "16x16"});
  require_error([&] { decode_image(png(pattern(20, 10, 1), 20, 10, 1), 16); },
                {"image of 20x10", "exceeds the largest accepted side 16"});
  REQUIRE(decode_image(png(pattern(16, 10, 1), 16, 10, 1), 16).width == 16);

  TempDir dir;
  const std::string broken = dir.write("broken.png", whole.substr(0, 40));
  require_error([&] { read_image(broken); }, {broken + ": ", "corrupt or unsupported image"});
  const std::string missing = (dir.path() / "missing.png").string();
  require_error([&] { read_image(missing); }, {"cannot read '" + missing + "'", "No such file"});
  const std::string good = dir.write("good.png", whole);
  REQUIRE(read_image(good).pixels == decode_image(whole).pixels);
}

TEST_CASE("resize_bilinear: hand-computed PIL weights", "[data][images]") {
  // Row [0, 255] widened to 4: centres 0.25, 0.75, 1.25, 1.75 in input pixels; PIL clamps the
  // triangle to the image, so the ends copy and the middle is 255/4 and 3·255/4 rounded.
  const Image row{1, 1, 2, {0, 255}};
  REQUIRE(resize_bilinear(row, 1, 4).pixels == std::vector<uint8_t>{0, 64, 191, 255});
  // Shrinking 4 -> 2 widens the triangle to 2 input pixels. Output 0 is centred at 1.0: inputs
  // 0, 1, 2 (centres 0.5, 1.5, 2.5) get weights 0.75, 0.75, 0.25, so (7.5 + 15 + 7.5) / 1.75 =
  // 17.1 -> 17; output 1 (centre 3.0) reads inputs 1, 2, 3: (5 + 22.5 + 30) / 1.75 = 32.9 -> 33.
  const Image wide{1, 1, 4, {10, 20, 30, 40}};
  REQUIRE(resize_bilinear(wide, 1, 2).pixels == std::vector<uint8_t>{17, 33});
  // Same size: a copy; the other axis alone resizes only that axis.
  const Image square{2, 2, 2, {1, 2, 3, 4, 5, 6, 7, 8}};
  REQUIRE(resize_bilinear(square, 2, 2).pixels == square.pixels);
  REQUIRE(resize_bilinear(square, 1, 2).pixels == std::vector<uint8_t>{2, 3, 6, 7});  // column means, rounded

  require_error([&] { resize_bilinear(square, 0, 4); }, {"resize_bilinear: target size 0x4"});
  require_error([] { resize_bilinear(Image{3, 2, 2, {1, 2, 3}}, 4, 4); }, {"holds 3 pixels"});
}

TEST_CASE("resize_bilinear matches PIL's Image.resize(BILINEAR) bit for bit", "[data][images]") {
  const std::filesystem::path path =
      std::filesystem::path(__FILE__).parent_path().parent_path() / "fixtures" / "resize" / "pil_bilinear.safetensors.gz";
  const std::string compressed = data::detail::read_file(path.string(), "test");
  const std::string bytes = gunzip(compressed, path.string());
  const SafetensorsFile fixture =
      parse_safetensors(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), path.string());
  int cases = 0;
  for (const auto& [name, input] : fixture.tensors) {
    if (name.size() < 6 || name.substr(name.size() - 6) != ".input") continue;
    const std::string case_name = name.substr(0, name.size() - 6);
    const Tensor& expected = fixture.at(case_name + ".output");
    INFO("case " << case_name);
    REQUIRE(input.dim() == 3);
    REQUIRE(expected.dim() == 3);
    Image image{input.size(0), input.size(1), input.size(2), {}};
    const uint8_t* in = input.contiguous().data_ptr<uint8_t>();
    image.pixels.assign(in, in + input.numel());
    const Image resized = resize_bilinear(image, expected.size(1), expected.size(2));
    REQUIRE(resized.channels == expected.size(0));
    const uint8_t* want = expected.contiguous().data_ptr<uint8_t>();
    int64_t differing = 0, worst = 0;
    for (int64_t i = 0; i < expected.numel(); ++i) {
      const int64_t diff = std::abs(int64_t(resized.pixels[size_t(i)]) - int64_t(want[i]));
      differing += diff != 0;
      worst = std::max(worst, diff);
    }
    INFO(differing << " of " << expected.numel() << " pixels differ, by up to " << worst);
    REQUIRE(differing == 0);
    ++cases;
  }
  REQUIRE(cases == 11);
}

TEST_CASE("load_image_set: image folder with train/ and val/", "[data][images]") {
  TempDir dir;
  // Classes sort as ant, cat, dog; each image is solid with its own value unless said otherwise.
  dir.write("train/cat/a.png", solid_png(4, 4, 3, 10));
  dir.write("train/cat/b.png", solid_png(4, 4, 3, 20));
  dir.write("train/cat/sub/z.png", solid_png(4, 4, 3, 30));  // subfolders are searched, as torchvision does,
  dir.write("train/cat/y.png", solid_png(4, 4, 3, 25));      // after the folder's own files
  dir.write("train/cat/notes.txt", "not an image, ignored");
  const std::vector<uint8_t> textured = pattern(8, 6, 3);
  dir.write("train/dog/c.PNG", png(textured, 8, 6, 3));  // resized 8x6 -> 4x4; extensions ignore case
  dir.write("train/ant/d.bmp", bmp(pattern(4, 4, 3, 1), 4, 4, 3));
  dir.write("train/README.md", "ignored");
  dir.write("val/cat/e.png", solid_png(4, 4, 3, 50));
  dir.write("val/dog/f.png", solid_png(4, 4, 3, 60));

  const ImageClassificationSet train = load_image_set("imagefolder:" + dir.str(), Split::train, sized(4));
  REQUIRE(train.classes == std::vector<std::string>{"ant", "cat", "dog"});
  REQUIRE(train.size() == 6);
  REQUIRE(train.images.dtype() == kUInt8);
  REQUIRE(train.images.sizes() == Dims{6, 3, 4, 4});
  REQUIRE(labels_of(train) == std::vector<int64_t>{0, 1, 1, 1, 1, 2});
  REQUIRE(train.report.records == 6);
  REQUIRE(train.source == (dir.path() / "train").string());
  // ant/d.bmp as written (no resize), then cat a, b, y, sub/z by their solid values.
  Image ant{3, 4, 4, {}};
  const std::vector<uint8_t> ant_pixels = pattern(4, 4, 3, 1);
  for (int c = 0; c < 3; ++c)
    for (int p = 0; p < 16; ++p) ant.pixels.push_back(ant_pixels[size_t(p * 3 + c)]);
  REQUIRE(image_at(train.images, 0) == ant.pixels);
  REQUIRE(image_at(train.images, 1) == std::vector<uint8_t>(48, 10));
  REQUIRE(image_at(train.images, 2) == std::vector<uint8_t>(48, 20));
  REQUIRE(image_at(train.images, 3) == std::vector<uint8_t>(48, 25));  // cat/y before cat/sub/z
  REQUIRE(image_at(train.images, 4) == std::vector<uint8_t>(48, 30));
  // dog/c.PNG went through the PIL resize.
  Image dog{3, 6, 8, {}};
  for (int c = 0; c < 3; ++c)
    for (int p = 0; p < 48; ++p) dog.pixels.push_back(textured[size_t(p * 3 + c)]);
  REQUIRE(image_at(train.images, 5) == resize_bilinear(dog, 4, 4).pixels);

  // dev comes from val/; without test/, test does too.
  const ImageClassificationSet dev = load_image_set("imagefolder:" + dir.str(), Split::dev, sized(4));
  REQUIRE(labels_of(dev) == std::vector<int64_t>{1, 2});
  REQUIRE(dev.classes == train.classes);
  REQUIRE(image_at(dev.images, 1) == std::vector<uint8_t>(48, 60));
  REQUIRE(labels_of(load_image_set("imagefolder:" + dir.str(), Split::test, sized(4))) == std::vector<int64_t>{1, 2});
  // With test/ as well, test reads it.
  dir.write("test/dog/g.png", solid_png(4, 4, 3, 70));
  const ImageClassificationSet test = load_image_set("imagefolder:" + dir.str(), Split::test, sized(4));
  REQUIRE(labels_of(test) == std::vector<int64_t>{2});
  REQUIRE(image_at(test.images, 0) == std::vector<uint8_t>(48, 70));

  // Resized to another side on request; max_examples keeps the first ones.
  ImageSetOptions options = sized(2);
  options.max_examples = 3;
  const ImageClassificationSet small = load_image_set("imagefolder:" + dir.str(), Split::train, options);
  REQUIRE(small.images.sizes() == Dims{3, 3, 2, 2});
  REQUIRE(labels_of(small) == std::vector<int64_t>{0, 1, 1});
  REQUIRE(image_at(small.images, 1) == std::vector<uint8_t>(12, 10));

  // A corrupt file is an error naming it, or skipped and counted.
  const std::string bad = dir.write("train/cat/broken.png", solid_png(4, 4, 3, 0).substr(0, 40));
  require_error([&] { load_image_set("imagefolder:" + dir.str(), Split::train, sized(4)); },
                {"imagefolder: " + bad + ": ", "corrupt or unsupported image"});
  options = sized(4);
  options.skip_bad_records = true;
  const ImageClassificationSet skipped = load_image_set("imagefolder:" + dir.str(), Split::train, options);
  REQUIRE(skipped.size() == 6);
  REQUIRE(labels_of(skipped) == std::vector<int64_t>{0, 1, 1, 1, 1, 2});
  REQUIRE(skipped.report.records == 7);
  REQUIRE(skipped.report.skipped_bad == 1);
  REQUIRE(skipped.report.first_errors.size() == 1);
  REQUIRE(skipped.report.first_errors[0].find(bad) != std::string::npos);
  // max_examples counts kept images: the broken one (4th in order) is made up by the next.
  options.max_examples = 4;
  REQUIRE(labels_of(load_image_set("imagefolder:" + dir.str(), Split::train, options)) ==
          std::vector<int64_t>{0, 1, 1, 1});
  std::filesystem::remove(bad);

  // A val/ class the training folder lacks.
  dir.write("val/eel/h.png", solid_png(4, 4, 3, 1));
  require_error([&] { load_image_set("imagefolder:" + dir.str(), Split::dev, sized(4)); },
                {(dir.path() / "val" / "eel").string(), "is a class the training folder does not have"});
}

TEST_CASE("load_image_set: image folder channel counts", "[data][images]") {
  TempDir dir;
  dir.write("train/a/1.png", solid_png(4, 4, 3, 1));
  const std::string gray = dir.write("train/b/2.png", solid_png(4, 4, 1, 2));
  dir.write("val/a/3.png", solid_png(4, 4, 3, 3));
  ImageSetOptions options = sized(4);
  options.channels = 3;
  // Never skipped: a mixed folder needs converting, not silently thinning.
  options.skip_bad_records = true;
  require_error([&] { load_image_set("imagefolder:" + dir.str(), Split::train, options); },
                {"imagefolder: " + gray + " has 1 channel(s), expected 3 (ImageSetOptions::channels)"});
  options.channels = 0;  // the first image's count
  require_error([&] { load_image_set("imagefolder:" + dir.str(), Split::train, options); },
                {"imagefolder: " + gray + " has 1 channel(s), expected 3",
                 "the split's first image, " + (dir.path() / "train" / "a" / "1.png").string()});
  options.channels = 1;
  require_error([&] { load_image_set("imagefolder:" + dir.str(), Split::train, options); },
                {"has 3 channel(s), expected 1"});
  // Gray only: a 1-channel set.
  std::filesystem::remove(dir.path() / "train" / "a" / "1.png");
  dir.write("train/a/1.png", solid_png(4, 4, 1, 9));
  const ImageClassificationSet ones = load_image_set("imagefolder:" + dir.str(), Split::train, options);
  REQUIRE(ones.images.sizes() == Dims{2, 1, 4, 4});
}

TEST_CASE("load_image_set: image folder without train/ splits 80/10/10 by seed", "[data][images]") {
  TempDir dir;
  // 3 classes x 10 images; image i is 2x2 with its index in the red channel.
  for (int i = 0; i < 30; ++i) {
    const std::string name = "c" + std::to_string(i / 10) + "/img" + std::to_string(100 + i) + ".png";
    std::vector<uint8_t> pixels(2 * 2 * 3, 0);
    for (int p = 0; p < 4; ++p) pixels[size_t(p * 3)] = uint8_t(i);
    dir.write(name, png(pixels, 2, 2, 3));
  }
  auto split_indices = [&](Split split, uint64_t seed, std::set<int>& seen) {
    ImageSetOptions options = sized(2);
    options.split_seed = seed;
    const ImageClassificationSet set = load_image_set("imagefolder:" + dir.str(), split, options);
    REQUIRE(set.classes == std::vector<std::string>{"c0", "c1", "c2"});
    const std::vector<int64_t> labels = labels_of(set);
    std::vector<int> indices;
    for (int64_t i = 0; i < set.size(); ++i) {
      const int index = image_at(set.images, i)[0];
      REQUIRE(labels[size_t(i)] == index / 10);  // the label follows the image
      REQUIRE(seen.insert(index).second);        // splits are disjoint
      indices.push_back(index);
    }
    return indices;
  };
  std::set<int> seen;
  const std::vector<int> train = split_indices(Split::train, 7, seen);
  const std::vector<int> dev = split_indices(Split::dev, 7, seen);
  const std::vector<int> test = split_indices(Split::test, 7, seen);
  REQUIRE(train.size() == 24);
  REQUIRE(dev.size() == 3);
  REQUIRE(test.size() == 3);
  REQUIRE(seen.size() == 30);  // and covering
  REQUIRE(std::is_sorted(train.begin(), train.end()));  // in file order
  std::set<int> again;
  REQUIRE(split_indices(Split::dev, 7, again) == dev);  // deterministic
  std::set<int> other;
  const std::vector<int> dev_other_seed = split_indices(Split::dev, 8, other);
  std::set<int> other_train;
  const std::vector<int> train_other_seed = split_indices(Split::train, 8, other_train);
  REQUIRE((dev_other_seed != dev || train_other_seed != train));
}

TEST_CASE("load_image_set: image folder and spec errors", "[data][images]") {
  TempDir dir;
  require_error([] { load_image_set("foo:x", Split::train); },
                {"unknown image source 'foo:x' (expected fmnist, fmnist:DIR, cifar10:DIR or imagefolder:DIR)"});
  require_error([] { load_image_set("cifar10", Split::train); }, {"image source 'cifar10' names no folder"});
  require_error([] { load_image_set("imagefolder:", Split::train, sized(4)); }, {"names no folder"});
  const std::string missing = (dir.path() / "nope").string();
  require_error([&] { load_image_set("cifar10:" + missing, Split::train); }, {"folder '" + missing + "'", "does not exist"});
  require_error([&] { load_image_set("imagefolder:" + dir.str(), Split::train); },
                {"ImageSetOptions::image_size must be set"});
  require_error([&] { load_image_set("imagefolder:" + dir.str(), Split::train, sized(4)); },
                {dir.str() + " has no class folders"});
  std::filesystem::create_directories(dir.path() / "empty_class");
  dir.write("full_class/x.png", solid_png(2, 2, 1, 0));
  require_error([&] { load_image_set("imagefolder:" + dir.str(), Split::train, sized(4)); },
                {"class folder " + (dir.path() / "empty_class").string(), "holds no image files"});
  ImageSetOptions options;
  options.channels = 5;
  require_error([&] { load_image_set("imagefolder:" + dir.str(), Split::train, options); },
                {"ImageSetOptions::channels must be 0", "got 5"});
  // train/ without val/ or test/ has no dev split.
  TempDir only_train;
  only_train.write("train/a/x.png", solid_png(2, 2, 1, 0));
  REQUIRE(load_image_set("imagefolder:" + only_train.str(), Split::train, sized(2)).size() == 1);
  require_error([&] { load_image_set("imagefolder:" + only_train.str(), Split::dev, sized(2)); },
                {"has train/ but neither val/ nor test/ for the dev split"});
}

namespace {
// A CIFAR record: R plane (p + seed) % 256, G plane 2p % 256, B plane (7p + seed) % 256.
std::string cifar_record(uint8_t label, int seed) {
  std::string bytes(size_t(kCifarRecordBytes), '\0');
  bytes[0] = char(label);
  for (int p = 0; p < kCifarPixels; ++p) {
    bytes[size_t(1 + p)] = char((p + seed) % 256);
    bytes[size_t(1 + kCifarPixels + p)] = char((2 * p) % 256);
    bytes[size_t(1 + 2 * kCifarPixels + p)] = char((p * 7 + seed) % 256);
  }
  return bytes;
}

// Five batches of 2 records (labels = global index), a test batch of 3 (labels 7, 8, 9).
void write_cifar(const TempDir& dir) {
  for (int batch = 1; batch <= 5; ++batch) {
    const int first = (batch - 1) * 2;
    dir.write("data_batch_" + std::to_string(batch) + ".bin",
              cifar_record(uint8_t(first), first) + cifar_record(uint8_t(first + 1), first + 1));
  }
  dir.write("test_batch.bin", cifar_record(7, 100) + cifar_record(8, 101) + cifar_record(9, 102));
}
}  // namespace

TEST_CASE("load_image_set: CIFAR-10 in colour", "[data][images]") {
  TempDir dir;
  write_cifar(dir);
  const std::string spec = "cifar10:" + dir.str();
  const ImageClassificationSet train = load_image_set(spec, Split::train);
  const ImageClassificationSet dev = load_image_set(spec, Split::dev);
  const ImageClassificationSet test = load_image_set(spec, Split::test);
  REQUIRE(train.images.sizes() == Dims{9, 3, 32, 32});  // 10 records: the last tenth is dev
  REQUIRE(labels_of(train) == std::vector<int64_t>{0, 1, 2, 3, 4, 5, 6, 7, 8});
  REQUIRE(labels_of(dev) == std::vector<int64_t>{9});
  REQUIRE(labels_of(test) == std::vector<int64_t>{7, 8, 9});
  REQUIRE(train.classes.size() == 10);
  REQUIRE(train.classes[0] == "airplane");
  REQUIRE(train.classes[9] == "truck");
  // Channel 0 is the R plane, 1 G, 2 B: the record's bytes after the label, in order.
  const std::string record5 = cifar_record(5, 5);
  REQUIRE(image_at(train.images, 5) == std::vector<uint8_t>(record5.begin() + 1, record5.end()));
  const std::vector<uint8_t> test1 = image_at(test.images, 1);
  REQUIRE(test1[0] == 101 % 256);          // R of pixel 0: seed 101
  REQUIRE(test1[1024 + 3] == 6);           // G of pixel 3: 2·3
  REQUIRE(test1[2048 + 10] == (70 + 101) % 256);  // B of pixel 10
  const std::string record9 = cifar_record(9, 9);
  REQUIRE(image_at(dev.images, 0) == std::vector<uint8_t>(record9.begin() + 1, record9.end()));

  // Resized on request, as resize_bilinear does it.
  ImageSetOptions options = sized(8);
  options.max_examples = 2;
  const ImageClassificationSet small = load_image_set(spec, Split::test, options);
  REQUIRE(small.images.sizes() == Dims{2, 3, 8, 8});
  const std::string test_record0 = cifar_record(7, 100);
  const Image original{3, 32, 32, std::vector<uint8_t>(test_record0.begin() + 1, test_record0.end())};
  REQUIRE(image_at(small.images, 0) == resize_bilinear(original, 8, 8).pixels);

  options = {};
  options.channels = 1;
  require_error([&] { load_image_set(spec, Split::train, options); },
                {"cifar10: images have 3 channels, the model expects 1"});
}

TEST_CASE("load_image_set: CIFAR-10 bad labels and truncated files", "[data][images]") {
  TempDir dir;
  write_cifar(dir);
  const std::string spec = "cifar10:" + dir.str();
  const std::string test_path = dir.write("test_batch.bin", cifar_record(3, 0) + cifar_record(12, 1) + cifar_record(4, 2));
  require_error([&] { load_image_set(spec, Split::test); },
                {"cifar10: " + test_path + " record 1 (byte offset 3073): label 12 is outside 0-9"});
  ImageSetOptions options;
  options.skip_bad_records = true;
  const ImageClassificationSet skipped = load_image_set(spec, Split::test, options);
  REQUIRE(labels_of(skipped) == std::vector<int64_t>{3, 4});
  REQUIRE(skipped.report.records == 3);
  REQUIRE(skipped.report.skipped_bad == 1);
  REQUIRE(skipped.report.first_errors.at(0).find("label 12") != std::string::npos);
  const std::string record2 = cifar_record(4, 2);
  REQUIRE(image_at(skipped.images, 1) == std::vector<uint8_t>(record2.begin() + 1, record2.end()));

  // A size that is not a whole number of records is damage to the file: never skipped.
  dir.write("test_batch.bin", cifar_record(3, 0) + cifar_record(4, 1).substr(0, 100));
  require_error([&] { load_image_set(spec, Split::test, options); },
                {"cifar10: " + test_path + " is 3173 bytes, not a multiple of the 3073-byte record"});
  std::filesystem::remove(dir.path() / "data_batch_4.bin");
  require_error([&] { load_image_set(spec, Split::train); },
                {"cifar10: cannot read '" + dir.str() + "/data_batch_4.bin'", "No such file"});
}

namespace {
// n Fashion-MNIST-like 4x4 images whose pixel p of image i is (16i + p) % 256, and their labels.
void write_idx_pair(const TempDir& dir, const std::string& prefix, const std::vector<uint8_t>& labels) {
  const uint32_t n = uint32_t(labels.size());
  std::string images = be32(0x00000803) + be32(n) + be32(4) + be32(4);
  for (uint32_t i = 0; i < n; ++i)
    for (int p = 0; p < 16; ++p) images += char((i * 16 + p) % 256);
  std::string label_bytes = be32(0x00000801) + be32(n);
  for (uint8_t label : labels) label_bytes += char(label);
  dir.write(prefix + "-images-idx3-ubyte", images);
  dir.write(prefix + "-labels-idx1-ubyte", label_bytes);
}
}  // namespace

TEST_CASE("load_image_set: Fashion-MNIST IDX files", "[data][images]") {
  TempDir dir;
  std::vector<uint8_t> train_labels(24);
  for (size_t i = 0; i < 24; ++i) train_labels[i] = uint8_t(i % 10);
  write_idx_pair(dir, "train", train_labels);
  write_idx_pair(dir, "t10k", {4, 2, 0});
  const std::string spec = "fmnist:" + dir.str();
  const ImageClassificationSet train = load_image_set(spec, Split::train);
  const ImageClassificationSet dev = load_image_set(spec, Split::dev);
  REQUIRE(train.images.sizes() == Dims{22, 1, 4, 4});  // the last twelfth (2 of 24) is dev
  REQUIRE(labels_of(dev) == std::vector<int64_t>{2, 3});
  REQUIRE(train.classes.at(0) == "T-shirt/top");
  REQUIRE(train.classes.at(9) == "Ankle boot");
  std::vector<uint8_t> image23(16);
  for (int p = 0; p < 16; ++p) image23[size_t(p)] = uint8_t((23 * 16 + p) % 256);
  REQUIRE(image_at(dev.images, 1) == image23);
  const ImageClassificationSet test = load_image_set(spec, Split::test, sized(6));
  REQUIRE(test.images.sizes() == Dims{3, 1, 6, 6});
  std::vector<uint8_t> image2(16);
  for (int p = 0; p < 16; ++p) image2[size_t(p)] = uint8_t(32 + p);
  REQUIRE(image_at(test.images, 2) == resize_bilinear(Image{1, 4, 4, image2}, 6, 6).pixels);

  ImageSetOptions options;
  options.channels = 3;
  require_error([&] { load_image_set(spec, Split::train, options); },
                {"fmnist: images have 1 channel, the model expects 3"});
  write_idx_pair(dir, "t10k", {4, 10, 0});
  require_error([&] { load_image_set(spec, Split::test); },
                {"fmnist: " + dir.str() + "/t10k-labels-idx1-ubyte record 1: label 10 is outside 0-9"});
  options = {};
  options.skip_bad_records = true;
  const ImageClassificationSet skipped = load_image_set(spec, Split::test, options);
  REQUIRE(labels_of(skipped) == std::vector<int64_t>{4, 0});
  REQUIRE(skipped.report.skipped_bad == 1);
}

TEST_CASE("load_image_set: Debian's Fashion-MNIST", "[data][images][debian]") {
  const std::string dir = kFashionMnistDebianDir;
  if (!std::filesystem::exists(dir + "/train-images-idx3-ubyte.gz")) {
    WARN("SKIPPED: " << dir << " is absent; install the Debian package dataset-fashion-mnist "
                     "(scripts/install_deps.sh does) to test the real files");
    return;
  }
  const ImageClassificationSet train = load_image_set("fmnist", Split::train);
  const ImageClassificationSet dev = load_image_set("fmnist", Split::dev);
  const ImageClassificationSet test = load_image_set("fmnist:" + dir, Split::test);
  REQUIRE(train.images.sizes() == Dims{55000, 1, 28, 28});
  REQUIRE(dev.images.sizes() == Dims{5000, 1, 28, 28});
  REQUIRE(test.images.sizes() == Dims{10000, 1, 28, 28});
  REQUIRE(train.report.skipped_bad == 0);
  // The labels and pixels are the IDX files' own, dev being the train file's tail.
  const IdxArray labels = read_idx(dir + "/train-labels-idx1-ubyte.gz");
  const IdxArray pixels = read_idx(dir + "/train-images-idx3-ubyte.gz");
  const std::vector<int64_t> dev_labels = labels_of(dev);
  for (size_t i = 0; i < 5000; ++i) REQUIRE(dev_labels[i] == int64_t(labels.data[55000 + i]));
  REQUIRE(image_at(train.images, 123) ==
          std::vector<uint8_t>(pixels.data.begin() + 123 * 784, pixels.data.begin() + 124 * 784));
  std::vector<int64_t> histogram(10, 0);
  for (int64_t label : labels_of(test)) ++histogram[size_t(label)];
  REQUIRE(histogram == std::vector<int64_t>(10, 1000));
  // Resized for a ViT-sized input.
  ImageSetOptions options = sized(32);
  options.max_examples = 4;
  const ImageClassificationSet resized = load_image_set("fmnist", Split::test, options);
  REQUIRE(resized.images.sizes() == Dims{4, 1, 32, 32});
  const std::vector<uint8_t> first = image_at(test.images, 3);
  REQUIRE(image_at(resized.images, 3) == resize_bilinear(Image{1, 28, 28, first}, 32, 32).pixels);
}

TEST_CASE("normalize_images: (x / 255 - mean) / std per channel", "[data][images]") {
  // (B=1, C=2, H=1, W=2)
  const Tensor images = tensor(std::vector<uint8_t>{0, 255, 51, 102}, {1, 2, 1, 2});
  const Tensor normalized = normalize_images(images, {0.5, 0.25}, {0.5, 0.25});
  REQUIRE(normalized.dtype() == kFloat32);
  REQUIRE(normalized.sizes() == Dims{1, 2, 1, 2});
  const float* out = normalized.contiguous().data_ptr<float>();
  REQUIRE(out[0] == -1.0f);
  REQUIRE(out[1] == 1.0f);
  REQUIRE(out[2] == float((0.2 - 0.25) / 0.25));  // 51/255 = 0.2: -0.2
  REQUIRE(out[3] == float((0.4 - 0.25) / 0.25));  // 0.6
  REQUIRE(out[2] == Approx(-0.2f));
  REQUIRE(out[3] == Approx(0.6f));
  // One entry serves every channel.
  const float* shared = normalize_images(images, {0.5}, {0.5}).contiguous().data_ptr<float>();
  REQUIRE(shared[2] == float((0.2 - 0.5) / 0.5));

  require_error([&] { normalize_images(images.to(kFloat32), {0.5}, {0.5}); },
                {"normalize_images: expected uint8 images (B, C, H, W)"});
  require_error([&] { normalize_images(images.view({2, 1, 2}), {0.5}, {0.5}); }, {"expected uint8 images"});
  require_error([&] { normalize_images(images, {0.5, 0.5, 0.5}, {0.5}); },
                {"mean has 3 entries for images of 2 channels"});
  require_error([&] { normalize_images(images, {0.5}, {0.5, 0.0}); }, {"std[1] = 0 must be > 0"});
}
