// generate_lra: writes a generated LRA task in the official release layout, so that train_lra and
// the readers treat it exactly like downloaded data.
//
//   generate_lra listops --out lra_release                 -> lra_release/listops-1000/basic_{train,val,test}.tsv
//   generate_lra pathfinder32 --out lra_release --images 20000
//                                                          -> lra_release/pathfinder32/curv_contour_length_14/{imgs,metadata}
//   generate_lra pathfinder128 ...                         -> lra_release/pathfinder128/curv_contour_length_14/ (Path-X)
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <string>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "common/generator_record.h"

#include <luna/core/error.h>
#include <luna/core/threads.h>
#include <luna/data/listops_generator.h>
#include <luna/data/pathfinder_generator.h>

namespace fs = std::filesystem;
using namespace luna::data;

namespace {

// A record left by an earlier generation must not vouch for files being rewritten: it goes first
// and the new one is written last.
void drop_stale_record(const fs::path& folder) {
  std::error_code error;
  fs::remove(folder / luna::apps::kGeneratorRecord, error);
  if (error) throw luna::Error("cannot remove " + (folder / luna::apps::kGeneratorRecord).string() + ": " + error.message());
}

// Progress on stderr: one rewritten line on a terminal, a line per 10% otherwise.
class Progress {
 public:
  explicit Progress(std::string what) : what_(std::move(what)), start_(Clock::now()), terminal_(isatty(2)) {}

  void operator()(int64_t done, int64_t total) {
    const auto now = Clock::now();
    const double elapsed = std::chrono::duration<double>(now - start_).count();
    const bool last = done == total;
    if (terminal_) {
      if (!last && now - last_print_ < std::chrono::milliseconds(200)) return;
    } else {
      const int64_t decile = total > 0 ? done * 10 / total : 10;
      if (!last && decile == last_decile_) return;
      last_decile_ = decile;
    }
    last_print_ = now;
    const double rate = elapsed > 0 ? double(done) / elapsed : 0.0;
    const double eta = rate > 0 ? double(total - done) / rate : 0.0;
    std::fprintf(stderr, "%s%s: %lld/%lld (%.1f%%) %.0f/s, elapsed %.0fs, ETA %.0fs%s", terminal_ ? "\r" : "",
                 what_.c_str(), (long long)done, (long long)total, total > 0 ? 100.0 * double(done) / double(total) : 100.0,
                 rate, elapsed, eta, terminal_ ? (last ? "\n" : "   ") : "\n");
    std::fflush(stderr);
  }

 private:
  using Clock = std::chrono::steady_clock;
  std::string what_;
  Clock::time_point start_;
  Clock::time_point last_print_{};
  int64_t last_decile_ = -1;
  bool terminal_;
};

void refuse_to_overwrite(const fs::path& path, bool force) {
  LUNA_CHECK(force || !fs::exists(path), path.string(), " already exists; pass --force to overwrite it");
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Writes a generated LRA task (ListOps, Pathfinder-32, Path-X) in the official release layout."};
  app.require_subcommand(1);
  app.fallthrough();  // --out, --dir, --force, --threads also after the subcommand
  std::string out = "lra_release";
  std::string dir;
  bool force = false;
  int threads = 0;
  app.add_option("--out", out, "release root; the task goes to its release folder below it")->capture_default_str();
  app.add_option("--dir", dir, "write the task's files into exactly this folder instead");
  app.add_flag("--force", force, "overwrite existing files");
  app.add_option("--threads", threads, "worker threads (default: LUNA_NUM_THREADS or all cores)")
      ->check(CLI::Range(1, 1024));

  ListOpsGeneratorOptions listops;
  CLI::App* listops_cmd = app.add_subcommand("listops", "ListOps: basic_train/val/test.tsv (96000/2000/2000 rows by default)");
  listops_cmd->add_option("--seed", listops.seed, "seed of the trees")->capture_default_str();
  listops_cmd->add_option("--split-seed", listops.split_seed, "seed of the shuffle before the split")->capture_default_str();
  const auto count_range = CLI::Range(int64_t(0), int64_t(100'000'000));
  listops_cmd->add_option("--train", listops.num_train, "training rows")->capture_default_str()->check(count_range);
  listops_cmd->add_option("--dev", listops.num_val, "validation rows (basic_val.tsv)")
      ->capture_default_str()
      ->check(count_range);
  listops_cmd->add_option("--test", listops.num_test, "test rows")->capture_default_str()->check(count_range);
  listops_cmd->add_option("--max-depth", listops.max_depth, "tree depth limit")->capture_default_str();
  listops_cmd->add_option("--max-args", listops.max_args, "arguments per operator, at most")->capture_default_str();
  listops_cmd->add_option("--min-length", listops.min_length, "kept trees are longer than this")->capture_default_str();
  listops_cmd->add_option("--max-length", listops.max_length, "kept trees are shorter than this")->capture_default_str();
  bool unix_newlines = false;
  listops_cmd->add_flag("--lf", unix_newlines, "end rows with \\n instead of the original's \\r\\n");

  PathfinderWriteOptions pathfinder_write;
  int contour_length = 14;
  bool opencv_quirk = false;
  CLI::App* pf32_cmd = app.add_subcommand("pathfinder32", "Pathfinder-32 (hard: contour length 14)");
  CLI::App* pf128_cmd = app.add_subcommand("pathfinder128", "Path-X: Pathfinder at 128x128");
  for (CLI::App* cmd : {pf32_cmd, pf128_cmd}) {
    cmd->add_option("--seed", pathfinder_write.seed, "seed; batch b draws from stream (seed, b)")->capture_default_str();
    cmd->add_option("--images", pathfinder_write.num_images, "images to write (the release has 200000)")
        ->capture_default_str()
        ->check(CLI::Range(int64_t(1), int64_t(100'000'000)));
    cmd->add_option("--images-per-batch", pathfinder_write.images_per_batch, "images per imgs/<batch> folder")
        ->capture_default_str()
        ->check(CLI::Range(int64_t(1), int64_t(100'000'000)));
    cmd->add_option("--contour-length", contour_length, "paddles per target snake (release: 6, 9 or 14)")
        ->capture_default_str()
        ->check(CLI::Range(2, 100));
    cmd->add_flag("--opencv-quirk", opencv_quirk,
                  "reproduce the original's cv2.dilate border effect on seed orientations (see PathfinderOptions)");
  }

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }

