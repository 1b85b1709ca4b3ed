// CPU reductions. Two shapes of loop: reduced dims innermost (each output is a dot-like sweep over
// a run of input) or a kept contiguous last dim (whole rows accumulate into the output row, which
// vectorizes). Float32 sums accumulate in double.
#include <luna/backends/cpu/cpu_backend.h>
#include <luna/backends/cpu/loops.h>

#include <cmath>
#include <limits>

namespace luna::cpu {
namespace {

template <class T>
using acc_t = std::conditional_t<std::is_floating_point_v<T>, double, std::conditional_t<std::is_same_v<T, bool>, int64_t, T>>;

template <class T>
struct Reducer {
  ReduceOp op;
  acc_t<T> init() const {
    using A = acc_t<T>;
    switch (op) {
      case ReduceOp::Sum: return A(0);
      case ReduceOp::Prod: return A(1);
      case ReduceOp::Max:
        if constexpr (std::is_floating_point_v<T>) return -std::numeric_limits<A>::infinity();
        else return A(std::numeric_limits<T>::lowest());
      case ReduceOp::Min:
        if constexpr (std::is_floating_point_v<T>) return std::numeric_limits<A>::infinity();
        else return A(std::numeric_limits<T>::max());
    }
    return A(0);
  }
  acc_t<T> combine(acc_t<T> acc, T v) const {
    using A = acc_t<T>;
    switch (op) {
      case ReduceOp::Sum: return acc + A(v);
      case ReduceOp::Prod: return acc * A(v);
      case ReduceOp::Max:
        if constexpr (std::is_floating_point_v<T>) {
          if (std::isnan(v) || std::isnan(acc)) return std::numeric_limits<A>::quiet_NaN();
        }
        return A(v) > acc ? A(v) : acc;
      case ReduceOp::Min:
        if constexpr (std::is_floating_point_v<T>) {
          if (std::isnan(v) || std::isnan(acc)) return std::numeric_limits<A>::quiet_NaN();
        }
        return A(v) < acc ? A(v) : acc;
    }
    return acc;
  }
};

template <class T>
void reduce_typed(ReduceOp op, const Tensor& in, const Tensor& out, uint32_t mask) {
  const Reducer<T> r{op};
  const int nd = in.dim();
  const char* base = static_cast<const char*>(in.data_ptr());
  T* o = static_cast<T*>(out.data_ptr());
  const int64_t n_out = out.numel();
  // Reduced dims, coalesced, as (size, stride) runs.
  Dims red_sizes, red_strides, kept_sizes, kept_strides;
  for (int d = 0; d < nd; ++d) {
    if ((mask >> d & 1) && in.sizes()[d] != 1) {
      red_sizes.push_back(in.sizes()[d]);
      red_strides.push_back(in.strides()[d]);
    } else if (!(mask >> d & 1)) {
      kept_sizes.push_back(in.sizes()[d]);
      kept_strides.push_back(in.strides()[d]);
    }
  }
  const int64_t n_red = red_sizes.product();
  const int64_t elem = int64_t(sizeof(T));

  // Kept contiguous last dim: accumulate whole rows (sum/max/min over leading dims of [.., C]).
  const bool row_mode = kept_sizes.size() >= 1 && kept_strides.back() == 1 && kept_sizes.back() > 1 &&
                        nd > 0 && !(mask >> (nd - 1) & 1) && n_red > 1;
  if (row_mode) {
    const int64_t cols = kept_sizes.back();
    const int64_t out_rows = n_out / cols;
    const int64_t col_chunks = out_rows == 1 && cols * n_red >= 2 * kParallelGrain ? omp_get_max_threads() : 1;
#pragma omp parallel for collapse(2) if (n_out * n_red >= kParallelGrain) schedule(static)
    for (int64_t orow = 0; orow < out_rows; ++orow) {
      for (int64_t chunk = 0; chunk < col_chunks; ++chunk) {
        const int64_t c0 = cols * chunk / col_chunks, c1 = cols * (chunk + 1) / col_chunks;
        // Offset of this output row in the input.
        int64_t offset = 0, rem = orow;
        for (int d = kept_sizes.size() - 2; d >= 0; --d) {
          offset += (rem % kept_sizes[d]) * kept_strides[d];
          rem /= kept_sizes[d];
        }
        std::vector<acc_t<T>> acc(size_t(c1 - c0), r.init());
        Dims idx;
        idx.resize(red_sizes.size());
        for (int64_t k = 0; k < n_red; ++k) {
          int64_t roff = 0;
          for (int d = 0; d < red_sizes.size(); ++d) roff += idx[d] * red_strides[d];
          const T* row = reinterpret_cast<const T*>(base + (offset + roff) * elem);
          if (op == ReduceOp::Sum) {  // bias gradients: a loop that vectorizes, each column still in row order
            acc_t<T>* sums = acc.data();
            const T* values = row + c0;
            for (int64_t c = 0; c < c1 - c0; ++c) sums[c] += acc_t<T>(values[c]);
          } else {
            for (int64_t c = c0; c < c1; ++c) acc[size_t(c - c0)] = r.combine(acc[size_t(c - c0)], row[c]);
          }
          for (int d = red_sizes.size() - 1; d >= 0; --d) {
            if (++idx[d] < red_sizes[d]) break;
            idx[d] = 0;
          }
        }
        for (int64_t c = c0; c < c1; ++c) o[orow * cols + c] = T(acc[size_t(c - c0)]);
      }
    }
    return;
  }

  // General: one sweep of the reduced run per output element.
  const bool inner_unit = red_sizes.size() == 1 && red_strides[0] == 1;
#pragma omp parallel for if (n_out * n_red >= kParallelGrain && n_out > 1) schedule(static)
  for (int64_t oi = 0; oi < n_out; ++oi) {
    int64_t offset = 0, rem = oi;
    for (int d = kept_sizes.size() - 1; d >= 0; --d) {
      offset += (rem % kept_sizes[d]) * kept_strides[d];
      rem /= kept_sizes[d];
    }
    const T* p = reinterpret_cast<const T*>(base + offset * elem);
    acc_t<T> acc = r.init();
    if (inner_unit) {
      for (int64_t k = 0; k < n_red; ++k) acc = r.combine(acc, p[k]);
    } else {
      Dims idx;
      idx.resize(red_sizes.size());
      for (int64_t k = 0; k < n_red; ++k) {
        int64_t roff = 0;
        for (int d = 0; d < red_sizes.size(); ++d) roff += idx[d] * red_strides[d];
        acc = r.combine(acc, p[roff]);
        for (int d = red_sizes.size() - 1; d >= 0; --d) {
          if (++idx[d] < red_sizes[d]) break;
          idx[d] = 0;
        }
      }
    }
    o[oi] = T(acc);
  }
}

template <class T>
void arg_reduce_typed(bool is_max, const Tensor& in, int dim, const Tensor& values, const Tensor& indices) {
  const int64_t n = in.sizes()[dim], stride = in.strides()[dim];
  const int64_t n_out = values.numel();
  Dims kept_sizes, kept_strides;
  for (int d = 0; d < in.dim(); ++d) {
    if (d == dim) continue;
    kept_sizes.push_back(in.sizes()[d]);
    kept_strides.push_back(in.strides()[d]);
  }
  const T* base = static_cast<const T*>(in.data_ptr());
  T* vo = static_cast<T*>(values.data_ptr());
  int64_t* io = indices.data_ptr<int64_t>();
#pragma omp parallel for if (n_out * n >= kParallelGrain && n_out > 1) schedule(static)
  for (int64_t oi = 0; oi < n_out; ++oi) {
    int64_t offset = 0, rem = oi;
    for (int d = kept_sizes.size() - 1; d >= 0; --d) {
      offset += (rem % kept_sizes[d]) * kept_strides[d];
      rem /= kept_sizes[d];
    }
    const T* p = base + offset;
    T best = p[0];
    int64_t best_i = 0;
    for (int64_t k = 1; k < n; ++k) {
      const T v = p[k * stride];
      if constexpr (std::is_floating_point_v<T>) {
        if (std::isnan(best)) break;
        if (std::isnan(v)) { best = v; best_i = k; break; }
      }
      if (is_max ? v > best : v < best) { best = v; best_i = k; }
    }
    vo[oi] = best;
    io[oi] = best_i;
  }
}

}  // namespace

void CpuBackend::reduce(ReduceOp op, const Tensor& in, const Tensor& out, uint32_t reduce_mask) {
  LUNA_DISPATCH_ALL(in.dtype(), "reduce", [&] { reduce_typed<scalar_t>(op, in, out, reduce_mask); });
}

void CpuBackend::arg_reduce(ReduceOp op, const Tensor& in, int dim, const Tensor& values, const Tensor& indices) {
  LUNA_DISPATCH_ALL(in.dtype(), "argmax", [&] {
    arg_reduce_typed<scalar_t>(op == ReduceOp::Max, in, dim, values, indices);
  });
}

}  // namespace luna::cpu
