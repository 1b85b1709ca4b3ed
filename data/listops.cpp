// ListOps TSV reader.
#include <luna/data/listops.h>

#include <charconv>

#include <luna/data/read_util.h>
#include <luna/data/tokenizers.h>

namespace luna::data {

namespace {
constexpr const char* kReader = "listops";

int64_t parse_label(std::string_view field) {
  int64_t label = 0;
  const auto [end, error] = std::from_chars(field.data(), field.data() + field.size(), label);
  LUNA_CHECK(!field.empty() && error == std::errc() && end == field.data() + field.size(), "label ",
             detail::quoted(field), " is not an integer 0-9");
  LUNA_CHECK(label >= 0 && label < kListOpsNumClasses, "label ", label, " is outside 0-9");
  return label;
}
}  // namespace

std::string listops_file_name(Split split) {
  switch (split) {
    case Split::train: return "basic_train.tsv";
    case Split::dev: return "basic_val.tsv";
    case Split::test: return "basic_test.tsv";
  }
  return "";
}

ClassificationExamples parse_listops(std::string_view tsv, const std::string& source, Split split,
                                     const ReadOptions& options) {
  ClassificationExamples out;
  out.num_classes = kListOpsNumClasses;
  out.vocabulary = listops_vocabulary();
  out.max_len = detail::resolve_max_len(options, kListOpsMaxLen, kReader);
  out.split = split;
  out.source = source;
  detail::RecordPolicy policy(kReader, source, options, out.report);

  std::vector<int32_t> tokens;
  bool done = false;
  detail::for_each_line(tsv, [&](int64_t line_number, std::string_view line) {
    if (done) return;
    if (line_number == 1 && line == "Source\tTarget") return;  // the release's header row
    int64_t label = 0;
    const bool ok = policy.attempt("line " + std::to_string(line_number), [&] {
      const std::vector<std::string_view> fields = detail::split_fields(line, '\t');
      LUNA_CHECK(fields.size() == 2, "expected 2 tab-separated columns (Source, Target), got ", fields.size(),
                 fields.size() == 1 ? " (no tab in the line)" : "");
      label = parse_label(fields[1]);
      begin_sequence(tokens, options.add_cls, kListOpsClsId);
      const size_t first = tokens.size();
      tokenize_listops(fields[0], tokens);
      LUNA_CHECK(tokens.size() > first, "the expression ", detail::quoted(fields[0]), " has no symbols");
    });
    if (!ok) return;
    detail::append_truncated(tokens, out.max_len, out.report, out.tokens);
    out.labels.push_back(label);
    done = detail::reached_max_examples(options, out.labels.size());
  });
  return out;
}

ClassificationExamples read_listops(const std::string& tsv_path, Split split, const ReadOptions& options) {
  const std::string bytes = detail::read_file(tsv_path, kReader);
  return parse_listops(bytes, tsv_path, split, options);
}

ClassificationExamples read_listops_split(const std::string& dir, Split split, const ReadOptions& options) {
  return read_listops(dir + "/" + listops_file_name(split), split, options);
}

}  // namespace luna::data
