// Helpers for the ViT tests: fixture paths, scratch directories, relative errors, and editing a
// checkpoint folder (config keys, tensors) to build bad inputs, and the optional Python side.
#pragma once
#include "test_util.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>

#include <nlohmann/json.hpp>

#include <luna/models/vit.h>

namespace luna::testing::vit {

namespace fs = std::filesystem;

inline fs::path fixture_dir() { return fs::path(__FILE__).parent_path().parent_path() / "fixtures" / "vit"; }

// A small softmax ViT config (3 labels, no names) for tests that build models in memory.
inline models::ViTConfig small_vit_config() {
  models::ViTConfig config;
  config.hidden_size = 16;
  config.num_hidden_layers = 2;
  config.num_attention_heads = 2;
  config.intermediate_size = 32;
  config.image_size = 8;
  config.patch_size = 2;
  config.num_channels = 3;
  config.num_labels = 3;
  config.layer_norm_eps = 1e-12;
  config.initializer_range = 0.2;  // large enough that softmax attention is far from uniform
  return config;
}

// A fresh directory under the system temp dir, removed with its contents at scope exit.
class ScratchDir {
 public:
  explicit ScratchDir(const std::string& name) {
    static int counter = 0;
    path_ = fs::temp_directory_path() /
            ("luna_vit_" + name + "_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~ScratchDir() {
    std::error_code ignored;
    fs::remove_all(path_, ignored);
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  const fs::path& path() const { return path_; }
  std::string str() const { return path_.string(); }

 private:
  fs::path path_;
};

// max |got − want| / max |want| (the max norm, as the other parity tests).
inline double relative_error(const Tensor& got, const Tensor& want) {
  REQUIRE(got.sizes() == want.sizes());
  const std::vector<double> a = values(got), b = values(want);
  double diff = 0, scale = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    diff = std::max(diff, std::abs(a[i] - b[i]));
    scale = std::max(scale, std::abs(b[i]));
  }
  return scale == 0 ? diff : diff / scale;
}

inline std::string read_file(const fs::path& path) {
  std::ifstream file(path, std::ios::binary);
  std::ostringstream text;
  text << file.rdbuf();
  return text.str();
}

inline void write_file(const fs::path& path, const std::string& text) {
  std::ofstream file(path, std::ios::binary | std::ios::trunc);
  file << text;
}

// Copies a fixture checkpoint folder into `dir` (config.json and model.safetensors).
inline void copy_checkpoint(const fs::path& from, const fs::path& dir) {
  fs::create_directories(dir);
  fs::copy_file(from / "config.json", dir / "config.json", fs::copy_options::overwrite_existing);
  fs::copy_file(from / "model.safetensors", dir / "model.safetensors", fs::copy_options::overwrite_existing);
}

// Rewrites dir/config.json through `edit`.
inline void edit_config(const fs::path& dir, const std::function<void(nlohmann::json&)>& edit) {
  nlohmann::json config = nlohmann::json::parse(read_file(dir / "config.json"));
  edit(config);
  write_file(dir / "config.json", config.dump(2));
}

// Rewrites dir/model.safetensors through `edit` on its (name, tensor) list.
inline void edit_weights(const fs::path& dir, const std::function<void(nn::NamedTensors&)>& edit) {
  const SafetensorsFile file = load_safetensors((dir / "model.safetensors").string());
  nn::NamedTensors tensors;
  for (const auto& [name, t] : file.tensors) tensors.emplace_back(name, t.clone());
  edit(tensors);
  save_safetensors((dir / "model.safetensors").string(), tensors);
}

// The message of the luna::Error `fn` throws; fails the test when it throws nothing.
inline std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const Error& error) {
    return error.what();
  }
  FAIL("expected a luna::Error");
  return "";
}

// ---- the optional PyTorch side (transformers, timm), run through scripts/make_vit_fixture.py ----

inline fs::path repo_root() { return fs::path(__FILE__).parent_path().parent_path().parent_path(); }

inline std::string shell_quote(const std::string& text) {
  std::string out = "'";
  for (char c : text) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

// LUNA_TORCH_PYTHON, else the project venv (build/venv-torch), else python3 on PATH.
inline std::string torch_python() {
  if (const char* python = std::getenv("LUNA_TORCH_PYTHON")) return python;
  const fs::path venv = repo_root() / "build" / "venv-torch" / "bin" / "python";
  return fs::exists(venv) ? venv.string() : "python3";
}

// Whether `python` finds every module (found, not imported: importing transformers alone takes
// seconds; a broken install still fails loudly when the script runs).
inline bool can_import(const std::string& python, const std::string& modules) {
  const std::string code = "import importlib.util, sys; sys.exit(any(importlib.util.find_spec(m) is None for m in '" +
                           modules + "'.split(',')))";
  const std::string command = shell_quote(python) + " -c " + shell_quote(code) + " >/dev/null 2>&1";
  return std::system(command.c_str()) == 0;
}

// The directory of this test executable (the build tree).
inline fs::path build_dir() {
  std::error_code error;
  const fs::path exe = fs::read_symlink("/proc/self/exe", error);
  return error ? fs::current_path() : exe.parent_path();
}

}  // namespace luna::testing::vit
