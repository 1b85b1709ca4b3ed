// libFuzzer target for the CIFAR-10 binary batch reader (`make fuzz`): see fuzz_data_common.h for
// the checks. The first byte picks the read options, the rest is the batch file.
#include "fuzz_data_common.h"

#include <luna/data/cifar10.h>
#include <luna/data/tokenizers.h>

namespace {
constexpr const char* kTarget = "fuzz_cifar10";

luna::data::ClassificationExamples parse(std::string_view bytes, const luna::data::ReadOptions& options) {
  luna::data::ClassificationExamples out = luna::data::empty_cifar10_examples("fuzz.bin", luna::data::Split::test, options);
  luna::data::parse_cifar10_batch(bytes, "fuzz.bin", options, out);
  return out;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string_view bytes = luna::fuzz::as_text(data + 1, size - 1);
  luna::data::ReadOptions strict = luna::fuzz::options_from(data[0], false);
  luna::data::ReadOptions lenient = luna::fuzz::options_from(data[0], true);
  strict.max_examples = lenient.max_examples = 0;  // applied by read_cifar10, not the batch parser
  const auto strict_read = luna::fuzz::read_or_reject([&] { return parse(bytes, strict); });
  const luna::data::ClassificationExamples skipped = parse(bytes, lenient);
  luna::fuzz::check_examples(kTarget, skipped, lenient);
  const int64_t records = int64_t((bytes.size() + luna::data::kCifarRecordBytes - 1) / luna::data::kCifarRecordBytes);
  if (skipped.report.records != records) luna::fuzz::fail(kTarget, "record count is not ceil(size / 3073)");
  if (int64_t(skipped.size()) + skipped.report.skipped_bad != records) luna::fuzz::fail(kTarget, "examples + skipped != records");
  const int64_t full_length = luna::data::kCifarPixels + (lenient.add_cls ? 1 : 0);
  for (size_t i = 0; i < skipped.size(); ++i) {
    if (skipped.tokens.length(i) != std::min(full_length, skipped.max_len)) luna::fuzz::fail(kTarget, "wrong image length");
  }
  if (strict_read) {
    luna::fuzz::check_examples(kTarget, *strict_read, strict);
    if (skipped.report.skipped_bad != 0) luna::fuzz::fail(kTarget, "strict read accepted what the lenient one skipped");
    luna::fuzz::check_same(kTarget, *strict_read, skipped);
  } else if (skipped.report.skipped_bad == 0) {
    luna::fuzz::fail(kTarget, "strict read threw but the lenient one skipped nothing");
  }
  return 0;
}
