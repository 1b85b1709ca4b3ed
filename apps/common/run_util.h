// Small pieces every training app needs: Ctrl-C / SIGTERM as a stop request checked between
// steps, --device parsing and checking, the passive OpenMP wait policy, peak resident memory, and
// number formatting.
#pragma once
#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include <luna/core/device.h>

namespace luna::apps {

// Installs SIGINT/SIGTERM handlers that only record the signal (SA_RESETHAND: a second Ctrl-C
// kills at once) and clears any earlier request.
void install_stop_handlers();
// The signal number received since install_stop_handlers, or 0.
int stop_signal();

// "cpu", "cuda" or "cuda:N" -> Device. `program` prefixes the errors: an unknown name, a CUDA
// device in a build without CUDA, or an index past the devices found.
Device parse_device(const std::string& name, const std::string& program);

// libgomp reads OMP_WAIT_POLICY once, when it is loaded (before main), and by default lets idle
// threads spin; on a machine shared with other jobs that made train_lra's demo 5-8x slower. Unless
// the user chose a policy, the program runs itself again with the passive one (execv returns only
// on failure, and then the run carries on as it is).
void prefer_passive_openmp(char** argv);

// "<program>: error: <what>" on stderr (after flushing stdout), without repeating the program
// name the message may already start with.
void print_error(const std::string& program, const std::string& message);

// The most resident memory the process has had (the kernel's count, caches and all).
int64_t peak_rss_bytes();

// A new (not resumed) run in a folder that holds an earlier run's files: removes those of `names`
// that exist and prints a note saying so.
void clear_previous_run(const std::string& dir, const std::vector<std::string>& names);

// "12.34%"
std::string percent(double fraction);

using Clock = std::chrono::steady_clock;
inline double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

}  // namespace luna::apps
