// End-to-end tests of apps/train_lra, run as a separate process the way a user runs it: bad
// command lines fail with messages naming the flag and value; a tiny generated ListOps run writes
// every output file with the documented keys for every attention kind; --resume after
// --stop-after or after SIGINT continues bit-exactly (the same losses as an uninterrupted run).
// The binary is found next to this test in the build tree (<build>/apps/train_lra), or through
// the environment variable LUNA_TRAIN_LRA.
#include "test_util.h"

#include "e2e_util.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include <luna/core/safetensors.h>
#include <luna/data/listops.h>
#include <luna/nn/attention.h>

using namespace luna;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

fs::path train_lra_binary() { return e2e::app_binary("train_lra", "LUNA_TRAIN_LRA"); }
fs::path scratch() { return e2e::scratch("train_lra"); }
using e2e::Child;
using e2e::finish;
using e2e::require_failure;
using e2e::Result;
using e2e::slurp;

// Starts train_lra with `args`, stdout and stderr going to files named after `name`.
Child start(const std::vector<std::string>& args, const std::string& name) {
  return e2e::start(train_lra_binary(), args, scratch(), name);
}

Result run(const std::vector<std::string>& args, const std::string& name) { return finish(start(args, name)); }

// A generated ListOps small enough for a fraction of a second per run. `extra` is appended;
// `replace` changes the value of one of the flags below (each flag may be given once).
std::vector<std::string> tiny(const std::string& out, std::vector<std::string> extra = {},
                              const std::map<std::string, std::string>& replace = {}) {
  const std::vector<std::pair<std::string, std::string>> flags = {
      {"--task", "listops"}, {"--data", (scratch() / "data").string()}, {"--train-examples", "96"},
      {"--dev-examples", "32"}, {"--test-examples", "32"}, {"--listops-min-length", "10"},
      {"--listops-max-length", "40"}, {"--max-len", "64"}, {"--batch", "8"}, {"--dim", "16"}, {"--heads", "2"},
      {"--layers", "1"}, {"--ffn", "32"}, {"--head-hidden", "16"}, {"--warmup", "2"}, {"--threads", "2"},
      {"--progress", "lines"}, {"--out", (scratch() / out).string()}};
  std::vector<std::string> args = {"--generate"};
  for (const auto& [flag, value] : flags) {
    args.push_back(flag);
    args.push_back(replace.count(flag) ? replace.at(flag) : value);
  }
  args.insert(args.end(), extra.begin(), extra.end());
  return args;
}

std::vector<json> metrics_of(const std::string& out) {
  std::ifstream in(scratch() / out / "metrics.jsonl");
  std::vector<json> records;
  std::string line;
  while (std::getline(in, line)) records.push_back(json::parse(line));
  return records;
}

// step -> the loss that step trained on.
std::map<int64_t, double> losses_of(const std::string& out) {
  std::map<int64_t, double> losses;
  for (const auto& r : metrics_of(out)) losses[r.at("step").get<int64_t>()] = r.at("loss").get<double>();
  return losses;
}


}  // namespace

