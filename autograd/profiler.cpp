// The opt-in per-op time profile (profiler.h): a clock read per mark, totals in a map.
#include <luna/autograd/profiler.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <ctime>
#include <map>
#include <mutex>

namespace luna::autograd {
namespace {

std::atomic<bool> profiling{false};

struct Clocks {
  double cpu_ms = 0, wall_ms = 0;
  static Clocks now() {
    timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    const double wall = std::chrono::duration<double, std::milli>(
                            std::chrono::steady_clock::now().time_since_epoch())
                            .count();
    return {double(t.tv_sec) * 1e3 + double(t.tv_nsec) / 1e6, wall};
  }
};

struct Profile {
  std::mutex mutex;
  Clocks last;
  std::map<std::string, OpTime> totals;
};

Profile& profile() {
  static Profile p;
  return p;
}

}  // namespace

void start_op_profile() {
  Profile& p = profile();
  std::lock_guard<std::mutex> lock(p.mutex);
  p.totals.clear();
  p.last = Clocks::now();
  profiling.store(true, std::memory_order_relaxed);
}

std::vector<OpTime> stop_op_profile() {
  Profile& p = profile();
  std::lock_guard<std::mutex> lock(p.mutex);
  profiling.store(false, std::memory_order_relaxed);
  std::vector<OpTime> out;
  for (const auto& [name, time] : p.totals) out.push_back(time);
  std::sort(out.begin(), out.end(), [](const OpTime& a, const OpTime& b) { return a.cpu_ms > b.cpu_ms; });
  return out;
}

bool op_profile_on() { return profiling.load(std::memory_order_relaxed); }

void op_profile_mark(const char* phase, const char* name) {
  if (!op_profile_on()) return;
  Profile& p = profile();
  std::lock_guard<std::mutex> lock(p.mutex);
  const Clocks now = Clocks::now();
  const std::string key = std::string(phase) + " " + name;
  OpTime& t = p.totals[key];
  t.name = key;
  t.cpu_ms += now.cpu_ms - p.last.cpu_ms;
  t.wall_ms += now.wall_ms - p.last.wall_ms;
  ++t.calls;
  p.last = now;
}

}  // namespace luna::autograd
