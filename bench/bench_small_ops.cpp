// Per-call time of elementwise ops on small float32 tensors, where the cost is the call rather than
// the arithmetic: fill_, a + b, and a strided copy (contiguous() of a transpose). A training step
// makes about 1,600 such calls for parameter-sized tensors, so their fixed cost (dispatch, the
// output's allocation, any OpenMP team set-up) shows up in small models' throughput.
//
//   bench_small_ops [--json] [--threads=N] [--reps=R] [--calls=C]
//
// Prints, per size, the median over R rounds of the mean microseconds per call over C calls.
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include <luna/luna.h>

#include "bench_timing.h"

using namespace luna;

int main(int argc, char** argv) {
  const bool json = bench::has_flag(argc, argv, "--json");
  const int threads = bench::number_flag<int>(argc, argv, "--threads", 0);
  const int reps = bench::number_flag<int>(argc, argv, "--reps", 7);
  const int calls = bench::number_flag<int>(argc, argv, "--calls", 20000);
  if (reps < 1 || calls < 1) {
    std::fprintf(stderr, "--reps and --calls must be at least 1 (got %d and %d)\n", reps, calls);
    return 2;
  }
  if (threads > 0) set_num_threads(threads);
  init_threads();
  NoGradGuard no_grad;
  if (!json) std::printf("# threads=%d reps=%d calls=%d; microseconds per call\n", get_num_threads(), reps, calls);
  if (!json) std::printf("%8s %10s %10s %12s\n", "numel", "fill_", "a + b", "strided copy");

  Generator gen(1);
  for (const int64_t n : {int64_t(64), int64_t(4096), int64_t(16384)}) {
    const Tensor a = randn({n}, {}, &gen), b = randn({n}, {}, &gen);  // (n,)
    const Tensor transposed = randn({4, n / 4}, {}, &gen).t();        // (n/4, 4), strides (1, n/4)
    auto repeat = [calls](const std::function<void()>& op) {
      return [calls, op] {
        for (int i = 0; i < calls; ++i) op();
      };
    };
    const std::vector<double> ms = bench::interleaved_medians(
        {repeat([&] { a.fill_(1.0); }), repeat([&] { (void)(a + b); }), repeat([&] { (void)transposed.contiguous(); })},
        1, reps);
    const double fill_us = 1e3 * ms[0] / calls, add_us = 1e3 * ms[1] / calls, copy_us = 1e3 * ms[2] / calls;
    if (json)
      std::printf("{\"numel\": %lld, \"fill_us\": %.4f, \"add_us\": %.4f, \"strided_copy_us\": %.4f}\n", (long long)n,
                  fill_us, add_us, copy_us);
    else
      std::printf("%8lld %10.3f %10.3f %12.3f\n", (long long)n, fill_us, add_us, copy_us);
  }
  return 0;
}
