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

// The averages a training app logs: loss and accuracy over the steps since the last log line, and
// the throughput in `units` (tokens or images) per second of training time over those steps.
class LogWindow {
 public:
  // One training step: its loss, the correct predictions among its `examples`, the tokens or
  // images it processed, and its wall time.
  void add(double loss, int64_t correct, int64_t examples, int64_t units, double seconds);
  double mean_loss() const;
  double accuracy() const;
  double rate() const;  // units per second; 0 before any timed step
  // Starts a new window (after a log line).
  void reset() { *this = LogWindow(); }

 private:
  double loss_sum_ = 0, correct_ = 0, seconds_ = 0;
  int64_t steps_ = 0, examples_ = 0, units_ = 0;
};

// What a logged training step writes, beside the window's averages.
struct StepLog {
  int64_t step = 0, total_steps = 0, epoch = 0;
  double loss = 0;            // of this step's batch
  double batch_accuracy = 0;  // of this step's batch
  double lr = 0;              // the rate this step used
  double train_seconds = 0;   // the run's training time so far
  double eta_seconds = 0;
};

// The metrics.jsonl object of a logged step: step, epoch, loss, accuracy, loss_avg, accuracy_avg,
// lr, <rate_key> (the window's rate) and train_seconds.
nlohmann::json log_record(const StepLog& log, const LogWindow& window, const std::string& rate_key);
// "step 120/5000 loss 2.2901 acc 0.181 lr 1.2e-05 | 30123 tok/s | ETA 1h02m"
std::string log_line(const StepLog& log, const LogWindow& window, const std::string& rate_unit);

// "eval step 250: dev loss 2.2508 acc 17.80% (best 17.80% at step 250)"
std::string eval_line(int64_t step, double dev_loss, double dev_accuracy, double best_accuracy, int64_t best_step);

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
