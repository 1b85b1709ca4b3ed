// Training and evaluating a ViT image classifier for train_vit and convert_vit: the three splits of
// an image source, batches in a seeded per-epoch order that is a pure function of (seed, step) (so
// a resumed run sees the same batches), evaluation, and the training loop with a progress bar,
// metrics.jsonl, curves.svg, dev evaluations, and a train-state checkpoint written atomically at
// each evaluation and on Ctrl-C.
#pragma once
#include <cstdint>
#include <functional>
#include <string>

#include <nlohmann/json.hpp>

#include <luna/core/device.h>
#include <luna/data/images.h>
#include <luna/models/vit.h>
#include <luna/models/vit_image_processor.h>

namespace luna::apps {

struct ImageSplits {
  data::ImageClassificationSet train, dev, test;
};

struct ImageDataOptions {
  std::string spec;         // data::load_image_set's spec: fmnist | cifar10:DIR | imagefolder:DIR
  int64_t image_size = 0;   // the model's (processor's) side
  int64_t channels = 0;     // the model's num_channels
  int64_t max_train = 0;    // caps (0 = all)
  int64_t max_eval = 0;     // caps dev and test (0 = all)
  uint64_t split_seed = 0;  // image folders without train/
  bool skip_bad_records = false;
};

// Reads the three splits, printing one line per split through `say`.
ImageSplits load_image_splits(const ImageDataOptions& options, const std::function<void(const std::string&)>& say);

// The train batch of step `step` (0-based): epochs are seeded permutations of the training set
// (Philox stream (seed, epoch)), cut into floor(N / batch) batches (the remainder is dropped so
// every step sees `batch` images; a set smaller than a batch is one batch).
struct ImageBatch {
  Tensor images;  // uint8 (B, C, S, S)
  Tensor labels;  // int64 (B)
  int64_t epoch = 0;
};
ImageBatch training_batch(const data::ImageClassificationSet& train, int64_t batch_size, uint64_t seed, int64_t step);

struct ImageEvaluation {
  double loss = 0;      // mean cross-entropy
  double accuracy = 0;  // top-1
  int64_t examples = 0;
};
// The model in eval mode, without gradient, over the whole set in batches; the model's train/eval
// mode is restored afterwards.
ImageEvaluation evaluate_images(const models::ViTForImageClassificationImpl& model,
                                const data::ImageClassificationSet& set, const models::ViTImageProcessor& processor,
                                int64_t batch_size, Device device);

struct ImageTrainOptions {
  int64_t steps = 1000;
  int64_t batch_size = 64;
  int64_t eval_batch_size = 256;
  double lr = 1e-3;
  int64_t warmup = 0;
  std::string schedule = "cosine";  // cosine | linear | constant (after the linear warmup)
  double weight_decay = 0.0;
  double clip_norm = 0.0;  // 0 = none
  uint64_t seed = 0;       // batch order (dropout uses the default generator, seeded by the caller)
  int64_t eval_every = 200;
  int64_t log_every = 20;
  bool progress_bar = false;
  Device device = Device::cpu();
  std::string out_dir;      // metrics.jsonl, checkpoint.safetensors, curves.svg
  std::string program;      // prefixes messages
  std::string title;        // of curves.svg
  nlohmann::json settings;  // stored in the checkpoint; --resume must repeat them
  bool resume = false;      // continue from out_dir/checkpoint.safetensors
  int64_t stop_after = 0;   // > 0: stop after this step with a checkpoint, as Ctrl-C does
};

struct ImageTrainResult {
  int64_t steps_done = 0;
  int stop_signal = 0;  // SIGINT / SIGTERM received (checkpoint saved), else 0
  bool stopped_after = false;  // stopped at options.stop_after (checkpoint saved)
  double best_dev_accuracy = -1;
  double best_dev_loss = 0;
  int64_t best_step = -1;
  double train_seconds = 0;  // summed over every process of the run
  double eval_seconds = 0;
  int64_t images_seen = 0;
  double images_per_second() const { return train_seconds > 0 ? double(images_seen) / train_seconds : 0.0; }
};

// The training settings' own consistency (positive steps and batch, warmup within the steps), an
// error naming the flags otherwise. train_image_classifier checks it, and the apps call it before
// they read any data, so a bad combination fails at once rather than after the first evaluations.
void check_train_options(const ImageTrainOptions& options);

// Trains the parameters of `model` that require grad with AdamW (weight decay on matrices only,
// as is usual for transformers) and cross-entropy. Every eval_every steps (and at the last) it
// evaluates on dev; a better dev accuracy calls on_best(step) (the caller saves the weights) and
// the train state is saved so that `resume` continues bit-exactly. Returns after the last step,
// after stop_after (checkpoint saved, stopped_after set) or after Ctrl-C / SIGTERM (checkpoint
// saved, stop_signal set).
ImageTrainResult train_image_classifier(models::ViTForImageClassification& model, const ImageSplits& data,
                                        const models::ViTImageProcessor& processor, const ImageTrainOptions& options,
                                        const std::function<void(int64_t step)>& on_best);

}  // namespace luna::apps
