// load_image_set: Fashion-MNIST, colour CIFAR-10 and image folders as uint8 (N, C, S, S) tensors for
// the ViT apps, with the bad-record policy of the other readers; and normalize_images, the
// mean/std step of Hugging Face's ViTImageProcessor.
#include <luna/data/images.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <exception>
#include <filesystem>
#include <functional>
#include <optional>

#include <luna/core/error.h>
#include <luna/core/threads.h>
#include <luna/data/cifar10.h>
#include <luna/data/fashion_mnist.h>
#include <luna/data/idx.h>
#include <luna/data/pathfinder.h>
#include <luna/data/read_util.h>
#include <luna/ops/factories.h>

namespace luna::data {

namespace {
namespace fs = std::filesystem;

const std::vector<std::string> kFashionMnistClasses = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                                       "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};
const std::vector<std::string> kCifar10Classes = {"airplane", "automobile", "bird",  "cat",  "deer",
                                                  "dog",      "frog",       "horse", "ship", "truck"};

// One example of a split before its pixels exist: where it comes from (for messages), its label, and
// how to get its pixels (decode, build from a record, resize). `load` throws luna::Error for a bad
// record; it may run on any thread.
struct PendingImage {
  std::string source;  // the file
  std::string where;   // "record 3 (byte offset 9219)" inside a binary file; empty for an image file
  int64_t label = 0;
  std::function<Image()> load;
};

// Builds one split. Images are loaded (decoded, resized) in parallel a batch at a time, then taken
// in order on one thread: the bad-record policy, the channel check and the output never depend on
// the thread count.
class ImageSetBuilder {
 public:
  ImageSetBuilder(const char* reader, const ImageSetOptions& options, int64_t side, ImageClassificationSet& out)
      : reader_(reader), options_(options), side_(side), channels_(options.channels), out_(out) {
    record_options_.skip_bad_records = options.skip_bad_records;
  }

  bool full() const { return options_.max_examples > 0 && int64_t(labels_.size()) >= options_.max_examples; }

  // Loads and keeps the pending images in order until max_examples are kept.
  void add(const std::vector<PendingImage>& pending) {
    const size_t kBatch = 256;
    for (size_t begin = 0; begin < pending.size() && !full();) {
      size_t end = std::min(pending.size(), begin + kBatch);
      // Load no more than can still be kept (skipped ones are made up in the next batch).
      if (options_.max_examples > 0) end = std::min(end, begin + size_t(options_.max_examples) - labels_.size());
      std::vector<std::optional<Image>> images(end - begin);
      std::vector<std::exception_ptr> errors(end - begin);
      init_threads();
#pragma omp parallel for schedule(dynamic)
      for (int64_t i = 0; i < int64_t(end - begin); ++i) {
        try {
          images[size_t(i)] = pending[begin + size_t(i)].load();
        } catch (...) {  // exceptions must not leave an OpenMP region; rethrown in order below
          errors[size_t(i)] = std::current_exception();
        }
      }
      for (size_t i = 0; i < end - begin && !full(); ++i) keep(pending[begin + i], images[i], errors[i]);
      begin = end;
    }
  }

  void finish(std::vector<std::string> classes) {
    const int64_t count = int64_t(labels_.size());
    // The tensor takes over the pixel buffer instead of copying it (a split at 224x224 is gigabytes).
    auto* owner = new std::vector<uint8_t>(std::move(pixels_));
    out_.images = from_blob(owner->data(), {count, channels_, side_, side_}, TensorOptions(kUInt8),
                            [owner](void*) { delete owner; });
    out_.labels = tensor(labels_, {count}, TensorOptions(kInt64));
    out_.classes = std::move(classes);
  }

