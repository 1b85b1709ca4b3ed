// Finds (or generates) a task's data under --data and reads its three splits with the data/ readers.
#pragma once
#include <cstdint>
#include <functional>
#include <string>

#include <luna/data/dataset.h>

#include "config.h"

namespace luna::train_lra {

struct TaskData {
  bool pairs = false;  // retrieval: the *_pairs members are used, otherwise the single ones
  data::ClassificationExamples train, dev, test;
  data::PairExamples train_pairs, dev_pairs, test_pairs;
  std::string folder;       // the task folder that was read
  std::string data_source;  // "generated" (luna's generator wrote it) | "official" (anything else)
  std::string note;         // e.g. "IMDB: dev is the test set (as LRA)"

  int64_t num_classes() const { return pairs ? train_pairs.num_classes : train.num_classes; }
  const data::Vocabulary& vocabulary() const { return pairs ? train_pairs.vocabulary : train.vocabulary; }
  int64_t max_len() const { return pairs ? train_pairs.max_len : train.max_len; }
  size_t train_size() const { return pairs ? train_pairs.size() : train.size(); }
  size_t dev_size() const { return pairs ? dev_pairs.size() : dev.size(); }
  size_t test_size() const { return pairs ? test_pairs.size() : test.size(); }
  std::vector<int64_t> train_histogram() const { return pairs ? train_pairs.label_histogram() : train.label_histogram(); }
  const std::vector<int64_t>& dev_labels() const { return pairs ? dev_pairs.labels : dev.labels; }
  const std::vector<int64_t>& test_labels() const { return pairs ? test_pairs.labels : test.labels; }
};

// Where the task's files live below `data_dir`: the folder itself when it holds them, else the
// release layout (listops-1000/, tsv_data/, pathfinder32/curv_contour_length_14/, ...). Returns
// "" when neither exists.
std::string find_task_folder(const std::string& task, const std::string& data_dir);

// The folder --generate writes: data_dir/<release sub-folder of the task>.
std::string generated_task_folder(const std::string& task, const std::string& data_dir);

// Generates the data when config.generate and it is absent, then reads train/dev/test. Messages
// (what is read or generated, generator progress) go to `log`. Errors name the folder and what
// was looked for.
TaskData load_task_data(const RunConfig& config, const std::function<void(const std::string&)>& log);

}  // namespace luna::train_lra
