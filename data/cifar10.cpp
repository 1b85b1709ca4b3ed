// CIFAR-10 binary batch reader with grayscale conversion.
#include <luna/data/cifar10.h>

#include <numeric>

#include <luna/data/read_util.h>
#include <luna/data/tokenizers.h>

namespace luna::data {

namespace {
constexpr const char* kReader = "cifar10";
}  // namespace

ClassificationExamples empty_cifar10_examples(const std::string& source, Split split, const ReadOptions& options) {
  ClassificationExamples out;
  out.num_classes = kCifarNumClasses;
  out.vocabulary = pixel_vocabulary();
  out.max_len = detail::resolve_max_len(options, kCifarPixels + (options.add_cls ? 1 : 0), kReader);
  out.split = split;
  out.source = source;
  return out;
}

void parse_cifar10_batch(std::string_view bytes, const std::string& source, const ReadOptions& options,
                         ClassificationExamples& out) {
  detail::RecordPolicy policy(kReader, source, options, out.report);
  std::vector<int32_t> tokens;
  const size_t record_bytes = size_t(kCifarRecordBytes);
  for (size_t offset = 0, record = 0; offset < bytes.size(); offset += record_bytes, ++record) {
    const std::string_view data = bytes.substr(offset, record_bytes);
    int64_t label = 0;
    const std::string where = "record " + std::to_string(record) + " (byte offset " + std::to_string(offset) + ")";
    const bool ok = policy.attempt(where, [&] {
      LUNA_CHECK(data.size() == record_bytes, "truncated record: ", data.size(), " of ", record_bytes,
                 " bytes (a record is 1 label byte + 3x1024 pixel bytes)");
      label = static_cast<unsigned char>(data[0]);
      LUNA_CHECK(label < kCifarNumClasses, "label ", label, " is outside 0-9");
    });
    if (!ok) continue;
    begin_sequence(tokens, options.add_cls, kPixelClsId);
    const auto* red = reinterpret_cast<const uint8_t*>(data.data() + 1);  // (32, 32), then G, then B
    const uint8_t* green = red + kCifarPixels;
    const uint8_t* blue = green + kCifarPixels;
    for (int64_t p = 0; p < kCifarPixels; ++p) tokens.push_back(pixel_token(grayscale(red[p], green[p], blue[p])));
    detail::append_truncated(tokens, out.max_len, out.report, out.tokens);
    out.labels.push_back(label);
  }
}

ClassificationExamples read_cifar10(const std::string& dir, Split split, const ReadOptions& options) {
  if (split == Split::test) {
    const std::string path = dir + "/test_batch.bin";
    ClassificationExamples out = empty_cifar10_examples(path, split, options);
    parse_cifar10_batch(detail::read_file(path, kReader), path, options, out);
    if (options.max_examples > 0 && int64_t(out.size()) > options.max_examples) {
      std::vector<size_t> first(size_t(options.max_examples));
      std::iota(first.begin(), first.end(), 0);
      out = out.select(first);
    }
    return out;
  }
  // Train and dev both come from the five data batches: read all, then keep the split's part.
  ClassificationExamples all = empty_cifar10_examples(dir, split, options);
  for (int batch = 1; batch <= kCifarTrainBatches; ++batch) {
    const std::string path = dir + "/data_batch_" + std::to_string(batch) + ".bin";
    parse_cifar10_batch(detail::read_file(path, kReader), path, options, all);
  }
  const size_t dev_size = all.size() / 10;
  const size_t begin = split == Split::train ? 0 : all.size() - dev_size;
  size_t end = split == Split::train ? all.size() - dev_size : all.size();
  if (options.max_examples > 0) end = std::min(end, begin + size_t(options.max_examples));
  std::vector<size_t> indices(end - begin);
  std::iota(indices.begin(), indices.end(), begin);
  return all.select(indices);
}

}  // namespace luna::data
