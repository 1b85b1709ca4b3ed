// The ViT image-classification loop shared by train_vit and convert_vit: data splits, seeded
// batches, evaluation, training with dev evaluations, checkpoints, resume and Ctrl-C.
#include "image_trainer.h"

#include <signal.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>

#include <luna/autograd/grad_mode.h>
#include <luna/core/allocator.h>
#include <luna/core/error.h>
#include <luna/core/generator.h>
#include <luna/core/safetensors.h>
#include <luna/nn/optim.h>
#include <luna/nn/train_state.h>
#include <luna/ops/factories.h>
#include <luna/ops/nn_functional.h>
#include <luna/ops/reduce.h>

#include "report.h"
#include "run_util.h"

namespace luna::apps {

namespace {

using nlohmann::json;
namespace fs = std::filesystem;

constexpr const char* kCheckpoint = "checkpoint.safetensors";
constexpr const char* kMetrics = "metrics.jsonl";
constexpr const char* kCurves = "curves.svg";

// Rows `indices` of a contiguous uint8 image tensor (N, C, S, S) -> (B, C, S, S).
Tensor select_images(const Tensor& images, const std::vector<int64_t>& indices) {
  const Tensor source = images.contiguous();
  const int64_t per_image = source.numel() / source.size(0);
  Tensor out = empty({int64_t(indices.size()), source.size(1), source.size(2), source.size(3)}, TensorOptions(kUInt8));
  const uint8_t* from = source.data_ptr<uint8_t>();
  uint8_t* to = out.data_ptr<uint8_t>();
  for (size_t i = 0; i < indices.size(); ++i)
    std::memcpy(to + int64_t(i) * per_image, from + indices[i] * per_image, size_t(per_image));
  return out;
}

Tensor select_labels(const Tensor& labels, const std::vector<int64_t>& indices) {
  const Tensor source = labels.contiguous();
  const int64_t* from = source.data_ptr<int64_t>();
  std::vector<int64_t> picked;
  picked.reserve(indices.size());
  for (int64_t i : indices) picked.push_back(from[i]);
  return tensor(picked, {int64_t(picked.size())});
}

// The rows [begin, end) of a set as (images, labels).
std::pair<Tensor, Tensor> slice_rows(const data::ImageClassificationSet& set, int64_t begin, int64_t end) {
  return {set.images.narrow(0, begin, end - begin), set.labels.narrow(0, begin, end - begin)};
}

int64_t count_correct(const Tensor& logits, const Tensor& labels) {
  return logits.argmax(1).eq(labels).to(kInt64).sum().item<int64_t>();
}

struct Progression {
  double best_dev_accuracy = -1;
  double best_dev_loss = 0;
  int64_t best_step = -1;
  double train_seconds = 0;
  double eval_seconds = 0;
  int64_t images_seen = 0;

