// The training loop of train_lra and everything around it: model/optimizer/schedule set-up,
// evaluation, checkpoints and resume, SIGINT handling, and the run folder's files.
#include "trainer.h"

#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <sstream>

#include <nlohmann/json.hpp>

#include <luna/autograd/grad_mode.h>
#include <luna/core/allocator.h>
#include <luna/core/error.h>
#include <luna/core/generator.h>
#include <luna/core/safetensors.h>
#include <luna/core/threads.h>
#include <luna/data/batching.h>
#include <luna/models/lra_classifier.h>
#include <luna/nn/optim.h>
#include <luna/nn/train_state.h>
#include <luna/ops/nn_functional.h>

#include "kernels.h"
#include "common/report.h"
#include "common/run_util.h"
#include "task_data.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace luna::train_lra {
using namespace luna::apps;  // NOLINT: the shared app helpers (apps/common)


namespace {

constexpr const char* kCheckpoint = "checkpoint.safetensors";
constexpr const char* kBest = "best.safetensors";
constexpr const char* kMetrics = "metrics.jsonl";
constexpr const char* kSummary = "summary.json";
constexpr const char* kCurves = "curves.svg";
constexpr const char* kKernels = "kernels.svg";
constexpr const char* kEval = "eval.json";
constexpr const char* kDevPredictions = "predictions_dev.tsv";
constexpr const char* kTestPredictions = "predictions_test.tsv";


// What the loop carries across a resume besides the model, optimizer, RNG and data cursor.
struct Progression {
  double best_dev_accuracy = -1.0;
  double best_dev_loss = 0.0;
  int64_t best_step = 0;
  double train_seconds = 0.0;  // time in training steps, summed over every process of the run
  double eval_seconds = 0.0;
  int64_t tokens_seen = 0;     // real (non-pad) tokens trained on
};

std::string cursor_json(const data::BatchCursor& cursor, const Progression& p) {
  return json{{"epoch", cursor.epoch},
              {"batch", cursor.batch},
              {"best_dev_accuracy", p.best_dev_accuracy},
              {"best_dev_loss", p.best_dev_loss},
              {"best_step", p.best_step},
              {"train_seconds", p.train_seconds},
              {"eval_seconds", p.eval_seconds},
              {"tokens_seen", p.tokens_seen}}
      .dump();
}

models::LraClassifier build_model(const RunConfig& c, const TaskData& data) {
  auto options = models::LraClassifierOptions(data.vocabulary().vocab_size, data.num_classes(), data.max_len())
                     .dim(c.dim)
                     .depth(c.layers)
                     .heads(c.heads)
                     .ffn_dim(c.ffn)
                     .head_hidden(c.head_hidden)
                     .dropout(c.dropout)
                     .attention(c.attention)
                     .luna(c.luna)
                     .performer_features(c.performer_features)
                     .performer_redraw_interval(c.performer_redraw)
                     .pooling(c.pooling)
                     .positions(c.positions)
                     .token_embedding_std(c.token_embedding_std)
                     .position_embedding_std(c.position_embedding_std)
                     .padding_idx(data.vocabulary().pad_id)
                     .dual(data.pairs)
                     .interaction(c.interaction);
  return models::LraClassifier(options);
}

Tensor forward(const models::LraClassifier& model, const data::Batch& batch, Device device) {
  if (batch.tokens2.defined()) return model->forward(batch.tokens.to(device), batch.tokens2.to(device));
  return model->forward(batch.tokens.to(device));
}

int64_t count_correct(const Tensor& logits, const Tensor& labels) {
  return logits.argmax(1).eq(labels).to(kInt64).sum().item<int64_t>();
}

struct EvalResult {
  double loss = 0, accuracy = 0;
  int64_t examples = 0;
};

// `predictions`, when given, receives each example's predicted class at its index in `examples`
// (batches may be reordered by length bucketing).
template <class Examples>
EvalResult evaluate(const models::LraClassifier& model, const Examples& examples, const RunConfig& c, Device device,
                    std::vector<int64_t>* predictions = nullptr) {
  NoGradGuard no_grad;
  model->eval();
  data::BatchOptions options;
  options.batch_size = c.batch;
  options.shuffle = false;
  options.drop_last = false;
  options.bucket_by_length = c.bucket_by_length;
  data::Batcher batcher(examples, options);
  EvalResult result;
  double loss_sum = 0;
  int64_t correct = 0;
  CrossEntropyOptions sum;
  sum.reduction = "sum";
  if (predictions) predictions->assign(examples.size(), -1);
  for (int64_t i = 0; i < batcher.batches_per_epoch(); ++i) {
    const data::Batch batch = batcher.next();
    const Tensor logits = forward(model, batch, device);  // (B, classes)
    const Tensor labels = batch.labels.to(device);        // (B)
    loss_sum += cross_entropy(logits, labels, sum).item<double>();
    correct += count_correct(logits, labels);
    if (predictions) {
      const Tensor predicted = logits.argmax(1).to(kCPU).contiguous();  // (B) int64
      for (int64_t row = 0; row < batch.size(); ++row)
        (*predictions)[batch.indices[size_t(row)]] = predicted.data_ptr<int64_t>()[row];
    }
    result.examples += batch.size();
  }
  model->train();
  result.loss = result.examples > 0 ? loss_sum / double(result.examples) : 0.0;
  result.accuracy = result.examples > 0 ? double(correct) / double(result.examples) : 0.0;
  return result;
}

EvalResult evaluate_split(const models::LraClassifier& model, const TaskData& data, data::Split split,
                          const RunConfig& c, Device device, std::vector<int64_t>* predictions = nullptr) {
  using data::Split;
  if (data.pairs)
    return evaluate(model, split == Split::dev ? data.dev_pairs : data.test_pairs, c, device, predictions);
  return evaluate(model, split == Split::dev ? data.dev : data.test, c, device, predictions);
}

// The most frequent train label and the share of test examples that carry it.
struct MajorityClass {
  int64_t label = 0;
  double test_accuracy = 0;
};

MajorityClass majority_class_of(const TaskData& data) {
  const auto train_histogram = data.train_histogram();
  MajorityClass majority;
  majority.label = int64_t(std::max_element(train_histogram.begin(), train_histogram.end()) - train_histogram.begin());
  int64_t hits = 0;
  for (int64_t label : data.test_labels()) hits += label == majority.label;
  majority.test_accuracy = double(hits) / double(data.test_labels().size());
  return majority;
}

// A --resume or --eval-only must repeat the settings of the run whose checkpoint it reads: the
// model built from different flags would not be the one trained (or not load at all).
void check_same_training(const std::string& checkpoint_path, const RunConfig& c, const std::string& flag,
                         const std::string& hint) {
  const auto metadata = load_safetensors_metadata(checkpoint_path);
  const auto saved = metadata.count("config") ? json::parse(metadata.at("config"), nullptr, false) : json();
  LUNA_CHECK(saved.is_object() && saved.contains("training"), "train_lra: ", checkpoint_path,
             " has no train_lra config; it was not written by train_lra");
  const auto differences = config_differences(saved["training"], c.training_json());
  if (differences.empty()) return;
  std::string list;
  for (const auto& d : differences) list += "\n  " + d;
  LUNA_FAIL("train_lra: ", flag, ": this command's settings differ from the checkpoint's in ", c.out_dir, ":", list,
            "\n", hint);
}

// One line per example in dataset order: its index, its label and the predicted class.
std::string predictions_tsv(const std::vector<int64_t>& labels, const std::vector<int64_t>& predictions) {
  std::ostringstream text;
  text << "index\tlabel\tprediction\n";
  for (size_t i = 0; i < labels.size(); ++i) text << i << '\t' << labels[i] << '\t' << predictions[i] << '\n';
  return text.str();
}

// The first dev batch's (first-document) tokens, for kernels.svg.
Tensor sample_tokens(const TaskData& data, const RunConfig& c) {
  data::BatchOptions options;
  options.batch_size = std::min<int64_t>(c.batch, 64);
  options.shuffle = false;
  options.prefetch = false;
  if (data.pairs) return data::Batcher(data.dev_pairs, options).next().tokens;
  return data::Batcher(data.dev, options).next().tokens;
}

// Length-bucketed batches have a different shape almost every step, and the caching allocator keeps
// a freed block of every size it has seen (up to 4 GiB), so the process would grow to gigabytes
// for a model that needs megabytes. Hand the cache back once it is twice the peak in use.
void trim_allocator_cache(Device device) {
  const AllocatorStats stats = memory_stats(device);
  if (stats.bytes_cached > std::max<uint64_t>(uint64_t(256) << 20, 2 * stats.peak_bytes_in_use)) empty_cache(device);
}

}  // namespace

