// Memory bandwidth of the memory-bound foundation ops (add, gelu, layer_norm forward) on large
// float32 tensors, as a fraction of what a plain memcpy reaches on the same machine in the same run
// (the better of a single memcpy call and one memcpy per thread over halves of the buffer).
// Bytes counted are the bytes an op must move: add reads 2 writes 1, gelu and layer_norm read 1
// write 1, memcpy reads 1 writes 1. The ops allocate their outputs (cached after warm-up).
//
//   bench_bandwidth [--json] [--quick] [--n=67108864] [--cols=1024] [--threads=N]
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include <omp.h>

#include <luna/luna.h>

#include "bench_timing.h"

namespace {
using namespace luna;

struct Row {
  std::string name;
  double bytes;  // bytes the operation must move
  std::function<void()> run;
};

}  // namespace

int main(int argc, char** argv) {
  const bool json = bench::has_flag(argc, argv, "--json");
  const bool quick = bench::has_flag(argc, argv, "--quick");
  const int64_t n = bench::number_flag<int64_t>(argc, argv, "--n", int64_t(1) << 26);
  const int64_t cols = bench::number_flag<int64_t>(argc, argv, "--cols", 1024);  // layer_norm row width C
  const int threads = bench::number_flag<int>(argc, argv, "--threads", 0);
  if (threads > 0) set_num_threads(threads);
  init_threads();
  NoGradGuard no_grad;

  Generator gen(1);
  const Tensor a = randn({n}, {}, &gen);  // (n,)
  const Tensor b = randn({n}, {}, &gen);  // (n,)
  Tensor dst = empty({n});                // (n,) memcpy target, touched once below
  std::memset(dst.data_ptr(), 0, size_t(n) * sizeof(float));
  const Tensor x2d = a.view({n / cols, cols});  // (rows, C) layer_norm input
  const Tensor weight = randn({cols}, {}, &gen), bias = randn({cols}, {}, &gen);
  const double nbytes = double(n) * sizeof(float);

  // Each op's output is dropped at once, so the next call reuses the same cached (already
  // faulted-in) block: the steady state of a training loop.
  std::vector<Row> rows{
      {"memcpy (1 thread)", 2 * nbytes, [&] { std::memcpy(dst.data_ptr(), a.data_ptr(), size_t(nbytes)); }},
      {"memcpy (all threads)", 2 * nbytes,
       [&] {
         char* d = static_cast<char*>(dst.data_ptr());
         const char* s = static_cast<const char*>(a.data_ptr());
         const int parts = omp_get_max_threads();
#pragma omp parallel for schedule(static)
         for (int p = 0; p < parts; ++p) {
           const size_t chunk = size_t(nbytes) / parts, begin = chunk * p;
           const size_t end = p + 1 == parts ? size_t(nbytes) : begin + chunk;
           std::memcpy(d + begin, s + begin, end - begin);
         }
       }},
      {"add", 3 * nbytes, [&] { Tensor out = add(a, b); }},
      {"gelu (erf)", 2 * nbytes, [&] { Tensor out = gelu(a); }},
      {"layer_norm [" + std::to_string(n / cols) + "," + std::to_string(cols) + "]", 2 * nbytes,
       [&] { Tensor out = layer_norm(x2d, {cols}, weight, bias, 1e-5); }},
  };

  std::vector<std::function<void()>> fns;
  for (const Row& r : rows) fns.push_back(r.run);
  const std::vector<double> ms = bench::interleaved_medians(fns, 2, quick ? 5 : 15);
  // The reference is the better of the two memcpy variants (the stricter comparison).
  const double memcpy_gbs = std::max(rows[0].bytes / (ms[0] * 1e6), rows[1].bytes / (ms[1] * 1e6));

  if (!json) {
    std::printf("# n = %lld float32 elements (%.0f MiB per tensor), threads=%d; median of %d interleaved runs\n",
                (long long)n, nbytes / (1 << 20), get_num_threads(), quick ? 5 : 15);
    std::printf("%-28s %10s %10s %10s %12s\n", "op", "ms", "GB/s", "vs memcpy", "target>=0.60");
  }
  for (size_t i = 0; i < rows.size(); ++i) {
    const double gbs = rows[i].bytes / (ms[i] * 1e6);
    const double ratio = gbs / memcpy_gbs;
    const bool is_op = i >= 2;
    if (json) {
      std::printf("{\"bench\":\"bandwidth\",\"op\":\"%s\",\"n\":%lld,\"threads\":%d,\"ms\":%.3f,\"gbps\":%.3f,"
                  "\"ratio_to_memcpy\":%.4f}\n",
                  rows[i].name.c_str(), (long long)n, get_num_threads(), ms[i], gbs, ratio);
    } else {
      std::printf("%-28s %10.2f %10.2f %10.3f %12s\n", rows[i].name.c_str(), ms[i], gbs, ratio,
                  is_op ? (ratio >= 0.60 ? "met" : "NOT met") : "");
    }
  }
  return 0;
}
