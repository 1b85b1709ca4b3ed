// Float32 erf / exp / GELU kernels in 8-lane GCC/Clang vector extensions, used by the CPU gelu
// and erf kernels (backends/cpu/unary.cpp); float64 keeps std::erf/std::exp for the gradchecks.
//
// Why hand-vectorized: std::erf/std::exp are scalar libm calls, and under the default
// -ftrapping-math GCC will not if-convert the clamps these approximations need, so the
// auto-vectorizer gives up. AVX2 with -march=x86-64-v3, SSE pairs otherwise. Every element,
// contiguous or strided, goes through the same lane code, so results do not depend on layout.
// Accuracy (tests/ops/test_fast_math.cpp, through the ops): |erf8 - erf| < 1e-6, about 4e-7
// measured; exp8 (1.4 ulp on [-87, 88] measured alone) is covered by the gelu backward check.
#pragma once
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>

#ifdef __AVX__
#include <immintrin.h>
#endif

// Internal linkage on purpose: these functions take and return 32-byte vectors, whose calling
// convention differs between TUs built with and without AVX (the library is built for AVX2, code
// that includes it may not be). One shared out-of-line copy could then be called with the wrong
// ABI; per-TU copies cannot be.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpsabi"
namespace luna::cpu::fast {
namespace {

using F8 = float __attribute__((vector_size(32)));
using I8 = int32_t __attribute__((vector_size(32)));
inline constexpr int kLanes = 8;

inline F8 splat(float v) { return F8{} + v; }

// Clamp that keeps NaN (a NaN compares false both times and passes through).
inline F8 clamp(F8 x, float lo, float hi) {
  x = x > hi ? splat(hi) : x;
  return x < lo ? splat(lo) : x;
}

// erf(x) ≈ x P(x²) / Q(x²) on x clamped to [-4, 4]: the rational fit Eigen and XLA use for float.
// |erf(4)| is within 2e-8 of 1, below float resolution there, so the clamp costs nothing.
inline F8 erf8(F8 x) {
  x = clamp(x, -4.0f, 4.0f);
  const F8 x2 = x * x;
  F8 p = splat(-2.72614225801306e-10f);
  p = p * x2 + 2.77068142495902e-08f;
  p = p * x2 - 2.10102402082508e-06f;
  p = p * x2 - 5.69250639462346e-05f;
  p = p * x2 - 7.34990630326855e-04f;
  p = p * x2 - 2.95459980854025e-03f;
  p = p * x2 - 1.60960333262415e-02f;
  F8 q = splat(-1.45660718464996e-05f);
  q = q * x2 - 2.13374055278905e-04f;
  q = q * x2 - 1.68282697438203e-03f;
  q = q * x2 - 7.37332916720468e-03f;
  q = q * x2 - 1.42647390514189e-02f;
  return x * p / q;
}

// exp(x) = 2^n e^r with n = round(x log2 e), |r| <= ln2/2, e^r by Cephes' expf polynomial.
// Exact range [-87, 88]: below it returns 0 (the true values are < 1.7e-38), above it +inf (so
// 88 < x < 88.72 overflows early). NaN propagates.
inline F8 exp8(F8 x) {
  const F8 xc = clamp(x, -87.0f, 88.0f);
  // Adding 1.5·2^23 rounds to an integer and leaves n in the low mantissa bits of t.
  constexpr float kRound = 12582912.0f;  // bits 0x4B400000
  const F8 t = xc * 1.44269504088896341f + kRound;
  const F8 n = t - kRound;  // in [-126, 127]
  // r = xc - n ln2, with ln2 split so that n * 0.693359375 is exact.
  F8 r = xc - n * 0.693359375f;
  r = r + n * 2.12194440e-4f;
  F8 p = splat(1.9875691500e-4f);
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const I8 exponent = (std::bit_cast<I8>(t) - 0x4B400000 + 127) << 23;  // 2^n as float bits
  F8 y = p * std::bit_cast<F8>(exponent);
  y = x < -87.0f ? splat(0.0f) : y;
  return x > 88.0f ? splat(INFINITY) : y;
}

inline constexpr float kSqrt1_2 = 0.70710678118654752440f;
inline constexpr float kInvSqrt2Pi = 0.39894228040143267794f;

// GELU, erf form: x Φ(x).
inline F8 gelu8(F8 x) { return 0.5f * x * (1.0f + erf8(x * kSqrt1_2)); }

// d/dx [x Φ(x)] = Φ(x) + x φ(x).
inline F8 gelu_grad8(F8 x) {
  const F8 cdf = 0.5f * (1.0f + erf8(x * kSqrt1_2));
  const F8 pdf = kInvSqrt2Pi * exp8(-0.5f * x * x);
  return cdf + x * pdf;
}

// ---- rows: n elements at element strides; unit strides take full-width loads and stores ----

inline F8 load(const float* p, int64_t stride, int64_t count) {
  F8 v = {};
  if (stride == 1 && count == kLanes) {
    std::memcpy(&v, p, sizeof(v));
  } else {
    for (int64_t j = 0; j < count; ++j) v[j] = p[j * stride];
  }
  return v;
}

inline void store(float* p, int64_t stride, int64_t count, F8 v) {
  if (stride == 1 && count == kLanes) {
    std::memcpy(p, &v, sizeof(v));
  } else {
    for (int64_t j = 0; j < count; ++j) p[j * stride] = v[j];
  }
}

// A row this large (per thread) is far bigger than the caches, so its output is written with
// streaming stores: they skip the read-for-ownership of every destination line, which otherwise
// costs as much traffic as the write itself. Smaller outputs go through the cache, where the next
// op will likely find them.
inline constexpr int64_t kStreamingBytes = int64_t(16) << 20;

// Writes y[i] = block(i, count) for n elements at stride sy, 8 at a time; block returns the values
// of elements [i, i + count) in its first `count` lanes.
template <class Block>
inline void write_row(float* y, int64_t sy, int64_t n, Block block) {
  int64_t i = 0;
#ifdef __AVX__
  const uintptr_t address = reinterpret_cast<uintptr_t>(y);
  if (sy == 1 && n * int64_t(sizeof(float)) >= kStreamingBytes && address % sizeof(float) == 0) {
    const int64_t head = int64_t((32 - address % 32) % 32 / sizeof(float));  // up to 32-byte alignment
    if (head > 0) store(y, 1, head, block(0, head));
    for (i = head; i + kLanes <= n; i += kLanes) _mm256_stream_ps(y + i, __m256(block(i, kLanes)));
    _mm_sfence();  // order the streaming stores before whatever signals completion
  }
#endif
  for (; i < n; i += kLanes) {
    const int64_t count = n - i < kLanes ? n - i : kLanes;
    store(y + i * sy, sy, count, block(i, count));
  }
}

// y[i] = f(x[i]).
template <class F>
inline void map_row(F f, const float* x, int64_t sx, float* y, int64_t sy, int64_t n) {
  write_row(y, sy, n, [&](int64_t i, int64_t count) { return f(load(x + i * sx, sx, count)); });
}

// out[i] = f(a[i], b[i]).
template <class F>
inline void map_row(F f, const float* a, int64_t sa, const float* b, int64_t sb, float* out, int64_t so,
                    int64_t n) {
  write_row(out, so, n, [&](int64_t i, int64_t count) {
    return f(load(a + i * sa, sa, count), load(b + i * sb, sb, count));
  });
}

}  // namespace
}  // namespace luna::cpu::fast
#pragma GCC diagnostic pop