int run_training(const RunConfig& c) {
  const auto wall_start = Clock::now();
  if (c.threads > 0) set_num_threads(c.threads);
  const Device device = parse_device(c.device, "train_lra");
  const fs::path out(c.out_dir);
  const std::string checkpoint_path = (out / kCheckpoint).string();
  std::error_code fs_error;
  fs::create_directories(out, fs_error);
  LUNA_CHECK(!fs_error, "train_lra: cannot create --out ", c.out_dir, ": ", fs_error.message());
  if (c.resume) {
    LUNA_CHECK(fs::exists(checkpoint_path), "train_lra: --resume: no ", kCheckpoint, " in ", c.out_dir,
               " to continue from; run without --resume to start a new run there");
  } else {
    bool replaced = false;
    for (const char* name : {kCheckpoint, kBest, kMetrics, kSummary, kCurves, kKernels}) {
      replaced |= fs::exists(out / name);
      fs::remove(out / name, fs_error);
    }
    if (replaced) std::printf("note: replacing the previous run's files in %s (--resume continues a run)\n", c.out_dir.c_str());
  }

  const bool use_bar = c.progress == "bar" || (c.progress == "auto" && isatty(fileno(stdout)));
  auto say = [](const std::string& text) {
    std::printf("%s\n", text.c_str());
    std::fflush(stdout);
  };
  std::printf("train_lra: task %s, protocol %s, attention %s, seed %llu, %d threads, device %s\n", c.task.c_str(),
              c.protocol.c_str(), c.attention.c_str(), (unsigned long long)c.seed, get_num_threads(), c.device.c_str());
  const TaskData data = load_task_data(c, say);

  // Initialisation, dropout, performer features: all from the default generator, seeded here.
  manual_seed(c.seed);
  models::LraClassifier model = build_model(c, data);
  if (!device.is_cpu()) model->to(device);
  const std::vector<Tensor> params = model->parameters();
  optim::AdamW optimizer(params, optim::AdamWOptions(c.lr)
                                     .betas({c.beta1, c.beta2})
                                     .eps(c.adam_eps)
                                     .weight_decay(c.weight_decay));
  std::unique_ptr<optim::LRScheduler> scheduler;
  if (c.schedule == "linear") scheduler = std::make_unique<optim::LinearWarmupLinearDecay>(optimizer, c.warmup, c.steps);
  else if (c.schedule == "cosine") scheduler = std::make_unique<optim::LinearWarmupCosineDecay>(optimizer, c.warmup, c.steps);
  else scheduler = std::make_unique<optim::RsqrtSchedule>(optimizer, c.warmup);

  data::BatchOptions batch_options;
  batch_options.batch_size = c.batch;
  batch_options.shuffle = true;
  batch_options.seed = c.seed;
  batch_options.drop_last = int64_t(data.train_size()) >= c.batch;  // equal batches, unless the set is tiny
  batch_options.bucket_by_length = c.bucket_by_length;
  std::unique_ptr<data::Batcher> batcher = data.pairs ? std::make_unique<data::Batcher>(data.train_pairs, batch_options)
                                                      : std::make_unique<data::Batcher>(data.train, batch_options);

  const json config_json = {{"training", c.training_json()}, {"run", c.to_json()}};
  int64_t step = 0;
  Progression progression;
  if (c.resume) {
    nn::TrainState state;
    check_same_training(checkpoint_path, c, "--resume", "repeat the original command with --resume");
    nn::load_train_state(checkpoint_path, *model, &optimizer, state);
    step = state.step;
    const json cursor = json::parse(state.data_cursor);
    batcher->seek({cursor.at("epoch").get<int64_t>(), cursor.at("batch").get<int64_t>()});
    progression.best_dev_accuracy = cursor.at("best_dev_accuracy");
    progression.best_dev_loss = cursor.at("best_dev_loss");
    progression.best_step = cursor.at("best_step");
    progression.train_seconds = cursor.at("train_seconds");
    progression.eval_seconds = cursor.at("eval_seconds");
    progression.tokens_seen = cursor.at("tokens_seen");
    scheduler->set_last_step(step);
    say("resumed from " + checkpoint_path + " at step " + std::to_string(step) + " of " + std::to_string(c.steps));
  }
  auto save_checkpoint = [&]() {
    nn::TrainState state;
    state.step = step;
    state.data_cursor = cursor_json(batcher->cursor(), progression);
    state.config = config_json.dump();
    nn::save_train_state(checkpoint_path, *model, &optimizer, state);
  };

  const MajorityClass majority = majority_class_of(data);
  const int64_t majority_class = majority.label;
  const double majority_accuracy = majority.test_accuracy;
  {
    std::ostringstream line;
    line << "model: " << model->num_parameters() << " parameters, " << c.layers << " layers, dim " << c.dim << ", "
         << c.heads << " heads, ffn " << c.ffn << ", max_len " << data.max_len() << ", " << c.pooling
         << " pooling; data " << data.data_source << " (" << data.train_size() << "/" << data.dev_size() << "/"
         << data.test_size() << "); majority class " << majority_class << " = " << percent(majority_accuracy)
         << " of test";
    say(line.str());
    if (!data.note.empty()) say("note: " + data.note);
    say("steps " + std::to_string(c.steps) + ", batch " + std::to_string(c.batch) + ", " +
        std::to_string(batcher->batches_per_epoch()) + " batches per epoch; writing " + c.out_dir);
  }

  MetricsLog metrics((out / kMetrics).string(), c.resume, step);
  const std::string title = c.task + " / " + c.attention + " / " + c.protocol + " protocol, seed " + std::to_string(c.seed);
  auto write_curves = [&]() {
    write_file_atomically((out / kCurves).string(), render_curves_svg(read_metrics(metrics.path()), title, majority_accuracy));
  };

  Progress progress(c.steps, use_bar);
  install_stop_handlers();
  const auto loop_start = Clock::now();
  const int64_t first_step = step;
  LogWindow window;
  bool stopped_at_request = false;
  while (step < c.steps && stop_signal() == 0) {
    const auto step_start = Clock::now();
    const data::Batch batch = batcher->next();
    model->train();
    optimizer.zero_grad();
    const Tensor logits = forward(model, batch, device);  // (B, classes)
    const Tensor labels = batch.labels.to(device);        // (B)
    const Tensor loss = cross_entropy(logits, labels);
    loss.backward();
    if (c.clip_norm > 0) optim::clip_grad_norm_(params, c.clip_norm);
    const double lr = optimizer.lr();
    optimizer.step();
    scheduler->step();
    ++step;
    const double loss_value = loss.item<double>();
    trim_allocator_cache(device);
    LUNA_CHECK(std::isfinite(loss_value), "train_lra: the training loss became ", loss_value, " at step ", step,
               " (lr ", lr, "); lower --lr or set --clip-norm");
    const int64_t correct = count_correct(logits.detach(), labels);
    const double step_seconds = seconds_since(step_start);
    progression.train_seconds += step_seconds;
    progression.tokens_seen += batch.real_tokens;
    window.add(loss_value, correct, batch.size(), batch.real_tokens, step_seconds);

    const double per_step = seconds_since(loop_start) / double(step - first_step);
    const double eta = per_step * double(c.steps - step);
    progress.update(step, window.mean_loss(), window.accuracy(), window.rate(), eta);

    const bool eval_now = step % c.eval_every == 0 || step == c.steps;
    const bool stop_now = c.stop_after > 0 && step == c.stop_after && step < c.steps;
    if (!(step % c.log_every == 0 || eval_now || stop_now)) continue;
    const StepLog log{step, c.steps, batch.epoch, loss_value, double(correct) / double(batch.size()), lr,
                      progression.train_seconds, eta};
    json record = log_record(log, window, "tokens_per_second");
    if (!use_bar) progress.line(log_line(log, window, "tok/s"));
    window.reset();
    if (eval_now) {
      const auto eval_start = Clock::now();
      const EvalResult dev = evaluate_split(model, data, data::Split::dev, c, device);
      progression.eval_seconds += seconds_since(eval_start);
      record["dev_loss"] = dev.loss;
      record["dev_accuracy"] = dev.accuracy;
      const bool best = dev.accuracy > progression.best_dev_accuracy;
      if (best) {
        progression.best_dev_accuracy = dev.accuracy;
        progression.best_dev_loss = dev.loss;
        progression.best_step = step;
        save_safetensors((out / kBest).string(), model->state_dict(), {{"step", std::to_string(step)}});
      }
      progress.line(eval_line(step, dev.loss, dev.accuracy, progression.best_dev_accuracy, progression.best_step));
    }
    metrics.write(record);
    if (eval_now || stop_now) {
      save_checkpoint();
      write_curves();
    }
    if (stop_now) {
      stopped_at_request = true;
      break;
    }
  }
  progress.finish();

  if (stop_signal() != 0 && step < c.steps) {
    save_checkpoint();
    write_curves();
    const int signal_number = stop_signal();
    std::printf("interrupted (%s) after step %lld of %lld; checkpoint saved to %s\nresume with the same command plus --resume\n",
                signal_number == SIGINT ? "SIGINT" : "SIGTERM", (long long)step, (long long)c.steps,
                checkpoint_path.c_str());
    return 128 + signal_number;
  }
  if (stopped_at_request) {
    std::printf("stopped after step %lld of %lld (--stop-after); checkpoint saved to %s\n", (long long)step,
                (long long)c.steps, checkpoint_path.c_str());
    return 0;
  }

  // The best-dev weights on test.
  const SafetensorsFile best = load_safetensors((out / kBest).string());
  model->load_state_dict(best.tensors);
  const auto test_start = Clock::now();
  const EvalResult test = evaluate_split(model, data, data::Split::test, c, device);
  const double test_seconds = seconds_since(test_start);
  write_curves();
  if (c.attention == "luna") {
    const auto observed = observe_projections(model, sample_tokens(data, c).to(device));
    write_file_atomically((out / kKernels).string(),
                          render_kernels_svg(model, observed, "LUNA psi_l per layer (best dev model): " + title));
  }
  const double tokens_per_second =
      progression.train_seconds > 0 ? double(progression.tokens_seen) / progression.train_seconds : 0.0;
  const json summary = {{"task", c.task},
                        {"protocol", c.protocol},
                        {"attention", c.attention},
                        {"steps", step},
                        {"params", model->num_parameters()},
                        {"train_examples", data.train_size()},
                        {"dev_examples", data.dev_size()},
                        {"test_examples", data.test_size()},
                        {"dev_accuracy", progression.best_dev_accuracy},
                        {"dev_loss", progression.best_dev_loss},
                        {"best_step", progression.best_step},
                        {"test_accuracy", test.accuracy},
                        {"test_loss", test.loss},
                        {"majority_class", majority_class},
                        {"majority_class_accuracy", majority_accuracy},
                        {"tokens_per_second", tokens_per_second},
                        {"peak_memory_bytes", memory_stats(device).peak_bytes_in_use},
                        {"peak_rss_bytes", peak_rss_bytes()},
                        {"seed", c.seed},
                        {"data_source", data.data_source},
                        {"data_folder", data.folder},
                        {"data_note", data.note},
                        {"max_len", data.max_len()},
                        {"threads", get_num_threads()},
                        {"train_seconds", progression.train_seconds},
                        {"eval_seconds", progression.eval_seconds + test_seconds},
                        {"wall_seconds_this_process", seconds_since(wall_start)},
                        {"config", c.to_json()}};
  write_file_atomically((out / kSummary).string(), summary.dump(2) + "\n");
  std::printf(
      "done: %lld steps. best dev accuracy %s (step %lld); test accuracy %s vs majority class %s (class %lld)\n"
      "train %s, %.0f tokens/s, peak memory %.1f MiB in tensors (%.1f MiB resident); results in %s\n",
      (long long)step, percent(progression.best_dev_accuracy).c_str(), (long long)progression.best_step,
      percent(test.accuracy).c_str(), percent(majority_accuracy).c_str(), (long long)majority_class,
      format_duration(progression.train_seconds).c_str(), tokens_per_second,
      double(memory_stats(device).peak_bytes_in_use) / (1024.0 * 1024.0), double(peak_rss_bytes()) / (1024.0 * 1024.0),
      c.out_dir.c_str());
  return 0;
}

