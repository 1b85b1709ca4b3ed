// The command-line flags train_vit and convert_vit share: the training loop (steps, batch, lr,
// schedule, ...), the data caps and the run control (threads, device, out, resume, ...), parsed by
// CLI11 into one struct that also fills the options of image_trainer.h.
#pragma once
#include <cstdint>
#include <string>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "image_trainer.h"

namespace luna::apps {

struct ImageRunFlags {
  int64_t steps = 1000;
  int64_t batch = 64;
  double lr = 1e-3;
  int64_t warmup = 0;
  std::string schedule = "cosine";
  double weight_decay = 0.0;
  double clip_norm = 1.0;
  uint64_t seed = 0;
  int threads = 0;
  std::string device = "cpu";
  std::string out_dir;
  int64_t eval_every = 100;
  int64_t log_every = 20;
  int64_t max_train = 0;
  int64_t max_eval = 0;
  bool skip_bad_records = false;
  std::string progress = "auto";
  bool resume = false;
  int64_t stop_after = 0;

  // Registers every flag on `app`, the current values shown as defaults. `seed_help` and
  // `out_help` say what the seed seeds and where --out defaults to in this program.
  void add_to(CLI::App& app, const std::string& seed_help, const std::string& out_help);
  // The values a --resume must repeat (threads, device, progress, logging and the run control may
  // change).
  nlohmann::json training_json() const;
  // image_trainer's options from these flags; the caller adds out_dir's files' title and settings.
  ImageTrainOptions train_options(Device device, const std::string& program) const;
  // load_image_splits' options for `spec` at the model's size and channels.
  ImageDataOptions data_options(const std::string& spec, int64_t image_size, int64_t channels) const;
};

}  // namespace luna::apps
