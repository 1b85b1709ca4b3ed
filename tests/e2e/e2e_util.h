// Helpers of the end-to-end tests: run an app of the build tree as a separate process the way a
// user does (stdout and stderr captured in files), in a scratch folder removed at exit, and check
// failures for their exit code and message.
#pragma once
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

namespace luna::e2e {

namespace fs = std::filesystem;

// <build>/apps/<name> next to this test's <build>/tests/<test>, or the path in `env_override`.
inline fs::path app_binary(const std::string& name, const char* env_override) {
  if (const char* env = std::getenv(env_override)) return env;
  return fs::canonical("/proc/self/exe").parent_path().parent_path() / "apps" / name;
}

// A folder for this process's runs (one per `tag`), removed at exit.
inline fs::path scratch(const std::string& tag) {
  struct Folder {
    fs::path path;
    explicit Folder(fs::path p) : path(std::move(p)) {
      fs::remove_all(path);
      fs::create_directories(path);
    }
    ~Folder() {
      std::error_code ignored;
      fs::remove_all(path, ignored);
    }
  };
  static const Folder folder(fs::temp_directory_path() / ("luna_e2e_" + tag + "_" + std::to_string(::getpid())));
  return folder.path;
}

struct Child {
  pid_t pid = -1;
  fs::path out, err;
};

// Starts `binary` with `args`; stdout and stderr go to <logs>/<name>.stdout and .stderr.
inline Child start(const fs::path& binary, const std::vector<std::string>& args, const fs::path& logs,
                   const std::string& name) {
  Child child;
  child.out = logs / (name + ".stdout");
  child.err = logs / (name + ".stderr");
  std::vector<std::string> all = {binary.string()};
  all.insert(all.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : all) argv.push_back(a.data());
  argv.push_back(nullptr);
  const std::string out = child.out.string(), err = child.err.string();
  child.pid = ::fork();
  REQUIRE(child.pid >= 0);
  if (child.pid == 0) {
    const int out_fd = ::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    const int err_fd = ::open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (out_fd < 0 || err_fd < 0) ::_exit(126);
    ::dup2(out_fd, 1);
    ::dup2(err_fd, 2);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  return child;
}

inline std::string slurp(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

struct Result {
  int exit_code = -1;
  std::string out, err;
};

inline Result finish(const Child& child) {
  int status = 0;
  REQUIRE(::waitpid(child.pid, &status, 0) == child.pid);
  Result r;
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  r.out = slurp(child.out);
  r.err = slurp(child.err);
  return r;
}

// The run failed with `exit_code` and its stderr holds every fragment.
inline void require_failure(const Result& r, int exit_code, const std::vector<std::string>& fragments) {
  INFO("stdout: " << r.out << "\nstderr: " << r.err);
  CHECK(r.exit_code == exit_code);
  for (const auto& fragment : fragments) CHECK(r.err.find(fragment) != std::string::npos);
}

}  // namespace luna::e2e
