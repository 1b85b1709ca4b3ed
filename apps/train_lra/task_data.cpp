// Data for train_lra: release-layout lookup, --generate (ListOps, Pathfinder, Path-X) with a
// generator.json record next to the data, and the readers of data/ for each task.
#include "task_data.h"

#include "common/generator_record.h"

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <sstream>
#include <vector>

#include <nlohmann/json.hpp>

#include <luna/core/error.h>
#include <luna/data/aan.h>
#include <luna/data/cifar10.h>
#include <luna/data/fashion_mnist.h>
#include <luna/data/imdb.h>
#include <luna/data/listops.h>
#include <luna/data/listops_generator.h>
#include <luna/data/pathfinder.h>
#include <luna/data/pathfinder_generator.h>

namespace fs = std::filesystem;

namespace luna::train_lra {

namespace {

// Where a task lives inside a release root, and a file or folder whose presence marks the task folder.
struct TaskLayout {
  std::vector<std::string> subfolders;  // tried in order below --data
  std::vector<std::string> markers;     // all must exist in the task folder
};

std::string pathfinder_difficulty(const std::string& task) {
  return data::PathfinderOptions::preset(task == "pathx" ? "pathfinder128" : "pathfinder32").difficulty_name();
}

TaskLayout layout_of(const std::string& task) {
  if (task == "listops") return {{"listops-1000"}, {"basic_train.tsv", "basic_val.tsv", "basic_test.tsv"}};
  if (task == "retrieval")
    return {{"tsv_data"}, {"new_aan_pairs.train.tsv", "new_aan_pairs.eval.tsv", "new_aan_pairs.test.tsv"}};
  if (task == "text") return {{"aclImdb"}, {"train/pos", "train/neg", "test/pos", "test/neg"}};
  if (task == "image") return {{"cifar-10-batches-bin"}, {"data_batch_1.bin", "test_batch.bin"}};
  if (task == "fmnist") return {{"fashion-mnist"}, {"train-labels-idx1-ubyte"}};
  // pathfinder / pathx: release root, pathfinderNN/ or the difficulty folder itself
  const std::string root = task == "pathx" ? "pathfinder128" : "pathfinder32";
  const std::string difficulty = pathfinder_difficulty(task);
  return {{root + "/" + difficulty, difficulty}, {"metadata"}};
}

bool holds_markers(const fs::path& folder, const std::vector<std::string>& markers) {
  std::error_code error;
  for (const auto& marker : markers) {
    // IDX files may be gzip'd.
    if (!fs::exists(folder / marker, error) && !fs::exists(folder / (marker + ".gz"), error)) return false;
  }
  return true;
}

// The folder's generator record, or null (errors prefixed "train_lra").
nlohmann::json read_record(const fs::path& folder) { return apps::read_generator_record(folder, "train_lra"); }

// The smallest image count whose 80/10/10 split (data/pathfinder.h) has at least the asked sizes.
int64_t pathfinder_total(const RunConfig& c) {
  if (c.train_examples == 0 && c.dev_examples == 0 && c.test_examples == 0) return 200000;  // the release
  int64_t count = std::max({(c.train_examples * 10 + 7) / 8, c.dev_examples * 10, c.test_examples * 10, int64_t(10)});
  while (count * 8 / 10 < c.train_examples || count / 10 < c.dev_examples ||
         count - count * 8 / 10 - count / 10 < c.test_examples)
    ++count;
  return count;
}

data::ListOpsGeneratorOptions listops_options(const RunConfig& c) {
  data::ListOpsGeneratorOptions options;
  options.seed = c.data_seed;
  options.split_seed = c.data_seed;
  options.num_train = c.train_examples > 0 ? c.train_examples : 96000;
  options.num_val = c.dev_examples > 0 ? c.dev_examples : 2000;
  options.num_test = c.test_examples > 0 ? c.test_examples : 2000;
  options.min_length = c.listops_min_length;
  options.max_length = c.listops_max_length;
  return options;
}

nlohmann::json requested_record(const RunConfig& c) {
  if (c.task == "listops") return apps::listops_generator_record(listops_options(c));
  return apps::pathfinder_generator_record(c.task == "pathx" ? "pathfinder128" : "pathfinder32", c.data_seed,
                                           pathfinder_total(c));
}

// Progress of a generator as log lines at every tenth, once it has run for a second (a small
// generation prints only its final count).
data::GeneratorProgress progress_printer(const std::string& what,
                                         const std::function<void(const std::string&)>& log) {
  auto last_tenth = std::make_shared<int64_t>(-1);
  auto start = std::make_shared<std::chrono::steady_clock::time_point>(std::chrono::steady_clock::now());
  return [=](int64_t done, int64_t total) {
    const int64_t tenth = total > 0 ? done * 10 / total : 10;
    if (tenth == *last_tenth) return;
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - *start).count();
    if (done < total && seconds < 1.0) return;
    *last_tenth = tenth;
    char line[160];
    std::snprintf(line, sizeof line, "%s: %lld/%lld (%.1f s)", what.c_str(), (long long)done, (long long)total, seconds);
    log(line);
  };
}

void generate(const RunConfig& c, const fs::path& folder, const nlohmann::json& record,
              const std::function<void(const std::string&)>& log) {
  std::error_code error;
  fs::create_directories(folder, error);
  LUNA_CHECK(!error, "train_lra: cannot create ", folder.string(), ": ", error.message());
  nlohmann::json pending = record;
  pending["complete"] = false;  // a crash before the end leaves a record that asks for regeneration
  apps::write_generator_record(folder, pending);
  if (c.task == "listops") {
    const data::ListOpsGeneratorOptions options = listops_options(c);
    log("generating ListOps into " + folder.string() + ": " + record.dump());
    data::write_listops_dataset(folder, options, progress_printer("  ListOps trees", log));
  } else {
    const auto options = data::PathfinderOptions::preset(record["generator"].get<std::string>());
    data::PathfinderWriteOptions write;
    write.num_images = record["num_images"];
    write.seed = c.data_seed;
    log("generating " + record["generator"].get<std::string>() + " into " + folder.string() + ": " + record.dump());
    data::write_pathfinder_dataset(folder, options, write, progress_printer("  Pathfinder images", log));
  }
  apps::write_generator_record(folder, record);
}

std::string report_line(const std::string& split, size_t size, const data::ReadReport& report) {
  std::ostringstream line;
  line << "  " << split << ": " << size << " examples (" << report.summary() << ")";
  for (const auto& message : report.first_errors) line << "\n    skipped: " << message;
  return line.str();
}

}  // namespace

