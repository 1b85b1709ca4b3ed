// Image (CIFAR-10, grayscale) reader (spec/LRA.md): the binary release cifar-10-batches-bin/, files
// data_batch_{1..5}.bin and test_batch.bin, each a run of 3073-byte records: a label byte 0-9, then
// the R, G and B planes of a 32x32 image, row-major. Pixels become 0.299R + 0.587G + 0.114B rounded
// to a byte, and the 1024 of them pixel tokens (tokenizers.h: value + 1, 0 = pad).
// Split: train = the first nine tenths of the five data batches taken in order (45,000 records),
// dev = the last tenth (5,000), test = test_batch.bin. Bad records name the file, the 0-based
// record index and its byte offset: a label outside 0-9, a truncated final record.
//
//   ClassificationExamples train = read_cifar10("cifar-10-batches-bin", Split::train);
#pragma once
#include <string>
#include <string_view>

#include <luna/data/dataset.h>

namespace luna::data {

inline constexpr int64_t kCifarSide = 32;
inline constexpr int64_t kCifarPixels = kCifarSide * kCifarSide;
inline constexpr int64_t kCifarRecordBytes = 1 + 3 * kCifarPixels;  // 3073
inline constexpr int64_t kCifarNumClasses = 10;
inline constexpr int kCifarTrainBatches = 5;

// `dir` holds data_batch_{1..5}.bin and test_batch.bin. max_len defaults to 1024 (+1 with CLS).
ClassificationExamples read_cifar10(const std::string& dir, Split split, const ReadOptions& options = {});

// All records of one batch file image in memory, appended to `out` (whose vocabulary, max_len and
// report the caller set up; see read_cifar10). `source` stands in for the path in errors.
void parse_cifar10_batch(std::string_view bytes, const std::string& source, const ReadOptions& options,
                         ClassificationExamples& out);
// A fresh ClassificationExamples with everything but the examples filled in for `split`.
ClassificationExamples empty_cifar10_examples(const std::string& source, Split split, const ReadOptions& options);

}  // namespace luna::data