  try {
    if (threads > 0) luna::set_num_threads(threads);
    if (listops_cmd->parsed()) {
      listops.crlf_line_endings = !unix_newlines;
      listops.validate();
      const fs::path folder = dir.empty() ? fs::path(out) / "listops-1000" : fs::path(dir);
      const ListOpsFiles files = listops_files(folder, listops.task);
      for (const fs::path& f : {files.train, files.val, files.test}) refuse_to_overwrite(f, force);
      drop_stale_record(folder);
      Progress progress("listops trees");
      write_listops_dataset(folder, listops, std::ref(progress));
      luna::apps::write_generator_record(folder, luna::apps::listops_generator_record(listops));
      std::printf("wrote %s, %s, %s\n", files.train.c_str(), files.val.c_str(), files.test.c_str());
    } else {
      const bool path_x = pf128_cmd->parsed();
      PathfinderOptions options = path_x ? PathfinderOptions::pathfinder128() : PathfinderOptions::pathfinder32();
      options.contour_length = contour_length;
      // The original derives the distractors from the contour length: 32 px uses contour // 3
      // paddles and 20 // that snakes, 128 px contour / 3 and 35 / that (a float loop bound).
      if (path_x) {
        options.distractor_length = contour_length / 3.0;
        options.num_distractor_snakes = int(std::ceil(35.0 / options.distractor_length));
      } else {
        options.distractor_length = double(contour_length / 3);
        options.num_distractor_snakes = 20 / (contour_length / 3);
      }
      options.opencv_seed_border_quirk = opencv_quirk;
      options.validate();
      const fs::path folder =
          dir.empty() ? fs::path(out) / (path_x ? "pathfinder128" : "pathfinder32") / options.difficulty_name() : fs::path(dir);
      refuse_to_overwrite(folder / "metadata", force);
      if (force) {
        std::error_code ignored;
        fs::remove_all(folder / "metadata", ignored);
        fs::remove_all(folder / "imgs", ignored);
      }
      drop_stale_record(folder);
      const std::string generator = path_x ? "pathfinder128" : "pathfinder32";
      Progress progress(generator + " images");
      write_pathfinder_dataset(folder, options, pathfinder_write, std::ref(progress));
      // What train_lra's --generate would not have chosen goes into the record, so it is not taken
      // for train_lra's own data.
      nlohmann::json non_default = nlohmann::json::object();
      if (contour_length != PathfinderOptions::preset(generator).contour_length)
        non_default["contour_length"] = contour_length;
      if (opencv_quirk) non_default["opencv_seed_border_quirk"] = true;
      if (pathfinder_write.images_per_batch != PathfinderWriteOptions().images_per_batch)
        non_default["images_per_batch"] = pathfinder_write.images_per_batch;
      luna::apps::write_generator_record(
          folder, luna::apps::pathfinder_generator_record(generator, pathfinder_write.seed, pathfinder_write.num_images,
                                                          non_default));
      std::printf("wrote %lld images under %s\n", (long long)pathfinder_write.num_images, folder.c_str());
    }
  } catch (const luna::Error& e) {
    std::fprintf(stderr, "generate_lra: error: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "generate_lra: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
