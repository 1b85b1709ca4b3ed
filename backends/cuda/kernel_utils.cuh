// Building blocks shared by the CUDA kernels: launch shapes, strided N-d layouts (coalesced on the
// host, decoded per element on the device), dtype-erased loads and stores with the CPU's
// conversion rules, the Philox generator and block reductions. Included by .cu files only.
#pragma once
#include <array>
#include <cstdint>
#include <initializer_list>

#include <cuda_runtime.h>

#include <luna/backends/cuda/cuda_backend.h>
#include <luna/backends/cuda/cuda_context.h>

namespace luna::cuda {

inline constexpr int kThreads = 256;

// Blocks for a grid-stride loop over n items: enough to fill the device, never more than needed.
inline unsigned grid_for(int64_t n, const DeviceContext& ctx, int threads = kThreads) {
  const int64_t wanted = (n + threads - 1) / threads;
  const int64_t cap = int64_t(ctx.sm_count) * (2048 / threads) * 4;
  return unsigned(wanted < 1 ? 1 : (wanted < cap ? wanted : cap));
}

#define LUNA_GRID_STRIDE_LOOP(i, n)                                                         \
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < int64_t(n); \
       i += int64_t(blockDim.x) * gridDim.x)

// ---- strided layouts ----

// K operands iterated over one shape. Dims of size 1 are dropped and neighbours merged where every
// operand is contiguous across them, so a contiguous tensor becomes one dim of stride 1.
template <int K>
struct Layout {
  int ndim = 0;
  bool small = true;  // numel < 2^32: coordinates are decoded with 32-bit division
  int64_t numel = 0;
  int64_t sizes[kMaxDims] = {};
  int64_t strides[K][kMaxDims] = {};
};

template <int K>
Layout<K> make_layout(const Dims& sizes, const std::array<Dims, K>& strides) {
  Layout<K> l;
  l.numel = sizes.product();
  l.small = l.numel < (int64_t(1) << 32);
  for (int d = 0; d < sizes.size(); ++d) {
    if (sizes[d] == 1) continue;
    if (l.ndim > 0) {
      bool mergeable = true;
      for (int k = 0; k < K; ++k)
        if (l.strides[k][l.ndim - 1] != strides[k][d] * sizes[d]) mergeable = false;
      if (mergeable) {
        l.sizes[l.ndim - 1] *= sizes[d];
        for (int k = 0; k < K; ++k) l.strides[k][l.ndim - 1] = strides[k][d];
        continue;
      }
    }
    l.sizes[l.ndim] = sizes[d];
    for (int k = 0; k < K; ++k) l.strides[k][l.ndim] = strides[k][d];
    ++l.ndim;
  }
  if (l.ndim == 0) {  // a single element (or none)
    l.ndim = 1;
    l.sizes[0] = l.numel;
    for (int k = 0; k < K; ++k) l.strides[k][0] = 1;
  }
  return l;
}

// Tensors that all have ts[0]'s sizes (broadcast operands carry stride 0).
template <int K>
Layout<K> make_layout(const std::array<const Tensor*, K>& ts) {
  std::array<Dims, K> strides;
  for (int k = 0; k < K; ++k) strides[k] = ts[k]->strides();
  return make_layout<K>(ts[0]->sizes(), strides);
}

// Element offsets (in elements) of the linear index `i` for each operand.
template <int K>
__device__ __forceinline__ void element_offsets(const Layout<K>& l, int64_t i, int64_t (&offset)[K]) {
  if (l.ndim == 1) {
#pragma unroll
    for (int k = 0; k < K; ++k) offset[k] = i * l.strides[k][0];
    return;
  }
#pragma unroll
  for (int k = 0; k < K; ++k) offset[k] = 0;
  if (l.small) {
    uint32_t rest = uint32_t(i);
    for (int d = l.ndim - 1; d >= 0; --d) {
      const uint32_t size = uint32_t(l.sizes[d]);
      const uint32_t q = rest / size, idx = rest - q * size;
      rest = q;
#pragma unroll
      for (int k = 0; k < K; ++k) offset[k] += int64_t(idx) * l.strides[k][d];
    }
  } else {
    int64_t rest = i;
    for (int d = l.ndim - 1; d >= 0; --d) {
      const int64_t q = rest / l.sizes[d], idx = rest - q * l.sizes[d];
      rest = q;
#pragma unroll
      for (int k = 0; k < K; ++k) offset[k] += idx * l.strides[k][d];
    }
  }
}

