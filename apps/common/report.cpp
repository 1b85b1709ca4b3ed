// Progress bar, metrics.jsonl, curves.svg and atomic file writes for the training apps.
#include "report.h"

#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>

#include <luna/core/atomic_file.h>
#include <luna/core/error.h>

#include "run_util.h"
#include "svg.h"

namespace luna::apps {

std::string format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  const auto total = int64_t(std::llround(seconds));
  char buffer[32];
  if (total >= 3600) {
    std::snprintf(buffer, sizeof buffer, "%lldh%02lldm", (long long)(total / 3600), (long long)(total % 3600 / 60));
  } else if (total >= 60) {
    std::snprintf(buffer, sizeof buffer, "%lldm%02llds", (long long)(total / 60), (long long)(total % 60));
  } else {
    std::snprintf(buffer, sizeof buffer, "%llds", (long long)total);
  }
  return buffer;
}

Progress::Progress(int64_t total_steps, bool bar, std::FILE* out, std::string rate_unit)
    : total_(total_steps), bar_(bar), out_(out), rate_unit_(std::move(rate_unit)) {}

void Progress::update(int64_t step, double loss, double accuracy, double rate, double eta_seconds) {
  if (!bar_) return;
  const auto now = std::chrono::steady_clock::now();
  if (step < total_ && now - last_draw_ < std::chrono::milliseconds(100)) return;
  last_draw_ = now;
  constexpr int kWidth = 24;
  const double fraction = total_ > 0 ? double(step) / double(total_) : 1.0;
  const int filled = int(fraction * kWidth);
  std::string bar(size_t(filled), '=');
  if (filled < kWidth) bar += '>' + std::string(size_t(kWidth - filled - 1), ' ');
  char text[256];
  std::snprintf(text, sizeof text, "step %lld/%lld [%s] loss %.4f acc %.3f | %.0f %s | ETA %s", (long long)step,
                (long long)total_, bar.c_str(), loss, accuracy, rate, rate_unit_.c_str(),
                format_duration(eta_seconds).c_str());
  last_bar_ = text;
  draw();
}

void Progress::draw() {
  std::fprintf(out_, "\r\033[K%s", last_bar_.c_str());
  std::fflush(out_);
  bar_visible_ = true;
}

void Progress::line(const std::string& text) {
  if (bar_ && bar_visible_) std::fprintf(out_, "\r\033[K");
  std::fprintf(out_, "%s\n", text.c_str());
  if (bar_ && bar_visible_) draw();
  std::fflush(out_);
}

void Progress::finish() {
  if (bar_ && bar_visible_) std::fprintf(out_, "\n");
  bar_visible_ = false;
  std::fflush(out_);
}

void LogWindow::add(double loss, int64_t correct, int64_t examples, int64_t units, double seconds) {
  loss_sum_ += loss, correct_ += double(correct), seconds_ += seconds;
  ++steps_, examples_ += examples, units_ += units;
}

double LogWindow::mean_loss() const { return loss_sum_ / double(steps_); }
double LogWindow::accuracy() const { return correct_ / double(examples_); }
double LogWindow::rate() const { return seconds_ > 0 ? double(units_) / seconds_ : 0.0; }

nlohmann::json log_record(const StepLog& log, const LogWindow& window, const std::string& rate_key) {
  return {{"step", log.step},
          {"epoch", log.epoch},
          {"loss", log.loss},
          {"accuracy", log.batch_accuracy},
          {"loss_avg", window.mean_loss()},
          {"accuracy_avg", window.accuracy()},
          {"lr", log.lr},
          {rate_key, window.rate()},
          {"train_seconds", log.train_seconds}};
}

std::string log_line(const StepLog& log, const LogWindow& window, const std::string& rate_unit) {
  char text[256];
  std::snprintf(text, sizeof text, "step %lld/%lld loss %.4f acc %.3f lr %.3g | %.0f %s | ETA %s", (long long)log.step,
                (long long)log.total_steps, window.mean_loss(), window.accuracy(), log.lr, window.rate(),
                rate_unit.c_str(), format_duration(log.eta_seconds).c_str());
  return text;
}

std::string eval_line(int64_t step, double dev_loss, double dev_accuracy, double best_accuracy, int64_t best_step) {
  char text[256];
  std::snprintf(text, sizeof text, "eval step %lld: dev loss %.4f acc %s (best %s at step %lld)", (long long)step,
                dev_loss, percent(dev_accuracy).c_str(), percent(best_accuracy).c_str(), (long long)best_step);
  return text;
}

MetricsLog::MetricsLog(const std::string& path, bool resume, int64_t resume_step) : path_(path) {
  std::string kept;
  if (resume && std::filesystem::exists(path)) {
    for (const auto& record : read_metrics(path))
      if (record.value("step", int64_t(0)) <= resume_step) kept += record.dump() + "\n";
  }
  write_file_atomically(path, kept);
}

void MetricsLog::write(const nlohmann::json& record) {
  std::ofstream out(path_, std::ios::app);
  out << record.dump() << "\n";
  LUNA_CHECK(out.good(), "cannot append to ", path_);
}

std::vector<nlohmann::json> read_metrics(const std::string& path) {
  std::ifstream in(path);
  LUNA_CHECK(in.good(), "cannot read ", path);
  std::vector<nlohmann::json> out;
  std::string line;
  for (int64_t number = 1; std::getline(in, line); ++number) {
    if (line.empty()) continue;
    try {
      out.push_back(nlohmann::json::parse(line));
    } catch (const nlohmann::json::exception& e) {
      LUNA_FAIL(path, " line ", number, " is not JSON (", e.what(), ")");
    }
  }
  return out;
}

std::string render_curves_svg(const std::vector<nlohmann::json>& metrics, const std::string& title,
                              double majority_class_accuracy) {
  Series train_loss{"train (window mean)", {}, {}, "#1f77b4"};
  Series dev_loss{"dev", {}, {}, "#d62728", false, true};
  Series train_accuracy{"train (window mean)", {}, {}, "#1f77b4"};
  Series dev_accuracy{"dev", {}, {}, "#d62728", false, true};
  for (const auto& record : metrics) {
    const double step = record.value("step", 0.0);
    if (record.contains("loss_avg")) {
      train_loss.x.push_back(step);
      train_loss.y.push_back(record["loss_avg"].get<double>());
      train_accuracy.x.push_back(step);
      train_accuracy.y.push_back(record.value("accuracy_avg", std::numeric_limits<double>::quiet_NaN()));
    }
    if (record.contains("dev_accuracy")) {
      dev_loss.x.push_back(step);
      dev_loss.y.push_back(record.value("dev_loss", std::numeric_limits<double>::quiet_NaN()));
      dev_accuracy.x.push_back(step);
      dev_accuracy.y.push_back(record["dev_accuracy"].get<double>());
    }
  }
  Panel loss{"loss", "step", "cross-entropy", {train_loss, dev_loss}, std::nullopt, std::nullopt, std::nullopt};
  Panel accuracy{"accuracy", "step", "accuracy", {train_accuracy, dev_accuracy}, std::nullopt, 0.0, 1.0};
  if (!train_accuracy.x.empty() && std::isfinite(majority_class_accuracy)) {
    const double first = train_accuracy.x.front(), last = train_accuracy.x.back();
    accuracy.series.push_back(Series{"majority class", {first, last}, {majority_class_accuracy, majority_class_accuracy},
                                     "#7f7f7f", true});
  }
  return render_svg(title, {loss, accuracy}, 2);
}

void write_file_atomically(const std::string& path, const std::string& text) { luna::write_file_atomically(path, text); }

}  // namespace luna::apps
