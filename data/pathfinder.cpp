// Pathfinder metadata + PNG reader.
#include <luna/data/pathfinder.h>

#include <algorithm>
#include <charconv>
#include <filesystem>

#include <luna/core/generator.h>
#include <luna/data/png.h>
#include <luna/data/read_util.h>
#include <luna/data/tokenizers.h>

namespace luna::data {

namespace {
constexpr const char* kReader = "pathfinder";
namespace fs = std::filesystem;

std::vector<std::string_view> split_whitespace(std::string_view line) {
  std::vector<std::string_view> fields;
  size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
    const size_t start = i;
    while (i < line.size() && line[i] != ' ' && line[i] != '\t') ++i;
    if (i > start) fields.push_back(line.substr(start, i - start));
  }
  return fields;
}

// The metadata names images relative to the folder; refuse paths that would leave it.
void check_relative(std::string_view path) {
  LUNA_CHECK(!path.empty() && path.front() != '/', "image path ", detail::quoted(path),
             " must be relative to the difficulty folder");
  for (std::string_view part : detail::split_fields(path, '/')) {
    LUNA_CHECK(part != "..", "image path ", detail::quoted(path), " leaves the difficulty folder");
  }
  LUNA_CHECK(path.find('\0') == std::string_view::npos, "image path ", detail::quoted(path), " contains a NUL byte");
}

// Numeric batch order: metadata/2.npy before metadata/10.npy.
bool batch_less(const std::string& a, const std::string& b) {
  if (a.size() != b.size()) return a.size() < b.size();
  return a < b;
}
}  // namespace

std::vector<PathfinderEntry> parse_pathfinder_metadata(std::string_view text, const std::string& name,
                                                       const std::string& source, const ReadOptions& options,
                                                       ReadReport& report) {
  detail::RecordPolicy policy(kReader, source, options, report);
  std::vector<PathfinderEntry> entries;
  detail::for_each_line(text, [&](int64_t line_number, std::string_view line) {
    if (line.find_first_not_of(" \t") == std::string_view::npos) return;  // blank lines (np.savetxt ends with one)
    PathfinderEntry entry;
    entry.origin = name + " line " + std::to_string(line_number);
    const bool ok = policy.attempt(entry.origin, [&] {
      const std::vector<std::string_view> fields = split_whitespace(line);
      LUNA_CHECK(int64_t(fields.size()) == kPathfinderMetadataFields, "expected ", kPathfinderMetadataFields,
                 " whitespace-separated fields (subpath filename index label ...), got ", fields.size());
      const std::string_view label = fields[3];
      LUNA_CHECK(label == "0" || label == "1", "label ", detail::quoted(label), " is not 0 or 1");
      entry.label = label == "1";
      entry.image = std::string(fields[0]) + "/" + std::string(fields[1]);
      check_relative(entry.image);
    });
    if (ok) entries.push_back(std::move(entry));
  });
  return entries;
}

std::vector<size_t> pathfinder_split_indices(size_t count, Split split, uint64_t seed) {
  std::vector<size_t> order(count);
  for (size_t i = 0; i < count; ++i) order[i] = i;
  for (size_t i = count; i > 1; --i) {
    const PhiloxBlock r = philox4x32_10(seed, i);
    const uint64_t bits = uint64_t(r[1]) << 32 | r[0];
    std::swap(order[i - 1], order[size_t(bits % i)]);
  }
  const size_t train = count * 8 / 10, dev = count / 10;
  const size_t begin = split == Split::train ? 0 : split == Split::dev ? train : train + dev;
  const size_t end = split == Split::train ? train : split == Split::dev ? train + dev : count;
  std::vector<size_t> chosen(order.begin() + begin, order.begin() + end);
  std::sort(chosen.begin(), chosen.end());
  return chosen;
}

