// convert_vit: post-hoc attention conversion of a trained ViT (spec/LUNA.md §5). Evaluates the
// original, swaps every softmax attention for another kind keeping the Q/K/V/O weights, evaluates
// again, fine-tunes briefly (optionally after an attention-distillation warm-up), evaluates the
// result, and writes the converted checkpoint (loadable by from_pretrained) and report.json.
//
//   convert_vit --model vit_runs/train_vit_fmnist_softmax_seed0 --data fmnist --attention luna
//   convert_vit --model google-vit-base --data imagefolder:imagenette --train attention --steps 2000
//   convert_vit --model DIR --data fmnist --eval-only       accuracy of DIR (and of its conversion, untrained)
#include <algorithm>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <fstream>
#include <string>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <luna/core/allocator.h>
#include <luna/core/error.h>
#include <luna/core/generator.h>
#include <luna/core/threads.h>
#include <luna/models/convert.h>
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

constexpr const char* kProgram = "convert_vit";
constexpr const char* kReport = "report.json";
// The accuracies measured before fine-tuning, kept so that --resume need not redo the distillation.
constexpr const char* kBeforeFineTune = "before_finetune.json";

struct Settings {
  std::string model_dir;
  std::string data = "fmnist";
  models::ConvertOptions convert;
  bool eval_only = false;
  apps::ImageRunFlags run;

  Settings() {
    run.steps = 500;
    run.batch = 64;
    run.lr = 1e-3;
    run.warmup = 50;
    run.eval_every = 100;
    run.log_every = 20;
  }

  json attention_json() const {
    const auto& l = convert.luna;
    json j = {{"attention", convert.attention}, {"linear_eps", convert.linear_eps}};
    if (convert.attention == "luna")
      j["luna"] = {{"num_projections", l.num_projections}, {"channels", l.channels}, {"hidden", l.hidden},
                   {"activation", l.activation}, {"layout", l.layout}, {"envelope", l.envelope},
                   {"per_head", l.per_head}, {"channel_rms_limit", l.channel_rms_limit},
                   {"init", convert.luna_init}};
    if (convert.attention == "performer")
      j["performer"] = {{"features", convert.performer_features}, {"redraw_interval", convert.performer_redraw_interval}};
    return j;
  }
  // What must not change across --resume.
  json training_json() const {
    json j = run.training_json();
    j.update({{"model", fs::absolute(model_dir).lexically_normal().string()},
              {"data", data},
              {"attention", attention_json()},
              {"train", convert.train},
              {"distill_steps", convert.distill_steps},
              {"distill_lr", convert.distill_lr}});
    return j;
  }
};

double recovery_percent(double converted, double original) { return original > 0 ? 100.0 * converted / original : 0.0; }

// Batches of normalised training images for the distillation warm-up: the first steps of the
// fine-tune's own batch order (at most 32 distinct batches, cycled).
std::vector<Tensor> distillation_batches(const apps::ImageSplits& data, const models::ViTImageProcessor& processor,
                                         const Settings& s, Device device) {
  std::vector<Tensor> batches;
  const int64_t count = std::min<int64_t>(s.convert.distill_steps, 32);
  for (int64_t step = 0; step < count; ++step)
    batches.push_back(processor.normalize(apps::training_batch(data.train, s.run.batch, s.run.seed, step).images).to(device));
  return batches;
}

