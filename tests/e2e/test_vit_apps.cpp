// End-to-end tests of apps/train_vit and apps/convert_vit, run as separate processes: a tiny ViT
// trained on a synthetic image folder (PNGs written here) learns its task and writes a Hugging
// Face checkpoint that from_pretrained reads back with the same test accuracy; convert_vit turns it
// into LUNA (and elu) and reports numbers that the written checkpoint reproduces; --stop-after then
// --resume continues bit-exactly; bad flags, paths, channel counts and models are errors naming
// the problem.
#include "test_util.h"

#include "e2e_util.h"

#include <stb/stb_image_write.h>

#include <cmath>
#include <map>
#include <random>

#include <nlohmann/json.hpp>

#include <luna/autograd/grad_mode.h>
#include <luna/data/images.h>
#include <luna/models/vit.h>
#include <luna/models/vit_image_processor.h>
#include <luna/ops/reduce.h>

using namespace luna;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

fs::path scratch() { return e2e::scratch("vit_apps"); }

e2e::Result run(const std::string& app, const std::vector<std::string>& args, const std::string& name) {
  const std::string env = app == "train_vit" ? "LUNA_TRAIN_VIT" : "LUNA_CONVERT_VIT";
  return e2e::finish(e2e::start(e2e::app_binary(app, env.c_str()), args, scratch(), name));
}

// 8x8 images whose class is the quadrant (a: top-left, b: top-right, c: bottom-left) holding a
// bright 4x4 square on a dark noisy background; `channels` 1 (gray PNG) or 3 (RGB PNG).
void write_image_folder(const fs::path& root, int channels, int per_class_train, int per_class_eval) {
  std::mt19937 rng(11);
  std::uniform_int_distribution<int> dark(0, 90), bright(160, 255);
  const std::map<std::string, std::pair<int, int>> corner = {{"a", {0, 0}}, {"b", {0, 4}}, {"c", {4, 0}}};
  for (const auto& [split, count] : std::vector<std::pair<std::string, int>>{
           {"train", per_class_train}, {"val", per_class_eval}, {"test", per_class_eval}}) {
    for (const auto& [label, origin] : corner) {
      fs::create_directories(root / split / label);
      for (int i = 0; i < count; ++i) {
        std::vector<uint8_t> pixels(size_t(8 * 8 * channels));  // (H, W, C) interleaved, as stb writes
        for (int y = 0; y < 8; ++y)
          for (int x = 0; x < 8; ++x) {
            const bool inside = y >= origin.first && y < origin.first + 4 && x >= origin.second && x < origin.second + 4;
            for (int c = 0; c < channels; ++c) pixels[size_t((y * 8 + x) * channels + c)] = uint8_t(inside ? bright(rng) : dark(rng));
          }
        const fs::path file = root / split / label / ("img" + std::to_string(i) + ".png");
        REQUIRE(stbi_write_png(file.c_str(), 8, 8, channels, pixels.data(), 8 * channels) != 0);
      }
    }
  }
}

const fs::path& gray_folder() {
  static const fs::path root = [] {
    const fs::path r = scratch() / "quadrants";
    write_image_folder(r, 1, 40, 12);
    return r;
  }();
  return root;
}

// The flags of a tiny train_vit run; `replace` changes the value of one of them (CLI11 takes each
// flag once), `extra` is appended.
std::vector<std::string> train_args(const std::string& out, std::vector<std::string> extra = {},
                                    const std::map<std::string, std::string>& replace = {}) {
  const std::vector<std::pair<std::string, std::string>> flags = {
      {"--data", "imagefolder:" + gray_folder().string()}, {"--image-size", "8"}, {"--patch-size", "4"},
      {"--hidden-size", "16"}, {"--layers", "1"}, {"--heads", "2"}, {"--intermediate-size", "32"},
      {"--steps", "120"}, {"--batch", "16"}, {"--lr", "5e-3"}, {"--warmup", "10"}, {"--eval-every", "40"},
      {"--log-every", "5"}, {"--threads", "1"}, {"--progress", "lines"}, {"--out", (scratch() / out).string()}};
  std::vector<std::string> args;
  for (const auto& [flag, value] : flags) {
    args.push_back(flag);
    args.push_back(replace.count(flag) ? replace.at(flag) : value);
  }
  args.insert(args.end(), extra.begin(), extra.end());
  return args;
}

std::vector<std::string> convert_args(const std::string& model, const std::string& out,
                                      std::vector<std::string> extra = {}) {
  std::vector<std::string> args = {"--model", (scratch() / model).string(), "--data",
                                   "imagefolder:" + gray_folder().string(), "--steps", "30", "--batch", "16",
                                   "--lr", "3e-3", "--warmup", "3", "--eval-every", "10", "--log-every", "5",
                                   "--threads", "1", "--progress", "lines", "--out", (scratch() / out).string()};
  args.insert(args.end(), extra.begin(), extra.end());
  return args;
}

