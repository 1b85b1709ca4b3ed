// CUDA copies (strided, with dtype conversion), fills, arange and Philox random fills that draw
// the same numbers as the CPU backend for the same generator state.
#include <luna/backends/cuda/kernel_utils.cuh>

#include <cmath>
#include <cstring>
#include <type_traits>

namespace luna::cuda {
namespace {

// Same-dtype strided copy: only the element width matters.
template <class Bits>
__global__ void copy_bits_kernel(Layout<2> l, const Bits* src, Bits* dst) {
  LUNA_GRID_STRIDE_LOOP(i, l.numel) {
    int64_t off[2];
    element_offsets(l, i, off);
    dst[off[1]] = src[off[0]];
  }
}

__global__ void convert_kernel(Layout<2> l, const char* src, DType src_type, int src_size, char* dst, DType dst_type,
                               int dst_size) {
  LUNA_GRID_STRIDE_LOOP(i, l.numel) {
    int64_t off[2];
    element_offsets(l, i, off);
    store_value(dst + off[1] * dst_size, dst_type, load_value(src + off[0] * src_size, src_type));
  }
}

template <class Bits>
__global__ void fill_bits_kernel(Layout<1> l, Bits* dst, Bits value) {
  LUNA_GRID_STRIDE_LOOP(i, l.numel) {
    int64_t off[1];
    element_offsets(l, i, off);
    dst[off[0]] = value;
  }
}

__global__ void arange_kernel(char* out, DType type, int size, int64_t n, double start, double step) {
  LUNA_GRID_STRIDE_LOOP(i, n) { store_value(out + i * size, type, float_value(start + double(i) * step)); }
}

// Box-Muller pairs: element 2j and 2j + 1 come from counter block offset + j.
__global__ void normal_kernel(char* out, DType type, int size, int64_t n, double mean, double stddev, uint64_t key,
                              uint64_t first) {
  LUNA_GRID_STRIDE_LOOP(j, (n + 1) / 2) {
    const PhiloxWords r = philox4x32_10_device(key, first + uint64_t(j));
    const double u1 = 1.0 - uniform_double_device(r.w[0], r.w[1]);  // (0, 1]: log is finite
    const double u2 = uniform_double_device(r.w[2], r.w[3]);
    const double radius = sqrt(-2.0 * log(u1));
    const double theta = 2.0 * M_PI * u2;
    store_value(out + 2 * j * size, type, float_value(mean + stddev * radius * cos(theta)));
    if (2 * j + 1 < n) store_value(out + (2 * j + 1) * size, type, float_value(mean + stddev * radius * sin(theta)));
  }
}

// float64 uniforms take two words (53 bits): elements 2j and 2j + 1 share block offset + j.
__global__ void uniform_f64_kernel(double* out, int64_t n, double low, double high, uint64_t key, uint64_t first) {
  LUNA_GRID_STRIDE_LOOP(i, n) {
    const PhiloxWords r = philox4x32_10_device(key, first + uint64_t(i / 2));
    const int lane = int(i % 2) * 2;
    out[i] = low + (high - low) * uniform_double_device(r.w[lane], r.w[lane + 1]);
  }
}

// One word per element (word i % 4 of block offset + i / 4): uniforms for the other dtypes and
// integers in [low, high). 16-bit floats use only as many bits as their significand holds.
__global__ void word_kernel(char* out, DType type, int size, int64_t n, bool integers, double low, double high,
                            uint64_t key, uint64_t first) {
  const uint64_t range = integers ? uint64_t(int64_t(high) - int64_t(low)) : 0;
  LUNA_GRID_STRIDE_LOOP(i, n) {
    const uint32_t word = philox4x32_10_device(key, first + uint64_t(i / 4)).w[i % 4];
    if (integers) {
      store_value(out + i * size, type, int_value(int64_t(low) + int64_t((uint64_t(word) * range) >> 32)));
    } else {
      double u;
      if (type == DType::Float16) u = double(word >> 21) * (1.0 / 2048.0);
      else if (type == DType::BFloat16) u = double(word >> 24) * (1.0 / 256.0);
      else u = double(uniform_float_device(word));
      store_value(out + i * size, type, float_value(float(low + (high - low) * u)));
    }
  }
}

template <class T>
T host_convert(Scalar value) {
  if constexpr (std::is_same_v<T, bool>) return value.is_integral() ? value.to_int() != 0 : value.to_double() != 0.0;
  else if constexpr (std::is_same_v<T, Half> || std::is_same_v<T, BFloat16>)
    return T(value.is_integral() ? float(value.to_int()) : float(value.to_double()));
  else return value.is_integral() ? static_cast<T>(value.to_int()) : static_cast<T>(value.to_double());
}

// The bytes of `value` in `dtype`, converted as the CPU backend's fill converts.
uint64_t scalar_bits(Scalar value, DType dtype) {
  uint64_t bits = 0;
  const auto put = [&](auto v) { std::memcpy(&bits, &v, sizeof(v)); };
  switch (dtype) {
    case kFloat32: put(host_convert<float>(value)); break;
    case kFloat64: put(host_convert<double>(value)); break;
    case kFloat16: put(host_convert<Half>(value).bits); break;
    case kBFloat16: put(host_convert<BFloat16>(value).bits); break;
    case kInt64: put(host_convert<int64_t>(value)); break;
    case kInt32: put(host_convert<int32_t>(value)); break;
    case kInt16: put(host_convert<int16_t>(value)); break;
    case kInt8: put(host_convert<int8_t>(value)); break;
    case kUInt8: put(host_convert<uint8_t>(value)); break;
    case kBool: put(uint8_t(host_convert<bool>(value))); break;
  }
  return bits;
}

// Calls fn(Bits{}) with the unsigned integer type as wide as one element.
template <class Fn>
void with_bits_type(size_t element_size, Fn&& fn) {
  switch (element_size) {
    case 1: fn(uint8_t{}); break;
    case 2: fn(uint16_t{}); break;
    case 4: fn(uint32_t{}); break;
    default: fn(uint64_t{}); break;
  }
}

}  // namespace

void CudaBackend::copy(const Tensor& src, const Tensor& dst) {
  DeviceContext& ctx = context_for("copy", {&dst, &src});
  const int64_t n = dst.numel();
  if (n == 0) return;
  if (src.dtype() == dst.dtype() && src.is_contiguous() && dst.is_contiguous()) {
    LUNA_CUDA_CHECK(cudaMemcpyAsync(dst.data_ptr(), src.data_ptr(), dst.nbytes(), cudaMemcpyDeviceToDevice, ctx.stream),
                    "copy");
    return;
  }
  const Layout<2> l = make_layout<2>({&src, &dst});
  if (src.dtype() == dst.dtype()) {
    with_bits_type(dst.element_size(), [&](auto bits) {
      using Bits = decltype(bits);
      copy_bits_kernel<Bits><<<grid_for(n, ctx), kThreads, 0, ctx.stream>>>(l, ptr<const Bits>(src), ptr<Bits>(dst));
    });
  } else {
    convert_kernel<<<grid_for(n, ctx), kThreads, 0, ctx.stream>>>(l, ptr<const char>(src), src.dtype(),
                                                                 int(src.element_size()), ptr<char>(dst), dst.dtype(),
                                                                 int(dst.element_size()));
  }
  LUNA_CUDA_CHECK_LAUNCH("copy");
}

void CudaBackend::fill(const Tensor& dst, Scalar value) {
  DeviceContext& ctx = context_for("fill", {&dst});
  const int64_t n = dst.numel();
  if (n == 0) return;
  const uint64_t bits = scalar_bits(value, dst.dtype());
  if (bits == 0 && dst.is_contiguous()) {
    LUNA_CUDA_CHECK(cudaMemsetAsync(dst.data_ptr(), 0, dst.nbytes(), ctx.stream), "fill");
    return;
  }
  const Layout<1> l = make_layout<1>({&dst});
  with_bits_type(dst.element_size(), [&](auto zero) {
    using Bits = decltype(zero);
    Bits pattern;
    std::memcpy(&pattern, &bits, sizeof(Bits));
    fill_bits_kernel<Bits><<<grid_for(n, ctx), kThreads, 0, ctx.stream>>>(l, ptr<Bits>(dst), pattern);
  });
  LUNA_CUDA_CHECK_LAUNCH("fill");
}

void CudaBackend::arange(const Tensor& out, double start, double step) {
  DeviceContext& ctx = context_for("arange", {&out});
  const int64_t n = out.numel();
  if (n == 0) return;
  arange_kernel<<<grid_for(n, ctx), kThreads, 0, ctx.stream>>>(ptr<char>(out), out.dtype(), int(out.element_size()), n,
                                                               start, step);
  LUNA_CUDA_CHECK_LAUNCH("arange");
}

void CudaBackend::random(const Tensor& out, RandomKind kind, double a, double b, GeneratorState state) {
  DeviceContext& ctx = context_for("random", {&out});
  const int64_t n = out.numel();
  if (n == 0) return;
  const int size = int(out.element_size());
  if (kind == RandomKind::Normal) {
    normal_kernel<<<grid_for((n + 1) / 2, ctx), kThreads, 0, ctx.stream>>>(ptr<char>(out), out.dtype(), size, n, a, b,
                                                                          state.seed, state.offset);
  } else if (kind == RandomKind::Uniform && out.dtype() == kFloat64) {
    uniform_f64_kernel<<<grid_for(n, ctx), kThreads, 0, ctx.stream>>>(ptr<double>(out), n, a, b, state.seed,
                                                                      state.offset);
  } else {
    word_kernel<<<grid_for(n, ctx), kThreads, 0, ctx.stream>>>(ptr<char>(out), out.dtype(), size, n,
                                                               kind == RandomKind::Int, a, b, state.seed, state.offset);
  }
  LUNA_CUDA_CHECK_LAUNCH("random");
}

}  // namespace luna::cuda