 private:
  void keep(const PendingImage& pending, std::optional<Image>& image, const std::exception_ptr& error) {
    ++out_.report.records;
    if (error) {
      try {
        std::rethrow_exception(error);
      } catch (const Error& bad_record) {
        detail::RecordPolicy(reader_, pending.source, record_options_, out_.report).reject(pending.where, bad_record.what());
        return;
      }
    }
    if (channels_ == 0) {
      channels_ = image->channels;
      first_source_ = pending.source;
    }
    // Not a bad record: a folder that mixes gray and colour images needs converting, not skipping.
    LUNA_CHECK(image->channels == channels_, reader_, ": ", pending.source, pending.where.empty() ? "" : " ",
               pending.where, " has ", image->channels, " channel(s), expected ", channels_,
               first_source_.empty() ? std::string(" (ImageSetOptions::channels)")
                                     : " (those of the split's first image, " + first_source_ +
                                           "; set ImageSetOptions::channels or convert the images)");
    pixels_.insert(pixels_.end(), image->pixels.begin(), image->pixels.end());
    labels_.push_back(pending.label);
  }

  const char* reader_;
  const ImageSetOptions& options_;
  ReadOptions record_options_;  // what detail::RecordPolicy reads (skip_bad_records)
  int64_t side_;
  int64_t channels_;          // expected; 0 until the first image when the options leave it open
  std::string first_source_;  // the image that fixed channels_, when it was not the options
  ImageClassificationSet& out_;
  std::vector<uint8_t> pixels_;  // (N, C, S, S)
  std::vector<int64_t> labels_;  // (N)
};

// `image` at side × side (a copy when it already is).
Image to_side(Image image, int64_t side) {
  if (image.height == side && image.width == side) return image;
  return resize_bilinear(image, side, side);
}

void check_source_channels(const char* reader, int64_t source_channels, const ImageSetOptions& options) {
  LUNA_CHECK(options.channels == 0 || options.channels == source_channels, reader, ": images have ", source_channels,
             source_channels == 1 ? " channel" : " channels", ", the model expects ", options.channels,
             " (ImageSetOptions::channels)");
}

void load_fashion_mnist(const std::string& dir, Split split, const ImageSetOptions& options, ImageClassificationSet& out) {
  constexpr const char* kReader = "fmnist";
  check_source_channels(kReader, 1, options);
  const std::string prefix = split == Split::test ? "t10k" : "train";
  const IdxArray images = read_idx(detail::idx_path(dir, prefix + "-images-idx3-ubyte"));
  const IdxArray labels = read_idx(detail::idx_path(dir, prefix + "-labels-idx1-ubyte"));
  check_fashion_mnist_arrays(images, labels);
  const int64_t rows = images.dims[1], cols = images.dims[2];
  const int64_t side = options.image_size > 0 ? options.image_size : rows;
  const auto [begin, end] = fashion_mnist_split_range(size_t(labels.dims[0]), split);
  std::vector<PendingImage> pending;
  pending.reserve(end - begin);
  for (size_t i = begin; i < end; ++i) {
    const int64_t label = labels.data[i];
    const uint8_t* pixels = images.data.data() + int64_t(i) * rows * cols;  // (rows, cols)
    pending.push_back({labels.source, "record " + std::to_string(i), label, [=] {
                         LUNA_CHECK(label < kFashionMnistNumClasses, "label ", label, " is outside 0-9");
                         return to_side(Image{1, rows, cols, std::vector<uint8_t>(pixels, pixels + rows * cols)}, side);
                       }});
  }
  ImageSetBuilder builder(kReader, options, side, out);
  builder.add(pending);
  builder.finish(kFashionMnistClasses);
}

void load_cifar10(const std::string& dir, Split split, const ImageSetOptions& options, ImageClassificationSet& out) {
  constexpr const char* kReader = "cifar10";
  check_source_channels(kReader, 3, options);
  std::vector<std::string> paths;
  if (split == Split::test) {
    paths.push_back(dir + "/test_batch.bin");
  } else {
    for (int batch = 1; batch <= kCifarTrainBatches; ++batch) paths.push_back(dir + "/data_batch_" + std::to_string(batch) + ".bin");
  }
  // Record counts from the file sizes first, so the split is cut before any file is read.
  std::vector<int64_t> records;
  for (const std::string& path : paths) {
    std::error_code error;
    const uintmax_t bytes = fs::file_size(path, error);
    LUNA_CHECK(!error, kReader, ": cannot read '", path, "': ", error.message());
    LUNA_CHECK(bytes % uintmax_t(kCifarRecordBytes) == 0, kReader, ": ", path, " is ", bytes,
               " bytes, not a multiple of the ", kCifarRecordBytes,
               "-byte record (1 label byte + 3x1024 pixel bytes): truncated, or not a CIFAR-10 binary batch");
    records.push_back(int64_t(bytes / uintmax_t(kCifarRecordBytes)));
  }
  int64_t total = 0;
  for (int64_t count : records) total += count;
  // As read_cifar10: dev is the last tenth of the five data batches.
  const int64_t dev_size = split == Split::test ? 0 : total / 10;
  const int64_t begin = split == Split::dev ? total - dev_size : 0;
  const int64_t end = split == Split::train ? total - dev_size : total;
  const int64_t side = options.image_size > 0 ? options.image_size : kCifarSide;

  ImageSetBuilder builder(kReader, options, side, out);
  int64_t first_record = 0;  // of the current file, counted over all files
  for (size_t f = 0; f < paths.size() && !builder.full(); first_record += records[f], ++f) {
    const int64_t local_begin = std::max<int64_t>(begin - first_record, 0);
    const int64_t local_end = std::min<int64_t>(end - first_record, records[f]);
    if (local_begin >= local_end) continue;
    const std::string bytes = detail::read_file(paths[f], kReader);
    LUNA_CHECK(int64_t(bytes.size()) == records[f] * kCifarRecordBytes, kReader, ": ", paths[f],
               " changed size while being read");
    std::vector<PendingImage> pending;
    for (int64_t r = local_begin; r < local_end; ++r) {
      const int64_t offset = r * kCifarRecordBytes;
      const int64_t label = static_cast<unsigned char>(bytes[size_t(offset)]);
      // The record's R, G and B planes, each (32, 32), are already a planar (3, 32, 32) image.
      const auto* planes = reinterpret_cast<const uint8_t*>(bytes.data() + offset + 1);
      pending.push_back({paths[f], "record " + std::to_string(r) + " (byte offset " + std::to_string(offset) + ")",
                         label, [=] {
                           LUNA_CHECK(label < kCifarNumClasses, "label ", label, " is outside 0-9");
                           return to_side(Image{3, kCifarSide, kCifarSide,
                                                std::vector<uint8_t>(planes, planes + 3 * kCifarPixels)},
                                          side);
                         }});
    }
    builder.add(pending);
  }
  builder.finish(kCifar10Classes);
}

// Extensions of the files an image folder's classes hold (torchvision's list, less the formats stb
// cannot read: webp, tif/tiff).
bool is_image_file(const fs::path& path) {
  std::string extension = path.extension().string();
  std::transform(extension.begin(), extension.end(), extension.begin(),
                 [](unsigned char c) { return char(std::tolower(c)); });
  for (const char* known : {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tga", ".pnm", ".ppm", ".pgm"}) {
    if (extension == known) return true;
  }
  return false;
}

bool is_folder(const fs::path& path) {
  std::error_code error;
  return fs::is_directory(path, error);
}

// The class folders of `dir`, sorted by name (as torchvision's find_classes).
std::vector<std::string> class_folders(const fs::path& dir) {
  std::vector<std::string> classes;
  std::error_code error;
  for (fs::directory_iterator it(dir, error), stop; !error && it != stop; it.increment(error)) {
    if (is_folder(it->path())) classes.push_back(it->path().filename().string());
  }
  LUNA_CHECK(!error, "imagefolder: cannot list '", dir.string(), "': ", error.message());
  std::sort(classes.begin(), classes.end());
  LUNA_CHECK(!classes.empty(), "imagefolder: ", dir.string(),
             " has no class folders (expected DIR/<class>/<image files>, or DIR/train/<class>/...)");
  return classes;
}

// Every image file of `dir`'s class folders (searched recursively, as torchvision does), sorted by
// class, folder and name; labels are the class's index in `classes`, which must hold every folder of `dir`.
std::vector<std::pair<std::string, int64_t>> list_images(const fs::path& dir, const std::vector<std::string>& classes) {
  std::vector<std::pair<std::string, int64_t>> files;
  for (const std::string& name : class_folders(dir)) {
    const auto known = std::find(classes.begin(), classes.end(), name);
    LUNA_CHECK(known != classes.end(), "imagefolder: ", (dir / name).string(),
               " is a class the training folder does not have (its classes: the folders of ",
               (dir.parent_path() / "train").string(), ")");
    std::vector<std::string> found;
    std::error_code error;
    for (fs::recursive_directory_iterator it(dir / name, fs::directory_options::follow_directory_symlink, error), stop;
         !error && it != stop; it.increment(error)) {
      if (is_image_file(it->path()) && !is_folder(it->path())) found.push_back(it->path().string());
    }
    LUNA_CHECK(!error, "imagefolder: cannot list '", (dir / name).string(), "': ", error.message());
    LUNA_CHECK(!found.empty(), "imagefolder: class folder ", (dir / name).string(),
               " holds no image files (png, jpg, jpeg, bmp, gif, tga, pnm, ppm, pgm)");
    // torchvision's order: folders by path, then the files of each folder by name.
    std::sort(found.begin(), found.end(), [](const std::string& a, const std::string& b) {
      const fs::path pa(a), pb(b);
      return std::pair(pa.parent_path().string(), pa.filename().string()) <
             std::pair(pb.parent_path().string(), pb.filename().string());
    });
    for (std::string& path : found) files.emplace_back(std::move(path), int64_t(known - classes.begin()));
  }
  return files;
}

void load_image_folder(const std::string& dir, Split split, const ImageSetOptions& options,
                       ImageClassificationSet& out) {
  constexpr const char* kReader = "imagefolder";
  LUNA_CHECK(options.image_size > 0, kReader, ": ", dir,
             ": ImageSetOptions::image_size must be set (the images of a folder differ in size; 224 for ViT)");
  const fs::path root(dir);
  std::vector<std::string> classes;
  std::vector<std::pair<std::string, int64_t>> files;
  if (is_folder(root / "train")) {
    classes = class_folders(root / "train");
    const bool has_val = is_folder(root / "val"), has_test = is_folder(root / "test");
    LUNA_CHECK(split == Split::train || has_val || has_test, kReader, ": ", dir,
               " has train/ but neither val/ nor test/ for the ", split_name(split), " split");
    const char* folder = split == Split::train ? "train"
                         : split == Split::dev ? (has_val ? "val" : "test")
                                               : (has_test ? "test" : "val");
    files = list_images(root / folder, classes);
    out.source = (root / folder).string();
  } else {
    classes = class_folders(root);
    const std::vector<std::pair<std::string, int64_t>> all = list_images(root, classes);
    for (size_t index : pathfinder_split_indices(all.size(), split, options.split_seed)) files.push_back(all[index]);
  }

  std::vector<PendingImage> pending;
  pending.reserve(files.size());
  const int64_t side = options.image_size;
  for (const auto& [path, label] : files) {
    pending.push_back({path, "", label, [path = path, side] {
                         return to_side(decode_image(detail::read_file(path, nullptr)), side);
                       }});
  }
  ImageSetBuilder builder(kReader, options, side, out);
  builder.add(pending);
  builder.finish(std::move(classes));
}
}  // namespace

ImageClassificationSet load_image_set(const std::string& spec, Split split, const ImageSetOptions& options) {
  const size_t colon = spec.find(':');
  const std::string kind = spec.substr(0, colon);
  const bool has_dir = colon != std::string::npos;
  std::string dir = has_dir ? spec.substr(colon + 1) : std::string();
  LUNA_CHECK(kind == "fmnist" || kind == "cifar10" || kind == "imagefolder", "unknown image source '", spec,
             "' (expected fmnist, fmnist:DIR, cifar10:DIR or imagefolder:DIR)");
  if (kind == "fmnist" && !has_dir) dir = kFashionMnistDebianDir;
  LUNA_CHECK(!dir.empty(), "image source '", spec, "' names no folder (expected ", kind, ":DIR)");
  LUNA_CHECK(is_folder(dir), kind, ": folder '", dir, "' (from the image source '", spec, "') does not exist",
             dir == kFashionMnistDebianDir ? "; install Debian's dataset-fashion-mnist" : "");
  LUNA_CHECK(options.image_size >= 0 && options.image_size <= 65536, kind,
             ": ImageSetOptions::image_size must be in 0..65536 (0 = the source's own size), got ", options.image_size);
  LUNA_CHECK(options.channels >= 0 && options.channels <= 4, kind,
             ": ImageSetOptions::channels must be 0 (the source's own) or 1..4, got ", options.channels);
  LUNA_CHECK(options.max_examples >= 0, kind, ": ImageSetOptions::max_examples must be >= 0 (0 = all), got ",
             options.max_examples);

  ImageClassificationSet out;
  out.split = split;
  out.source = dir;
  if (kind == "fmnist") load_fashion_mnist(dir, split, options, out);
  else if (kind == "cifar10") load_cifar10(dir, split, options, out);
  else load_image_folder(dir, split, options, out);
  return out;
}

Tensor normalize_images(const Tensor& images, const std::vector<double>& mean, const std::vector<double>& std) {
  LUNA_CHECK(images.defined(), "normalize_images: the images tensor is undefined");
  LUNA_CHECK(images.dtype() == kUInt8 && images.dim() == 4, "normalize_images: expected uint8 images (B, C, H, W), got ",
             images.str());
  const int64_t batch = images.size(0), channels = images.size(1), plane = images.size(2) * images.size(3);
  auto check_per_channel = [&](const std::vector<double>& values, const char* name) {
    LUNA_CHECK(values.size() == 1 || int64_t(values.size()) == channels, "normalize_images: ", name, " has ",
               values.size(), " entries for images of ", channels, " channels (expected 1 or ", channels, ")");
    for (double value : values) LUNA_CHECK(std::isfinite(value), "normalize_images: ", name, " holds ", value);
  };
  check_per_channel(mean, "mean");
  check_per_channel(std, "std");
  for (size_t c = 0; c < std.size(); ++c) {
    LUNA_CHECK(std[c] > 0, "normalize_images: std[", c, "] = ", std[c], " must be > 0");
  }
  const Tensor source = images.cpu().contiguous();
  Tensor out = empty({batch, channels, images.size(2), images.size(3)}, TensorOptions(kFloat32));
  const uint8_t* in = source.data_ptr<uint8_t>();  // (B, C, H, W)
  float* normalized = out.data_ptr<float>();       // (B, C, H, W)
  for (int64_t b = 0; b < batch; ++b) {
    for (int64_t c = 0; c < channels; ++c) {
      // In double, rounded once to float32.
      const double m = mean.size() == 1 ? mean[0] : mean[size_t(c)];
      const double s = std.size() == 1 ? std[0] : std[size_t(c)];
      const int64_t start = (b * channels + c) * plane;
      for (int64_t p = 0; p < plane; ++p) normalized[start + p] = float((in[start + p] / 255.0 - m) / s);
    }
  }
  return images.device().is_cpu() ? out : out.to(images.device());
}

}  // namespace luna::data
