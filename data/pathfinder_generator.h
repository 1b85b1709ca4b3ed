// Pathfinder / Path-X generator after Linsley et al. 2018 (snakes2.py), with the LRA settings of
// spec/LRA.md: two target snakes grown paddle by paddle from seeds `seed_distance` apart, short
// distractor snakes, a disk marker on one target's origin tip and one on the far tip of the same
// snake (label 1) or of the other (label 0). Writes the release layout the reader
// (data/pathfinder.h) reads: <difficulty>/imgs/<batch>/sample_<k>.png (8-bit grey, through
// stb_image_write) and <difficulty>/metadata/<batch>.npy (plain text, 11 fields per image).
//
//   PathfinderOptions options = PathfinderOptions::pathfinder32();
//   write_pathfinder_dataset("pathfinder32/curv_contour_length_14", options, {.num_images = 2000});
#pragma once
#include <array>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <luna/data/pathfinder_raster.h>
#include <luna/data/random_stream.h>

namespace luna::data {

struct PathfinderOptions {
  int window_size = 32;  // square images
  int padding = 1;       // border rows/columns the snakes never enter
  int paddle_length = 2;
  double paddle_thickness = 0.5;  // thickness * antialias_scale must be an integer
  std::vector<int> paddle_margins = {1};  // one drawn per image
  int antialias_scale = 2;
  double marker_radius = 1.5;
  int seed_distance = 7;
  double continuity = 1.0;
  int contour_length = 14;  // paddles per target snake
  // Paddles per distractor: int(distractor_length). Kept as the original's number (14 // 3 = 4 at
  // 32 px, 14 / 3 = 4.67 at 128 px) because it is written into the metadata as such.
  double distractor_length = 4;
  bool distractor_length_is_float = false;  // spelled 4.666666666666667 / 3.0 (Python float), not 4
  int num_distractor_snakes = 5;
  std::vector<double> snake_contrasts = {2.0};
  std::vector<double> paddle_contrasts = {0.75};
  int max_paddle_retrial = 2;              // extra tries per paddle
  int max_distractor_contour_retrial = 4;  // extra tries per distractor snake
  // The original dilated its float64 occupancy mask with cv2.dilate, whose border value makes
  // output pixels that no kernel cell reaches -DBL_MAX; the seed step then found "no free point"
  // whenever the head-centric seed kernel missed its own centre. At 32 px that rejects all seed
  // orientations but -150..-121 degrees, against the spec's "uniform orientation". Off (default):
  // such pixels count as occupied and seed orientations are uniform. On: the original's behaviour.
  bool opencv_seed_border_quirk = false;

  // Pathfinder-32 "hard" (curv_contour_length_14) and Path-X (pathfinder128), spec/LRA.md.
  static PathfinderOptions pathfinder32();
  static PathfinderOptions pathfinder128();
  // Named preset: "pathfinder32" | "pathfinder128" (alias "pathx"); anything else is an error.
  static PathfinderOptions preset(const std::string& name);

  void validate() const;  // every bad value is an error naming it
  // The release's folder name: curv_baseline (contour length 6) or curv_contour_length_<n>.
  std::string difficulty_name() const;
};

// One rendered image with what made it.
struct PathfinderImage {
  raster::Grid<uint8_t> pixels;  // (window_size, window_size), min-max scaled to 0-255
  int label = 0;                 // 1: the markers sit on the two ends of one snake
  int paddle_margin = 0;
  std::array<int, 2> origin_marker{};    // (row, col) of each marker's centre
  std::array<int, 2> terminal_marker{};
  int64_t target_attempts = 0;  // tries of the two-target-snake step until both grew fully
  int distractors_drawn = 0;    // distractor snakes that found room (the rest are left out, as in the original)
  // Each target snake alone, scaled like `pixels`; the origin marker sits on layer origin_snake,
  // the terminal marker on the same layer for label 1 and on the other for label 0.
  std::array<raster::Grid<uint8_t>, 2> target_layers;
  int origin_snake = 0;
};

// Draws one image from `rng` (label first, then margin, snakes, distractors, markers).
PathfinderImage generate_pathfinder_image(RandomStream& rng, const PathfinderOptions& options);

// 8-bit grey PNG bytes of an image (stb_image_write, default compression): deterministic.
std::string encode_png_gray(const raster::Grid<uint8_t>& image);

// A metadata line without its newline: `imgs/<batch> sample_<k>.png <k> <label> <continuity>
// <contour_length> <distractor_length> <paddle_length> <paddle_thickness> <margin>
// <num_paddle_contrasts>`, numbers spelled as Python's str() spelled the original's values.
std::string pathfinder_metadata_line(int64_t batch, int64_t index, int label, int paddle_margin,
                                     const PathfinderOptions& options);

struct PathfinderWriteOptions {
  int64_t num_images = 200000;       // the release's size per difficulty: 200 batches of 1000
  int64_t images_per_batch = 1000;   // imgs/<batch>/ folders and metadata/<batch>.npy files
  uint64_t seed = 0;                 // batch b draws from RandomStream(seed, b)
};

// Writes every batch under `difficulty_dir` (created if missing); batches run in parallel on
// luna's threads and each depends only on (seed, batch), so the bytes do not depend on the thread
// count. A batch's metadata file is written last, through a temporary name, so a metadata file
// exists only when all of its images do. Progress counts images.
void write_pathfinder_dataset(const std::filesystem::path& difficulty_dir, const PathfinderOptions& options,
                              const PathfinderWriteOptions& write_options, const GeneratorProgress& progress = {});

}  // namespace luna::data