// Test accuracy of the checkpoint in `dir` on the folder's test split, computed in this process.
double test_accuracy_of(const fs::path& dir) {
  NoGradGuard no_grad;
  const models::ViTForImageClassification model = models::ViTForImageClassification::from_pretrained(dir.string());
  model->eval();
  const auto processor = models::ViTImageProcessor::from_pretrained(dir.string(), model->config());
  data::ImageSetOptions options;
  options.image_size = processor.image_size();
  options.channels = model->config().num_channels;
  const data::ImageClassificationSet test =
      data::load_image_set("imagefolder:" + gray_folder().string(), data::Split::test, options);
  const Tensor predicted = model(processor.normalize(test.images)).argmax(1);
  return predicted.eq(test.labels).to(kFloat64).mean().item<double>();
}

std::map<int64_t, double> losses_of(const fs::path& dir) {
  std::map<int64_t, double> losses;
  std::istringstream lines(e2e::slurp(dir / "metrics.jsonl"));
  for (std::string line; std::getline(lines, line);) {
    const json record = json::parse(line);
    losses[record.at("step").get<int64_t>()] = record.at("loss").get<double>();
  }
  return losses;
}

// A trained softmax model shared by the tests below.
const fs::path& trained_model() {
  static const fs::path dir = [] {
    const e2e::Result r = run("train_vit", train_args("softmax"), "train_softmax");
    INFO("stdout: " << r.out << "\nstderr: " << r.err);
    REQUIRE(r.exit_code == 0);
    return scratch() / "softmax";
  }();
  return dir;
}

}  // namespace

TEST_CASE("train_vit: trains a ViT on an image folder and writes an HF checkpoint that reloads", "[e2e][vit]") {
  const fs::path dir = trained_model();
  for (const char* file : {"config.json", "model.safetensors", "preprocessor_config.json", "summary.json",
                           "metrics.jsonl", "curves.svg", "checkpoint.safetensors"})
    CHECK(fs::exists(dir / file));
  const json summary = json::parse(e2e::slurp(dir / "summary.json"));
  for (const char* key : {"data", "attention", "steps", "params", "train_examples", "dev_examples", "test_examples",
                          "dev_accuracy", "test_accuracy", "best_step", "images_per_second", "seed"})
    CHECK(summary.contains(key));
  CHECK(summary["train_examples"] == 120);
  CHECK(summary["test_examples"] == 36);
  CHECK(summary["steps"] == 120);
  // The task is learnable by one layer (chance: 1/3).
  CHECK(summary["test_accuracy"].get<double>() >= 0.9);
  // The saved checkpoint is the model that scored it.
  CHECK(test_accuracy_of(dir) == Approx(summary["test_accuracy"].get<double>()).margin(1e-12));
  const json config = json::parse(e2e::slurp(dir / "config.json"));
  CHECK(config["id2label"] == json({{"0", "a"}, {"1", "b"}, {"2", "c"}}));
  CHECK(config["num_channels"] == 1);
  CHECK(config["image_size"] == 8);
  const json processor = json::parse(e2e::slurp(dir / "preprocessor_config.json"));
  CHECK(processor["size"] == json({{"height", 8}, {"width", 8}}));
  CHECK(processor["image_processor_type"] == "ViTImageProcessor");
}

TEST_CASE("train_vit: --stop-after then --resume gives the losses of an uninterrupted run", "[e2e][vit]") {
  const fs::path straight = trained_model();
  const e2e::Result first = run("train_vit", train_args("halves", {"--stop-after", "50"}), "halves_1");
  INFO("stdout: " << first.out << "\nstderr: " << first.err);
  REQUIRE(first.exit_code == 0);
  CHECK(first.out.find("stopped after step 50") != std::string::npos);
  CHECK(!fs::exists(scratch() / "halves" / "summary.json"));
  e2e::require_failure(run("train_vit", train_args("halves", {"--resume"}, {{"--lr", "0.5"}}), "halves_bad"), 1,
                       {"--resume", "lr"});
  const e2e::Result second = run("train_vit", train_args("halves", {"--resume"}), "halves_2");
  INFO("stdout: " << second.out << "\nstderr: " << second.err);
  REQUIRE(second.exit_code == 0);
  CHECK(second.out.find("resumed from") != std::string::npos);
  const auto a = losses_of(straight), b = losses_of(scratch() / "halves");
  REQUIRE(a.size() == b.size());
  for (const auto& [step, loss] : a) {
    INFO("step " << step);
    REQUIRE(b.count(step) == 1);
    CHECK(b.at(step) == loss);  // bit-exact
  }
  const json sa = json::parse(e2e::slurp(straight / "summary.json"));
  const json sb = json::parse(e2e::slurp(scratch() / "halves" / "summary.json"));
  CHECK(sa["test_accuracy"] == sb["test_accuracy"]);
}

