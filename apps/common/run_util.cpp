// Stop signals, devices, OpenMP policy, peak RSS and formatting for the training apps.
#include "run_util.h"

#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include <luna/core/error.h>

#ifdef LUNA_WITH_CUDA
#include <luna/backends/cuda/cuda.h>
#endif

namespace luna::apps {

namespace {
std::atomic<int> g_stop_signal{0};
extern "C" void on_stop_signal(int signal_number) { g_stop_signal.store(signal_number); }
}  // namespace

void install_stop_handlers() {
  g_stop_signal.store(0);
  struct sigaction action {};
  action.sa_handler = on_stop_signal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESETHAND;
  sigaction(SIGINT, &action, nullptr);
  sigaction(SIGTERM, &action, nullptr);
}

int stop_signal() { return g_stop_signal.load(); }

Device parse_device(const std::string& name, const std::string& program) {
  if (name == "cpu") return Device::cpu();
  const bool cuda = name == "cuda" || name.rfind("cuda:", 0) == 0;
  LUNA_CHECK(cuda, program, ": --device must be cpu or cuda[:N], got '", name, "'");
  int index = 0;
  if (name.size() > 5) {
    const std::string digits = name.substr(5);
    LUNA_CHECK(!digits.empty() && digits.size() < 6 && digits.find_first_not_of("0123456789") == std::string::npos,
               program, ": --device ", name, ": the CUDA index must be a number");
    index = std::stoi(digits);
  }
#ifdef LUNA_WITH_CUDA
  LUNA_CHECK(index < cuda::device_count(), program, ": --device ", name, ": no such CUDA device (",
             cuda::device_count(), " found", cuda::unavailable_reason().empty() ? "" : ": ", cuda::unavailable_reason(),
             ")");
#else
  LUNA_FAIL(program, ": --device ", name,
            ": this luna was built without CUDA (no nvcc found, or LUNA_CUDA=OFF); use --device cpu");
#endif
  return Device::cuda(index);
}

void prefer_passive_openmp(char** argv) {
  if (std::getenv("OMP_WAIT_POLICY") != nullptr) return;
  ::setenv("OMP_WAIT_POLICY", "passive", 1);
  ::execv("/proc/self/exe", argv);
}

void print_error(const std::string& program, const std::string& message) {
  const std::string prefix = program + ": ";
  const std::string what = message.rfind(prefix, 0) == 0 ? message.substr(prefix.size()) : message;
  std::fflush(stdout);
  std::fprintf(stderr, "\n%s: error: %s\n", program.c_str(), what.c_str());
}

int64_t peak_rss_bytes() {
  struct rusage usage {};
  getrusage(RUSAGE_SELF, &usage);
  return int64_t(usage.ru_maxrss) * 1024;
}

void clear_previous_run(const std::string& dir, const std::vector<std::string>& names) {
  bool replaced = false;
  for (const std::string& name : names) {
    const std::filesystem::path path = std::filesystem::path(dir) / name;
    std::error_code error;
    if (!std::filesystem::exists(path, error)) continue;
    std::filesystem::remove(path, error);
    LUNA_CHECK(!error, "cannot remove the earlier run's ", path.string(), ": ", error.message());
    replaced = true;
  }
  if (replaced) std::printf("note: replacing the previous run's files in %s (--resume continues a run)\n", dir.c_str());
}

std::string percent(double fraction) {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%.2f%%", 100.0 * fraction);
  return buffer;
}

}  // namespace luna::apps
