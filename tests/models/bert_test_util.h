// Helpers shared by the BERT tests: fixture paths, a scratch directory, relative errors, and the
// optional PyTorch venv (build/venv-torch) that the real-weights and save-then-load-in-HF checks use.
#pragma once
#include "test_util.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <sstream>
#include <string>
#include <unistd.h>

namespace luna::testing::bert {

inline std::filesystem::path repo_root() {
  return std::filesystem::path(__FILE__).parent_path().parent_path().parent_path();
}
inline std::filesystem::path fixtures() { return repo_root() / "tests" / "fixtures" / "bert"; }
inline std::string small_model_dir() { return (fixtures() / "small").string(); }

// A fresh directory under the system temp dir, removed with everything in it at scope exit.
class ScratchDir {
 public:
  explicit ScratchDir(const std::string& name) {
    path_ = std::filesystem::temp_directory_path() / ("luna_bert_" + name + "_" + std::to_string(::getpid()));
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~ScratchDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  std::string str() const { return path_.string(); }
  std::string file(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

inline std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  REQUIRE(in.good());
  std::ostringstream os;
  os << in.rdbuf();
  return os.str();
}

inline void write_text(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  REQUIRE(out.good());
  out << text;
}

// Runs `call`, requires a luna::Error, and requires each of `pieces` in its message.
inline std::string require_error(const std::function<void()>& call, const std::vector<std::string>& pieces) {
  std::string message;
  try {
    call();
  } catch (const luna::Error& error) {
    message = error.what();
  }
  INFO("error message: " << message);
  REQUIRE(!message.empty());
  for (const std::string& piece : pieces) {
    INFO("expected piece: " << piece);
    CHECK(message.find(piece) != std::string::npos);
  }
  return message;
}

// max |got - want| / max |want| over all elements.
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

// The venv's python when it exists (LUNA_TORCH_PYTHON overrides), else nullopt.
inline std::optional<std::string> torch_python() {
  std::string python = (repo_root() / "build" / "venv-torch" / "bin" / "python").string();
  if (const char* override_path = std::getenv("LUNA_TORCH_PYTHON")) python = override_path;
  if (!std::filesystem::exists(python)) return std::nullopt;
  return python;
}

inline std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

// True when `python` can find every module of the comma-separated list (found, not imported:
// importing torch takes seconds).
inline bool python_has(const std::string& python, const std::string& modules) {
  const std::string code = "import importlib.util, sys; sys.exit(0 if all(importlib.util.find_spec(m.strip()) for m in '" +
                           modules + "'.split(',')) else 1)";
  const std::string command = shell_quote(python) + " -c " + shell_quote(code) + " >/dev/null 2>&1";
  return std::system(command.c_str()) == 0;
}

// Runs scripts/make_bert_fixture.py with `args`; its output goes to `log`. True on success.
inline bool run_fixture_script(const std::string& python, const std::string& args, const std::string& log) {
  const std::string script = (repo_root() / "scripts" / "make_bert_fixture.py").string();
  const std::string command = "OMP_NUM_THREADS=2 " + shell_quote(python) + " " + shell_quote(script) + " " + args +
                              " >" + shell_quote(log) + " 2>&1";
  return std::system(command.c_str()) == 0;
}

// The directory of the running test executable (inside the build tree).
inline std::filesystem::path executable_dir() { return std::filesystem::canonical("/proc/self/exe").parent_path(); }

}  // namespace luna::testing::bert
