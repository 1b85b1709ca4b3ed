// Fashion-MNIST reader (spec/LRA.md): the IDX files Debian's dataset-fashion-mnist installs in
// /usr/share/datasets/fashion-mnist/ ({train,t10k}-{images-idx3,labels-idx1}-ubyte.gz; the
// uncompressed names work too). As an LRA-style task each 28x28 image is a sequence of 784 pixel
// tokens (tokenizers.h: value + 1, 0 = pad). Split: train = the first 55,000 train images, dev =
// the last 5,000 (the last twelfth of the train files), test = the 10,000 t10k images.
// A label outside 0-9 is a bad record naming the labels file and the 0-based record; files whose
// counts disagree, or that are not (N, rows, cols) images and (N) labels, are errors.
//
//   ClassificationExamples train = read_fashion_mnist(kFashionMnistDebianDir, Split::train);
#pragma once
#include <string>
#include <utility>

#include <luna/data/dataset.h>
#include <luna/data/idx.h>

namespace luna::data {

inline constexpr const char* kFashionMnistDebianDir = "/usr/share/datasets/fashion-mnist";
inline constexpr int64_t kFashionMnistNumClasses = 10;

// `dir` holds the four IDX files. max_len defaults to rows*cols (784), +1 with CLS.
ClassificationExamples read_fashion_mnist(const std::string& dir, Split split, const ReadOptions& options = {});

// Checks that `images` are (N, rows, cols) with sides in 1..65536 and `labels` (N), and that their
// data holds what the dims say; errors name the files. Labels are not range-checked (bad records).
void check_fashion_mnist_arrays(const IdxArray& images, const IdxArray& labels);

// The records [begin, end) of `split` among `count` records of its file (train and dev share the
// train file: dev is its last twelfth; test is the whole t10k file).
std::pair<size_t, size_t> fashion_mnist_split_range(size_t count, Split split);

// Every image of a matching pair of IDX arrays, as examples (no split selection).
ClassificationExamples parse_fashion_mnist(const IdxArray& images, const IdxArray& labels, Split split,
                                           const ReadOptions& options = {});

}  // namespace luna::data