TEST_CASE("convert_vit: softmax -> luna keeps the task and writes a checkpoint that reproduces the report", "[e2e][vit]") {
  const fs::path model = trained_model();
  const json trained = json::parse(e2e::slurp(model / "summary.json"));
  const e2e::Result r = run("convert_vit", convert_args("softmax", "to_luna", {"--distill-steps", "10"}), "to_luna");
  INFO("stdout: " << r.out << "\nstderr: " << r.err);
  REQUIRE(r.exit_code == 0);
  const fs::path out = scratch() / "to_luna";
  const json report = json::parse(e2e::slurp(out / "report.json"));
  for (const char* key : {"original_accuracy", "converted_accuracy_before_finetune", "converted_accuracy",
                          "recovery_percent", "steps", "attention", "trained"})
    CHECK(report.contains(key));
  CHECK(report["attention"] == "luna");
  CHECK(report["trained"] == "feature_map");
  CHECK(report["steps"] == 30);
  // The original is evaluated on the same test split as train_vit did.
  CHECK(report["original_accuracy"].get<double>() == Approx(trained["test_accuracy"].get<double>()).margin(1e-12));
  CHECK(report["recovery_percent"].get<double>() ==
        Approx(100.0 * report["converted_accuracy"].get<double>() / report["original_accuracy"].get<double>()));
  CHECK(report["converted_accuracy"].get<double>() >= 0.85);
  CHECK(report["distill_final_mse"].size() == 1);
  CHECK(r.out.find("distill step 10/10") != std::string::npos);
  // The checkpoint records luna and scores what the report says.
  const json config = json::parse(e2e::slurp(out / "config.json"));
  CHECK(config["luna_attention"]["attention"] == "luna");
  CHECK(test_accuracy_of(out) == Approx(report["converted_accuracy"].get<double>()).margin(1e-12));

  // --eval-only of the converted model: its own accuracy, nothing trained.
  const e2e::Result e = run("convert_vit", {"--model", out.string(), "--data", "imagefolder:" + gray_folder().string(),
                                            "--eval-only", "--threads", "1", "--out", (scratch() / "eval").string()},
                            "eval_only");
  INFO("stdout: " << e.out << "\nstderr: " << e.err);
  REQUIRE(e.exit_code == 0);
  const json evaluated = json::parse(e2e::slurp(scratch() / "eval" / "report.json"));
  CHECK(evaluated["original_attention"] == "luna");
  CHECK(evaluated["original_accuracy"].get<double>() == Approx(report["converted_accuracy"].get<double>()).margin(1e-12));
  CHECK(!fs::exists(scratch() / "eval" / "model.safetensors"));
}

TEST_CASE("convert_vit: elu trains the attention by default; feature_map is refused for it", "[e2e][vit]") {
  trained_model();
  e2e::require_failure(
      run("convert_vit", convert_args("softmax", "elu_fm", {"--attention", "elu", "--train", "feature_map"}), "elu_fm"),
      1, {"elu", "feature_map"});
  const e2e::Result r = run("convert_vit", convert_args("softmax", "to_elu", {"--attention", "elu"}), "to_elu");
  INFO("stdout: " << r.out << "\nstderr: " << r.err);
  REQUIRE(r.exit_code == 0);
  const json report = json::parse(e2e::slurp(scratch() / "to_elu" / "report.json"));
  CHECK(report["trained"] == "attention");
  CHECK(report["attention"] == "elu");
}

TEST_CASE("convert_vit: --attention softmax is the control: the original, fine-tuned the same way", "[e2e][vit]") {
  const fs::path model = trained_model();
  const e2e::Result r = run("convert_vit", convert_args("softmax", "control", {"--attention", "softmax"}), "control");
  INFO("stdout: " << r.out << "\nstderr: " << r.err);
  REQUIRE(r.exit_code == 0);
  const json report = json::parse(e2e::slurp(scratch() / "control" / "report.json"));
  CHECK(report["trained"] == "attention");
  // Nothing was converted: before any fine-tuning it is the original.
  CHECK(report["converted_accuracy_before_finetune"] == report["original_accuracy"]);
  const json config = json::parse(e2e::slurp(scratch() / "control" / "config.json"));
  CHECK(!config.contains("luna_attention"));
}

