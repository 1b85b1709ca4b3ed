// Image classification data for the ViT apps (train_vit, convert_vit): decoding any image file stb
// reads (PNG, JPEG, BMP, GIF, TGA, PNM) with its own channel count, resizing as PIL's antialiased
// bilinear filter (what Hugging Face's ViTImageProcessor uses), and three sources selected by a
// spec string: Fashion-MNIST (Debian's IDX files), CIFAR-10 in colour (the binary release), and an
// image folder with one subfolder per class (torchvision's ImageFolder layout).
//
//   ImageClassificationSet train = load_image_set("imagefolder:flowers", Split::train, {.image_size = 224, .channels = 3});
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <luna/core/tensor.h>
#include <luna/data/dataset.h>

namespace luna::data {

// One decoded image, planar: channel c, row y, column x is pixels[(c·height + y)·width + x].
struct Image {
  int64_t channels = 0;  // 1 gray, 2 gray+alpha, 3 RGB, 4 RGBA (as stored in the file)
  int64_t height = 0;
  int64_t width = 0;
  std::vector<uint8_t> pixels;  // (C, H, W)
};

// Decodes an image file held in memory through stb_image, keeping the file's channel count;
// 16-bit images are reduced to 8 bits. Not an image stb can decode, or larger than max_side on
// either side: an error saying why (stb's reason included); the caller adds the file name.
Image decode_image(std::string_view bytes, int64_t max_side = 16384);

// Reads and decodes `path`; errors name the file.
Image read_image(const std::string& path, int64_t max_side = 16384);

// Resizes to height × width as PIL's Image.resize(resample=BILINEAR) does: a triangle filter
// whose support widens by the scale factor when shrinking (antialiasing), separable (one pass per
// axis whose size changes), each pass rounded to uint8 as PIL does. Same size: a copy.
// Bit-identical to Pillow 13 on L and RGB images (tests/fixtures/resize, scripts/make_resize_fixture.py),
// including its pass order: Pillow >= 13 runs the vertical pass first when the height loses more
// than twice as many pixels as the width; older Pillows always go horizontal first and so can differ
// by a rounding step in that case only (never for a square image resized to a square). Every channel
// is resized on its own, as PIL's core resample does: for LA/RGBA images Image.resize premultiplies
// by alpha first, so results differ wherever alpha < 255. Sides up to 65536.
Image resize_bilinear(const Image& image, int64_t height, int64_t width);

// Where images come from, as a spec string:
//   "fmnist" or "fmnist:DIR"  Fashion-MNIST IDX files (default DIR: kFashionMnistDebianDir);
//                             1 channel, 28×28; train = first 55,000, dev = last 5,000, test = t10k
//   "cifar10:DIR"             cifar-10-batches-bin: data_batch_{1..5}.bin, test_batch.bin; RGB
//                             32×32; train = first 45,000, dev = last 5,000, test = test_batch
//   "imagefolder:DIR"         DIR/<class>/<image files>, classes = the sorted subfolder names.
//                             With DIR/train/: train from it, dev from DIR/val/ (else DIR/test/),
//                             test from DIR/test/ (else DIR/val/); one of val/test must exist and
//                             their classes must be among train's. Without DIR/train/: every image
//                             of DIR, split 80/10/10 by a seeded shuffle (split_seed).
//                             Files with other extensions than png/jpg/jpeg/bmp/gif/tga/pnm/ppm/pgm
//                             are ignored (as torchvision does). Class folders are searched
//                             recursively; a split's images come in class order, then
//                             torchvision's (folder path, then file name; so max_examples takes
//                             the first classes' images).
// CIFAR-10's dev split is the last tenth of the records of the five data batches, cut before any
// record is read (a record with a bad label is skipped where it stands); a batch whose size is not a
// multiple of 3073 bytes is an error. Labels outside 0-9 (fmnist, cifar10) are bad records naming
// the file and record.
struct ImageSetOptions {
  // Side of the square images returned; images of another size are resized (resize_bilinear).
  // 0 = the source's own size (28 fmnist, 32 cifar10); an image folder needs it set.
  int64_t image_size = 0;
  // Channels the caller's model expects; an image with another count is an error naming the file
  // (or record) and both counts. 0 = the source's own (fmnist 1, cifar10 3, image folder: that of
  // its first image, every other image must agree).
  int64_t channels = 0;
  // Keep at most this many examples of the split (0 = all), the first ones in the split's order
  // (skipped bad records do not count).
  int64_t max_examples = 0;
  // Seed of the 80/10/10 split of an image folder without train/.
  uint64_t split_seed = 0;
  // An undecodable image file (or a CIFAR record with a bad label) is skipped and counted instead
  // of being an error.
  bool skip_bad_records = false;
};

struct ImageClassificationSet {
  Tensor images;  // uint8 (N, C, S, S)
  Tensor labels;  // int64 (N), in 0 .. classes.size()-1
  std::vector<std::string> classes;  // class names by label (fmnist/cifar10: the datasets' names)
  std::string source;                // the folder read (an image folder's train/, val/ or test/), for messages
  Split split = Split::train;
  ReadReport report;                 // records seen, skipped, ...
  int64_t size() const { return images.defined() ? images.size(0) : 0; }
};

// Parses `spec` (above) and reads one split. An unknown source kind, a missing folder or file, an
// empty class folder set, or an image of the wrong channel count is an error naming the spec,
// the file and the values. Images are decoded and resized in parallel (set_num_threads); the result
// and the errors do not depend on the thread count.
ImageClassificationSet load_image_set(const std::string& spec, Split split, const ImageSetOptions& options = {});

// (x / 255 − mean[c]) / std[c]: uint8 images (B, C, H, W) -> float32 (B, C, H, W) on the images'
// device, computed in double and rounded once. mean and std have one entry per channel (or one
// entry, used for every channel); std entries must be > 0.
Tensor normalize_images(const Tensor& images, const std::vector<double>& mean, const std::vector<double>& std);

}  // namespace luna::data
