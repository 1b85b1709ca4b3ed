// ImageRunFlags: the shared flags of train_vit and convert_vit.
#include "image_flags.h"

#include <unistd.h>

#include <cstdio>

namespace luna::apps {

void ImageRunFlags::add_to(CLI::App& app, const std::string& seed_help, const std::string& out_help) {
  app.add_option("--steps", steps, "optimizer steps")->check(CLI::PositiveNumber);
  app.add_option("--batch", batch, "batch size")->check(CLI::PositiveNumber);
  app.add_option("--lr", lr, "peak learning rate (AdamW)")->check(CLI::PositiveNumber);
  app.add_option("--warmup", warmup, "linear warmup steps")->check(CLI::NonNegativeNumber);
  app.add_option("--schedule", schedule, "after the warmup: cosine | linear | constant")
      ->check(CLI::IsMember({"cosine", "linear", "constant"}));
  app.add_option("--weight-decay", weight_decay, "decoupled weight decay (not on biases and norms)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--clip-norm", clip_norm, "clip the gradient norm to this (0 = off)")->check(CLI::NonNegativeNumber);
  app.add_option("--seed", seed, seed_help);
  app.add_option("--threads", threads, "CPU threads (0 = LUNA_NUM_THREADS or every core)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--device", device, "cpu | cuda[:N]");
  app.add_option("--out", out_dir, out_help);
  app.add_option("--eval-every", eval_every, "evaluate on dev (and checkpoint) every this many steps")
      ->check(CLI::PositiveNumber);
  app.add_option("--log-every", log_every, "write a metrics line every this many steps")->check(CLI::PositiveNumber);
  app.add_option("--max-train-examples", max_train, "use at most this many training images (0 = all)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--max-eval-examples", max_eval, "use at most this many dev and test images (0 = all)")
      ->check(CLI::NonNegativeNumber);
  app.add_flag("--skip-bad-records", skip_bad_records, "skip unreadable images (counted) instead of stopping");
  app.add_option("--progress", progress, "auto (a bar on a terminal) | bar | lines")
      ->check(CLI::IsMember({"auto", "bar", "lines"}));
  app.add_option("--stop-after", stop_after, "stop after this step with a checkpoint, as Ctrl-C does (0 = off)")
      ->check(CLI::NonNegativeNumber);
  app.add_flag("--resume", resume, "continue the run in --out from its checkpoint (bit-exact)");
}

nlohmann::json ImageRunFlags::training_json() const {
  return {{"steps", steps},         {"batch", batch},         {"lr", lr},
          {"warmup", warmup},       {"schedule", schedule},   {"weight_decay", weight_decay},
          {"clip_norm", clip_norm}, {"seed", seed},           {"max_train", max_train},
          {"max_eval", max_eval},   {"eval_every", eval_every}};
}

ImageTrainOptions ImageRunFlags::train_options(Device device, const std::string& program) const {
  ImageTrainOptions o;
  o.steps = steps;
  o.batch_size = batch;
  o.lr = lr;
  o.warmup = warmup;
  o.schedule = schedule;
  o.weight_decay = weight_decay;
  o.clip_norm = clip_norm;
  o.seed = seed;
  o.eval_every = eval_every;
  o.log_every = log_every;
  o.progress_bar = progress == "bar" || (progress == "auto" && isatty(fileno(stdout)));
  o.device = device;
  o.out_dir = out_dir;
  o.program = program;
  o.resume = resume;
  o.stop_after = stop_after;
  return o;
}

ImageDataOptions ImageRunFlags::data_options(const std::string& spec, int64_t image_size, int64_t channels) const {
  ImageDataOptions o;
  o.spec = spec;
  o.image_size = image_size;
  o.channels = channels;
  o.max_train = max_train;
  o.max_eval = max_eval;
  o.split_seed = seed;
  o.skip_bad_records = skip_bad_records;
  return o;
}

}  // namespace luna::apps