int run_evaluation(const RunConfig& c) {
  if (c.threads > 0) set_num_threads(c.threads);
  const Device device = parse_device(c.device, "train_lra");
  const fs::path out(c.out_dir);
  const std::string checkpoint_path = (out / kCheckpoint).string();
  const std::string best_path = (out / kBest).string();
  LUNA_CHECK(fs::exists(checkpoint_path) && fs::exists(best_path), "train_lra: --eval-only: ", c.out_dir, " has no ",
             fs::exists(checkpoint_path) ? kBest : kCheckpoint,
             "; it needs a run that reached its first dev evaluation (train there first, or give its --out)");
  check_same_training(checkpoint_path, c, "--eval-only", "repeat the command that trained it, with --eval-only");
  auto say = [](const std::string& text) {
    std::printf("%s\n", text.c_str());
    std::fflush(stdout);
  };
  std::printf("train_lra --eval-only: task %s, attention %s, %s, %d threads, device %s\n", c.task.c_str(),
              c.attention.c_str(), best_path.c_str(), get_num_threads(), c.device.c_str());
  const TaskData data = load_task_data(c, say);

  manual_seed(c.seed);
  models::LraClassifier model = build_model(c, data);
  if (!device.is_cpu()) model->to(device);
  const SafetensorsFile best = load_safetensors(best_path);
  model->load_state_dict(best.tensors);
  const std::string best_step = best.metadata.count("step") ? best.metadata.at("step") : "unknown";

  std::vector<int64_t> dev_predictions, test_predictions;
  const EvalResult dev = evaluate_split(model, data, data::Split::dev, c, device, &dev_predictions);
  const EvalResult test = evaluate_split(model, data, data::Split::test, c, device, &test_predictions);
  write_file_atomically((out / kDevPredictions).string(), predictions_tsv(data.dev_labels(), dev_predictions));
  write_file_atomically((out / kTestPredictions).string(), predictions_tsv(data.test_labels(), test_predictions));
  const MajorityClass majority = majority_class_of(data);
  const json report = {{"task", c.task},
                       {"attention", c.attention},
                       {"weights", best_path},
                       {"best_step", best_step},
                       {"dev_examples", dev.examples},
                       {"dev_accuracy", dev.accuracy},
                       {"dev_loss", dev.loss},
                       {"test_examples", test.examples},
                       {"test_accuracy", test.accuracy},
                       {"test_loss", test.loss},
                       {"majority_class", majority.label},
                       {"majority_class_accuracy", majority.test_accuracy},
                       {"data_source", data.data_source},
                       {"data_folder", data.folder}};
  write_file_atomically((out / kEval).string(), report.dump(2) + "\n");
  std::printf("best-dev weights (step %s): dev accuracy %s (loss %.4f), test accuracy %s (loss %.4f) vs majority "
              "class %s; wrote %s, %s and %s in %s\n",
              best_step.c_str(), percent(dev.accuracy).c_str(), dev.loss, percent(test.accuracy).c_str(), test.loss,
              percent(majority.test_accuracy).c_str(), kEval, kDevPredictions, kTestPredictions, c.out_dir.c_str());
  return 0;
}

}  // namespace luna::train_lra
