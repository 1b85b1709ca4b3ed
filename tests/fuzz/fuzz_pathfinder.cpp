// libFuzzer target for the Pathfinder reader (`make fuzz`) through its storage-independent core,
// parse_pathfinder. After the options byte the input is split at every "@@@@": chunk 0 is
// metadata/0.npy, chunk 1 metadata/1.npy, and chunk k >= 2 is the image imgs/0/sample_<k-2>.png
// (any other path cannot be read). All three splits are read strictly and with skip_bad_records
// (see fuzz_data_common.h), and every image chunk is also decoded directly.
#include "fuzz_data_common.h"

#include <map>

#include <luna/data/pathfinder.h>
#include <luna/data/png.h>

namespace {
constexpr const char* kTarget = "fuzz_pathfinder";

std::vector<std::string_view> split_chunks(std::string_view input) {
  std::vector<std::string_view> chunks;
  while (true) {
    const size_t cut = input.find("@@@@");
    chunks.push_back(input.substr(0, cut));
    if (cut == std::string_view::npos) return chunks;
    input.remove_prefix(cut + 4);
  }
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::vector<std::string_view> chunks = split_chunks(luna::fuzz::as_text(data + 1, size - 1));
  std::vector<std::pair<std::string, std::string>> metadata;
  metadata.emplace_back("metadata/0.npy", std::string(chunks[0]));
  if (chunks.size() > 1) metadata.emplace_back("metadata/1.npy", std::string(chunks[1]));
  std::map<std::string, std::string> images;
  for (size_t k = 2; k < chunks.size(); ++k) {
    images["imgs/0/sample_" + std::to_string(k - 2) + ".png"] = std::string(chunks[k]);
    const auto decoded = luna::fuzz::read_or_reject([&] { return luna::data::decode_png_gray(chunks[k], 256); });
    if (decoded && (decoded->width < 1 || decoded->height < 1 || decoded->width > 256 || decoded->height > 256 ||
                    int64_t(decoded->pixels.size()) != decoded->width * decoded->height)) {
      luna::fuzz::fail(kTarget, "decoded image size does not match its pixels");
    }
  }
  const luna::data::ImageLoader load = [&](const std::string& path) {
    const auto it = images.find(path);
    if (it == images.end()) throw luna::Error("cannot read '" + path + "': No such file or directory");
    return it->second;
  };

  for (luna::data::Split split : {luna::data::Split::train, luna::data::Split::dev, luna::data::Split::test}) {
    const luna::data::ReadOptions strict = luna::fuzz::options_from(data[0], false);
    const luna::data::ReadOptions lenient = luna::fuzz::options_from(data[0], true);
    const auto strict_read = luna::fuzz::read_or_reject(
        [&] { return luna::data::parse_pathfinder(metadata, load, "fuzz", split, strict); });
    const luna::data::ClassificationExamples skipped = luna::data::parse_pathfinder(metadata, load, "fuzz", split, lenient);
    luna::fuzz::check_examples(kTarget, skipped, lenient);
    for (size_t i = 1; i < skipped.size(); ++i) {
      if (skipped.tokens.length(i) != skipped.tokens.length(0)) luna::fuzz::fail(kTarget, "images of different sizes");
    }
    if (strict_read) {
      luna::fuzz::check_examples(kTarget, *strict_read, strict);
      if (skipped.report.skipped_bad != 0) luna::fuzz::fail(kTarget, "strict read accepted what the lenient one skipped");
      if (strict_read->report.skipped_empty != skipped.report.skipped_empty) luna::fuzz::fail(kTarget, "empty counts differ");
      luna::fuzz::check_same(kTarget, *strict_read, skipped);
    } else if (skipped.report.skipped_bad == 0) {
      luna::fuzz::fail(kTarget, "strict read threw but the lenient one skipped nothing");
    }
  }
  return 0;
}
