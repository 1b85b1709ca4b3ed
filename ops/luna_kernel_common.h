// Small pieces shared by the LUNA kernel files (ops/luna_kernels.cpp for the direct ψ and linear
// attention, ops/luna_psi_piecewise.cpp for the exact ReLU ψ): the parallel grain, ψ's final ReLU
// and per-thread partial sums. Internal to those files.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

namespace luna::cpu::luna_kernels::detail {

// Below this much work (scalars × channels, or tokens × features) a loop stays on one thread.
constexpr int64_t kParallelWork = 16384;

// The final ReLU of ψ; NaN passes through so anomaly mode can see it.
template <class T>
inline T outer_relu(T s) { return s < T(0) ? T(0) : s; }

// Per-thread partial sums, reduced into the first slot after the parallel loop (in thread order,
// so a given thread count always gives the same bits).
struct ThreadPartials {
  int64_t per_thread;
  std::vector<double> data;
  ThreadPartials(int64_t size, int threads) : per_thread(size), data(std::size_t(size) * std::size_t(threads), 0.0) {}
  double* slot(int thread) { return data.data() + int64_t(thread) * per_thread; }
  const double* reduce(int threads) {
    for (int t = 1; t < threads; ++t)
      for (int64_t i = 0; i < per_thread; ++i) data[i] += data[int64_t(t) * per_thread + i];
    return data.data();
  }
};

}  // namespace luna::cpu::luna_kernels::detail
