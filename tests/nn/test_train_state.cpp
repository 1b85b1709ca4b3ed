// Train-state checkpoints: K steps straight equal K/2 steps + save + load in a *fresh process* +
// K/2 steps, bit for bit (losses and parameters); atomic writes; and loads that fail cleanly.
#include "test_util.h"

#include <luna/core/safetensors.h>
#include <luna/nn/containers.h>
#include <luna/nn/layers.h>
#include <luna/nn/optim.h>
#include <luna/nn/train_state.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

using namespace luna;
namespace fs = std::filesystem;

namespace {

constexpr int kSteps = 12;

nn::Sequential make_model(uint64_t seed) {
  manual_seed(seed);
  return nn::Sequential(nn::Linear(8, 32), nn::ReLU(), nn::Dropout(0.2), nn::Linear(32, 4));
}

// One training step on a batch drawn from `data`; dropout draws from the default generator.
double train_step(nn::Sequential& model, optim::AdamW& optimizer, Generator& data) {
  const Tensor x = randn({16, 8}, {}, &data);             // (B, 8)
  const Tensor y = randint(0, 4, {16}, kInt64, &data);    // (B)
  optimizer.zero_grad();
  const Tensor loss = cross_entropy(model(x), y);
  loss.backward();
  optimizer.step();
  return loss.item<double>();
}

fs::path scratch_dir(const std::string& name) {
  fs::path dir = fs::temp_directory_path() / ("luna_train_state_" + name + "_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  return dir;
}

// Saves losses and final parameters so the parent process can compare them bit for bit.
void write_result(const fs::path& path, const std::vector<double>& losses, const nn::Sequential& model) {
  std::vector<std::pair<std::string, Tensor>> out = model->state_dict();
  out.emplace_back("losses", tensor(losses));
  save_safetensors(path.string(), out);
}

}  // namespace

// Runs in a child process started by the test below: resume from the checkpoint and finish.
TEST_CASE("resume phase 2 (child process)", "[.resume_child]") {
  const char* dir_env = std::getenv("LUNA_RESUME_DIR");
  REQUIRE(dir_env != nullptr);
  const fs::path dir(dir_env);
  nn::Sequential model = make_model(999);  // deliberately different init: the checkpoint must win
  optim::AdamW optimizer(model->parameters(), optim::AdamWOptions(1e-2));
  Generator data(12345);
  nn::TrainState state;
  state.generators["data"] = &data;
  nn::load_train_state((dir / "half.ckpt").string(), *model, &optimizer, state);
  REQUIRE(state.step == kSteps / 2);
  REQUIRE(state.config == R"({"lr":0.01})");
  std::vector<double> losses;
  for (int64_t step = state.step; step < kSteps; ++step) losses.push_back(train_step(model, optimizer, data));
  write_result(dir / "resumed.safetensors", losses, model);
}

TEST_CASE("resuming in a fresh process is bit-exact", "[nn][train_state]") {
  const fs::path dir = scratch_dir("resume");
  // Straight run.
  std::vector<double> straight;
  {
    nn::Sequential model = make_model(7);
    optim::AdamW optimizer(model->parameters(), optim::AdamWOptions(1e-2));
    Generator data(3);
    for (int step = 0; step < kSteps; ++step) straight.push_back(train_step(model, optimizer, data));
    write_result(dir / "straight.safetensors", straight, model);
  }
  // Half run, then checkpoint.
  {
    nn::Sequential model = make_model(7);
    optim::AdamW optimizer(model->parameters(), optim::AdamWOptions(1e-2));
    Generator data(3);
    for (int step = 0; step < kSteps / 2; ++step) train_step(model, optimizer, data);
    nn::TrainState state;
    state.step = kSteps / 2;
    state.generators["data"] = &data;
    state.config = R"({"lr":0.01})";
    nn::save_train_state((dir / "half.ckpt").string(), *model, &optimizer, state);
  }
  // Second half in a new process: nothing survives but the checkpoint file.
  const std::string command = "LUNA_RESUME_DIR='" + dir.string() + "' /proc/" + std::to_string(::getpid()) +
                              "/exe '[.resume_child]' > '" + (dir / "child.log").string() + "' 2>&1";
  const int status = std::system(command.c_str());
  std::ifstream log(dir / "child.log");
  const std::string child_output((std::istreambuf_iterator<char>(log)), std::istreambuf_iterator<char>());
  INFO(child_output);
  REQUIRE(status == 0);

  const SafetensorsFile a = load_safetensors((dir / "straight.safetensors").string());
  const SafetensorsFile b = load_safetensors((dir / "resumed.safetensors").string());
  const std::vector<double> resumed = testing::values(b.at("losses"));
  REQUIRE(resumed.size() == size_t(kSteps / 2));
  for (size_t i = 0; i < resumed.size(); ++i) REQUIRE(resumed[i] == straight[kSteps / 2 + i]);  // bit-exact
  for (const auto& [name, t] : a.tensors) {
    if (name == "losses") continue;
    INFO(name);
    REQUIRE(testing::values(b.at(name)) == testing::values(t));
  }
  fs::remove_all(dir);
}

TEST_CASE("checkpoints are written atomically and bad loads change nothing", "[nn][train_state]") {
  const fs::path dir = scratch_dir("atomic");
  nn::Sequential model = make_model(1);
  optim::AdamW optimizer(model->parameters(), optim::AdamWOptions(1e-2));
  Generator data(5);
  train_step(model, optimizer, data);
  nn::TrainState state;
  state.step = 1;
  const fs::path path = dir / "ckpt.safetensors";
  nn::save_train_state(path.string(), *model, &optimizer, state);
  nn::save_train_state(path.string(), *model, &optimizer, state);  // overwrite in place
  for (const auto& entry : fs::directory_iterator(dir)) REQUIRE(entry.path() == path);  // no temp files left

  // A different model: every mismatched key is named, and nothing is loaded.
  manual_seed(2);
  nn::Sequential other(nn::Linear(8, 16), nn::ReLU(), nn::Linear(16, 4));
  const std::vector<double> before = testing::values(other->parameters()[0]);
  nn::TrainState loaded;
  REQUIRE_THROWS_WITH(nn::load_train_state(path.string(), *other, nullptr, loaded),
                      Catch::Contains("0.weight: shape [32,8] in the checkpoint, [16,8] in the model") &&
                          Catch::Contains("unexpected keys"));
  REQUIRE(testing::values(other->parameters()[0]) == before);

  // A truncated file is rejected with its name, and the model is untouched.
  const fs::path truncated = dir / "truncated.safetensors";
  fs::copy_file(path, truncated);
  fs::resize_file(truncated, fs::file_size(path) / 2);
  nn::Sequential same = make_model(3);
  const std::vector<double> same_before = testing::values(same->parameters()[0]);
  REQUIRE_THROWS_WITH(nn::load_train_state(truncated.string(), *same, nullptr, loaded),
                      Catch::Contains("truncated.safetensors"));
  REQUIRE(testing::values(same->parameters()[0]) == same_before);

  // A plain safetensors file that is not a train state.
  const fs::path plain = dir / "plain.safetensors";
  save_safetensors(plain.string(), model->state_dict());
  REQUIRE_THROWS_WITH(nn::load_train_state(plain.string(), *same, nullptr, loaded),
                      Catch::Contains("not a luna train-state checkpoint"));
  fs::remove_all(dir);
}