ClassificationExamples parse_pathfinder(const std::vector<std::pair<std::string, std::string>>& metadata_files,
                                        const ImageLoader& load_image, const std::string& source, Split split,
                                        const ReadOptions& options) {
  ClassificationExamples out;
  out.num_classes = kPathfinderNumClasses;
  out.vocabulary = pixel_vocabulary();
  // Validates the options; the default (side² pixels, +1 with CLS) is known once the first image is decoded.
  detail::resolve_max_len(options, kPathfinderMaxSide * kPathfinderMaxSide + 1, kReader);
  out.max_len = options.max_len;
  out.split = split;
  out.source = source;

  std::vector<PathfinderEntry> entries;
  for (const auto& [name, text] : metadata_files) {
    std::vector<PathfinderEntry> batch = parse_pathfinder_metadata(text, name, source, options, out.report);
    entries.insert(entries.end(), std::make_move_iterator(batch.begin()), std::make_move_iterator(batch.end()));
  }
  std::vector<size_t> chosen = pathfinder_split_indices(entries.size(), split, options.split_seed);
  if (options.max_examples > 0 && int64_t(chosen.size()) > options.max_examples) {
    // A random subset: take the first max_examples of the split in shuffled order, read in file order.
    std::vector<size_t> order(chosen.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = i;
    for (size_t i = order.size(); i > 1; --i) {
      // Counters with the top bit set: a stream disjoint from the split's permutation.
      const PhiloxBlock r = philox4x32_10(options.split_seed, (uint64_t(1) << 63) | i);
      std::swap(order[i - 1], order[size_t((uint64_t(r[1]) << 32 | r[0]) % i)]);
    }
    std::vector<size_t> subset;
    for (size_t i = 0; i < size_t(options.max_examples); ++i) subset.push_back(chosen[order[i]]);
    std::sort(subset.begin(), subset.end());
    chosen = std::move(subset);
  }

  detail::RecordPolicy policy(kReader, source, options, out.report);
  int64_t side = 0;  // of the first decoded image; every other must match
  std::vector<int32_t> tokens;
  for (size_t index : chosen) {
    const PathfinderEntry& entry = entries[index];
    const std::string where = entry.image + " (" + entry.origin + ")";
    bool empty = false;
    GrayImage image;
    try {
      const std::string bytes = load_image(entry.image);
      empty = bytes.empty();
      if (!empty) {
        image = decode_png_gray(bytes, kPathfinderMaxSide);
        LUNA_CHECK(image.width == image.height, "image is ", image.width, "x", image.height, ", not square");
        LUNA_CHECK(side == 0 || image.width == side, "image is ", image.width, "x", image.height,
                   " but the images before it are ", side, "x", side);
      }
    } catch (const Error& error) {
      policy.reject(where, error.what());
      continue;
    }
    if (empty) {
      ++out.report.skipped_empty;
      continue;
    }
    if (side == 0) {
      side = image.width;
      if (options.max_len == 0) out.max_len = side * side + (options.add_cls ? 1 : 0);
    }
    begin_sequence(tokens, options.add_cls, kPixelClsId);
    for (uint8_t value : image.pixels) tokens.push_back(pixel_token(value));
    detail::append_truncated(tokens, out.max_len, out.report, out.tokens);
    out.labels.push_back(entry.label);
  }
  return out;
}

ClassificationExamples read_pathfinder(const std::string& difficulty_dir, Split split, const ReadOptions& options) {
  const fs::path metadata_dir = fs::path(difficulty_dir) / "metadata";
  std::error_code error;
  LUNA_CHECK(fs::is_directory(metadata_dir, error), kReader, ": '", metadata_dir.string(),
             "' is not a folder (expected a difficulty folder holding imgs/ and metadata/, e.g. "
             "pathfinder32/curv_baseline)");
  std::vector<std::string> names;
  fs::directory_iterator it(metadata_dir, error), end;
  for (; !error && it != end; it.increment(error)) {
    const std::string name = it->path().filename().string();
    if (name.ends_with(".npy")) names.push_back(name);
  }
  LUNA_CHECK(!error, kReader, ": cannot list '", metadata_dir.string(), "': ", error.message());
  LUNA_CHECK(!names.empty(), kReader, ": '", metadata_dir.string(), "' holds no .npy metadata files");
  std::sort(names.begin(), names.end(), batch_less);

  std::vector<std::pair<std::string, std::string>> metadata_files;
  for (const std::string& name : names) {
    metadata_files.emplace_back("metadata/" + name, detail::read_file((metadata_dir / name).string(), kReader));
  }
  const ImageLoader load_image = [&](const std::string& relative) {
    return detail::read_file(difficulty_dir + "/" + relative, nullptr);
  };
  return parse_pathfinder(metadata_files, load_image, difficulty_dir, split, options);
}

}  // namespace luna::data
