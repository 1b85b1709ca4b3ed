// train_vit: trains a Vision Transformer (softmax attention unless --attention says otherwise) from
// scratch on an image dataset and writes a Hugging Face checkpoint (config.json, model.safetensors,
// preprocessor_config.json) that ViTForImageClassification::from_pretrained and transformers read.
//
//   train_vit                                          Fashion-MNIST (Debian's), a small ViT
//   train_vit --data cifar10:cifar-10-batches-bin --patch-size 4 --steps 20000
//   train_vit --data imagefolder:flowers --image-size 64 --patch-size 8 --out runs/flowers
//   train_vit ... --resume                             continue the run in --out (after Ctrl-C)
#include <cstdio>
#include <exception>
#include <filesystem>
#include <string>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <luna/core/allocator.h>
#include <luna/core/error.h>
#include <luna/core/generator.h>
#include <luna/core/threads.h>
#include <luna/models/vit.h>
#include <luna/models/vit_image_processor.h>
#include <luna/nn/attention.h>

#include "common/image_flags.h"
#include "common/image_trainer.h"
#include "common/report.h"
#include "common/run_util.h"

namespace {

using namespace luna;
using nlohmann::json;
namespace fs = std::filesystem;

constexpr const char* kProgram = "train_vit";

struct Settings {
  std::string data = "fmnist";
  int64_t image_size = 0;  // 0 = the source's own (28 fmnist, 32 cifar10); image folders need it
  int64_t patch_size = 4;
  int64_t hidden_size = 64;
  int64_t layers = 4;
  int64_t heads = 4;
  int64_t intermediate_size = 128;
  double dropout = 0.0;
  std::string attention = "softmax";
  apps::ImageRunFlags run;

  Settings() {
    run.steps = 3000;
    run.batch = 128;
    run.lr = 1e-3;
    run.warmup = 200;
    run.weight_decay = 0.05;
    run.eval_every = 250;
    run.log_every = 50;
  }

