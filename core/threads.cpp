// Thread-count control shared by OpenMP and OpenBLAS.
#include <luna/core/threads.h>
#include <luna/core/error.h>

#include <omp.h>
#include <sched.h>

#include <cstdlib>
#include <mutex>
#include <string>

extern "C" void openblas_set_num_threads(int num_threads);

namespace luna {
namespace {
int current_threads = 0;

int available_cores() {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) return CPU_COUNT(&set);
  return omp_get_num_procs();
}
}  // namespace

void set_num_threads(int n) {
  LUNA_CHECK(n >= 1, "set_num_threads: thread count must be >= 1, got ", n);
  current_threads = n;
  omp_set_num_threads(n);
  openblas_set_num_threads(n);
}

int get_num_threads() {
  init_threads();
  return current_threads;
}

void init_threads() {
  static std::once_flag once;
  std::call_once(once, [] {
    if (current_threads != 0) return;  // set_num_threads() was called first: it wins
    int n = available_cores();
    if (const char* env = std::getenv("LUNA_NUM_THREADS")) {
      char* end = nullptr;
      const long v = std::strtol(env, &end, 10);
      LUNA_CHECK(end != env && *end == '\0' && v >= 1, "LUNA_NUM_THREADS must be a positive integer, got '",
                 env, "'");
      n = int(v);
    }
    set_num_threads(n);
  });
}

}  // namespace luna
