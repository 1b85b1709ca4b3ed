// libFuzzer target for the AAN retrieval TSV reader (`make fuzz`): see fuzz_data_common.h for the
// checks. The first byte picks the read options, the rest is the file.
#include "fuzz_data_common.h"

#include <luna/data/aan.h>

namespace {
constexpr const char* kTarget = "fuzz_aan";

void check_pairs(const luna::data::PairExamples& pairs, const luna::data::ReadOptions& options) {
  luna::fuzz::check_sequences(kTarget, pairs.tokens1, pairs.vocabulary, pairs.max_len, options.add_cls);
  luna::fuzz::check_sequences(kTarget, pairs.tokens2, pairs.vocabulary, pairs.max_len, options.add_cls);
  luna::fuzz::check_labels(kTarget, pairs.labels, pairs.tokens1.size(), pairs.num_classes);
  luna::fuzz::check_labels(kTarget, pairs.labels, pairs.tokens2.size(), pairs.num_classes);
  if (pairs.ids1.size() != pairs.size() || pairs.ids2.size() != pairs.size()) luna::fuzz::fail(kTarget, "id count");
  luna::fuzz::check_report(kTarget, pairs.report, options.skip_bad_records);
  const int64_t longest = int64_t(luna::data::kRetrievalMaxTextBytes) + (options.add_cls ? 1 : 0);
  if (pairs.tokens1.max_length() > longest || pairs.tokens2.max_length() > longest) {
    luna::fuzz::fail(kTarget, "text not cut to 10,000 bytes");
  }
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string_view tsv = luna::fuzz::as_text(data + 1, size - 1);
  const luna::data::ReadOptions strict = luna::fuzz::options_from(data[0], false);
  const luna::data::ReadOptions lenient = luna::fuzz::options_from(data[0], true);
  const auto strict_read = luna::fuzz::read_or_reject([&] { return luna::data::parse_aan(tsv, "fuzz.tsv", luna::data::Split::train, strict); });
  const luna::data::PairExamples skipped = luna::data::parse_aan(tsv, "fuzz.tsv", luna::data::Split::train, lenient);
  check_pairs(skipped, lenient);
  if (lenient.max_examples == 0 && int64_t(skipped.size()) + skipped.report.skipped_bad != skipped.report.records) {
    luna::fuzz::fail(kTarget, "examples + skipped != records");
  }
  if (strict_read) {
    check_pairs(*strict_read, strict);
    if (skipped.report.skipped_bad != 0) luna::fuzz::fail(kTarget, "strict read accepted what the lenient one skipped");
    if (strict_read->labels != skipped.labels || strict_read->tokens1.ids() != skipped.tokens1.ids() ||
        strict_read->tokens2.offsets() != skipped.tokens2.offsets() || strict_read->ids2 != skipped.ids2) {
      luna::fuzz::fail(kTarget, "strict and lenient reads of a clean input differ");
    }
  } else if (skipped.report.skipped_bad == 0) {
    luna::fuzz::fail(kTarget, "strict read threw but the lenient one skipped nothing");
  }
  return 0;
}