TEST_CASE("train_lra: bad command lines are errors that name the flag and the value", "[e2e][train_lra]") {
  REQUIRE(fs::exists(train_lra_binary()));
  require_failure(run({"--task", "sorting"}, "bad_task"), 2, {"--task", "sorting", "listops"});
  require_failure(run({"--task", "listops", "--steps", "many"}, "bad_steps"), 2, {"--steps", "many"});
  require_failure(run({"--task", "listops", "--steps", "0"}, "zero_steps"), 2, {"--steps must be >= 1, got 0"});
  require_failure(run({"--task", "listops", "--attention", "fancy"}, "bad_attention"), 2,
                  {"--attention", "fancy", "softmax"});
  require_failure(run({"--task", "listops", "--dim", "30", "--heads", "4"}, "bad_heads"), 2,
                  {"--dim (30) must be divisible by --heads (4)"});
  require_failure(run({"--task", "listops", "--dropout", "1.5"}, "bad_dropout"), 2, {"--dropout", "1.5"});
  require_failure(run({"--task", "listops", "--luna-act", "tanh"}, "bad_act"), 2, {"--luna-act", "tanh"});
  require_failure(run({"--task", "listops", "--no-such-flag"}, "unknown_flag"), 2, {"--no-such-flag"});
  require_failure(run({"--task", "text", "--generate"}, "generate_text"), 2, {"--generate", "text"});
  require_failure(run({"--attention", "elu"}, "no_task"), 2, {"--task is required"});
  require_failure(run({"--task", "listops", "--protocol", "demo", "--task", "text"}, "twice"), 2, {"--task"});
#ifndef LUNA_WITH_CUDA
  require_failure(run({"--task", "listops", "--device", "cuda"}, "cuda"), 2, {"--device cuda", "without CUDA"});
#endif
  require_failure(run({"--task", "listops", "--device", "tpu"}, "tpu"), 2, {"--device", "tpu"});
  // A warmup past the end is a flag error, reported before any data is looked for (the folder here
  // does not exist, which would otherwise be the error).
  const std::string missing = (scratch() / "no_such_release").string();
  require_failure(run({"--task", "listops", "--data", missing, "--steps", "4", "--warmup", "10"}, "warmup"), 2,
                  {"--warmup (10) must not exceed --steps (4)", "--schedule rsqrt"});
  // Errors past parsing: missing data, resume without a checkpoint.
  require_failure(run({"--task", "listops", "--data", missing, "--out", (scratch() / "x").string()}, "no_data"), 1,
                  {"no listops data", missing, "--generate"});
  require_failure(run(tiny("never_ran", {"--resume", "--steps", "4"}), "resume_nothing"), 1,
                  {"--resume", "checkpoint.safetensors"});
}

