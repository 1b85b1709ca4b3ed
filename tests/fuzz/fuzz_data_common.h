// Checks shared by the data reader fuzz targets. Every input is read twice: strictly (it must parse
// or throw luna::Error) and with skip_bad_records (record-level damage must then be skipped, never
// thrown). Whatever comes back must be well formed, and a strict success must equal the lenient
// read with nothing skipped. Any other outcome aborts, which libFuzzer reports as a crash.
#pragma once
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <luna/core/error.h>
#include <luna/data/dataset.h>

namespace luna::fuzz {

[[noreturn]] inline void fail(const char* target, const std::string& what) {
  std::fprintf(stderr, "%s: %s\n", target, what.c_str());
  std::abort();
}

// The result of `read`, or nullopt when it throws luna::Error (other exceptions escape: bugs).
template <class Read>
auto read_or_reject(Read&& read) -> std::optional<decltype(read())> {
  try {
    return read();
  } catch (const luna::Error&) {
    return std::nullopt;
  }
}

inline std::string_view as_text(const uint8_t* data, size_t size) {
  return std::string_view(reinterpret_cast<const char*>(data), size);
}

// Well formed: ids inside the vocabulary and never padding, lengths within max_len, CLS first when
// asked for, one label per sequence inside [0, num_classes), report counts consistent.
inline void check_sequences(const char* target, const data::TokenSequences& tokens, const data::Vocabulary& vocabulary,
                            int64_t max_len, bool add_cls) {
  if (tokens.offsets().empty() || tokens.offsets().front() != 0 ||
      tokens.offsets().back() != int64_t(tokens.ids().size())) {
    fail(target, "token offsets do not cover the ids");
  }
  for (size_t i = 0; i < tokens.size(); ++i) {
    const auto sequence = tokens[i];
    if (max_len > 0 && int64_t(sequence.size()) > max_len) fail(target, "sequence longer than max_len");
    if (add_cls && (sequence.empty() || sequence[0] != vocabulary.cls_id)) fail(target, "CLS missing");
    for (int32_t id : sequence) {
      if (id <= vocabulary.pad_id || id >= vocabulary.vocab_size) fail(target, "token id outside the vocabulary");
    }
  }
}

inline void check_labels(const char* target, const std::vector<int64_t>& labels, size_t sequences, int64_t num_classes) {
  if (labels.size() != sequences) fail(target, "label count differs from sequence count");
  for (int64_t label : labels) {
    if (label < 0 || label >= num_classes) fail(target, "label outside [0, num_classes)");
  }
}

inline void check_report(const char* target, const data::ReadReport& report, bool skipping) {
  if (report.records < 0 || report.skipped_bad < 0 || report.skipped_empty < 0 || report.truncated < 0) {
    fail(target, "negative report count");
  }
  if (!skipping && report.skipped_bad != 0) fail(target, "records skipped without skip_bad_records");
  if (report.first_errors.size() != std::min<size_t>(size_t(report.skipped_bad), data::ReadReport::kMaxKeptErrors)) {
    fail(target, "first_errors does not match skipped_bad");
  }
}

inline void check_examples(const char* target, const data::ClassificationExamples& examples,
                           const data::ReadOptions& options) {
  check_sequences(target, examples.tokens, examples.vocabulary, examples.max_len, options.add_cls);
  check_labels(target, examples.labels, examples.tokens.size(), examples.num_classes);
  check_report(target, examples.report, options.skip_bad_records);
  if (options.max_examples > 0 && int64_t(examples.size()) > options.max_examples) fail(target, "max_examples ignored");
}

inline void check_same(const char* target, const data::ClassificationExamples& a, const data::ClassificationExamples& b) {
  if (a.labels != b.labels || a.tokens.ids() != b.tokens.ids() || a.tokens.offsets() != b.tokens.offsets()) {
    fail(target, "strict and lenient reads of a clean input differ");
  }
}

// Options varied by one input byte, so CLS, truncation and caps are all exercised.
inline data::ReadOptions options_from(uint8_t byte, bool skip) {
  data::ReadOptions options;
  options.add_cls = byte & 1;
  options.max_len = (byte & 2) ? 2 + (byte >> 4) : 0;
  options.max_examples = (byte & 4) ? 1 + (byte >> 5) : 0;
  options.split_seed = byte >> 3;
  options.skip_bad_records = skip;
  return options;
}

}  // namespace luna::fuzz