TEST_CASE("train_vit and convert_vit: bad input is an error naming the problem", "[e2e][vit]") {
  const std::string folder = "imagefolder:" + gray_folder().string();
  e2e::require_failure(run("train_vit", {"--data", "bogus:x"}, "bad_source"), 1, {"bogus:x", "imagefolder:DIR"});
  e2e::require_failure(run("train_vit", {"--data", folder}, "no_size"), 1, {"--image-size", folder});
  e2e::require_failure(run("train_vit", {"--attention", "fancy"}, "bad_kind"), 2, {"--attention", "fancy"});
  e2e::require_failure(run("train_vit", {"--steps", "0"}, "zero_steps"), 2, {"--steps"});
  e2e::require_failure(run("train_vit", {"--no-such-flag"}, "unknown_flag"), 2, {"--no-such-flag"});
  // The model's shape: refused in the flags' names before any data is read.
  const e2e::Result bad_heads =
      run("train_vit", {"--data", folder, "--image-size", "8", "--hidden-size", "30", "--heads", "4"}, "bad_heads");
  e2e::require_failure(bad_heads, 1, {"--hidden-size (30) must be divisible by --heads (4)"});
  CHECK(bad_heads.out.find("reading") == std::string::npos);
  const e2e::Result big_patch = run("train_vit", {"--data", folder, "--image-size", "8", "--patch-size", "9"}, "big_patch");
  e2e::require_failure(big_patch, 1, {"--patch-size (9)", "(8)"});
  CHECK(big_patch.out.find("reading") == std::string::npos);
  e2e::require_failure(run("train_vit", {"--device", "tpu"}, "tpu"), 1, {"--device", "tpu"});
  // Warmup past the last step: refused before any data is read.
  const e2e::Result late_warmup = run("train_vit", {"--steps", "10", "--warmup", "50"}, "late_warmup");
  e2e::require_failure(late_warmup, 1, {"--warmup (50)", "--steps (10)"});
  CHECK(late_warmup.out.find("reading") == std::string::npos);
  const std::string missing = (scratch() / "no_such_folder").string();
  e2e::require_failure(run("train_vit", {"--data", "imagefolder:" + missing, "--image-size", "8"}, "no_folder"), 1,
                       {missing});

  e2e::require_failure(run("convert_vit", {"--data", folder}, "no_model"), 2, {"--model"});
  e2e::require_failure(run("convert_vit", {"--model", missing}, "missing_model"), 1, {missing, "config.json"});
  const fs::path model = trained_model();
  e2e::require_failure(run("convert_vit", {"--model", model.string(), "--attention", "fancy"}, "to_fancy"), 2,
                       {"--attention", "fancy"});
  // The softmax-kernel start needs the envelope and one channel; refused before any data is read.
  e2e::require_failure(run("convert_vit", {"--model", model.string(), "--luna-init", "softmax"}, "init_no_envelope"),
                       2, {"--luna-init softmax", "no --luna-envelope", "--luna-l 4"});
  e2e::require_failure(run("convert_vit", {"--model", model.string(), "--luna-init", "favor"}, "init_unknown"), 2,
                       {"--luna-init", "favor"});
  const e2e::Result convert_late_warmup =
      run("convert_vit", {"--model", model.string(), "--data", "fmnist", "--steps", "10", "--warmup", "50"},
          "convert_late_warmup");
  e2e::require_failure(convert_late_warmup, 1, {"--warmup (50)", "--steps (10)"});
  CHECK(convert_late_warmup.out.find("reading") == std::string::npos);
  // Fashion-MNIST has 10 classes, the model 3.
  e2e::require_failure(run("convert_vit", {"--model", model.string(), "--data", "fmnist", "--threads", "1",
                                           "--max-train-examples", "64", "--max-eval-examples", "64",
                                           "--out", (scratch() / "wrong_task").string()},
                           "wrong_task"),
                       1, {"3", "10", "num_labels"});
  // RGB images for a 1-channel model: the error names an image file and both channel counts.
  const fs::path rgb = scratch() / "rgb_quadrants";
  write_image_folder(rgb, 3, 2, 1);
  const e2e::Result r = run("convert_vit", {"--model", model.string(), "--data", "imagefolder:" + rgb.string(),
                                            "--threads", "1", "--out", (scratch() / "rgb").string()},
                            "rgb");
  e2e::require_failure(r, 1, {rgb.string(), ".png", "3 channel", "1"});
  // A converted model is not converted again.
  const fs::path converted = scratch() / "to_luna";
  if (fs::exists(converted / "config.json"))
    e2e::require_failure(run("convert_vit", {"--model", converted.string(), "--data", folder, "--threads", "1",
                                             "--out", (scratch() / "again").string()},
                             "again"),
                         1, {"already uses attention 'luna'", "--eval-only"});
}
