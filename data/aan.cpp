// AAN retrieval TSV reader.
#include <luna/data/aan.h>

#include <charconv>
#include <cmath>

#include <luna/data/read_util.h>
#include <luna/data/tokenizers.h>

namespace luna::data {

namespace {
constexpr const char* kReader = "aan";

int64_t parse_label(std::string_view field) {
  double value = 0;
  const auto [end, error] = std::from_chars(field.data(), field.data() + field.size(), value);
  LUNA_CHECK(!field.empty() && error == std::errc() && end == field.data() + field.size(), "label ",
             detail::quoted(field), " is not a number (expected 0, 1, 0.0 or 1.0)");
  LUNA_CHECK(value == 0.0 || value == 1.0, "label ", detail::quoted(field), " is not 0 or 1");
  return int64_t(value);
}

void tokenize_text(std::string_view text, bool add_cls, std::vector<int32_t>& tokens) {
  begin_sequence(tokens, add_cls, kByteClsId);
  tokenize_bytes(text.substr(0, kRetrievalMaxTextBytes), tokens);
}
}  // namespace

std::string aan_file_name(Split split) {
  switch (split) {
    case Split::train: return "new_aan_pairs.train.tsv";
    case Split::dev: return "new_aan_pairs.eval.tsv";
    case Split::test: return "new_aan_pairs.test.tsv";
  }
  return "";
}

PairExamples parse_aan(std::string_view tsv, const std::string& source, Split split, const ReadOptions& options) {
  PairExamples out;
  out.num_classes = kRetrievalNumClasses;
  out.vocabulary = byte_vocabulary();
  out.max_len = detail::resolve_max_len(options, kRetrievalMaxLen, kReader);
  out.split = split;
  out.source = source;
  detail::RecordPolicy policy(kReader, source, options, out.report);

  std::vector<int32_t> tokens1, tokens2;
  bool done = false;
  detail::for_each_line(tsv, [&](int64_t line_number, std::string_view line) {
    if (done) return;
    int64_t label = 0;
    std::vector<std::string_view> fields;
    const bool ok = policy.attempt("line " + std::to_string(line_number), [&] {
      fields = detail::split_fields(line, '\t');
      LUNA_CHECK(fields.size() == 5, "expected 5 tab-separated columns (label, id1, id2, text1, text2), got ",
                 fields.size());
      label = parse_label(fields[0]);
      tokenize_text(fields[3], options.add_cls, tokens1);
      tokenize_text(fields[4], options.add_cls, tokens2);
    });
    if (!ok) return;
    detail::append_truncated(tokens1, out.max_len, out.report, out.tokens1);
    detail::append_truncated(tokens2, out.max_len, out.report, out.tokens2);
    out.labels.push_back(label);
    out.ids1.emplace_back(fields[1]);
    out.ids2.emplace_back(fields[2]);
    done = detail::reached_max_examples(options, out.labels.size());
  });
  return out;
}

PairExamples read_aan(const std::string& tsv_path, Split split, const ReadOptions& options) {
  const std::string bytes = detail::read_file(tsv_path, kReader);
  return parse_aan(bytes, tsv_path, split, options);
}

PairExamples read_aan_split(const std::string& dir, Split split, const ReadOptions& options) {
  return read_aan(dir + "/" + aan_file_name(split), split, options);
}

}  // namespace luna::data
