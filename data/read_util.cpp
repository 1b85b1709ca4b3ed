// Shared reader plumbing: file reads, quoting for error messages, the bad-record policy.
#include <luna/data/read_util.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>

namespace luna::data::detail {

std::string read_file(const std::string& path, const char* reader) {
  const std::string prefix = reader ? std::string(reader) + ": " : std::string();
  std::unique_ptr<FILE, int (*)(FILE*)> file(std::fopen(path.c_str(), "rb"), &std::fclose);
  LUNA_CHECK(file != nullptr, prefix, "cannot read '", path, "': ", std::strerror(errno));
  std::string bytes;
  char buffer[1 << 16];
  size_t got = 0;
  while ((got = std::fread(buffer, 1, sizeof(buffer), file.get())) > 0) bytes.append(buffer, got);
  // A directory opens fine on Linux and fails on the first read with EISDIR.
  LUNA_CHECK(!std::ferror(file.get()), prefix, "cannot read '", path, "': ", std::strerror(errno));
  return bytes;
}

std::string quoted(std::string_view value, size_t max_chars) {
  static const char* kHex = "0123456789abcdef";
  std::string out = "\"";
  for (size_t i = 0; i < value.size(); ++i) {
    if (i == max_chars) {
      out += "...";
      break;
    }
    const unsigned char c = static_cast<unsigned char>(value[i]);
    if (c == '\t') {
      out += "\\t";
    } else if (c == '"' || c == '\\') {
      out += '\\';
      out += char(c);
    } else if (c < 0x20 || c >= 0x7f) {
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 15];
    } else {
      out += char(c);
    }
  }
  out += '"';
  return out;
}

std::vector<std::string_view> split_fields(std::string_view line, char separator) {
  std::vector<std::string_view> fields;
  size_t start = 0;
  while (true) {
    const size_t end = line.find(separator, start);
    if (end == std::string_view::npos) {
      fields.push_back(line.substr(start));
      return fields;
    }
    fields.push_back(line.substr(start, end - start));
    start = end + 1;
  }
}

void RecordPolicy::reject(const std::string& where, const std::string& message) {
  std::string full = std::string(reader_) + ": " + source_ + (where.empty() ? "" : " " + where) + ": " + message;
  if (!options_.skip_bad_records) throw Error(full);
  ++report_.skipped_bad;
  if (report_.first_errors.size() < ReadReport::kMaxKeptErrors) report_.first_errors.push_back(std::move(full));
}

void RecordPolicy::fail_file(const std::string& message) const {
  throw Error(std::string(reader_) + ": " + source_ + ": " + message);
}

std::string idx_path(const std::string& dir, const std::string& stem) {
  const std::string gz = dir + "/" + stem + ".gz";
  std::error_code error;
  if (!std::filesystem::exists(gz, error) && std::filesystem::exists(dir + "/" + stem, error)) return dir + "/" + stem;
  return gz;
}

int64_t resolve_max_len(const ReadOptions& options, int64_t task_default, const char* reader) {
  LUNA_CHECK(options.max_len >= 0, reader, ": max_len must be >= 0 (0 = the task's default ", task_default, "), got ",
             options.max_len);
  LUNA_CHECK(options.max_examples >= 0, reader, ": max_examples must be >= 0 (0 = all), got ", options.max_examples);
  const int64_t max_len = options.max_len > 0 ? options.max_len : task_default;
  LUNA_CHECK(!options.add_cls || max_len >= 2, reader, ": max_len ", max_len, " leaves no room for a token after CLS");
  return max_len;
}

void append_truncated(std::vector<int32_t>& tokens, int64_t max_len, ReadReport& report, TokenSequences& out) {
  if (int64_t(tokens.size()) > max_len) {
    tokens.resize(size_t(max_len));
    ++report.truncated;
  }
  out.push_back(tokens);
}

}  // namespace luna::data::detail
