// libFuzzer target for the aclImdb tree reader (`make fuzz`). The reader walks real folders, so
// each input is materialised in a private temporary folder: after the options byte, chunks split
// at "@@@@" are "<path>\n<content>" files under aclImdb/ ("train/pos/3_8.txt"); a path starting
// with '!' makes a folder, one starting with '~' a dangling symlink. Paths with "..", a leading '/',
// or a NUL are dropped. Then both splits are read strictly and with skip_bad_records
// (see fuzz_data_common.h); missing pos/ or neg/ folders make both reads refuse.
#include "fuzz_data_common.h"

#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include <luna/data/imdb.h>

namespace {
constexpr const char* kTarget = "fuzz_imdb";
namespace fs = std::filesystem;

const fs::path& scratch() {
  static const fs::path root = [] {
    std::string pattern = (fs::temp_directory_path() / "luna-fuzz-imdb-XXXXXX").string();
    if (mkdtemp(pattern.data()) == nullptr) luna::fuzz::fail(kTarget, "mkdtemp failed");
    std::atexit([] { std::error_code ignored; fs::remove_all(scratch(), ignored); });
    return fs::path(pattern);
  }();
  return root;
}

bool safe_relative(std::string_view path) {
  if (path.empty() || path.size() > 200 || path.front() == '/' || path.find('\0') != std::string_view::npos) return false;
  size_t start = 0;
  while (start <= path.size()) {
    size_t end = path.find('/', start);
    if (end == std::string_view::npos) end = path.size();
    if (path.substr(start, end - start) == "..") return false;
    start = end + 1;
  }
  return true;
}

void materialise(std::string_view input, const fs::path& root) {
  std::error_code ignored;
  while (!input.empty()) {
    const size_t cut = input.find("@@@@");
    std::string_view chunk = input.substr(0, cut);
    input = cut == std::string_view::npos ? std::string_view() : input.substr(cut + 4);
    const size_t newline = chunk.find('\n');
    std::string_view path = chunk.substr(0, newline);
    const std::string_view content = newline == std::string_view::npos ? std::string_view() : chunk.substr(newline + 1);
    const char kind = path.empty() ? 0 : path.front();
    if (kind == '!' || kind == '~') path.remove_prefix(1);
    if (!safe_relative(path)) continue;
    const fs::path target = root / std::string(path);
    fs::create_directories(target.parent_path(), ignored);
    if (kind == '!') {
      fs::create_directories(target, ignored);
    } else if (kind == '~') {
      fs::create_symlink(root / "missing-target", target, ignored);
    } else {
      std::ofstream(target, std::ios::binary).write(content.data(), std::streamsize(content.size()));
    }
  }
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const fs::path root = scratch() / "aclImdb";
  std::error_code ignored;
  fs::remove_all(root, ignored);
  fs::create_directories(root, ignored);
  materialise(luna::fuzz::as_text(data + 1, size - 1), root);

  for (luna::data::Split split : {luna::data::Split::train, luna::data::Split::test}) {
    const luna::data::ReadOptions strict = luna::fuzz::options_from(data[0], false);
    const luna::data::ReadOptions lenient = luna::fuzz::options_from(data[0], true);
    const auto strict_read = luna::fuzz::read_or_reject([&] { return luna::data::read_imdb(root.string(), split, strict); });
    const auto skipped = luna::fuzz::read_or_reject([&] { return luna::data::read_imdb(root.string(), split, lenient); });
    if (strict_read.has_value() && !skipped.has_value()) luna::fuzz::fail(kTarget, "only the lenient read refused");
    if (!skipped) continue;
    luna::fuzz::check_examples(kTarget, *skipped, lenient);
    if (lenient.max_examples == 0 && int64_t(skipped->size()) + skipped->report.skipped_bad != skipped->report.records) {
      luna::fuzz::fail(kTarget, "examples + skipped != records");
    }
    if (strict_read) {
      luna::fuzz::check_examples(kTarget, *strict_read, strict);
      if (skipped->report.skipped_bad != 0) luna::fuzz::fail(kTarget, "strict read accepted what the lenient one skipped");
      luna::fuzz::check_same(kTarget, *strict_read, *skipped);
    } else if (skipped->report.skipped_bad == 0) {
      luna::fuzz::fail(kTarget, "strict read threw but the lenient one skipped nothing");
    }
  }
  return 0;
}
