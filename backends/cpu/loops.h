// Strided N-d iteration shared by the CPU kernels. Dims are coalesced where every operand is
// contiguous across them, then the innermost run is handed to a kernel functor that can take a
// tight, vectorizable path when all its operands have unit stride. Work is split across OpenMP
// threads by rows, or by chunks of the single row when everything coalesced into one.
#pragma once
#include <array>
#include <cstdint>

#include <omp.h>

#include <luna/core/tensor.h>

namespace luna::cpu {

// Below this many elements a loop stays on one thread: the fork costs more than it saves.
inline constexpr int64_t kParallelGrain = 32768;

// Calls fn(begin, end) over [0, n) cut into `parts` contiguous ranges, one per OpenMP thread. With
// parts <= 1 it calls fn(0, n) directly, outside any OpenMP construct: even a parallel region whose
// `if` is false sets up a team of one (0.5-1.2 µs), and a training step makes over a thousand calls
// on small tensors (fills, parameter-sized adds, copies, optimizer updates).
template <class RangeFn>
void run_in_ranges(int64_t n, int64_t parts, RangeFn&& fn) {
  if (parts <= 1) return fn(int64_t(0), n);
#pragma omp parallel for schedule(static)
  for (int64_t part = 0; part < parts; ++part) fn(n * part / parts, n * (part + 1) / parts);
}

template <int K>
struct StridedLayout {
  Dims sizes;
  std::array<Dims, K> strides;  // in elements, per operand
};

// Merges dims i and i+1 wherever all operands are contiguous across them, and drops size-1 dims.
template <int K>
StridedLayout<K> coalesce(const Dims& sizes, const std::array<Dims, K>& strides) {
  StridedLayout<K> out;
  for (int d = 0; d < sizes.size(); ++d) {
    if (sizes[d] == 1) continue;
    if (!out.sizes.empty()) {
      bool mergeable = true;
      for (int k = 0; k < K; ++k)
        if (out.strides[k].back() != strides[k][d] * sizes[d]) mergeable = false;
      if (mergeable) {
        out.sizes[out.sizes.size() - 1] *= sizes[d];
        for (int k = 0; k < K; ++k) out.strides[k][out.strides[k].size() - 1] = strides[k][d];
        continue;
      }
    }
    out.sizes.push_back(sizes[d]);
    for (int k = 0; k < K; ++k) out.strides[k].push_back(strides[k][d]);
  }
  if (out.sizes.empty()) {  // a single element
    out.sizes.push_back(1);
    for (int k = 0; k < K; ++k) out.strides[k].push_back(1);
  }
  return out;
}

// Calls row(ptrs, n, strides) for every innermost run: ptrs[k] points at operand k's first element
// of the run, strides[k] is its element stride within the run. K operands of element sizes `elem`.
template <int K, class RowFn>
void for_each_row(const Dims& sizes, std::array<char*, K> bases, const std::array<Dims, K>& strides,
                  const std::array<int64_t, K>& elem_bytes, RowFn&& row) {
  const StridedLayout<K> layout = coalesce<K>(sizes, strides);
  const int nd = layout.sizes.size();
  const int64_t inner = layout.sizes[nd - 1];
  int64_t rows = 1;
  for (int d = 0; d < nd - 1; ++d) rows *= layout.sizes[d];
  std::array<int64_t, K> inner_stride;
  for (int k = 0; k < K; ++k) inner_stride[k] = layout.strides[k][nd - 1];
  const int64_t total = rows * inner;
  if (total == 0) return;

  // Below the grain the rows run here, outside any OpenMP construct, as in run_in_ranges. Written out
  // rather than through it: through it GCC stopped vectorising small fills (bench_small_ops, fill_ of
  // 4096 floats 0.18 -> 0.32 µs).
  if (rows == 1) {
    // One long run: split it into per-thread chunks.
    const int64_t chunks = total >= 2 * kParallelGrain ? omp_get_max_threads() : 1;
    if (chunks <= 1) return row(bases, inner, inner_stride);
#pragma omp parallel for schedule(static)
    for (int64_t c = 0; c < chunks; ++c) {
      const int64_t begin = inner * c / chunks, end = inner * (c + 1) / chunks;
      std::array<char*, K> ptrs;
      for (int k = 0; k < K; ++k) ptrs[k] = bases[k] + begin * inner_stride[k] * elem_bytes[k];
      row(ptrs, end - begin, inner_stride);
    }
    return;
  }
  auto visit_row = [&](int64_t r) {
    std::array<char*, K> ptrs = bases;
    int64_t rem = r;
    for (int d = nd - 2; d >= 0; --d) {
      const int64_t idx = rem % layout.sizes[d];
      rem /= layout.sizes[d];
      for (int k = 0; k < K; ++k) ptrs[k] += idx * layout.strides[k][d] * elem_bytes[k];
    }
    row(ptrs, inner, inner_stride);
  };
  if (total < kParallelGrain) {
    for (int64_t r = 0; r < rows; ++r) visit_row(r);
    return;
  }
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; ++r) visit_row(r);
}

// Convenience: operand k = tensors[k] with its own sizes broadcast to `sizes` already.
template <int K>
std::array<char*, K> base_pointers(const std::array<const Tensor*, K>& ts) {
  std::array<char*, K> p;
  for (int k = 0; k < K; ++k) p[k] = static_cast<char*>(ts[k]->data_ptr());
  return p;
}
template <int K>
std::array<Dims, K> stride_set(const std::array<const Tensor*, K>& ts) {
  std::array<Dims, K> s;
  for (int k = 0; k < K; ++k) s[k] = ts[k]->strides();
  return s;
}
template <int K>
std::array<int64_t, K> elem_sizes(const std::array<const Tensor*, K>& ts) {
  std::array<int64_t, K> e;
  for (int k = 0; k < K; ++k) e[k] = int64_t(ts[k]->element_size());
  return e;
}

// Runs row(ptrs, n, strides) over tensors that all have the same sizes.
template <int K, class RowFn>
void for_each_row(const std::array<const Tensor*, K>& ts, RowFn&& row) {
  for_each_row<K>(ts[0]->sizes(), base_pointers<K>(ts), stride_set<K>(ts), elem_sizes<K>(ts),
                  std::forward<RowFn>(row));
}

}  // namespace luna::cpu
