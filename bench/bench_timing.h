// Minimal timing harness shared by the foundation benchmarks: wall-clock timing, medians over
// repetitions, and interleaved A/B measurement so that drift on a shared machine hits both sides.
#pragma once
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <functional>
#include <limits>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

namespace luna::bench {

inline double now_ms() {
  using clock = std::chrono::steady_clock;
  return std::chrono::duration<double, std::milli>(clock::now().time_since_epoch()).count();
}

inline double median(std::vector<double> v) {
  if (v.empty()) return 0.0;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

inline double time_ms(const std::function<void()>& fn) {
  const double t0 = now_ms();
  fn();
  return now_ms() - t0;
}

// Times of several functions measured side by side: `warmup` untimed rounds, then `reps` rounds
// that each time every function once. times[f][r] is function f in round r. The order rotates
// every round so no function always runs right after another (caches, turbo and the other
// tenants' load then affect all alike). `pause_ms` > 0 sleeps that long, untimed, before each timed
// call: a thread pool that spins after its work (OpenBLAS's pthreads workers spin for about 2^28
// cycles before they sleep) would otherwise take CPU from whatever runs next, on a machine with no
// core to spare.
inline std::vector<std::vector<double>> interleaved_times(const std::vector<std::function<void()>>& fns, int warmup,
                                                         int reps, double pause_ms = 0) {
  for (int w = 0; w < warmup; ++w)
    for (const auto& f : fns) f();
  std::vector<std::vector<double>> times(fns.size());
  for (int r = 0; r < reps; ++r) {
    for (size_t j = 0; j < fns.size(); ++j) {
      const size_t i = (j + size_t(r)) % fns.size();
      if (pause_ms > 0) std::this_thread::sleep_for(std::chrono::duration<double, std::milli>(pause_ms));
      times[i].push_back(time_ms(fns[i]));
    }
  }
  return times;
}

// Median time of each function, measured as in interleaved_times.
inline std::vector<double> interleaved_medians(const std::vector<std::function<void()>>& fns, int warmup, int reps) {
  std::vector<double> out;
  for (auto& t : interleaved_times(fns, warmup, reps)) out.push_back(median(t));
  return out;
}

// Median over rounds of a[r] / b[r]: each ratio compares two runs made moments apart, so load
// that comes and goes between rounds cancels out.
inline double median_paired_ratio(const std::vector<double>& a, const std::vector<double>& b) {
  std::vector<double> ratios;
  for (size_t r = 0; r < a.size() && r < b.size(); ++r) ratios.push_back(a[r] / b[r]);
  return median(ratios);
}

inline bool has_flag(int argc, char** argv, const char* flag) {
  for (int i = 1; i < argc; ++i)
    if (std::strcmp(argv[i], flag) == 0) return true;
  return false;
}

// Value of "--name=value" or the default.
inline std::string flag_value(int argc, char** argv, const char* name, const std::string& fallback) {
  const std::string prefix = std::string(name) + "=";
  for (int i = 1; i < argc; ++i)
    if (std::strncmp(argv[i], prefix.c_str(), prefix.size()) == 0) return argv[i] + prefix.size();
  return fallback;
}

// The number given as "--name=value", or the default when the flag is absent; a value that is empty,
// not a whole number within T (or, for double, not a number) ends the program with a message naming
// the flag and the value.
template <class T>
T number_flag(int argc, char** argv, const char* name, T fallback) {
  const std::string absent(1, '\0');  // no argument can contain a NUL
  const std::string text = flag_value(argc, argv, name, absent);
  if (text == absent) return fallback;
  size_t used = 0;
  T value{};
  try {
    if constexpr (std::is_floating_point_v<T>) {
      value = T(std::stod(text, &used));
    } else {
      const long long whole = std::stoll(text, &used);
      if (whole < std::numeric_limits<T>::min() || whole > std::numeric_limits<T>::max()) used = 0;
      value = T(whole);
    }
  } catch (const std::exception&) {
    used = 0;
  }
  if (text.empty() || used != text.size()) {
    std::fprintf(stderr, "%s expects %s, got '%s'\n", name, std::is_floating_point_v<T> ? "a number" : "an integer",
                 text.c_str());
    std::exit(2);
  }
  return value;
}

}  // namespace luna::bench
