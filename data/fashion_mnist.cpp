// Fashion-MNIST from IDX files.
#include <luna/data/fashion_mnist.h>

#include <numeric>

#include <luna/data/read_util.h>
#include <luna/data/tokenizers.h>

namespace luna::data {

namespace {
constexpr const char* kReader = "fashion_mnist";
}  // namespace

void check_fashion_mnist_arrays(const IdxArray& images, const IdxArray& labels) {
  LUNA_CHECK(images.dims.size() == 3, kReader, ": ", images.source, ": expected images of shape (N, rows, cols), got ",
             images.dims.size(), " dims");
  LUNA_CHECK(labels.dims.size() == 1, kReader, ": ", labels.source, ": expected labels of shape (N), got ",
             labels.dims.size(), " dims");
  LUNA_CHECK(images.dims[0] == labels.dims[0], kReader, ": ", images.source, " holds ", images.dims[0], " images but ",
             labels.source, " holds ", labels.dims[0], " labels");
  // Bounded sides keep rows * cols far from overflow (an IDX with a zero count can claim any size).
  LUNA_CHECK(images.dims[1] > 0 && images.dims[2] > 0 && images.dims[1] <= 65536 && images.dims[2] <= 65536, kReader,
             ": ", images.source, ": images of ", images.dims[1], "x", images.dims[2],
             " (expected sides in 1..65536, 28x28 for Fashion-MNIST)");
  const int64_t pixels = images.dims[1] * images.dims[2];
  // IdxArray is a plain struct: make sure its data really holds what its dims say.
  LUNA_CHECK(images.numel() % pixels == 0 && images.numel() / pixels == images.dims[0] &&
                 labels.numel() == labels.dims[0],
             kReader, ": ", images.source, ": data sizes (", images.numel(), ", ", labels.numel(),
             " bytes) do not match the dims");
}

std::pair<size_t, size_t> fashion_mnist_split_range(size_t count, Split split) {
  if (split == Split::test) return {0, count};
  const size_t dev_size = count / 12;
  return split == Split::train ? std::pair{size_t(0), count - dev_size} : std::pair{count - dev_size, count};
}

ClassificationExamples parse_fashion_mnist(const IdxArray& images, const IdxArray& labels, Split split,
                                           const ReadOptions& options) {
  check_fashion_mnist_arrays(images, labels);
  const int64_t pixels = images.dims[1] * images.dims[2];
  ClassificationExamples out;
  out.num_classes = kFashionMnistNumClasses;
  out.vocabulary = pixel_vocabulary();
  out.max_len = detail::resolve_max_len(options, pixels + (options.add_cls ? 1 : 0), kReader);
  out.split = split;
  out.source = images.source;
  detail::RecordPolicy policy(kReader, labels.source, options, out.report);
  std::vector<int32_t> tokens;
  for (int64_t i = 0; i < labels.dims[0]; ++i) {
    const int64_t label = labels.data[size_t(i)];
    const bool ok = policy.attempt("record " + std::to_string(i), [&] {
      LUNA_CHECK(label < kFashionMnistNumClasses, "label ", label, " is outside 0-9");
    });
    if (!ok) continue;
    begin_sequence(tokens, options.add_cls, kPixelClsId);
    const uint8_t* image = images.data.data() + i * pixels;  // (rows, cols)
    for (int64_t p = 0; p < pixels; ++p) tokens.push_back(pixel_token(image[p]));
    detail::append_truncated(tokens, out.max_len, out.report, out.tokens);
    out.labels.push_back(label);
  }
  return out;
}

ClassificationExamples read_fashion_mnist(const std::string& dir, Split split, const ReadOptions& options) {
  const std::string prefix = split == Split::test ? "t10k" : "train";
  const IdxArray images = read_idx(detail::idx_path(dir, prefix + "-images-idx3-ubyte"));
  const IdxArray labels = read_idx(detail::idx_path(dir, prefix + "-labels-idx1-ubyte"));
  ClassificationExamples all = parse_fashion_mnist(images, labels, split, options);
  all.source = dir;
  auto [begin, end] = fashion_mnist_split_range(all.size(), split);
  if (options.max_examples > 0) end = std::min(end, begin + size_t(options.max_examples));
  if (begin == 0 && end == all.size()) return all;
  std::vector<size_t> indices(end - begin);
  std::iota(indices.begin(), indices.end(), begin);
  return all.select(indices);
}

}  // namespace luna::data
