// Helpers the readers share (not a public API): whole-file reads with errors naming the path, line
// iteration for TSV/text formats, the bad-record policy (throw with file and line, or skip and
// count) and truncation to max_len.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <luna/core/error.h>
#include <luna/data/dataset.h>

namespace luna::data::detail {

// The whole file as bytes. A missing or unreadable file is an error "<reader>: cannot read '<path>':
// <reason>" (without the "<reader>: " when reader is null, for use inside RecordPolicy::attempt).
std::string read_file(const std::string& path, const char* reader);

// `value` in double quotes with control and non-ASCII bytes escaped (\t, \x01, ...) and cut to
// `max_chars`, so a fuzzed or binary value prints readably inside an error message.
std::string quoted(std::string_view value, size_t max_chars = 60);

// Calls visit(line_number, line) for each line (1-based numbers), '\r' before '\n' removed. A final
// newline does not produce an extra empty line.
template <class Visit>
void for_each_line(std::string_view text, Visit&& visit) {
  int64_t line_number = 0;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(start, end - start);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    visit(++line_number, line);
    start = end + 1;
  }
}

// Splits on every `separator` (empty fields kept): "a\t\tb" -> {"a", "", "b"}.
std::vector<std::string_view> split_fields(std::string_view line, char separator);

// Applies the bad-record policy of ReadOptions to each record of one file. An Error thrown by the
// parse of a record becomes "<reader>: <source> <where>: <message>" ("<reader>: <source>: <message>"
// when `where` is empty: a file that is one record, such as an image); it is rethrown, or, when
// skipping, counted in report.skipped_bad (first few messages kept).
class RecordPolicy {
 public:
  RecordPolicy(const char* reader, std::string source, const ReadOptions& options, ReadReport& report)
      : reader_(reader), source_(std::move(source)), options_(options), report_(report) {}

  // Returns whether `parse` succeeded; counts the record in report.records either way.
  template <class Parse>
  bool attempt(const std::string& where, Parse&& parse) {
    ++report_.records;
    try {
      parse();
      return true;
    } catch (const Error& error) {
      reject(where, error.what());
      return false;
    }
  }

  // The same, for a failure found outside a parse callback.
  void reject(const std::string& where, const std::string& message);
  // An error about the whole file (never skippable): "<reader>: <source>: <message>".
  [[noreturn]] void fail_file(const std::string& message) const;

  const std::string& source() const { return source_; }

 private:
  const char* reader_;
  std::string source_;
  const ReadOptions& options_;
  ReadReport& report_;
};

// <dir>/<stem>.gz, or <dir>/<stem> when only the uncompressed file exists (IDX files are shipped
// either way); a missing file is then reported under the .gz name.
std::string idx_path(const std::string& dir, const std::string& stem);

// max_len from the options, or `task_default` when it is 0; negative is an error.
int64_t resolve_max_len(const ReadOptions& options, int64_t task_default, const char* reader);

// Cuts `tokens` to max_len (counting it in report.truncated) and appends it to `out`.
void append_truncated(std::vector<int32_t>& tokens, int64_t max_len, ReadReport& report, TokenSequences& out);

// Whether a reader has collected as many examples as ReadOptions::max_examples allows.
inline bool reached_max_examples(const ReadOptions& options, size_t collected) {
  return options.max_examples > 0 && int64_t(collected) >= options.max_examples;
}

}  // namespace luna::data::detail