// ---- 16-bit floats, bit-exact with core/dtype.cpp ----

__device__ __forceinline__ float half_bits_to_float(uint16_t bits) {
  const uint32_t sign = uint32_t(bits & 0x8000) << 16;
  const uint32_t exponent = (bits >> 10) & 0x1f, mantissa = bits & 0x3ff;
  if (exponent == 0) return (sign ? -1.0f : 1.0f) * float(mantissa) / 16777216.0f;
  if (exponent == 31) return __uint_as_float(sign | 0x7f800000 | (mantissa << 13));
  return __uint_as_float(sign | ((exponent + 112) << 23) | (mantissa << 13));
}
__device__ __forceinline__ uint16_t float_to_half_bits(float value) {
  uint32_t u = __float_as_uint(value);
  const uint32_t sign = (u >> 16) & 0x8000;
  u &= 0x7fffffff;
  if (u > 0x7f800000) return uint16_t(sign | 0x7e00);
  if (u >= 0x477ff000) return uint16_t(sign | 0x7c00);
  if (u < 0x38800000) return uint16_t(sign | uint16_t(__float2int_rn(__uint_as_float(u) * 16777216.0f)));
  const uint32_t rounded = u + 0xfff + ((u >> 13) & 1);
  return uint16_t(sign | ((rounded - 0x38000000) >> 13));
}
__device__ __forceinline__ float bf16_bits_to_float(uint16_t bits) { return __uint_as_float(uint32_t(bits) << 16); }
__device__ __forceinline__ uint16_t float_to_bf16_bits(float value) {
  uint32_t u = __float_as_uint(value);
  if ((u & 0x7fffffff) > 0x7f800000) return 0x7fc0;
  u += 0x7fff + ((u >> 16) & 1);
  return uint16_t(u >> 16);
}

// ---- dtype-erased values (copies between dtypes, arange, random fills) ----

// A value in the widest type of its kind, so int64 survives conversion between integer dtypes.
struct Value {
  double f = 0.0;
  int64_t i = 0;
  bool integral = false;
};

__device__ __forceinline__ Value float_value(double f) { return Value{f, 0, false}; }
__device__ __forceinline__ Value int_value(int64_t i) { return Value{0.0, i, true}; }

__device__ __forceinline__ Value load_value(const char* p, DType t) {
  switch (t) {
    case DType::Float32: return float_value(*reinterpret_cast<const float*>(p));
    case DType::Float64: return float_value(*reinterpret_cast<const double*>(p));
    case DType::Float16: return float_value(half_bits_to_float(*reinterpret_cast<const uint16_t*>(p)));
    case DType::BFloat16: return float_value(bf16_bits_to_float(*reinterpret_cast<const uint16_t*>(p)));
    case DType::Int64: return int_value(*reinterpret_cast<const int64_t*>(p));
    case DType::Int32: return int_value(*reinterpret_cast<const int32_t*>(p));
    case DType::Int16: return int_value(*reinterpret_cast<const int16_t*>(p));
    case DType::Int8: return int_value(*reinterpret_cast<const int8_t*>(p));
    case DType::UInt8: return int_value(*reinterpret_cast<const uint8_t*>(p));
    case DType::Bool: return int_value(*reinterpret_cast<const uint8_t*>(p) != 0);
  }
  return Value{};
}

// As the CPU's convert<D>(S): C++ casts, 16-bit floats through float, bool = (value != 0).
__device__ __forceinline__ void store_value(char* p, DType t, Value v) {
  const double f = v.integral ? double(v.i) : v.f;
  switch (t) {
    case DType::Float32: *reinterpret_cast<float*>(p) = v.integral ? float(v.i) : float(v.f); break;
    case DType::Float64: *reinterpret_cast<double*>(p) = f; break;
    case DType::Float16:
      *reinterpret_cast<uint16_t*>(p) = float_to_half_bits(v.integral ? float(v.i) : float(v.f));
      break;
    case DType::BFloat16:
      *reinterpret_cast<uint16_t*>(p) = float_to_bf16_bits(v.integral ? float(v.i) : float(v.f));
      break;
    case DType::Int64: *reinterpret_cast<int64_t*>(p) = v.integral ? v.i : int64_t(v.f); break;
    case DType::Int32: *reinterpret_cast<int32_t*>(p) = v.integral ? int32_t(v.i) : int32_t(v.f); break;
    case DType::Int16: *reinterpret_cast<int16_t*>(p) = v.integral ? int16_t(v.i) : int16_t(v.f); break;
    case DType::Int8: *reinterpret_cast<int8_t*>(p) = v.integral ? int8_t(v.i) : int8_t(v.f); break;
    case DType::UInt8: *reinterpret_cast<uint8_t*>(p) = v.integral ? uint8_t(v.i) : uint8_t(v.f); break;
    case DType::Bool: *reinterpret_cast<uint8_t*>(p) = v.integral ? v.i != 0 : v.f != 0.0; break;
  }
}