int run(Settings s) {
  if (s.run.threads > 0) set_num_threads(s.run.threads);
  const Device device = apps::parse_device(s.run.device, kProgram);
  if (!s.eval_only) apps::check_train_options(s.run.train_options(device, kProgram));
  auto say = [](const std::string& text) {
    std::printf("%s\n", text.c_str());
    std::fflush(stdout);
  };
  const models::ViTForImageClassification original = models::ViTForImageClassification::from_pretrained(s.model_dir);
  const models::ViTConfig& config = original->config();
  const std::string original_kind = config.attention.attention;
  LUNA_CHECK(s.eval_only || original_kind == "softmax", kProgram, ": ", s.model_dir, " already uses attention '",
             original_kind, "'; conversion starts from a softmax model (use --eval-only to evaluate it)");
  original->eval();
  const models::ViTImageProcessor processor = models::ViTImageProcessor::from_pretrained(s.model_dir, config);
  std::printf("convert_vit: %s (ViT, %s attention, %lld parameters), data %s, seed %llu, %d threads, device %s\n",
              s.model_dir.c_str(), original_kind.c_str(), (long long)original->num_parameters(), s.data.c_str(),
              (unsigned long long)s.run.seed, get_num_threads(), s.run.device.c_str());
  say("reading " + s.data);
  const apps::ImageSplits data =
      apps::load_image_splits(s.run.data_options(s.data, processor.image_size(), config.num_channels), say);
  LUNA_CHECK(int64_t(data.train.classes.size()) == config.num_labels, kProgram, ": --data ", s.data, " has ",
             data.train.classes.size(), " classes but ", s.model_dir, "/config.json has num_labels = ",
             config.num_labels, "; convert on the data the model was trained for");
  const bool interpolate = processor.image_size() != config.image_size;
  LUNA_CHECK(!interpolate, kProgram, ": ", s.model_dir, "/preprocessor_config.json resizes to ",
             processor.image_size(), " but the model's image_size is ", config.image_size);

  std::error_code error;
  const std::string& out_dir = s.run.out_dir;
  fs::create_directories(out_dir, error);
  LUNA_CHECK(!error, kProgram, ": cannot create --out ", out_dir, ": ", error.message());
  const std::string before_path = (fs::path(out_dir) / kBeforeFineTune).string();

  json report = {{"model", s.model_dir}, {"data", s.data}, {"attention", s.convert.attention},
                 {"trained", s.convert.train}, {"seed", s.run.seed}, {"test_examples", data.test.size()}};
  json before;
  if (s.run.resume) {
    std::ifstream in(before_path);
    LUNA_CHECK(in.good(), kProgram, ": --resume: ", before_path, " is missing; run without --resume");
    before = json::parse(in, nullptr, false);
    LUNA_CHECK(before.is_object() && before.value("settings", json()) == s.training_json(), kProgram, ": --resume: ",
               before_path, " belongs to a run with other settings; repeat the original command with --resume");
    say("resuming: original test accuracy " + apps::percent(before["original_accuracy"]) +
        ", converted before fine-tuning " + apps::percent(before["converted_accuracy_before_finetune"]));
  } else {
    if (!s.eval_only)
      apps::clear_previous_run(out_dir, {"checkpoint.safetensors", "metrics.jsonl", "curves.svg", kReport,
                                           kBeforeFineTune, "config.json", "model.safetensors",
                                           "preprocessor_config.json"});
    say("evaluating the original on test");
    if (!device.is_cpu()) original->to(device);
    const apps::ImageEvaluation original_test = apps::evaluate_images(*original, data.test, processor, 256, device);
    if (!device.is_cpu()) original->to(Device::cpu());  // converted from the CPU copy below
    say("  original (" + original_kind + "): test accuracy " + apps::percent(original_test.accuracy));
    before["original_accuracy"] = original_test.accuracy;
    before["original_loss"] = original_test.loss;
  }

  // Conversion: seeded, so a resumed run rebuilds the same model before loading its train state.
  s.convert.seed = s.run.seed;
  models::ConvertOptions convert = s.convert;
  std::vector<Tensor> distill;
  if (s.run.resume || s.eval_only) convert.distill_steps = 0;  // resume: the checkpoint holds the distilled weights
  else if (convert.distill_steps > 0) distill = distillation_batches(data, processor, s, device);
  if (original_kind != "softmax") {  // --eval-only of a converted (or any non-softmax) model
    report["original_attention"] = original_kind;
    report["original_accuracy"] = before["original_accuracy"];
    apps::write_file_atomically((fs::path(out_dir) / kReport).string(), report.dump(2) + "\n");
    std::printf("done (--eval-only): test accuracy %s; report in %s/%s\n",
                apps::percent(before["original_accuracy"]).c_str(), out_dir.c_str(), kReport);
    return 0;
  }
  // Converted on the CPU (from_pretrained's device), then moved; the distillation runs on --device.
  const int64_t distill_steps = convert.distill_steps;
  convert.distill_steps = 0;
  models::ViTForImageClassification converted = models::convert_vit_attention(original, convert);
  if (!device.is_cpu()) {
    original->to(device);
    converted->to(device);
  }
  say("converted every attention to " + s.convert.attention + "; " +
      std::to_string(converted->num_parameters(/*only_trainable=*/true)) + " of " +
      std::to_string(converted->num_parameters()) + " parameters train (" + s.convert.train + ")");
  if (distill_steps > 0) {
    say("distilling attention for " + std::to_string(distill_steps) + " steps");
    const int64_t every = std::max<int64_t>(1, distill_steps / 10);
    models::distill_vit_attention(*original, *converted, distill, distill_steps, convert.distill_lr,
                                  [&](int64_t step, double loss) {
                                    if (step % every != 0 && step != distill_steps) return;
                                    char text[128];
                                    std::snprintf(text, sizeof text,
                                                  "  distill step %lld/%lld: summed attention-output MSE %.4g",
                                                  (long long)step, (long long)distill_steps, loss);
                                    say(text);
                                  });
  }
  if (!s.run.resume) {
    if (distill_steps > 0) {
      const std::vector<double> mse = models::vit_attention_output_mse(*original, *converted, distill.front());
      json per_layer = mse;
      before["distill_final_mse"] = per_layer;
      say("  attention-output MSE per layer after distillation: " + per_layer.dump());
    }
    const apps::ImageEvaluation untrained = apps::evaluate_images(*converted, data.test, processor, 256, device);
    before["converted_accuracy_before_finetune"] = untrained.accuracy;
    say("  converted (" + s.convert.attention + ") before fine-tuning: test accuracy " +
        apps::percent(untrained.accuracy));
    before["settings"] = s.training_json();
    if (!s.eval_only) apps::write_file_atomically(before_path, before.dump(2) + "\n");
  }
  report["original_accuracy"] = before["original_accuracy"];
  report["converted_accuracy_before_finetune"] = before["converted_accuracy_before_finetune"];
  if (before.contains("distill_final_mse")) report["distill_final_mse"] = before["distill_final_mse"];
  if (s.eval_only) {
    report["steps"] = 0;
    report["recovery_percent_before_finetune"] =
        recovery_percent(before["converted_accuracy_before_finetune"], before["original_accuracy"]);
    apps::write_file_atomically((fs::path(out_dir) / kReport).string(), report.dump(2) + "\n");
    std::printf("done (--eval-only): original %s, converted before fine-tuning %s; report in %s/%s\n",
                apps::percent(before["original_accuracy"]).c_str(),
                apps::percent(before["converted_accuracy_before_finetune"]).c_str(), out_dir.c_str(), kReport);
    return 0;
  }

  // Dropout during the fine-tune draws from the default generator.
  manual_seed(s.run.seed);
  apps::ImageTrainOptions options = s.run.train_options(device, kProgram);
  options.title = "convert_vit: " + s.data + ", softmax -> " + s.convert.attention + " (train " + s.convert.train + ")";
  options.settings = s.training_json();
  auto save_best = [&](int64_t) {
    converted->save_pretrained(out_dir);
    processor.save_pretrained(out_dir);
  };
  const apps::ImageTrainResult tuned = apps::train_image_classifier(converted, data, processor, options, save_best);
  if (tuned.stop_signal != 0) return 128 + tuned.stop_signal;
  if (tuned.stopped_after) return 0;

  const models::ViTForImageClassification best = models::ViTForImageClassification::from_pretrained(out_dir);
  if (!device.is_cpu()) best->to(device);
  const apps::ImageEvaluation test = apps::evaluate_images(*best, data.test, processor, 256, device);
  report["converted_accuracy"] = test.accuracy;
  report["recovery_percent"] = recovery_percent(test.accuracy, before["original_accuracy"]);
  report["steps"] = tuned.steps_done;
  report["best_step"] = tuned.best_step;
  report["dev_accuracy"] = tuned.best_dev_accuracy;
  report["attention_settings"] = s.attention_json();
  report["trainable_parameters"] = converted->num_parameters(/*only_trainable=*/true);
  report["parameters"] = converted->num_parameters();
  report["fine_tune"] = s.training_json();
  report["train_seconds"] = tuned.train_seconds;
  report["images_per_second"] = tuned.images_per_second();
  report["peak_rss_bytes"] = apps::peak_rss_bytes();
  report["checkpoint"] = out_dir;
  apps::write_file_atomically((fs::path(out_dir) / kReport).string(), report.dump(2) + "\n");
  std::printf("done: original %s, converted before fine-tuning %s, after %lld steps %s: recovery %.2f%%\n"
              "converted checkpoint (config.json records the attention) and %s in %s\n",
              apps::percent(before["original_accuracy"]).c_str(),
              apps::percent(before["converted_accuracy_before_finetune"]).c_str(), (long long)tuned.steps_done,
              apps::percent(test.accuracy).c_str(), report["recovery_percent"].get<double>(), kReport,
              out_dir.c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  apps::prefer_passive_openmp(argv);
  Settings s;
  CLI::App app(
      "convert_vit: swaps every softmax attention of a trained ViT (Hugging Face or timm checkpoint) for\n"
      "another kind, keeping the Q/K/V/O weights, fine-tunes it briefly and reports the accuracy before\n"
      "and after (report.json); the converted checkpoint in --out loads with from_pretrained.",
      kProgram);
  app.option_defaults()->always_capture_default();
  auto& c = s.convert;
  auto& l = c.luna;
  app.add_option("--model", s.model_dir, "checkpoint folder (config.json + model.safetensors; HF or timm)")
      ->required();
  app.add_option("--data", s.data, "the model's task: fmnist[:DIR] | cifar10:DIR | imagefolder:DIR");
  app.add_option("--attention", c.attention,
                 "the new kind: luna | elu | performer | cosformer | hedgehog, or softmax: no conversion, the "
                 "same fine-tune of the original (the control that separates conversion from extra training)")
      ->check(CLI::IsMember({"luna", "elu", "performer", "cosformer", "hedgehog", "softmax"}));
  c.train.clear();  // default: feature_map for kinds with parameters (luna, hedgehog), else attention
  app.add_option("--train", c.train,
                 "what fine-tunes: feature_map (the new kind's own parameters; default for luna and hedgehog) | "
                 "attention (Q/K/V/O and the feature map; default for the others) | all")
      ->check(CLI::IsMember({"feature_map", "attention", "all"}));
  app.add_option("--distill-steps", c.distill_steps, "attention-distillation warm-up steps before the fine-tune")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--distill-lr", c.distill_lr, "learning rate of the distillation")->check(CLI::PositiveNumber);
  app.add_option("--luna-m", l.num_projections, "LUNA: projections M")->check(CLI::PositiveNumber);
  app.add_option("--luna-l", l.channels, "LUNA: channels L (F = M*L features)")->check(CLI::PositiveNumber);
  app.add_option("--luna-hidden", l.hidden, "LUNA: hidden width of psi")->check(CLI::PositiveNumber);
  app.add_option("--luna-act", l.activation, "LUNA: psi activation relu | gelu | silu")
      ->check(CLI::IsMember({"relu", "gelu", "silu"}));
  app.add_option("--luna-layout", l.layout, "LUNA: per_channel | shared")->check(CLI::IsMember({"per_channel", "shared"}));
  app.add_flag("--luna-envelope", l.envelope, "LUNA: learnable envelope");
  app.add_flag("--luna-per-head", l.per_head, "LUNA: a separate feature map per head");
  app.add_option("--luna-init", c.luna_init,
                 "LUNA: how the feature maps start: paper (the paper's initialisation) | softmax (FAVOR+'s random "
                 "features of the softmax kernel being replaced; needs --luna-envelope --luna-l 1, e.g. "
                 "--luna-m 128 --luna-l 1 --luna-envelope)")
      ->check(CLI::IsMember({"paper", "softmax"}));
  app.add_option("--performer-features", c.performer_features, "performer: random features m")
      ->check(CLI::PositiveNumber);
  app.add_option("--performer-redraw", c.performer_redraw_interval, "performer: redraw every this many steps (0 = never)")
      ->check(CLI::NonNegativeNumber);
  s.run.add_to(app, "seed of the new kind's initialisation, dropout and batch order",
               "output folder; default vit_runs/convert_<model folder>_<attention>_seed<seed>");
  app.add_flag("--eval-only", s.eval_only,
               "only evaluate: the model (and, for a softmax model, its conversion before any training)");
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "convert_vit: error: %s\nRun with --help for the options.\n", e.what());
    return 2;
  }
  if (s.eval_only && s.run.resume) {
    std::fprintf(stderr, "convert_vit: error: --eval-only and --resume exclude each other\n");
    return 2;
  }
  if (const auto& l = s.convert.luna; s.convert.luna_init == "softmax" &&
      (s.convert.attention != "luna" || !l.envelope || l.channels != 1 || l.activation != "relu")) {
    // Checked here too, so the mistake is reported before the data is read and the original evaluated.
    std::fprintf(stderr,
                 "convert_vit: error: --luna-init softmax needs --attention luna --luna-envelope --luna-l 1 "
                 "--luna-act relu; got --attention %s%s --luna-l %lld --luna-act %s\n",
                 s.convert.attention.c_str(), l.envelope ? " --luna-envelope" : " (no --luna-envelope)",
                 static_cast<long long>(l.channels), l.activation.c_str());
    return 2;
  }
  if (s.convert.train.empty())
    s.convert.train = s.convert.attention == "luna" || s.convert.attention == "hedgehog" ? "feature_map" : "attention";
  if (s.run.out_dir.empty()) {
    fs::path model_path = fs::path(s.model_dir).lexically_normal();
    if (model_path.filename().empty()) model_path = model_path.parent_path();  // "dir/"
    const std::string model_name = model_path.filename().string();
    s.run.out_dir = "vit_runs/convert_" + (model_name.empty() ? std::string("model") : model_name) + "_" +
                    s.convert.attention + "_seed" + std::to_string(s.run.seed);
  }
  try {
    return run(s);
  } catch (const std::exception& e) {
    apps::print_error(kProgram, e.what());
    return 1;
  }
}
