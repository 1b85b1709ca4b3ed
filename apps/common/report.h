// What the training apps (train_lra, train_vit, convert_vit) show and write while they run: a
// progress bar on a terminal (plain lines otherwise), metrics.jsonl (one JSON object per logged
// step), curves.svg drawn from it, and files written atomically.
#pragma once
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace luna::apps {

// "1h02m", "4m05s", "12s".
std::string format_duration(double seconds);

class Progress {
 public:
  // bar = true: one line redrawn in place (a terminal); false: a line per update. rate_unit
  // labels the throughput ("tok/s", "img/s").
  Progress(int64_t total_steps, bool bar, std::FILE* out = stdout, std::string rate_unit = "tok/s");

  // A training step finished. With a bar it is redrawn (at most ~10 times a second); without,
  // nothing is printed (call line() at log steps). `rate` is in rate_unit.
  void update(int64_t step, double loss, double accuracy, double rate, double eta_seconds);
  // A line of its own (log lines, evaluations); the bar, if any, is redrawn below it.
  void line(const std::string& text);
  // Ends the bar's line.
  void finish();

 private:
  void draw();
  int64_t total_;
  bool bar_;
  std::FILE* out_;
  std::string rate_unit_;
  std::chrono::steady_clock::time_point last_draw_{};
  std::string last_bar_;
  bool bar_visible_ = false;
};

// metrics.jsonl in the run folder. A resumed run first drops the lines of steps after the
// checkpoint (they were written after it and will be recomputed), then appends.
class MetricsLog {
 public:
  MetricsLog(const std::string& path, bool resume, int64_t resume_step);
  void write(const nlohmann::json& record);
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// Every object of a metrics.jsonl file, in order (an error names a line that is not JSON).
std::vector<nlohmann::json> read_metrics(const std::string& path);

// curves.svg: training loss and accuracy (averages over each log window) with dev evaluations,
// and the majority-class rate as a dashed line (none when it is NaN).
std::string render_curves_svg(const std::vector<nlohmann::json>& metrics, const std::string& title,
                              double majority_class_accuracy);

// Writes `text` to `path` through a temporary file in the same folder, fsync and a rename, so
// readers never see half a file and an interruption keeps the previous version.
void write_file_atomically(const std::string& path, const std::string& text);

}  // namespace luna::apps