  json to_json() const {
    return {{"best_dev_accuracy", best_dev_accuracy}, {"best_dev_loss", best_dev_loss}, {"best_step", best_step},
            {"train_seconds", train_seconds},         {"eval_seconds", eval_seconds},   {"images_seen", images_seen}};
  }
  static Progression from_json(const json& j) {
    Progression p;
    p.best_dev_accuracy = j.at("best_dev_accuracy");
    p.best_dev_loss = j.at("best_dev_loss");
    p.best_step = j.at("best_step");
    p.train_seconds = j.at("train_seconds");
    p.eval_seconds = j.at("eval_seconds");
    p.images_seen = j.at("images_seen");
    return p;
  }
};

// The settings that differ between a checkpoint and this run, as "key: saved -> now" lines.
std::vector<std::string> differences(const json& saved, const json& now) {
  std::vector<std::string> out;
  for (const auto& [key, value] : now.items()) {
    if (!saved.contains(key)) out.push_back(key + ": (absent) -> " + value.dump());
    else if (saved[key] != value) out.push_back(key + ": " + saved[key].dump() + " -> " + value.dump());
  }
  for (const auto& [key, value] : saved.items())
    if (!now.contains(key)) out.push_back(key + ": " + value.dump() + " -> (absent)");
  return out;
}

std::unique_ptr<optim::LRScheduler> make_scheduler(optim::Optimizer& optimizer, const ImageTrainOptions& o) {
  if (o.schedule == "cosine") return std::make_unique<optim::LinearWarmupCosineDecay>(optimizer, o.warmup, o.steps);
  if (o.schedule == "linear") return std::make_unique<optim::LinearWarmupLinearDecay>(optimizer, o.warmup, o.steps);
  LUNA_CHECK(o.schedule == "constant", o.program, ": --schedule must be cosine, linear or constant, got '", o.schedule,
             "'");
  // Linear warmup, then constant: a cosine "decay" over an infinite horizon.
  return std::make_unique<optim::LinearWarmupCosineDecay>(optimizer, o.warmup, int64_t(1) << 60);
}

}  // namespace

ImageSplits load_image_splits(const ImageDataOptions& options, const std::function<void(const std::string&)>& say) {
  ImageSplits splits;
  data::ImageSetOptions read;
  read.image_size = options.image_size;
  read.channels = options.channels;
  read.split_seed = options.split_seed;
  read.skip_bad_records = options.skip_bad_records;
  const std::pair<data::Split, data::ImageClassificationSet*> parts[] = {
      {data::Split::train, &splits.train}, {data::Split::dev, &splits.dev}, {data::Split::test, &splits.test}};
  for (const auto& [split, set] : parts) {
    read.max_examples = split == data::Split::train ? options.max_train : options.max_eval;
    *set = data::load_image_set(options.spec, split, read);
    LUNA_CHECK(set->size() > 0, options.spec, ": the ", data::split_name(split), " split is empty");
    say(std::string("  ") + data::split_name(split) + ": " + std::to_string(set->size()) + " images " +
        std::to_string(set->images.size(1)) + "x" + std::to_string(set->images.size(2)) + "x" +
        std::to_string(set->images.size(3)) + " (" + set->report.summary() + ")");
  }
  for (const std::string& error : splits.train.report.first_errors) say("  skipped: " + error);
  return splits;
}

ImageBatch training_batch(const data::ImageClassificationSet& train, int64_t batch_size, uint64_t seed, int64_t step) {
  const int64_t n = train.size();
  LUNA_CHECK(n > 0 && batch_size > 0, "training_batch: needs images and a positive batch size, got ", n, " and ",
             batch_size);
  const int64_t batch = std::min(batch_size, n);
  const int64_t per_epoch = n / batch;
  ImageBatch out;
  out.epoch = step / per_epoch;
  const int64_t index_in_epoch = step % per_epoch;
  // One Philox stream per epoch: (seed, epoch << 32) never overlaps another epoch's counters.
  Generator order(seed);
  order.set_state({seed, uint64_t(out.epoch) << 32});
  const Tensor permutation = randperm(n, &order);  // int64 (N)
  const int64_t* p = permutation.data_ptr<int64_t>();
  const std::vector<int64_t> indices(p + index_in_epoch * batch, p + (index_in_epoch + 1) * batch);
  out.images = select_images(train.images, indices);
  out.labels = select_labels(train.labels, indices);
  return out;
}

ImageEvaluation evaluate_images(const models::ViTForImageClassificationImpl& model,
                                const data::ImageClassificationSet& set, const models::ViTImageProcessor& processor,
                                int64_t batch_size, Device device) {
  NoGradGuard no_grad;
  auto& mutable_model = const_cast<models::ViTForImageClassificationImpl&>(model);  // train/eval flag only
  const bool was_training = model.is_training();
  mutable_model.eval();
  ImageEvaluation result;
  double loss_sum = 0;
  int64_t correct = 0;
  CrossEntropyOptions sum;
  sum.reduction = "sum";
  for (int64_t begin = 0; begin < set.size(); begin += batch_size) {
    const auto [images, labels] = slice_rows(set, begin, std::min(set.size(), begin + batch_size));
    const Tensor logits = model.forward(processor.normalize(images).to(device));  // (B, classes)
    const Tensor target = labels.to(device);                                       // (B)
    loss_sum += cross_entropy(logits, target, sum).item<double>();
    correct += count_correct(logits, target);
    result.examples += images.size(0);
  }
  mutable_model.train(was_training);
  result.loss = result.examples > 0 ? loss_sum / double(result.examples) : 0.0;
  result.accuracy = result.examples > 0 ? double(correct) / double(result.examples) : 0.0;
  return result;
}

void check_train_options(const ImageTrainOptions& o) {
  LUNA_CHECK(o.steps > 0 && o.batch_size > 0 && o.eval_every > 0 && o.log_every > 0, o.program,
             ": steps, batch, eval-every and log-every must be positive");
  LUNA_CHECK(o.warmup >= 0 && (o.schedule == "constant" || o.warmup <= o.steps), o.program, ": --warmup (", o.warmup,
             ") must be in 0 .. --steps (", o.steps, ")");
}

ImageTrainResult train_image_classifier(models::ViTForImageClassification& model, const ImageSplits& data,
                                        const models::ViTImageProcessor& processor, const ImageTrainOptions& o,
                                        const std::function<void(int64_t step)>& on_best) {
  check_train_options(o);
  const fs::path out(o.out_dir);
  const std::string checkpoint_path = (out / kCheckpoint).string();
  nn::NamedTensors trainable;
  for (const auto& [name, parameter] : model->named_parameters())
    if (parameter.requires_grad()) trainable.emplace_back(name, parameter);
  LUNA_CHECK(!trainable.empty(), o.program, ": no parameter of the model requires grad; nothing to train");
  std::vector<Tensor> trainable_tensors;
  for (const auto& [name, parameter] : trainable) trainable_tensors.push_back(parameter);
  optim::AdamW optimizer(optim::param_groups_no_decay(trainable, o.weight_decay),
                         optim::AdamWOptions(o.lr).weight_decay(o.weight_decay));
  const std::unique_ptr<optim::LRScheduler> scheduler = make_scheduler(optimizer, o);

  int64_t step = 0;
  Progression progression;
  if (o.resume) {
    LUNA_CHECK(fs::exists(checkpoint_path), o.program, ": --resume: no ", kCheckpoint, " in ", o.out_dir,
               " to continue from; run without --resume to start a new run there");
    const auto metadata = load_safetensors_metadata(checkpoint_path);
    const json saved = metadata.count("config") ? json::parse(metadata.at("config"), nullptr, false) : json();
    LUNA_CHECK(saved.is_object() && saved.contains("settings"), o.program, ": ", checkpoint_path, " was not written by ",
               o.program);
    const auto changed = differences(saved["settings"], o.settings);
    if (!changed.empty()) {
      std::string list;
      for (const auto& d : changed) list += "\n  " + d;
      LUNA_FAIL(o.program, ": --resume: this command's settings differ from the checkpoint's in ", o.out_dir, ":", list,
                "\nrepeat the original command with --resume");
    }
    nn::TrainState state;
    nn::load_train_state(checkpoint_path, *model, &optimizer, state);
    step = state.step;
    progression = Progression::from_json(json::parse(state.data_cursor));
    scheduler->set_last_step(step);
    std::printf("resumed from %s at step %lld of %lld\n", checkpoint_path.c_str(), (long long)step, (long long)o.steps);
  }
  auto save_checkpoint = [&]() {
    nn::TrainState state;
    state.step = step;
    state.data_cursor = progression.to_json().dump();
    state.config = json{{"settings", o.settings}}.dump();
    nn::save_train_state(checkpoint_path, *model, &optimizer, state);
  };

  MetricsLog metrics((out / kMetrics).string(), o.resume, step);
  auto write_curves = [&]() {
    write_file_atomically((out / kCurves).string(),
                          render_curves_svg(read_metrics(metrics.path()), o.title, std::nan("")));
  };
  Progress progress(o.steps, o.progress_bar, stdout, "img/s");
  install_stop_handlers();
  const auto loop_start = Clock::now();
  const int64_t first_step = step;
  LogWindow window;
  while (step < o.steps && stop_signal() == 0) {
    const auto step_start = Clock::now();
    const ImageBatch batch = training_batch(data.train, o.batch_size, o.seed, step);
    model->train();
    optimizer.zero_grad();
    const Tensor logits = model->forward(processor.normalize(batch.images).to(o.device));  // (B, classes)
    const Tensor labels = batch.labels.to(o.device);                                        // (B)
    const Tensor loss = cross_entropy(logits, labels);
    loss.backward();
    if (o.clip_norm > 0) optim::clip_grad_norm_(trainable_tensors, o.clip_norm);
    const double lr = optimizer.lr();
    optimizer.step();
    scheduler->step();
    ++step;
    const double loss_value = loss.item<double>();
    LUNA_CHECK(std::isfinite(loss_value), o.program, ": the training loss became ", loss_value, " at step ", step,
               " (lr ", lr, "); lower --lr or set --clip-norm");
    const int64_t correct = count_correct(logits.detach(), labels);
    const double step_seconds = seconds_since(step_start);
    progression.train_seconds += step_seconds;
    progression.images_seen += batch.images.size(0);
    window.add(loss_value, correct, batch.images.size(0), batch.images.size(0), step_seconds);

    const double eta = seconds_since(loop_start) / double(step - first_step) * double(o.steps - step);
    progress.update(step, window.mean_loss(), window.accuracy(), window.rate(), eta);

    const bool eval_now = step % o.eval_every == 0 || step == o.steps;
    const bool stop_now = o.stop_after > 0 && step == o.stop_after && step < o.steps;
    if (!(step % o.log_every == 0 || eval_now || stop_now)) continue;
    const StepLog log{step, o.steps, batch.epoch, loss_value, double(correct) / double(batch.images.size(0)), lr,
                      progression.train_seconds, eta};
    json record = log_record(log, window, "images_per_second");
    if (!o.progress_bar) progress.line(log_line(log, window, "img/s"));
    window.reset();
    if (eval_now) {
      const auto eval_start = Clock::now();
      const ImageEvaluation dev = evaluate_images(*model, data.dev, processor, o.eval_batch_size, o.device);
      progression.eval_seconds += seconds_since(eval_start);
      record["dev_loss"] = dev.loss;
      record["dev_accuracy"] = dev.accuracy;
      if (dev.accuracy > progression.best_dev_accuracy) {
        progression.best_dev_accuracy = dev.accuracy;
        progression.best_dev_loss = dev.loss;
        progression.best_step = step;
        on_best(step);
      }
      progress.line(eval_line(step, dev.loss, dev.accuracy, progression.best_dev_accuracy, progression.best_step));
    }
    metrics.write(record);
    if (eval_now || stop_now) {
      save_checkpoint();
      write_curves();
    }
    if (stop_now) break;
  }
  progress.finish();

  ImageTrainResult result;
  result.steps_done = step;
  result.best_dev_accuracy = progression.best_dev_accuracy;
  result.best_dev_loss = progression.best_dev_loss;
  result.best_step = progression.best_step;
  result.train_seconds = progression.train_seconds;
  result.eval_seconds = progression.eval_seconds;
  result.images_seen = progression.images_seen;
  if (o.stop_after > 0 && step == o.stop_after && step < o.steps) {
    result.stopped_after = true;
    std::printf("stopped after step %lld of %lld (--stop-after); checkpoint saved to %s\n", (long long)step,
                (long long)o.steps, checkpoint_path.c_str());
    return result;
  }
  if (stop_signal() != 0 && step < o.steps) {
    save_checkpoint();
    write_curves();
    result.stop_signal = stop_signal();
    std::printf("interrupted (%s) after step %lld of %lld; checkpoint saved to %s\n"
                "resume with the same command plus --resume\n",
                result.stop_signal == SIGINT ? "SIGINT" : "SIGTERM", (long long)step, (long long)o.steps,
                checkpoint_path.c_str());
  }
  return result;
}

}  // namespace luna::apps