TEST_CASE("train_lra: a tiny generated ListOps run writes every output, for each attention kind", "[e2e][train_lra]") {
  REQUIRE(fs::exists(train_lra_binary()));
  for (const std::string& kind : nn::available_attention_kinds()) {
    INFO("attention " << kind);
    const std::string out = "tiny_" + kind;
    const Result r = run(tiny(out, {"--attention", kind, "--steps", "12", "--eval-every", "6", "--log-every", "3"}), out);
    INFO("stdout: " << r.out << "\nstderr: " << r.err);
    REQUIRE(r.exit_code == 0);
    CHECK(r.out.find("test accuracy") != std::string::npos);
    CHECK(r.out.find("majority class") != std::string::npos);
    const fs::path dir = scratch() / out;
    for (const char* file : {"summary.json", "metrics.jsonl", "curves.svg", "checkpoint.safetensors", "best.safetensors"})
      CHECK(fs::exists(dir / file));
    CHECK(fs::exists(dir / "kernels.svg") == (kind == "luna"));

    const json summary = json::parse(slurp(dir / "summary.json"));
    for (const char* key : {"task", "protocol", "attention", "steps", "params", "train_examples", "dev_examples",
                            "test_examples", "dev_accuracy", "test_accuracy", "majority_class_accuracy",
                            "tokens_per_second", "peak_memory_bytes", "seed", "data_source"})
      CHECK(summary.contains(key));
    CHECK(summary["task"] == "listops");
    CHECK(summary["protocol"] == "skyformer");
    CHECK(summary["attention"] == kind);
    CHECK(summary["steps"] == 12);
    CHECK(summary["train_examples"] == 96);
    CHECK(summary["dev_examples"] == 32);
    CHECK(summary["test_examples"] == 32);
    CHECK(summary["data_source"] == "generated");
    CHECK(summary["seed"] == 0);
    CHECK(summary["params"].get<int64_t>() > 0);
    CHECK(summary["peak_memory_bytes"].get<int64_t>() > 0);
    CHECK(summary["tokens_per_second"].get<double>() > 0);
    for (const char* key : {"dev_accuracy", "test_accuracy", "majority_class_accuracy"}) {
      CHECK(summary[key].get<double>() >= 0.0);
      CHECK(summary[key].get<double>() <= 1.0);
    }
    // The majority-class rate is the test share of the most frequent train label.
    const auto folder = (scratch() / "data" / "listops-1000").string();
    const auto train = data::read_listops_split(folder, data::Split::train);
    const auto test = data::read_listops_split(folder, data::Split::test);
    const auto histogram = train.label_histogram();
    const int64_t majority = int64_t(std::max_element(histogram.begin(), histogram.end()) - histogram.begin());
    double hits = 0;
    for (int64_t label : test.labels) hits += label == majority;
    CHECK(summary["majority_class_accuracy"].get<double>() == Approx(hits / double(test.labels.size())));

    // Logged steps 3, 6, 9, 12; dev results at the evaluations (6 and 12).
    const auto records = metrics_of(out);
    REQUIRE(records.size() == 4);
    for (size_t i = 0; i < records.size(); ++i) {
      const json& record = records[i];
      CHECK(record["step"] == int64_t(3 * (i + 1)));
      for (const char* key : {"loss", "accuracy", "loss_avg", "accuracy_avg", "lr", "tokens_per_second"})
        CHECK(record.contains(key));
      CHECK(std::isfinite(record["loss"].get<double>()));
      CHECK(record.contains("dev_accuracy") == (i % 2 == 1));
    }
    const std::string curves = slurp(dir / "curves.svg");
    CHECK(curves.rfind("<?xml", 0) == 0);
    CHECK(curves.find("<polyline") != std::string::npos);
    CHECK(curves.find("</svg>") != std::string::npos);
    if (kind == "luna") {
      const std::string kernels = slurp(dir / "kernels.svg");
      CHECK(kernels.find("channel 3") != std::string::npos);  // L = 4 curves per layer
      CHECK(kernels.find("<polyline") != std::string::npos);
    }
  }
  // The data generated by the first run is reused; other sizes for the same folder are refused.
  const Result again = run(tiny("tiny_again", {"--steps", "2", "--eval-every", "2"}), "tiny_again");
  CHECK(again.exit_code == 0);
  CHECK(again.out.find("using the data generated earlier") != std::string::npos);
  require_failure(run(tiny("tiny_other", {"--steps", "2"}, {{"--train-examples", "50"}}), "tiny_other"), 1,
                  {"generated with", "\"num_train\":96", "\"num_train\":50"});
}

TEST_CASE("train_lra: --stop-after then --resume in a new process gives the same losses", "[e2e][train_lra]") {
  REQUIRE(fs::exists(train_lra_binary()));
  // 12 batches per epoch: the runs cross an epoch boundary; dropout 0.1 makes the RNG state matter.
  const std::vector<std::string> common = {"--steps", "18", "--eval-every", "5", "--log-every", "1"};
  auto with = [&](std::vector<std::string> more) {
    std::vector<std::string> all = common;
    all.insert(all.end(), more.begin(), more.end());
    return all;
  };
  REQUIRE(run(tiny("straight", with({})), "straight").exit_code == 0);
  const Result first = run(tiny("halves", with({"--stop-after", "7"})), "halves_1");
  REQUIRE(first.exit_code == 0);
  CHECK(first.out.find("stopped after step 7") != std::string::npos);
  CHECK(!fs::exists(scratch() / "halves" / "summary.json"));
  // A resume must repeat the original settings.
  require_failure(run(tiny("halves", with({"--resume", "--lr", "0.5"})), "halves_bad"), 1, {"lr", "--resume"});
  const Result second = run(tiny("halves", with({"--resume"})), "halves_2");
  INFO(second.out << second.err);
  REQUIRE(second.exit_code == 0);
  CHECK(second.out.find("resumed from") != std::string::npos);

  const auto straight = losses_of("straight"), resumed = losses_of("halves");
  REQUIRE(straight.size() == 18);
  REQUIRE(resumed.size() == 18);
  for (const auto& [step, loss] : straight) {
    INFO("step " << step);
    CHECK(resumed.at(step) == loss);  // bit-exact
  }
  const json a = json::parse(slurp(scratch() / "straight" / "summary.json"));
  const json b = json::parse(slurp(scratch() / "halves" / "summary.json"));
  CHECK(a["dev_accuracy"] == b["dev_accuracy"]);
  CHECK(a["test_accuracy"] == b["test_accuracy"]);
  CHECK(a["best_step"] == b["best_step"]);
}

