// libFuzzer target for the ListOps TSV reader (`make fuzz`): see fuzz_data_common.h for the checks.
// The first byte picks the read options, the rest is the file.
#include "fuzz_data_common.h"

#include <luna/data/listops.h>
#include <luna/data/tokenizers.h>

namespace {
constexpr const char* kTarget = "fuzz_listops";
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string_view tsv = luna::fuzz::as_text(data + 1, size - 1);
  const luna::data::ReadOptions strict = luna::fuzz::options_from(data[0], false);
  const luna::data::ReadOptions lenient = luna::fuzz::options_from(data[0], true);
  const auto strict_read = luna::fuzz::read_or_reject([&] { return luna::data::parse_listops(tsv, "fuzz.tsv", luna::data::Split::train, strict); });
  // Nothing in a ListOps file is file-level damage: the lenient read must always succeed.
  const luna::data::ClassificationExamples skipped = luna::data::parse_listops(tsv, "fuzz.tsv", luna::data::Split::train, lenient);
  luna::fuzz::check_examples(kTarget, skipped, lenient);
  if (skipped.vocabulary.vocab_size != luna::data::kListOpsVocabSize) luna::fuzz::fail(kTarget, "wrong vocabulary");
  if (lenient.max_examples == 0 && int64_t(skipped.size()) + skipped.report.skipped_bad != skipped.report.records) {
    luna::fuzz::fail(kTarget, "examples + skipped != records");
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
