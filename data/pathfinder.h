// Pathfinder / Path-X reader (spec/LRA.md). A difficulty folder (e.g. pathfinder32/curv_baseline)
// holds imgs/<batch>/sample_<k>.png and metadata/<batch>.npy; the .npy files are plain text, one
// image per line, 11 whitespace-separated fields `subpath filename index label continuity
// contour_length distractor_length paddle_length paddle_thickness paddle_margin
// num_paddle_contrasts`. Image = <folder>/<subpath>/<filename>, label = field 3 (1 = connected).
// Images are 8-bit grayscale PNGs (colour is converted), all of one square size (32 for
// Pathfinder, 128 for Path-X); the pixels become tokens (tokenizers.h: value + 1, 0 = pad).
// Empty image files are skipped and counted in ReadReport::skipped_empty (the release has one).
// Split: the metadata entries in file order (batches sorted numerically) are shuffled with
// ReadOptions::split_seed and cut 80/10/10 into train/dev/test; only the split's images are read.
// Bad records name the metadata file and line (wrong field count, a label that is not 0 or 1, a
// path leaving the folder) or the image (unreadable, corrupt PNG, wrong size).
//
// Generators write the same layout, so this one reader serves the release and generated data:
//   ClassificationExamples train = read_pathfinder("pathfinder32/curv_baseline", Split::train);
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <luna/data/dataset.h>

namespace luna::data {

inline constexpr int64_t kPathfinderNumClasses = 2;
inline constexpr int64_t kPathfinderMetadataFields = 11;
inline constexpr int64_t kPathfinderMaxSide = 1024;

ClassificationExamples read_pathfinder(const std::string& difficulty_dir, Split split, const ReadOptions& options = {});

// One metadata line's image and label.
struct PathfinderEntry {
  std::string image;  // relative to the difficulty folder: "<subpath>/<filename>"
  int64_t label = 0;
  std::string origin;  // "metadata/<batch>.npy line <n>", for errors
};

// The entries of one metadata file's text, in order; bad lines are thrown or, when
// options.skip_bad_records, skipped and counted in `report`. `name` is the file's path relative to
// the difficulty folder ("metadata/0.npy"), `source` the folder (both for errors).
std::vector<PathfinderEntry> parse_pathfinder_metadata(std::string_view text, const std::string& name,
                                                       const std::string& source, const ReadOptions& options,
                                                       ReadReport& report);

// Indices (ascending) of the entries of `split` among `count`: a seeded Fisher-Yates permutation
// (Philox 4x32-10 keyed by `seed`) whose first 80% are train, next 10% dev, rest test.
std::vector<size_t> pathfinder_split_indices(size_t count, Split split, uint64_t seed);

// The bytes of an image given its path relative to the difficulty folder; throws luna::Error when
// it cannot be read.
using ImageLoader = std::function<std::string(const std::string& relative_path)>;

// The reader on any storage: `metadata_files` are (relative name, text) in batch order, images come
// from `load_image`. read_pathfinder is this over the file system.
ClassificationExamples parse_pathfinder(const std::vector<std::pair<std::string, std::string>>& metadata_files,
                                        const ImageLoader& load_image, const std::string& source, Split split,
                                        const ReadOptions& options = {});

}  // namespace luna::data