// ---- Philox 4x32-10, word for word core/generator.h ----

struct PhiloxWords {
  uint32_t w[4];
};

__device__ __forceinline__ PhiloxWords philox4x32_10_device(uint64_t key, uint64_t counter) {
  uint32_t c0 = uint32_t(counter), c1 = uint32_t(counter >> 32), c2 = 0, c3 = 0;
  uint32_t k0 = uint32_t(key), k1 = uint32_t(key >> 32);
#pragma unroll
  for (int round = 0; round < 10; ++round) {
    const uint32_t hi0 = __umulhi(0xD2511F53u, c0), lo0 = 0xD2511F53u * c0;
    const uint32_t hi1 = __umulhi(0xCD9E8D57u, c2), lo1 = 0xCD9E8D57u * c2;
    c0 = hi1 ^ c1 ^ k0;
    c1 = lo1;
    c2 = hi0 ^ c3 ^ k1;
    c3 = lo0;
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  return PhiloxWords{{c0, c1, c2, c3}};
}
__device__ __forceinline__ float uniform_float_device(uint32_t x) { return float(x >> 8) * (1.0f / 16777216.0f); }
__device__ __forceinline__ double uniform_double_device(uint32_t lo, uint32_t hi) {
  return double((uint64_t(hi) << 32 | lo) >> 11) * (1.0 / 9007199254740992.0);
}

// ---- reductions within a warp / block ----

// __shfl_xor_sync for any arithmetic type (types narrower than int travel as int).
template <class T>
__device__ __forceinline__ T shfl_xor(T v, int offset) {
  if constexpr (sizeof(T) < sizeof(int)) return T(__shfl_xor_sync(0xffffffffu, int(v), offset));
  else return __shfl_xor_sync(0xffffffffu, v, offset);
}

template <class T, class Op>
__device__ __forceinline__ T warp_reduce(T v, Op op) {
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) v = op(v, shfl_xor(v, offset));
  return v;
}

// Every thread of the block gets op over all threads' v. blockDim.x is a multiple of 32.
// Partials combine in a fixed order, so results do not depend on timing.
template <class T, class Op>
__device__ T block_reduce(T v, Op op) {
  __shared__ T partial[32];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  v = warp_reduce(v, op);
  __syncthreads();  // a previous call may still be reading partial
  if (lane == 0) partial[warp] = v;
  __syncthreads();
  T result = partial[0];
  for (int w = 1; w < warps; ++w) result = op(result, partial[w]);
  return result;
}

struct SumOp {
  template <class T>
  __device__ __forceinline__ T operator()(T a, T b) const { return a + b; }
};
// Max that ignores NaN (NaN reaches results through the arithmetic that follows, as on the CPU).
struct MaxOp {
  template <class T>
  __device__ __forceinline__ T operator()(T a, T b) const { return (b > a || a != a) ? b : a; }
};

// Threads per block for one row of n elements: a power of two in [32, 1024].
inline int threads_for_row(int64_t n) {
  int threads = 32;
  while (threads < 1024 && threads < n) threads *= 2;
  return threads;
}

// The context of the device all defined tensors are on. A tensor on another device is an error
// naming the op: a host pointer handed to a kernel would fault the whole CUDA context.
inline DeviceContext& context_for(const char* op, std::initializer_list<const Tensor*> tensors) {
  const Device device = (*tensors.begin())->device();
  for (const Tensor* t : tensors)
    LUNA_CHECK(!t->defined() || t->device() == device, op, ": tensors are on different devices (", device, " and ",
               t->device(), "); move them to one device");
  return context(device);
}

template <class T>
T* ptr(const Tensor& t) {
  return static_cast<T*>(t.data_ptr());
}

}  // namespace luna::cuda
