// aclImdb tree reader.
#include <luna/data/imdb.h>

#include <algorithm>
#include <filesystem>
#include <system_error>

#include <luna/data/read_util.h>
#include <luna/data/tokenizers.h>

namespace luna::data {

namespace {
constexpr const char* kReader = "imdb";
namespace fs = std::filesystem;

// "12_7.txt" before "100_3.txt": names that start with digits compare by that number first (as a
// digit string, so arbitrarily long ids cannot overflow), then by the whole name.
bool natural_less(const std::string& a, const std::string& b) {
  auto digits = [](const std::string& s) {
    size_t end = 0;
    while (end < s.size() && s[end] >= '0' && s[end] <= '9') ++end;
    size_t start = 0;
    while (start + 1 < end && s[start] == '0') ++start;
    return std::string_view(s).substr(start, end - start);
  };
  const std::string_view da = digits(a), db = digits(b);
  if (da.size() != db.size()) return da.size() < db.size();
  if (da != db) return da < db;
  return a < b;
}

// The names of the *.txt entries of `dir`, in natural order; a missing folder is an error.
std::vector<std::string> list_reviews(const fs::path& dir) {
  std::error_code error;
  LUNA_CHECK(fs::is_directory(dir, error), kReader, ": '", dir.string(), "' is not a folder (expected aclImdb/",
             "{train,test}/{pos,neg}/ with one review per .txt file)");
  std::vector<std::string> names;
  fs::directory_iterator it(dir, error), end;
  LUNA_CHECK(!error, kReader, ": cannot list '", dir.string(), "': ", error.message());
  for (; it != end; it.increment(error)) {
    LUNA_CHECK(!error, kReader, ": cannot list '", dir.string(), "': ", error.message());
    const std::string name = it->path().filename().string();
    if (name.size() > 4 && name.ends_with(".txt")) names.push_back(name);
  }
  LUNA_CHECK(!error, kReader, ": cannot list '", dir.string(), "': ", error.message());
  std::sort(names.begin(), names.end(), natural_less);
  return names;
}
}  // namespace

ClassificationExamples read_imdb(const std::string& root, Split split, const ReadOptions& options) {
  const fs::path split_dir = fs::path(root) / (split == Split::train ? "train" : "test");
  ClassificationExamples out;
  out.num_classes = kTextNumClasses;
  out.vocabulary = byte_vocabulary();
  out.max_len = detail::resolve_max_len(options, kTextMaxLen, kReader);
  out.split = split;
  out.source = split_dir.string();

  const std::vector<std::string> neg = list_reviews(split_dir / "neg");
  const std::vector<std::string> pos = list_reviews(split_dir / "pos");
  detail::RecordPolicy policy(kReader, out.source, options, out.report);
  std::vector<int32_t> tokens;
  auto read_one = [&](const std::string& label_dir, const std::string& name, int64_t label) {
    const std::string relative = label_dir + "/" + name;
    const bool ok = policy.attempt(relative, [&] {
      const std::string text = detail::read_file((split_dir / relative).string(), nullptr);
      begin_sequence(tokens, options.add_cls, kByteClsId);
      tokenize_bytes(text, tokens);
    });
    if (!ok) return;
    detail::append_truncated(tokens, out.max_len, out.report, out.tokens);
    out.labels.push_back(label);
  };
  for (size_t i = 0; i < std::max(neg.size(), pos.size()); ++i) {
    if (i < neg.size() && !detail::reached_max_examples(options, out.size())) read_one("neg", neg[i], 0);
    if (i < pos.size() && !detail::reached_max_examples(options, out.size())) read_one("pos", pos[i], 1);
  }
  return out;
}

}  // namespace luna::data
