// CUDA reductions. The input splits into kept dims (one output each) and reduced dims, each group
// coalesced. When the reduced dims vary fastest in memory a block reduces each output (threads
// read adjacent elements); otherwise a thread reduces each output (adjacent threads read adjacent
// outputs' elements). Either way, when there are too few outputs to fill the device the reduced
// range is cut into segments whose partials a second kernel combines. Accumulator types match
// the CPU's: double for floating point, int64 for bool, the type itself for integers.
#include <luna/backends/cuda/kernel_utils.cuh>

#include <climits>
#include <cmath>
#include <limits>

namespace luna::cuda {
namespace {

template <class T>
using acc_t = std::conditional_t<std::is_floating_point_v<T>, double,
                                 std::conditional_t<std::is_same_v<T, bool>, int64_t, T>>;

template <class A>
struct Combine {
  ReduceOp op;
  __device__ __forceinline__ A operator()(A acc, A v) const {
    switch (op) {
      case ReduceOp::Sum: return A(acc + v);
      case ReduceOp::Prod: return A(acc * v);
      case ReduceOp::Max:
        if constexpr (std::is_floating_point_v<A>) {
          if (v != v || acc != acc) return A(NAN);
        }
        return v > acc ? v : acc;
      case ReduceOp::Min:
        if constexpr (std::is_floating_point_v<A>) {
          if (v != v || acc != acc) return A(NAN);
        }
        return v < acc ? v : acc;
    }
    return acc;
  }
};

template <class T>
__device__ __forceinline__ acc_t<T> reduce_init(ReduceOp op) {
  using A = acc_t<T>;
  switch (op) {
    case ReduceOp::Sum: return A(0);
    case ReduceOp::Prod: return A(1);
    case ReduceOp::Max:
      if constexpr (std::is_floating_point_v<T>) return -INFINITY;
      else return A(std::numeric_limits<T>::lowest());
    case ReduceOp::Min:
      if constexpr (std::is_floating_point_v<T>) return INFINITY;
      else return A(std::numeric_limits<T>::max());
  }
  return A(0);
}

// Offset (in elements) of reduced element r within one output's input region.
__device__ __forceinline__ int64_t reduced_offset(const Layout<1>& red, int64_t r) {
  int64_t off[1];
  element_offsets(red, r, off);
  return off[0];
}

// One block per (output, segment) task; task = output * segments + segment.
template <class T>
__global__ void reduce_by_block_kernel(Layout<1> kept, Layout<1> red, ReduceOp op, const T* in, int64_t tasks,
                                       int64_t segments, int64_t segment_length, T* out, acc_t<T>* partial) {
  using A = acc_t<T>;
  const Combine<A> combine{op};
  for (int64_t task = blockIdx.x; task < tasks; task += gridDim.x) {
    const int64_t o = task / segments, s = task % segments;
    int64_t base[1];
    element_offsets(kept, o, base);
    const int64_t r0 = s * segment_length, r1 = min(red.numel, r0 + segment_length);
    A acc = reduce_init<T>(op);
    for (int64_t r = r0 + threadIdx.x; r < r1; r += blockDim.x) acc = combine(acc, A(in[base[0] + reduced_offset(red, r)]));
    acc = block_reduce(acc, combine);
    if (threadIdx.x == 0) {
      if (partial) partial[task] = acc;
      else out[o] = T(acc);
    }
  }
}

// One thread per (segment, output) task; task = segment * n_out + output.
template <class T>
__global__ void reduce_by_thread_kernel(Layout<1> kept, Layout<1> red, ReduceOp op, const T* in, int64_t n_out,
                                        int64_t segments, int64_t segment_length, T* out, acc_t<T>* partial) {
  using A = acc_t<T>;
  const Combine<A> combine{op};
  LUNA_GRID_STRIDE_LOOP(task, n_out * segments) {
    const int64_t s = task / n_out, o = task % n_out;
    int64_t base[1];
    element_offsets(kept, o, base);
    const int64_t r0 = s * segment_length, r1 = min(red.numel, r0 + segment_length);
    A acc = reduce_init<T>(op);
    for (int64_t r = r0; r < r1; ++r) acc = combine(acc, A(in[base[0] + reduced_offset(red, r)]));
    if (partial) partial[task] = acc;
    else out[o] = T(acc);
  }
}

// out[o] = combine over s of partial[o * stride_o + s * stride_s].
template <class T>
__global__ void reduce_partials_kernel(ReduceOp op, const acc_t<T>* partial, int64_t n_out, int64_t segments,
                                       int64_t stride_o, int64_t stride_s, T* out) {
  using A = acc_t<T>;
  const Combine<A> combine{op};
  LUNA_GRID_STRIDE_LOOP(o, n_out) {
    A acc = reduce_init<T>(op);
    for (int64_t s = 0; s < segments; ++s) acc = combine(acc, partial[o * stride_o + s * stride_s]);
    out[o] = T(acc);
  }
}

template <class T>
void reduce_typed(DeviceContext& ctx, ReduceOp op, const Tensor& in, const Tensor& out, uint32_t mask) {
  using A = acc_t<T>;
  Dims kept_sizes, red_sizes;
  std::array<Dims, 1> kept_strides, red_strides;
  for (int d = 0; d < in.dim(); ++d) {
    if (mask >> d & 1) {
      red_sizes.push_back(in.sizes()[d]);
      red_strides[0].push_back(in.strides()[d]);
    } else {
      kept_sizes.push_back(in.sizes()[d]);
      kept_strides[0].push_back(in.strides()[d]);
    }
  }
  const Layout<1> kept = make_layout<1>(kept_sizes, kept_strides);
  const Layout<1> red = make_layout<1>(red_sizes, red_strides);
  const int64_t n_out = kept.numel, n_red = red.numel;
  // Which group varies fastest in memory decides the loop shape.
  const int64_t kept_inner = kept.sizes[kept.ndim - 1] > 1 ? std::abs(kept.strides[0][kept.ndim - 1]) : INT64_MAX;
  const int64_t red_inner = red.sizes[red.ndim - 1] > 1 ? std::abs(red.strides[0][red.ndim - 1]) : INT64_MAX;
  const bool by_block = n_out == 1 || red_inner < kept_inner;
  const int64_t device_threads = int64_t(ctx.sm_count) * 2048;

  int threads = kThreads;
  int64_t segments = 1;
  if (by_block) {
    threads = std::min(kThreads, threads_for_row(n_red));
    // Enough blocks to fill the device, each still reducing a few elements per thread.
    const int64_t wanted_blocks = int64_t(ctx.sm_count) * 4;
    if (n_out < wanted_blocks)
      segments = std::clamp<int64_t>(wanted_blocks / n_out, 1, std::max<int64_t>(1, n_red / (int64_t(threads) * 8)));
  } else if (n_out < device_threads) {
    segments = std::clamp<int64_t>(device_threads / n_out, 1, std::max<int64_t>(1, n_red / 32));
  }
  segments = std::min<int64_t>(segments, 1024);
  const int64_t segment_length = (n_red + segments - 1) / std::max<int64_t>(segments, 1);
  segments = n_red == 0 ? 1 : (n_red + segment_length - 1) / segment_length;

  Tensor partial;  // (n_out, segments) by block, (segments, n_out) by thread; accumulator dtype
  if (segments > 1) partial = empty_tensor({n_out * segments}, dtype_of<A>::value, out.device());
  A* partial_ptr = segments > 1 ? ptr<A>(partial) : nullptr;
  const T* x = ptr<const T>(in);
  T* y = ptr<T>(out);
  if (by_block) {
    const int64_t tasks = n_out * segments;
    const unsigned grid = unsigned(std::min<int64_t>(tasks, int64_t(ctx.sm_count) * 32));
    reduce_by_block_kernel<T><<<grid, threads, 0, ctx.stream>>>(kept, red, op, x, tasks, segments, segment_length, y,
                                                                partial_ptr);
  } else {
    reduce_by_thread_kernel<T><<<grid_for(n_out * segments, ctx), kThreads, 0, ctx.stream>>>(
        kept, red, op, x, n_out, segments, segment_length, y, partial_ptr);
  }
  LUNA_CUDA_CHECK_LAUNCH("reduce");
  if (segments > 1) {
    const int64_t stride_o = by_block ? segments : 1, stride_s = by_block ? 1 : n_out;
    reduce_partials_kernel<T><<<grid_for(n_out, ctx), kThreads, 0, ctx.stream>>>(op, partial_ptr, n_out, segments,
                                                                                 stride_o, stride_s, y);
    LUNA_CUDA_CHECK_LAUNCH("reduce (partials)");
  }
}

// ---- argmax / argmin ----

// A candidate element; index -1 marks "none yet".
template <class T>
struct ArgCandidate {
  T value;
  int64_t index;
};

// The better of two candidates: NaN beats numbers (it propagates), then the larger (max) or
// smaller (min) value, then the smaller index, so the first occurrence wins as on the CPU.
template <class T>
__device__ __forceinline__ ArgCandidate<T> better(ArgCandidate<T> a, ArgCandidate<T> b, bool is_max) {
  if (a.index < 0) return b;
  if (b.index < 0) return a;
  if constexpr (std::is_floating_point_v<T>) {
    const bool a_nan = a.value != a.value, b_nan = b.value != b.value;
    if (a_nan || b_nan) {
      if (a_nan && b_nan) return a.index < b.index ? a : b;
      return a_nan ? a : b;
    }
  }
  if (a.value == b.value) return a.index < b.index ? a : b;
  return (is_max ? a.value > b.value : a.value < b.value) ? a : b;
}

template <class T>
__global__ void arg_reduce_kernel(Layout<1> kept, int64_t n, int64_t stride, bool is_max, const T* in, int64_t n_out,
                                  T* values, int64_t* indices) {
  __shared__ ArgCandidate<T> partial[32];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  for (int64_t o = blockIdx.x; o < n_out; o += gridDim.x) {
    int64_t base[1];
    element_offsets(kept, o, base);
    ArgCandidate<T> best{T(0), -1};
    for (int64_t k = threadIdx.x; k < n; k += blockDim.x) best = better(best, ArgCandidate<T>{in[base[0] + k * stride], k}, is_max);
    for (int offset = 16; offset > 0; offset >>= 1) {
      const ArgCandidate<T> other{shfl_xor(best.value, offset), shfl_xor(best.index, offset)};
      best = better(best, other, is_max);
    }
    __syncthreads();
    if (lane == 0) partial[warp] = best;
    __syncthreads();
    if (threadIdx.x == 0) {
      best = partial[0];
      for (int w = 1; w < warps; ++w) best = better(best, partial[w], is_max);
      values[o] = best.value;
      indices[o] = best.index;
    }
  }
}

}  // namespace

void CudaBackend::reduce(ReduceOp op, const Tensor& in, const Tensor& out, uint32_t reduce_mask) {
  DeviceContext& ctx = context_for("reduce", {&out, &in});
  if (out.numel() == 0) return;
  LUNA_DISPATCH_ALL(in.dtype(), "reduce", [&] { reduce_typed<scalar_t>(ctx, op, in, out, reduce_mask); });
}

void CudaBackend::arg_reduce(ReduceOp op, const Tensor& in, int dim, const Tensor& values, const Tensor& indices) {
  DeviceContext& ctx = context_for("argmax", {&values, &in, &indices});
  const int64_t n_out = values.numel();
  if (n_out == 0) return;
  const int64_t n = in.dim() ? in.sizes()[dim] : 1, stride = in.dim() ? in.strides()[dim] : 0;
  LUNA_CHECK(n > 0, "argmax: cannot reduce over an empty dim ", dim, " of shape ", in.sizes());
  Dims kept_sizes;
  std::array<Dims, 1> kept_strides;
  for (int d = 0; d < in.dim(); ++d) {
    if (d == dim) continue;
    kept_sizes.push_back(in.sizes()[d]);
    kept_strides[0].push_back(in.strides()[d]);
  }
  const Layout<1> kept = make_layout<1>(kept_sizes, kept_strides);
  const int threads = std::min(kThreads, threads_for_row(n));
  const unsigned grid = unsigned(std::min<int64_t>(n_out, int64_t(ctx.sm_count) * 32));
  LUNA_DISPATCH_ALL(in.dtype(), "argmax", [&] {
    arg_reduce_kernel<scalar_t><<<grid, threads, 0, ctx.stream>>>(kept, n, stride, op == ReduceOp::Max,
                                                                  ptr<const scalar_t>(in), n_out,
                                                                  ptr<scalar_t>(values), ptr<int64_t>(indices));
  });
  LUNA_CUDA_CHECK_LAUNCH("argmax");
}

}  // namespace luna::cuda
