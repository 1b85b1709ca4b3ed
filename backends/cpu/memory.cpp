// CPU copies (strided, with dtype conversion), fills, arange and Philox random fills.
#include <luna/backends/cpu/cpu_backend.h>
#include <luna/backends/cpu/dispatch.h>
#include <luna/backends/cpu/loops.h>

#include <cmath>
#include <cstring>

namespace luna::cpu {
namespace {

// Converts one value; bool targets test for non-zero like PyTorch (in the source type: a double
// too small for float, such as 1e-50, is still true).
template <class D, class S>
inline D convert(S v) {
  if constexpr (std::is_same_v<D, bool>) {
    if constexpr (std::is_same_v<S, Half> || std::is_same_v<S, BFloat16>) return float(v) != 0.0f;
    else return v != S(0);
  } else if constexpr (std::is_same_v<D, Half> || std::is_same_v<D, BFloat16>) return D(float(v));
  else if constexpr (std::is_same_v<S, Half> || std::is_same_v<S, BFloat16>) return D(float(v));
  else return static_cast<D>(v);
}

// A uniform in [0, 1) from one random word. 16-bit floats use only as many bits as their
// significand holds (11 / 8), so the value is exact in T and never rounds up to 1.
template <class T>
inline double uniform_for(uint32_t word) {
  if constexpr (std::is_same_v<T, Half>) return double(word >> 21) * (1.0 / 2048.0);
  else if constexpr (std::is_same_v<T, BFloat16>) return double(word >> 24) * (1.0 / 256.0);
  else return double(uniform_float(word));
}

}  // namespace

void CpuBackend::copy(const Tensor& src, const Tensor& dst) {
  if (src.dtype() == dst.dtype() && src.is_contiguous() && dst.is_contiguous()) {
    const char* s = static_cast<const char*>(src.data_ptr());
    char* d = static_cast<char*>(dst.data_ptr());
    const int64_t bytes = int64_t(src.nbytes());
    const int64_t chunks = bytes >= (int64_t(1) << 22) ? omp_get_max_threads() : 1;
    run_in_ranges(bytes, chunks, [&](int64_t begin, int64_t end) {
      if (end > begin) std::memcpy(d + begin, s + begin, size_t(end - begin));
    });
    return;
  }
  dispatch_any_dtype(src.dtype(), [&]<class S>() {
    dispatch_any_dtype(dst.dtype(), [&]<class D>() {
      for_each_row<2>({&src, &dst}, [](std::array<char*, 2> p, int64_t n, std::array<int64_t, 2> st) {
        const S* s = reinterpret_cast<const S*>(p[0]);
        D* d = reinterpret_cast<D*>(p[1]);
        if (st[0] == 1 && st[1] == 1) {
          for (int64_t i = 0; i < n; ++i) d[i] = convert<D>(s[i]);
        } else {
          for (int64_t i = 0; i < n; ++i) d[i * st[1]] = convert<D>(s[i * st[0]]);
        }
      });
    });
  });
}

void CpuBackend::fill(const Tensor& dst, Scalar value) {
  dispatch_any_dtype(dst.dtype(), [&]<class T>() {
    const T v = value.is_integral() ? convert<T>(value.to_int()) : convert<T>(value.to_double());
    for_each_row<1>({&dst}, [v](std::array<char*, 1> p, int64_t n, std::array<int64_t, 1> st) {
      T* d = reinterpret_cast<T*>(p[0]);
      if (st[0] == 1) {
        for (int64_t i = 0; i < n; ++i) d[i] = v;
      } else {
        for (int64_t i = 0; i < n; ++i) d[i * st[0]] = v;
      }
    });
  });
}

void CpuBackend::arange(const Tensor& out, double start, double step) {
  const int64_t n = out.numel();
  dispatch_any_dtype(out.dtype(), [&]<class T>() {
    T* d = static_cast<T*>(out.data_ptr());
    for (int64_t i = 0; i < n; ++i) d[i] = convert<T>(start + double(i) * step);
  });
}

void CpuBackend::random(const Tensor& out, RandomKind kind, double a, double b, GeneratorState state) {
  const int64_t n = out.numel();
  const uint64_t key = state.seed, first = state.offset;
  const bool parallel = n >= kParallelGrain;
  if (kind == RandomKind::Normal) {
    dispatch_any_dtype(out.dtype(), [&]<class T>() {
      T* d = static_cast<T*>(out.data_ptr());
      const int64_t pairs = (n + 1) / 2;
#pragma omp parallel for if (parallel) schedule(static)
      for (int64_t j = 0; j < pairs; ++j) {
        const PhiloxBlock r = philox4x32_10(key, first + uint64_t(j));
        // u1 in (0,1] so log is finite.
        const double u1 = 1.0 - uniform_double(r[0], r[1]);
        const double u2 = uniform_double(r[2], r[3]);
        const double radius = std::sqrt(-2.0 * std::log(u1));
        const double theta = 2.0 * M_PI * u2;
        d[2 * j] = convert<T>(a + b * radius * std::cos(theta));
        if (2 * j + 1 < n) d[2 * j + 1] = convert<T>(a + b * radius * std::sin(theta));
      }
    });
    return;
  }
  if (kind == RandomKind::Uniform && out.dtype() == kFloat64) {
    double* d = out.data_ptr<double>();
#pragma omp parallel for if (parallel) schedule(static)
    for (int64_t i = 0; i < n; ++i) {
      const PhiloxBlock r = philox4x32_10(key, first + uint64_t(i / 2));
      const int lane = int(i % 2) * 2;
      d[i] = a + (b - a) * uniform_double(r[lane], r[lane + 1]);
    }
    return;
  }
  dispatch_any_dtype(out.dtype(), [&]<class T>() {
    T* d = static_cast<T*>(out.data_ptr());
    const uint64_t range = kind == RandomKind::Int ? uint64_t(int64_t(b) - int64_t(a)) : 0;
#pragma omp parallel for if (parallel) schedule(static)
    for (int64_t i = 0; i < n; ++i) {
      const PhiloxBlock r = philox4x32_10(key, first + uint64_t(i / 4));
      const uint32_t word = r[i % 4];
      if (kind == RandomKind::Int) {
        // Multiply-shift maps 32 random bits onto [0, range) with negligible bias.
        d[i] = convert<T>(int64_t(a) + int64_t((uint64_t(word) * range) >> 32));
      } else {
        d[i] = convert<T>(float(a + (b - a) * uniform_for<T>(word)));
      }
    }
  });
}

}  // namespace luna::cpu
