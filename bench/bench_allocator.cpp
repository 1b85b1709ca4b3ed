// Steady-state memory behaviour of a small training step (matmul + gelu + sum, then backward):
// the caching allocator's counters per iteration, showing that after warm-up every tensor buffer
// comes from the cache (system_allocations stops growing). As a second, stricter view it also
// counts C++ heap allocations (operator new) per step: tensor metadata and autograd graph nodes,
// which the tensor allocator does not manage.
//
//   bench_allocator [--json] [--iters=100] [--warmup=10]
#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <new>
#include <string>
#include <vector>

#include <luna/luna.h>

#include "bench_timing.h"

namespace {
std::atomic<uint64_t> heap_news{0};  // every operator new call in the process
}

// Counting replacements of the global allocation functions (all other forms forward to these).
void* operator new(size_t size) {
  heap_news.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(size ? size : 1)) return p;
  throw std::bad_alloc();
}
void* operator new[](size_t size) { return operator new(size); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }
void operator delete[](void* p, size_t) noexcept { std::free(p); }

int main(int argc, char** argv) {
  using namespace luna;
  const bool json = bench::has_flag(argc, argv, "--json");
  const int iters = bench::number_flag<int>(argc, argv, "--iters", 100);
  const int warmup = bench::number_flag<int>(argc, argv, "--warmup", 10);
  init_threads();

  Generator gen(3);
  Tensor x = randn({64, 128}, {}, &gen).requires_grad_(true);   // (B, D)
  Tensor w = randn({128, 256}, {}, &gen).requires_grad_(true);  // (D, 4D)
  auto step = [&] {
    // zero_grad(set_to_none): each step's gradients are fresh outputs, as with an optimizer.
    x.set_grad(Tensor());
    w.set_grad(Tensor());
    Tensor loss = gelu(matmul(x, w)).sum();  // (B, 4D) -> ()
    loss.backward();
  };

  // Counters after selected steps: the first few (where the cache fills), the end of warm-up,
  // then evenly through the steady-state steps.
  const int total = warmup + iters;
  std::vector<int> checkpoints{1, 2, 3, warmup};
  for (int q = 1; q <= 4; ++q) checkpoints.push_back(warmup + iters * q / 4);
  if (!json) {
    std::printf("# step: loss = gelu(matmul(x[64,128], w[128,256])).sum(); loss.backward(); grads reset to none\n");
    std::printf("%8s %20s %12s %10s %16s\n", "step", "system_allocations", "cache_hits", "requests", "bytes_in_use");
  }
  AllocatorStats at_warmup{};
  uint64_t news_at_warmup = 0;
  for (int i = 1; i <= total; ++i) {
    step();
    if (i == warmup) {
      at_warmup = memory_stats();
      news_at_warmup = heap_news.load();
    }
    if (!json && std::find(checkpoints.begin(), checkpoints.end(), i) != checkpoints.end()) {
      const AllocatorStats st = memory_stats();
      std::printf("%8d %20llu %12llu %10llu %16llu%s\n", i, (unsigned long long)st.system_allocations,
                  (unsigned long long)st.cache_hits, (unsigned long long)st.requests,
                  (unsigned long long)st.bytes_in_use, i == warmup ? "   <- end of warm-up" : "");
    }
  }
  const AllocatorStats after = memory_stats();
  const uint64_t news = heap_news.load() - news_at_warmup;
  const uint64_t system = after.system_allocations - at_warmup.system_allocations;
  const uint64_t hits = after.cache_hits - at_warmup.cache_hits;
  const uint64_t requests = after.requests - at_warmup.requests;
  if (json) {
    std::printf("{\"bench\":\"allocator\",\"warmup\":%d,\"iters\":%d,\"system_allocations_warmup\":%llu,"
                "\"system_allocations_steady\":%llu,\"cache_hits_steady\":%llu,\"requests_steady\":%llu,"
                "\"requests_per_iter\":%.2f,\"heap_news_per_iter\":%.2f,\"bytes_cached\":%llu}\n",
                warmup, iters, (unsigned long long)at_warmup.system_allocations, (unsigned long long)system,
                (unsigned long long)hits, (unsigned long long)requests, double(requests) / iters,
                double(news) / iters, (unsigned long long)after.bytes_cached);
    return 0;
  }
  std::printf("over the %d steady-state steps: system_allocations +%llu, cache_hits +%llu, requests +%llu\n", iters,
              (unsigned long long)system, (unsigned long long)hits, (unsigned long long)requests);
  std::printf("per step: %.1f buffer requests (one per op output), %.2f from the system; %.1f C++ heap\n"
              "allocations (operator new: tensor metadata, autograd nodes; not managed by the tensor allocator)\n",
              double(requests) / iters, double(system) / iters, double(news) / iters);
  std::printf("steady state %s\n", system == 0 ? "reached: system_allocations did not grow after warm-up"
                                              : "NOT reached: system_allocations grew after warm-up");
  return 0;
}