  // What must not change across --resume.
  json training_json() const {
    json j = run.training_json();
    j.update({{"data", data}, {"image_size", image_size}, {"patch_size", patch_size}, {"hidden_size", hidden_size},
              {"layers", layers}, {"heads", heads}, {"intermediate_size", intermediate_size}, {"dropout", dropout},
              {"attention", attention}});
    return j;
  }
};

// The native side of a source when --image-size is 0.
int64_t default_image_size(const std::string& spec) {
  if (spec == "fmnist" || spec.rfind("fmnist:", 0) == 0) return 28;
  if (spec.rfind("cifar10:", 0) == 0) return 32;
  LUNA_CHECK(spec.rfind("imagefolder:", 0) != 0, kProgram, ": --image-size is required for --data ", spec,
             " (its images are resized to it)");
  return 0;  // an unknown source: load_image_set names the problem
}

int64_t default_channels(const std::string& spec) {
  if (spec == "fmnist" || spec.rfind("fmnist:", 0) == 0) return 1;
  if (spec.rfind("cifar10:", 0) == 0) return 3;
  return 0;  // an image folder: that of its images
}

int run(Settings s) {
  if (s.run.threads > 0) set_num_threads(s.run.threads);
  const Device device = apps::parse_device(s.run.device, kProgram);
  apps::check_train_options(s.run.train_options(device, kProgram));
  if (s.image_size == 0) s.image_size = default_image_size(s.data);
  // The model's shape, in the flags' own names and before any data is read (the config's validate
  // below checks the same in checkpoint keys, after loading).
  LUNA_CHECK(s.hidden_size % s.heads == 0, kProgram, ": --hidden-size (", s.hidden_size,
             ") must be divisible by --heads (", s.heads, ")");
  LUNA_CHECK(s.image_size == 0 || s.patch_size <= s.image_size, kProgram, ": --patch-size (", s.patch_size,
             ") must not exceed the image size (", s.image_size, ")");
  std::error_code error;
  fs::create_directories(s.run.out_dir, error);
  LUNA_CHECK(!error, kProgram, ": cannot create --out ", s.run.out_dir, ": ", error.message());
  if (!s.run.resume)
    apps::clear_previous_run(s.run.out_dir, {"checkpoint.safetensors", "metrics.jsonl", "curves.svg", "summary.json",
                                         "config.json", "model.safetensors", "preprocessor_config.json"});
  auto say = [](const std::string& text) {
    std::printf("%s\n", text.c_str());
    std::fflush(stdout);
  };
  std::printf("train_vit: data %s, attention %s, seed %llu, %d threads, device %s\n", s.data.c_str(),
              s.attention.c_str(), (unsigned long long)s.run.seed, get_num_threads(), s.run.device.c_str());
  say("reading " + s.data);
  const apps::ImageSplits data =
      apps::load_image_splits(s.run.data_options(s.data, s.image_size, default_channels(s.data)), say);

  models::ViTConfig config;
  config.hidden_size = s.hidden_size;
  config.num_hidden_layers = s.layers;
  config.num_attention_heads = s.heads;
  config.intermediate_size = s.intermediate_size;
  config.image_size = s.image_size;
  config.patch_size = s.patch_size;
  config.num_channels = data.train.images.size(1);
  config.num_labels = int64_t(data.train.classes.size());
  config.id2label = data.train.classes;
  config.hidden_dropout_prob = config.attention_probs_dropout_prob = s.dropout;
  config.attention.attention = s.attention;
  config.validate("the train_vit flags");
  models::ViTImageProcessor processor = models::ViTImageProcessor::defaults_for(config);

  // Initialisation and dropout draw from the default generator.
  manual_seed(s.run.seed);
  models::ViTForImageClassification model(config);
  if (!device.is_cpu()) model->to(device);
  say("model: ViT " + std::to_string(model->num_parameters()) + " parameters, " + std::to_string(s.layers) +
      " layers, width " + std::to_string(s.hidden_size) + ", " + std::to_string(s.heads) + " heads, patch " +
      std::to_string(s.patch_size) + " on " + std::to_string(s.image_size) + "x" + std::to_string(s.image_size) +
      " (" + std::to_string(config.num_patches() + 1) + " tokens), " + std::to_string(config.num_labels) + " classes");

  apps::ImageTrainOptions options = s.run.train_options(device, kProgram);
  options.title = "train_vit: " + s.data + " / " + s.attention + ", seed " + std::to_string(s.run.seed);
  options.settings = s.training_json();
  // The best-dev weights are the checkpoint folder's model.
  auto save_best = [&](int64_t) {
    model->save_pretrained(s.run.out_dir);
    processor.save_pretrained(s.run.out_dir);
  };
  const apps::ImageTrainResult trained = apps::train_image_classifier(model, data, processor, options, save_best);
  if (trained.stop_signal != 0) return 128 + trained.stop_signal;
  if (trained.stopped_after) return 0;

  const models::ViTForImageClassification best = models::ViTForImageClassification::from_pretrained(s.run.out_dir);
  if (!device.is_cpu()) best->to(device);
  const apps::ImageEvaluation test = apps::evaluate_images(*best, data.test, processor, 256, device);
  const json summary = {{"program", kProgram},
                        {"data", s.data},
                        {"attention", s.attention},
                        {"steps", trained.steps_done},
                        {"params", model->num_parameters()},
                        {"train_examples", data.train.size()},
                        {"dev_examples", data.dev.size()},
                        {"test_examples", data.test.size()},
                        {"dev_accuracy", trained.best_dev_accuracy},
                        {"dev_loss", trained.best_dev_loss},
                        {"best_step", trained.best_step},
                        {"test_accuracy", test.accuracy},
                        {"test_loss", test.loss},
                        {"images_per_second", trained.images_per_second()},
                        {"train_seconds", trained.train_seconds},
                        {"eval_seconds", trained.eval_seconds},
                        {"peak_memory_bytes", memory_stats(device).peak_bytes_in_use},
                        {"peak_rss_bytes", apps::peak_rss_bytes()},
                        {"threads", get_num_threads()},
                        {"seed", s.run.seed},
                        {"checkpoint", s.run.out_dir},
                        {"settings", s.training_json()}};
  apps::write_file_atomically((fs::path(s.run.out_dir) / "summary.json").string(), summary.dump(2) + "\n");
  std::printf("done: %lld steps. best dev accuracy %s (step %lld); test accuracy %s\n"
              "train %s, %.0f images/s; HF checkpoint (config.json, model.safetensors, preprocessor_config.json) "
              "in %s\n",
              (long long)trained.steps_done, apps::percent(trained.best_dev_accuracy).c_str(),
              (long long)trained.best_step, apps::percent(test.accuracy).c_str(),
              apps::format_duration(trained.train_seconds).c_str(), trained.images_per_second(), s.run.out_dir.c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  apps::prefer_passive_openmp(argv);
  Settings s;
  CLI::App app(
      "train_vit: trains a Vision Transformer from scratch on an image dataset and writes a Hugging Face\n"
      "checkpoint (config.json, model.safetensors, preprocessor_config.json) of the best dev accuracy into\n"
      "--out, with metrics.jsonl, curves.svg and summary.json. With no arguments: a small ViT on Debian's\n"
      "Fashion-MNIST.",
      kProgram);
  app.option_defaults()->always_capture_default();
  app.add_option("--data", s.data,
                 "fmnist[:DIR] | cifar10:DIR (cifar-10-batches-bin) | imagefolder:DIR (one folder per class; "
                 "train/ val/ test/ subfolders or a seeded 80/10/10 split)");
  app.add_option("--image-size", s.image_size, "square side images are resized to (0 = fmnist 28, cifar10 32)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--patch-size", s.patch_size, "patch side")->check(CLI::PositiveNumber);
  app.add_option("--hidden-size", s.hidden_size, "model width D")->check(CLI::PositiveNumber);
  app.add_option("--layers", s.layers, "encoder layers")->check(CLI::PositiveNumber);
  app.add_option("--heads", s.heads, "attention heads")->check(CLI::PositiveNumber);
  app.add_option("--intermediate-size", s.intermediate_size, "MLP width")->check(CLI::PositiveNumber);
  app.add_option("--dropout", s.dropout, "hidden and attention dropout")->check(CLI::Range(0.0, 0.99));
  app.add_option("--attention", s.attention, "softmax | luna | elu | performer | cosformer | hedgehog")
      ->check(CLI::IsMember(nn::available_attention_kinds()));
  s.run.add_to(app, "seed of initialisation, dropout and batch order",
               "output folder (the HF checkpoint and the run's files); default vit_runs/train_vit_<data>_<attention>_seed<seed>");
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "train_vit: error: %s\nRun with --help for the options.\n", e.what());
    return 2;
  }
  if (s.run.out_dir.empty()) {
    const std::string name = s.data.substr(0, s.data.find(':'));
    s.run.out_dir = "vit_runs/train_vit_" + name + "_" + s.attention + "_seed" + std::to_string(s.run.seed);
  }
  try {
    return run(s);
  } catch (const std::exception& e) {
    apps::print_error(kProgram, e.what());
    return 1;
  }
}