std::string find_task_folder(const std::string& task, const std::string& data_dir) {
  const TaskLayout layout = layout_of(task);
  const fs::path root(data_dir);
  if (holds_markers(root, layout.markers)) return root.string();
  for (const auto& sub : layout.subfolders)
    if (holds_markers(root / sub, layout.markers)) return (root / sub).string();
  return "";
}

std::string generated_task_folder(const std::string& task, const std::string& data_dir) {
  return (fs::path(data_dir) / layout_of(task).subfolders.front()).string();
}

TaskData load_task_data(const RunConfig& c, const std::function<void(const std::string&)>& log) {
  TaskData out;
  std::string folder = find_task_folder(c.task, c.data_dir);
  if (c.generate) {
    const nlohmann::json wanted = requested_record(c);
    nlohmann::json found = folder.empty() ? nlohmann::json(nullptr) : read_record(folder);
    if (folder.empty() || (found.is_object() && !found.value("complete", false))) {
      folder = folder.empty() ? generated_task_folder(c.task, c.data_dir) : folder;
      generate(c, folder, wanted, log);
    } else if (found.is_object()) {
      LUNA_CHECK(found == wanted, "train_lra: ", folder, " holds data generated with ", found.dump(),
                 " but this run asks for ", wanted.dump(), "; delete that folder or choose another --data");
      log("using the data generated earlier in " + folder);
    } else {
      log("--generate: " + folder + " already holds data (not generated by train_lra); using it as is");
    }
  } else {
    const TaskLayout layout = layout_of(c.task);
    std::string looked;
    for (const auto& sub : layout.subfolders) looked += ", " + (fs::path(c.data_dir) / sub).string();
    LUNA_CHECK(!folder.empty(), "train_lra: no ", c.task, " data in --data ", c.data_dir, " (looked for ",
               layout.markers.front(), " in ", c.data_dir, looked,
               "); pass the release root or the task's folder",
               c.task == "listops" || c.task == "pathfinder" || c.task == "pathx" ? ", or add --generate" : "");
  }
  out.folder = folder;
  const nlohmann::json record = read_record(folder);
  out.data_source = record.is_object() && record.value("complete", false) ? "generated" : "official";

  const bool image_like = c.task == "image" || c.task == "pathfinder" || c.task == "pathx" || c.task == "fmnist";
  data::ReadOptions options;
  options.add_cls = c.pooling == "cls";
  // Image tasks count pixels (the readers add one for CLS so no pixel is cut); the others count CLS too.
  options.max_len = image_like && options.add_cls ? c.max_len + 1 : c.max_len;
  options.skip_bad_records = c.skip_bad_records;
  auto read_options = [&](int64_t cap) {
    data::ReadOptions o = options;
    o.max_examples = cap;
    return o;
  };
  using data::Split;
  log("reading " + c.task + " from " + folder);
  if (c.task == "retrieval") {
    out.pairs = true;
    out.train_pairs = data::read_aan_split(folder, Split::train, read_options(c.train_examples));
    out.dev_pairs = data::read_aan_split(folder, Split::dev, read_options(c.dev_examples));
    out.test_pairs = data::read_aan_split(folder, Split::test, read_options(c.test_examples));
    log(report_line("train", out.train_pairs.size(), out.train_pairs.report));
    log(report_line("dev", out.dev_pairs.size(), out.dev_pairs.report));
    log(report_line("test", out.test_pairs.size(), out.test_pairs.report));
  } else {
    auto read = [&](Split split, int64_t cap) {
      const data::ReadOptions o = read_options(cap);
      if (c.task == "listops") return data::read_listops_split(folder, split, o);
      if (c.task == "text") return data::read_imdb(folder, split, o);
      if (c.task == "image") return data::read_cifar10(folder, split, o);
      if (c.task == "fmnist") return data::read_fashion_mnist(folder, split, o);
      return data::read_pathfinder(folder, split, o);
    };
    out.train = read(Split::train, c.train_examples);
    out.dev = read(Split::dev, c.dev_examples);
    out.test = read(Split::test, c.test_examples);
    log(report_line("train", out.train.size(), out.train.report));
    log(report_line("dev", out.dev.size(), out.dev.report));
    log(report_line("test", out.test.size(), out.test.report));
    if (c.task == "text") out.note = "IMDB has no dev split: dev is the test set, as in LRA";
  }
  LUNA_CHECK(out.train_size() > 0 && out.dev_size() > 0 && out.test_size() > 0, "train_lra: ", folder,
             " gave an empty split (train ", out.train_size(), ", dev ", out.dev_size(), ", test ", out.test_size(),
             " examples)");
  return out;
}

}  // namespace luna::train_lra