TEST_CASE("train_lra: Ctrl-C saves a checkpoint and the resumed run matches an uninterrupted one", "[e2e][train_lra]") {
  REQUIRE(fs::exists(train_lra_binary()));
  const std::vector<std::string> common = {"--steps", "100000", "--eval-every", "100000", "--log-every", "1"};
  auto with = [&](std::vector<std::string> more) {
    std::vector<std::string> all = common;
    all.insert(all.end(), more.begin(), more.end());
    return all;
  };
  const Child child = start(tiny("interrupted", with({})), "interrupted");
  // Interrupt once a few steps are logged (the metrics file exists only after data and model are ready).
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (std::chrono::steady_clock::now() < deadline) {
    std::ifstream in(scratch() / "interrupted" / "metrics.jsonl");
    std::string line;
    int lines = 0;
    while (std::getline(in, line)) ++lines;
    if (lines >= 3) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  REQUIRE(::kill(child.pid, SIGINT) == 0);
  const Result interrupted = finish(child);
  INFO(interrupted.out << interrupted.err);
  REQUIRE(interrupted.exit_code == 130);
  const auto at = interrupted.out.find("interrupted (SIGINT) after step ");
  REQUIRE(at != std::string::npos);
  const int64_t step = std::stoll(interrupted.out.substr(at + 32));
  CHECK(step >= 3);
  CHECK(fs::exists(scratch() / "interrupted" / "checkpoint.safetensors"));

  const std::string until = std::to_string(step + 4);
  REQUIRE(run(tiny("interrupted", with({"--resume", "--stop-after", until})), "interrupted_2").exit_code == 0);
  REQUIRE(run(tiny("uninterrupted", with({"--stop-after", until})), "uninterrupted").exit_code == 0);
  const auto straight = losses_of("uninterrupted"), resumed = losses_of("interrupted");
  REQUIRE(straight.size() == size_t(step + 4));
  REQUIRE(resumed.size() == size_t(step + 4));  // the lines past the checkpoint were replaced
  for (const auto& [s, loss] : straight) {
    INFO("step " << s);
    CHECK(resumed.at(s) == loss);
  }
}

namespace {

void write_text(const fs::path& path, const std::string& text) {
  fs::create_directories(path.parent_path());
  std::ofstream out(path, std::ios::binary);
  out << text;
}

// A few lines of AAN pairs: "label id1 id2 text1 text2".
std::string aan_lines(int count) {
  std::string out;
  for (int i = 0; i < count; ++i)
    out += std::string(i % 2 ? "1.0" : "0.0") + "\tdoc" + std::to_string(i) + "\tdoc" + std::to_string(i + 1) +
           "\tpaper " + std::to_string(i) + " about attention\tanother paper " + std::to_string(i * 7) + "\n";
  return out;
}

// CIFAR-10 binary records: a label byte and three 32x32 planes.
std::string cifar_records(int count, int seed) {
  std::string out;
  for (int i = 0; i < count; ++i) {
    out += char((i + seed) % 10);
    for (int p = 0; p < 3 * 1024; ++p) out += char((p * 7 + i * 13 + seed) % 256);
  }
  return out;
}

// The tiny model and schedule every task uses here.
std::vector<std::string> tiny_model(const std::string& out) {
  return {"--steps", "2", "--warmup", "1", "--batch", "4", "--dim", "16", "--heads", "2", "--layers", "1",
          "--ffn", "16", "--head-hidden", "16", "--eval-every", "2", "--threads", "2", "--progress", "lines",
          "--out", (scratch() / out).string()};
}

json run_task(const std::string& name, std::vector<std::string> args) {
  const auto model = tiny_model(name);
  args.insert(args.end(), model.begin(), model.end());
  const Result r = run(args, name);
  INFO(name << "\nstdout: " << r.out << "\nstderr: " << r.err);
  REQUIRE(r.exit_code == 0);
  return json::parse(slurp(scratch() / name / "summary.json"));
}

}  // namespace

TEST_CASE("train_lra: every task's data format trains (synthetic files in the release layouts)", "[e2e][train_lra]") {
  REQUIRE(fs::exists(train_lra_binary()));
  const fs::path root = scratch() / "release";
  // retrieval: the dual-tower model on tsv_data/
  write_text(root / "tsv_data" / "new_aan_pairs.train.tsv", aan_lines(12));
  write_text(root / "tsv_data" / "new_aan_pairs.eval.tsv", aan_lines(4));
  write_text(root / "tsv_data" / "new_aan_pairs.test.tsv", aan_lines(6));
  json s = run_task("retrieval", {"--task", "retrieval", "--data", root.string(), "--max-len", "48"});
  CHECK(s["train_examples"] == 12);
  CHECK(s["dev_examples"] == 4);
  CHECK(s["test_examples"] == 6);
  CHECK(s["data_source"] == "official");
  CHECK(s["majority_class_accuracy"].get<double>() == Approx(0.5));
  // text: the aclImdb tree, given as the task folder itself; dev is the test set
  for (const char* split : {"train", "test"})
    for (int i = 0; i < 3; ++i) {
      write_text(root / "aclImdb" / split / "pos" / (std::to_string(i) + "_9.txt"), "a fine film, truly " + std::to_string(i));
      write_text(root / "aclImdb" / split / "neg" / (std::to_string(i) + "_2.txt"), "dull and long " + std::to_string(i));
    }
  s = run_task("text", {"--task", "text", "--data", (root / "aclImdb").string(), "--max-len", "40"});
  CHECK(s["train_examples"] == 6);
  CHECK(s["dev_examples"] == 6);
  CHECK(s["data_note"].get<std::string>().find("dev is the test set") != std::string::npos);
  // image: CIFAR-10 batches; train is the first nine tenths of the five data batches
  for (int b = 1; b <= 5; ++b) write_text(root / "cifar-10-batches-bin" / ("data_batch_" + std::to_string(b) + ".bin"), cifar_records(4, b));
  write_text(root / "cifar-10-batches-bin" / "test_batch.bin", cifar_records(4, 9));
  s = run_task("image", {"--task", "image", "--data", root.string()});
  CHECK(s["train_examples"] == 18);
  CHECK(s["dev_examples"] == 2);
  CHECK(s["test_examples"] == 4);
  CHECK(s["max_len"] == 1024);
  // the lra protocol: CLS pooling (the reader prepends CLS, the image length grows by one), Adam (0.9, 0.98)
  s = run_task("image_lra", {"--task", "image", "--data", root.string(), "--protocol", "lra"});
  CHECK(s["protocol"] == "lra");
  CHECK(s["max_len"] == 1025);
  CHECK(s["config"]["pooling"] == "cls");
  // pathfinder: generated (20 images cut 80/10/10)
  s = run_task("pathfinder", {"--task", "pathfinder", "--generate", "--data", (scratch() / "pf").string(),
                              "--train-examples", "16", "--dev-examples", "2", "--test-examples", "2"});
  CHECK(s["train_examples"] == 16);
  CHECK(s["dev_examples"] == 2);
  CHECK(s["test_examples"] == 2);
  CHECK(s["data_source"] == "generated");
  CHECK(fs::exists(scratch() / "pf" / "pathfinder32" / "curv_contour_length_14" / "generator.json"));
  // fmnist: Debian's dataset-fashion-mnist (installed by scripts/install_deps.sh's set-up)
  if (fs::exists("/usr/share/datasets/fashion-mnist")) {
    s = run_task("fmnist", {"--task", "fmnist", "--train-examples", "16", "--dev-examples", "8", "--test-examples", "8",
                            "--attention", "elu"});
    CHECK(s["train_examples"] == 16);
    CHECK(s["max_len"] == 784);
  } else {
    WARN("fmnist not checked: /usr/share/datasets/fashion-mnist is missing (apt-get install dataset-fashion-mnist)");
  }
}

TEST_CASE("train_lra: data written by generate_lra is reported as generated, and --generate checks it",
          "[e2e][train_lra]") {
  const fs::path generate_lra = e2e::app_binary("generate_lra", "LUNA_GENERATE_LRA");
  REQUIRE(fs::exists(generate_lra));
  const fs::path root = scratch() / "generate_lra";
  fs::remove_all(root);
  const Result written =
      finish(e2e::start(generate_lra,
                        {"--out", root.string(), "listops", "--train", "24", "--dev", "8", "--test", "8",
                         "--min-length", "10", "--max-length", "40", "--seed", "3"},
                        scratch(), "generate_lra"));
  INFO("generate_lra stderr: " << written.err);
  REQUIRE(written.exit_code == 0);
  const json record = json::parse(slurp(root / "listops-1000" / "generator.json"));
  CHECK(record["generator"] == "listops");
  CHECK(record["seed"] == 3);
  CHECK(record["num_train"] == 24);
  CHECK(record["complete"] == true);
  // Without the record (before generate_lra wrote one) this was reported as the official release.
  json s = run_task("from_generate_lra", {"--task", "listops", "--data", root.string(), "--max-len", "48"});
  CHECK(s["data_source"] == "generated");
  CHECK(s["train_examples"] == 24);
  // --generate asking for other data refuses the folder and names both records.
  const Result other = run({"--task", "listops", "--generate", "--data", root.string(), "--train-examples", "30",
                            "--dev-examples", "8", "--test-examples", "8", "--listops-min-length", "10",
                            "--listops-max-length", "40", "--steps", "1", "--warmup", "0",
                            "--out", (scratch() / "from_generate_lra_other").string()},
                           "from_generate_lra_other");
  CHECK(other.exit_code != 0);
  CHECK(other.err.find("holds data generated with") != std::string::npos);
  CHECK(other.err.find("\"num_train\":30") != std::string::npos);
}

TEST_CASE("train_lra: LUNA options reach the model", "[e2e][train_lra]") {
  REQUIRE(fs::exists(train_lra_binary()));
  const std::string out = "luna_options";
  const Result r = run(tiny(out, {"--steps", "2", "--eval-every", "2", "--luna-m", "8", "--luna-l", "3",
                                  "--luna-hidden", "5", "--luna-act", "gelu", "--luna-layout", "shared",
                                  "--luna-envelope", "--luna-per-head", "--luna-channel-rms-limit"}),
                       out);
  INFO(r.out << r.err);
  REQUIRE(r.exit_code == 0);
  const json s = json::parse(slurp(scratch() / out / "summary.json"));
  CHECK(s["config"]["luna"]["m"] == 8);
  CHECK(s["config"]["luna"]["layout"] == "shared");
  CHECK(s["config"]["luna"]["activation"] == "gelu");
  CHECK(s["config"]["luna"]["channel_rms_limit"] == true);
  // The checkpoint holds one feature map per head with the shared layout's shapes: proj (H, M, d),
  // psi.0.fc2.weight (H, L, Hψ), and the envelope's β.
  const SafetensorsFile best = load_safetensors((scratch() / out / "best.safetensors").string());
  const std::string prefix = "encoder.layers.0.self_attn.feature_map.";
  CHECK(best.at(prefix + "proj.weight").sizes() == Dims{2, 8, 8});
  CHECK(best.at(prefix + "psi.0.fc2.weight").sizes() == Dims{2, 3, 5});
  CHECK(best.contains(prefix + "envelope.beta"));
  // kernels.svg: a panel per head, L = 3 curves each
  const std::string kernels = slurp(scratch() / out / "kernels.svg");
  CHECK(kernels.find("layer 0, head 1") != std::string::npos);
  CHECK(kernels.find("channel 2") != std::string::npos);
  CHECK(kernels.find("channel 3") == std::string::npos);
}

TEST_CASE("train_lra: --eval-only re-evaluates the best-dev weights and writes each example's prediction",
          "[e2e][train_lra]") {
  REQUIRE(fs::exists(train_lra_binary()));
  // performer keeps its random features in buffers: they must come back with the weights.
  for (const std::string kind : {"luna", "performer"}) {
    INFO("attention " << kind);
    const std::string out = "eval_only_" + kind;
    const std::vector<std::string> run_flags = {"--attention", kind, "--steps", "12", "--eval-every", "4"};
    REQUIRE(run(tiny(out, run_flags), out).exit_code == 0);
    const fs::path dir = scratch() / out;
    const std::string summary_text = slurp(dir / "summary.json");
    const std::string checkpoint_bytes = slurp(dir / "checkpoint.safetensors");

    std::vector<std::string> eval_flags = run_flags;
    eval_flags.push_back("--eval-only");
    const Result r = run(tiny(out, eval_flags), out + "_eval");
    INFO("stdout: " << r.out << "\nstderr: " << r.err);
    REQUIRE(r.exit_code == 0);
    CHECK(r.out.find("test accuracy") != std::string::npos);
    // Nothing of the run changes; the evaluation reproduces the run's own numbers exactly.
    CHECK(slurp(dir / "summary.json") == summary_text);
    CHECK(slurp(dir / "checkpoint.safetensors") == checkpoint_bytes);
    const json summary = json::parse(summary_text);
    const json report = json::parse(slurp(dir / "eval.json"));
    CHECK(report["dev_accuracy"] == summary["dev_accuracy"]);
    CHECK(report["test_accuracy"] == summary["test_accuracy"]);
    CHECK(report["test_loss"] == summary["test_loss"]);
    CHECK(report["best_step"] == std::to_string(summary["best_step"].get<int64_t>()));
    CHECK(report["majority_class_accuracy"] == summary["majority_class_accuracy"]);

    // One line per test example in file order: its label as read, and predictions whose hits make
    // the reported accuracy.
    const auto test = data::read_listops_split((scratch() / "data" / "listops-1000").string(), data::Split::test);
    std::istringstream lines(slurp(dir / "predictions_test.tsv"));
    std::string line;
    REQUIRE(std::getline(lines, line));
    CHECK(line == "index\tlabel\tprediction");
    int64_t rows = 0, hits = 0;
    while (std::getline(lines, line)) {
      int64_t index = -1, label = -1, prediction = -1;
      std::istringstream fields(line);
      fields >> index >> label >> prediction;
      REQUIRE(index == rows);
      REQUIRE(size_t(index) < test.labels.size());
      CHECK(label == test.labels[size_t(index)]);
      CHECK((prediction >= 0 && prediction < 10));
      hits += label == prediction;
      ++rows;
    }
    CHECK(rows == int64_t(test.labels.size()));
    CHECK(double(hits) / double(rows) == Approx(report["test_accuracy"].get<double>()));
    CHECK(fs::exists(dir / "predictions_dev.tsv"));
  }
  // Settings that differ from the run's, a folder with no run, and --eval-only with --resume.
  require_failure(run(tiny("eval_only_luna", {"--attention", "luna", "--steps", "12", "--lr", "0.5", "--eval-only"}),
                      "eval_only_bad"),
                  1, {"--eval-only", "lr", "checkpoint"});
  require_failure(run(tiny("eval_only_nothing", {"--eval-only"}), "eval_only_nothing"), 1,
                  {"--eval-only", "eval_only_nothing", "checkpoint.safetensors"});
  require_failure(run(tiny("eval_only_luna", {"--eval-only", "--resume"}), "eval_only_resume"), 2,
                  {"--eval-only", "--resume"});
}
