// CPU kernels of the fused nn ops: softmax / log-softmax, layer norm, cross-entropy and dropout.
// Each reads a row from memory once and makes its further passes (max, sum, normalise) while the
// row is still in cache; rows are spread over OpenMP threads.
#include <luna/backends/cpu/cpu_backend.h>
#include <luna/backends/cpu/fast_math.h>
#include <luna/backends/cpu/gelu_exact.h>
#include <luna/backends/cpu/loops.h>
#include <luna/backends/cpu/philox_simd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <utility>
#include <vector>

#if defined(__AVX__)
#include <immintrin.h>
#endif

// Builds without -march (Debug) pass 32-byte vectors in memory; GCC notes the ABI difference,
// which cannot matter for these internal-linkage helpers.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wpsabi"
#endif

namespace luna::cpu {
namespace {

// 256-bit vectors through GCC/Clang vector extensions (8 floats or 4 doubles; AVX with
// -march=x86-64-v3, SSE pairs otherwise). Written out because the auto-vectorizer will not
// reassociate float sums without -ffast-math, and kept its lane arrays on the stack when asked to.
template <class T>
struct VecType;
template <>
struct VecType<float> {
  typedef float type __attribute__((vector_size(32)));
};
template <>
struct VecType<double> {
  typedef double type __attribute__((vector_size(32)));
};
template <class T>
using Vec = typename VecType<T>::type;
template <class T>
inline constexpr int64_t kWidth = int64_t(32 / sizeof(T));

template <class T>
inline Vec<T> load(const T* p) {
  Vec<T> v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}
template <class T>
inline void store(T* p, Vec<T> v) {
  std::memcpy(p, &v, sizeof(v));
}

// How a row_sum term reads its operands: kWidth elements from i as a vector, or element i alone,
// so one generic lambda serves the vector body and the scalar tail.
template <class T>
struct VectorAt {
  int64_t i;
  Vec<T> operator()(const T* p) const { return load(p + i); }
};
template <class T>
struct ScalarAt {
  int64_t i;
  T operator()(const T* p) const { return p[i]; }
};

// Sum over [0, n) of term(at), e.g. [x](auto at) { return at(x) * at(x); }. Four accumulators
// hide the add latency; they are flushed into a double every kFlush elements so float32 sums of
// long rows stay accurate.
template <class T, class Term>
inline double row_sum(int64_t n, Term term) {
  constexpr int64_t W = kWidth<T>, kFlush = 2048;
  static_assert(kFlush % (4 * W) == 0);
  double total = 0;
  int64_t i = 0;
  for (int64_t start = 0; start < n; start += kFlush) {
    const int64_t end = std::min(n, start + kFlush);
    Vec<T> a0{}, a1{}, a2{}, a3{};
    for (; i + 4 * W <= end; i += 4 * W) {
      a0 += term(VectorAt<T>{i});
      a1 += term(VectorAt<T>{i + W});
      a2 += term(VectorAt<T>{i + 2 * W});
      a3 += term(VectorAt<T>{i + 3 * W});
    }
    const Vec<T> lanes = (a0 + a1) + (a2 + a3);
    double block = 0;
    for (int64_t j = 0; j < W; ++j) block += double(lanes[j]);
    for (; i < end; ++i) block += double(term(ScalarAt<T>{i}));
    total += block;
  }
  return total;
}

// Max of a row, -inf when empty. NaNs are skipped here; they still turn the row's result into NaN
// through the exp/sum that follows.
template <class T>
inline T row_max(const T* x, int64_t n) {
  constexpr int64_t W = kWidth<T>;
  const T lowest = -std::numeric_limits<T>::infinity();
  Vec<T> m0 = Vec<T>{} + lowest, m1 = m0;
  int64_t i = 0;
  for (; i + 2 * W <= n; i += 2 * W) {
    const Vec<T> v0 = load(x + i), v1 = load(x + i + W);
    m0 = v0 > m0 ? v0 : m0;
    m1 = v1 > m1 ? v1 : m1;
  }
  m0 = m1 > m0 ? m1 : m0;
  T best = lowest;
  for (int64_t j = 0; j < W; ++j) best = m0[j] > best ? m0[j] : best;
  for (; i < n; ++i) best = x[i] > best ? x[i] : best;
  return best;
}

// Sum of exp(x[i] - max): scalar, as std::exp is a libm call; accumulated in double.
template <class T>
inline double row_sum_exp(const T* x, int64_t n, T max) {
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) sum += double(std::exp(x[i] - max));
  return sum;
}

// A contiguous tensor seen as [outer, D, inner] around `dim`.
struct DimSplit {
  int64_t outer = 1, size = 1, inner = 1;
};

DimSplit split_at(const Tensor& t, int dim) {
  DimSplit s;
  for (int d = 0; d < t.dim(); ++d) {
    if (d < dim) s.outer *= t.sizes()[d];
    else if (d == dim) s.size = t.sizes()[d];
    else s.inner *= t.sizes()[d];
  }
  return s;
}

bool worth_parallel(int64_t tasks, int64_t total_elements) { return tasks > 1 && total_elements >= kParallelGrain; }

// ---- softmax ----

// Softmax over contiguous rows of D elements: in, out (rows, D).
template <class T>
void softmax_rows(const T* in, T* out, int64_t rows, int64_t D, bool log) {
#pragma omp parallel for if (worth_parallel(rows, rows * D)) schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    const T* x = in + r * D;
    T* y = out + r * D;
    const T max = row_max(x, D);
    if (log) {
      const T log_sum = T(std::log(row_sum_exp(x, D, max)));
      for (int64_t i = 0; i < D; ++i) y[i] = (x[i] - max) - log_sum;
    } else {
      for (int64_t i = 0; i < D; ++i) y[i] = std::exp(x[i] - max);
      const T inv_sum = T(1.0 / row_sum<T>(D, [y](auto at) { return at(y); }));
      for (int64_t i = 0; i < D; ++i) y[i] *= inv_sum;
    }
  }
}

// Columns processed together when the softmax dim is not the last: each pass walks D rows of a
// block of adjacent columns, so loads stay unit-stride and vectorize across columns.
inline constexpr int64_t kColumnBlock = 64;

// Softmax over the middle dim of in, out (outer, D, inner).
template <class T>
void softmax_columns(const T* in, T* out, const DimSplit& s, bool log) {
  const int64_t D = s.size, inner = s.inner;
  const int64_t blocks = (inner + kColumnBlock - 1) / kColumnBlock;
#pragma omp parallel for if (worth_parallel(s.outer * blocks, s.outer * D * inner)) schedule(static)
  for (int64_t task = 0; task < s.outer * blocks; ++task) {
    const int64_t o = task / blocks, c0 = (task % blocks) * kColumnBlock;
    const int64_t width = std::min(kColumnBlock, inner - c0);
    const T* x = in + o * D * inner + c0;
    T* y = out + o * D * inner + c0;
    T max[kColumnBlock];
    double sum[kColumnBlock];
    std::fill(max, max + width, -std::numeric_limits<T>::infinity());
    std::fill(sum, sum + width, 0.0);
    for (int64_t d = 0; d < D; ++d)
      for (int64_t j = 0; j < width; ++j) max[j] = x[d * inner + j] > max[j] ? x[d * inner + j] : max[j];
    for (int64_t d = 0; d < D; ++d) {
      for (int64_t j = 0; j < width; ++j) {
        const T e = std::exp(x[d * inner + j] - max[j]);
        if (!log) y[d * inner + j] = e;
        sum[j] += double(e);
      }
    }
    T factor[kColumnBlock];  // log: log of the sum; softmax: its reciprocal
    for (int64_t j = 0; j < width; ++j) factor[j] = T(log ? std::log(sum[j]) : 1.0 / sum[j]);
    for (int64_t d = 0; d < D; ++d) {
      for (int64_t j = 0; j < width; ++j) {
        if (log) y[d * inner + j] = (x[d * inner + j] - max[j]) - factor[j];
        else y[d * inner + j] *= factor[j];
      }
    }
  }
}

// softmax:     grad_in = y * (g - sum(g * y))
// log_softmax: grad_in = g - exp(y) * sum(g)
template <class T>
void softmax_backward_rows(const T* out, const T* grad_out, T* grad_in, int64_t rows, int64_t D, bool log) {
#pragma omp parallel for if (worth_parallel(rows, rows * D)) schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    const T* y = out + r * D;
    const T* g = grad_out + r * D;
    T* gi = grad_in + r * D;
    if (log) {
      const T sum = T(row_sum<T>(D, [g](auto at) { return at(g); }));
      for (int64_t i = 0; i < D; ++i) gi[i] = g[i] - std::exp(y[i]) * sum;
    } else {
      const T dot = T(row_sum<T>(D, [g, y](auto at) { return at(g) * at(y); }));
      for (int64_t i = 0; i < D; ++i) gi[i] = y[i] * (g[i] - dot);
    }
  }
}

template <class T>
void softmax_backward_columns(const T* out, const T* grad_out, T* grad_in, const DimSplit& s, bool log) {
  const int64_t D = s.size, inner = s.inner;
  const int64_t blocks = (inner + kColumnBlock - 1) / kColumnBlock;
#pragma omp parallel for if (worth_parallel(s.outer * blocks, s.outer * D * inner)) schedule(static)
  for (int64_t task = 0; task < s.outer * blocks; ++task) {
    const int64_t o = task / blocks, c0 = (task % blocks) * kColumnBlock;
    const int64_t width = std::min(kColumnBlock, inner - c0);
    const int64_t base = o * D * inner + c0;
    const T* y = out + base;
    const T* g = grad_out + base;
    T* gi = grad_in + base;
    double acc[kColumnBlock];  // log: sum(g); softmax: sum(g * y)
    std::fill(acc, acc + width, 0.0);
    for (int64_t d = 0; d < D; ++d)
      for (int64_t j = 0; j < width; ++j)
        acc[j] += double(log ? g[d * inner + j] : g[d * inner + j] * y[d * inner + j]);
    T total[kColumnBlock];
    for (int64_t j = 0; j < width; ++j) total[j] = T(acc[j]);
    for (int64_t d = 0; d < D; ++d) {
      for (int64_t j = 0; j < width; ++j) {
        const int64_t k = d * inner + j;
        gi[k] = log ? g[k] - std::exp(y[k]) * total[j] : y[k] * (g[k] - total[j]);
      }
    }
  }
}

// ---- layer norm ----

// Outputs this large will not be in cache for the next op anyway. Storing them non-temporally
// skips the read-for-ownership of each destination line, a third of the traffic of the pass.
inline constexpr int64_t kStreamingBytes = int64_t(16) << 20;

// A non-temporal store of one vector to a 32-byte aligned address.
inline void stream_store(float* p, Vec<float> v) {
#if defined(__AVX__)
  _mm256_stream_ps(p, v);
#else
  store(p, v);
#endif
}
inline void stream_store(double* p, Vec<double> v) {
#if defined(__AVX__)
  _mm256_stream_pd(p, v);
#else
  store(p, v);
#endif
}

// Non-temporal stores are weakly ordered: each writing thread fences before the loop joins.
inline void stream_fence() {
#if defined(__AVX__)
  _mm_sfence();
#endif
}

// One row: x, y (cols); weight, bias (cols) or null. Three passes (mean, centred variance,
// normalise), the last two from cache. Returns (mean, rstd).
// Values are taken relative to x[0] first: float sums of x - x[0] lose precision relative to the
// spread of the row, not to |mean|, and x - x[0] - (mean - x[0]) avoids rounding the mean itself,
// so rows with |mean| >> std (e.g. 3000 +- 1) still normalise to ~1e-6.
template <class T, bool kWeight, bool kBias>
inline std::pair<T, T> layer_norm_row(const T* x, const T* weight, const T* bias, double eps, T* y, int64_t cols,
                                      bool stream) {
  const T shift = cols > 0 ? x[0] : T(0);
  const double shifted_mean = row_sum<T>(cols, [x, shift](auto at) { return at(x) - shift; }) / double(cols);
  const T delta = T(shifted_mean);
  // Centring first (rather than E[x^2] - E[x]^2) avoids cancellation when |mean| >> std.
  const double var = row_sum<T>(cols, [x, shift, delta](auto at) {
                       const auto d = (at(x) - shift) - delta;
                       return d * d;
                     }) / double(cols);
  const T rstd = T(1.0 / std::sqrt(var + eps));
  const auto normalized = [=](auto at) {
    auto v = ((at(x) - shift) - delta) * rstd;
    if constexpr (kWeight) v = v * at(weight);
    if constexpr (kBias) v = v + at(bias);
    return v;
  };
  constexpr int64_t W = kWidth<T>;
  int64_t i = 0;
  if (stream) {
    for (; i < cols && reinterpret_cast<uintptr_t>(y + i) % 32 != 0; ++i) y[i] = normalized(ScalarAt<T>{i});
    for (; i + W <= cols; i += W) stream_store(y + i, normalized(VectorAt<T>{i}));
  } else {
    for (; i + W <= cols; i += W) store(y + i, normalized(VectorAt<T>{i}));
  }
  for (; i < cols; ++i) y[i] = normalized(ScalarAt<T>{i});
  return {T(double(shift) + shifted_mean), rstd};
}

// in, out (rows, cols); weight, bias (cols) or null; mean, rstd (rows).
template <class T, bool kWeight, bool kBias>
void layer_norm_rows(const T* in, const T* weight, const T* bias, double eps, T* out, T* mean_out, T* rstd_out,
                     int64_t rows, int64_t cols) {
  const bool stream = rows * cols * int64_t(sizeof(T)) >= kStreamingBytes;
#pragma omp parallel if (worth_parallel(rows, rows * cols))
  {
#pragma omp for schedule(static)
    for (int64_t r = 0; r < rows; ++r) {
      const auto [mean, rstd] =
          layer_norm_row<T, kWeight, kBias>(in + r * cols, weight, bias, eps, out + r * cols, cols, stream);
      mean_out[r] = mean;
      rstd_out[r] = rstd;
    }
    if (stream) stream_fence();
  }
}

// With xhat = (x - mean) * rstd and dy = g * weight:
//   grad_in = rstd * (dy - mean(dy) - xhat * mean(dy * xhat))
//   grad_weight = sum over rows of g * xhat, grad_bias = sum over rows of g.
// Parameter gradients accumulate per thread in double, then are summed across threads.
template <class T, bool kWeight>
void layer_norm_backward_rows(const T* grad_out, const T* in, const T* mean, const T* rstd, const T* weight,
                              T* grad_in, T* grad_weight, T* grad_bias, int64_t rows, int64_t cols) {
  const bool parallel = worth_parallel(rows, rows * cols);
  const int threads = parallel ? omp_get_max_threads() : 1;
  const bool param_grads = grad_weight || grad_bias;
  // (threads, 2, cols): per-thread sums of g * xhat, then of g.
  std::vector<double> partial(param_grads ? size_t(threads) * 2 * size_t(cols) : 0, 0.0);
#pragma omp parallel num_threads(threads) if (parallel)
  {
    double* weight_acc = param_grads ? partial.data() + size_t(omp_get_thread_num()) * 2 * size_t(cols) : nullptr;
    double* bias_acc = param_grads ? weight_acc + cols : nullptr;
#pragma omp for schedule(static)
    for (int64_t r = 0; r < rows; ++r) {
      const T* x = in + r * cols;
      const T* g = grad_out + r * cols;
      T* gi = grad_in + r * cols;
      const T m = mean[r], rs = rstd[r];
      const auto dy = [=](auto at) {
        if constexpr (kWeight) return at(g) * at(weight);
        else return at(g);
      };
      const T dy_mean = T(row_sum<T>(cols, dy) / double(cols));
      const T dy_xhat_mean =
          T(row_sum<T>(cols, [&](auto at) { return dy(at) * ((at(x) - m) * rs); }) / double(cols));
      for (int64_t i = 0; i < cols; ++i)
        gi[i] = rs * (dy(ScalarAt<T>{i}) - dy_mean - (x[i] - m) * rs * dy_xhat_mean);
      if (param_grads) {
        for (int64_t i = 0; i < cols; ++i) {
          weight_acc[i] += double(g[i] * ((x[i] - m) * rs));
          bias_acc[i] += double(g[i]);
        }
      }
    }
  }
  if (!param_grads) return;
  for (int64_t c = 0; c < cols; ++c) {
    double w = 0, b = 0;
    for (int t = 0; t < threads; ++t) {
      w += partial[size_t(t) * 2 * size_t(cols) + size_t(c)];
      b += partial[(size_t(t) * 2 + 1) * size_t(cols) + size_t(c)];
    }
    if (grad_weight) grad_weight[c] = T(w);
    if (grad_bias) grad_bias[c] = T(b);
  }
}

// ---- cross-entropy ----

// logits (N, C), target (N); losses, lse (N).
// loss = (1 - eps) * (lse - x[t]) + eps * (lse - mean_c x[c]): PyTorch's label smoothing.
template <class T>
void cross_entropy_rows(const T* logits, const int64_t* target, int64_t ignore_index, double smoothing, T* losses,
                        T* lse, int64_t N, int64_t C) {
#pragma omp parallel for if (worth_parallel(N, N * C)) schedule(static)
  for (int64_t n = 0; n < N; ++n) {
    const T* x = logits + n * C;
    const T max = row_max(x, C);
    const double row_lse = double(max) + std::log(row_sum_exp(x, C, max));
    lse[n] = T(row_lse);
    const int64_t t = target[n];
    if (t == ignore_index) {
      losses[n] = T(0);
      continue;
    }
    double loss = (1.0 - smoothing) * (row_lse - double(x[t]));
    if (smoothing > 0) loss += smoothing * (row_lse - row_sum<T>(C, [x](auto at) { return at(x); }) / double(C));
    losses[n] = T(loss);
  }
}

// grad_logits (N, C) = grad_losses[n] * (softmax - (1 - eps) * onehot(t) - eps / C).
template <class T>
void cross_entropy_backward_rows(const T* logits, const int64_t* target, const T* lse, const T* grad_losses,
                                 int64_t ignore_index, double smoothing, T* grad_logits, int64_t N, int64_t C) {
  const T uniform_share = T(smoothing / double(C));
#pragma omp parallel for if (worth_parallel(N, N * C)) schedule(static)
  for (int64_t n = 0; n < N; ++n) {
    const T* x = logits + n * C;
    T* gx = grad_logits + n * C;
    const int64_t t = target[n];
    if (t == ignore_index) {
      std::fill(gx, gx + C, T(0));
      continue;
    }
    const T g = grad_losses[n], row_lse = lse[n];
    for (int64_t c = 0; c < C; ++c) gx[c] = g * (std::exp(x[c] - row_lse) - uniform_share);
    gx[t] -= g * T(1.0 - smoothing);
  }
}

// ---- dropout ----

// Element i keeps its value when the uniform from word i % 4 of Philox block offset + i / 4 is
// >= p (compared in double), the layout every random fill uses, so any backend draws the same mask.
// Elements [first, end) of the tensor; in, out, mask and residual point at element `first`. A
// residual (dropout_add; null for plain dropout) is added after: residual + dropped, the add op's
// operand order.
template <class T>
inline void dropout_scalar(const T* in, const T* residual, T* out, uint8_t* mask, int64_t first, int64_t end, double p,
                           T scale, GeneratorState state) {
  for (int64_t b = first / 4; 4 * b < end; ++b) {
    const PhiloxBlock words = philox4x32_10(state.seed, state.offset + uint64_t(b));
    for (int64_t e = std::max(first, 4 * b); e < std::min(end, 4 * b + 4); ++e) {
      const bool keep = double(uniform_float(words[size_t(e - 4 * b)])) >= p;
      mask[e - first] = uint8_t(keep);
      const T dropped = keep ? in[e - first] * scale : T(0);
      out[e - first] = residual != nullptr ? residual[e - first] + dropped : dropped;
    }
  }
}

// Elements per vector step: 8 Philox blocks of 4 words.
constexpr int64_t kDropoutGroup = 32;

// Dropout of elements [first, end) of the tensor, first a multiple of kDropoutGroup; in, out, mask (and a residual)
// point at element `first`. Whole groups by vectors where there are some, the rest as dropout_scalar.
template <class T>
inline void dropout_run(const T* in, const T* residual, T* out, uint8_t* mask, int64_t first, int64_t end, double p,
                        T scale, GeneratorState state) {
  int64_t done = first;
#if defined(LUNA_HAVE_PHILOX_SIMD)
  if constexpr (std::is_same_v<T, float>) {
    // uniform_float(w) = (w >> 8) / 2^24 exactly, so uniform >= p (in double) is the integer test
    // (w >> 8) >= ceil(p · 2^24): the same mask without a conversion per element.
    const __m256i below = _mm256_set1_epi32(int(std::ceil(p * 16777216.0)) - 1);
    const __m256 scale8 = _mm256_set1_ps(scale);
    const __m256i ones = _mm256_set1_epi8(1);
    for (; done + kDropoutGroup <= end; done += kDropoutGroup) {
      __m256i words[4];
      philox_simd::philox8_elements(state.seed, state.offset + uint64_t(done / 4), words);
      const int64_t at = done - first;
      __m256i keep[4];
      for (int v = 0; v < 4; ++v) {
        keep[v] = _mm256_cmpgt_epi32(_mm256_srli_epi32(words[v], 8), below);  // all ones = keep
        const __m256 x = _mm256_loadu_ps(in + at + 8 * v);
        // keep ? x·scale : +0, as the scalar path (x·scale is rounded the same way).
        __m256 value = _mm256_and_ps(_mm256_mul_ps(x, scale8), _mm256_castsi256_ps(keep[v]));
        if (residual != nullptr) value = _mm256_add_ps(_mm256_loadu_ps(residual + at + 8 * v), value);
        _mm256_storeu_ps(out + at + 8 * v, value);
      }
      // 32 lanes of 0 / -1 to 32 bytes of 0 / 1; the packs work per 128-bit half, the permute
      // restores element order.
      const __m256i words16 = _mm256_packs_epi32(keep[0], keep[1]);  // (0-3, 8-11 | 4-7, 12-15)
      const __m256i words16b = _mm256_packs_epi32(keep[2], keep[3]);
      const __m256i bytes = _mm256_packs_epi16(words16, words16b);
      const __m256i ordered = _mm256_permutevar8x32_epi32(bytes, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(mask + at), _mm256_and_si256(ordered, ones));
    }
  }
#endif
  if (done < end)
    dropout_scalar(in + (done - first), residual != nullptr ? residual + (done - first) : nullptr, out + (done - first),
                   mask + (done - first), done, end, p, scale, state);
}

// out = dropout(in), or residual + dropout(in) when residual is not null.
template <class T>
void dropout_elements(const T* in, const T* residual, T* out, uint8_t* mask, int64_t n, double p,
                      GeneratorState state) {
  const T scale = T(1.0 / (1.0 - p));
  const int64_t chunk = 8192;  // elements per task, a multiple of kDropoutGroup
  const int64_t chunks = (n + chunk - 1) / chunk;
#pragma omp parallel for if (worth_parallel(chunks, n)) schedule(static)
  for (int64_t c = 0; c < chunks; ++c) {
    const int64_t first = c * chunk, end = std::min(n, first + chunk);
    dropout_run(in + first, residual != nullptr ? residual + first : nullptr, out + first, mask + first, first, end, p,
                scale, state);
  }
}

// grad_in = (grad_out · mask) · scale, the two products of the composed formula in the same order,
// so the results (signed zeros and NaNs included) match it bit for bit.
template <class T>
void dropout_backward_elements(const T* grad_out, const uint8_t* mask, T scale, T* grad_in, int64_t n) {
  const int64_t chunk = 8192;
  const int64_t chunks = (n + chunk - 1) / chunk;
#pragma omp parallel for if (worth_parallel(chunks, n)) schedule(static)
  for (int64_t c = 0; c < chunks; ++c) {
    const int64_t end = std::min(n, (c + 1) * chunk);
    for (int64_t i = c * chunk; i < end; ++i) grad_in[i] = (grad_out[i] * T(mask[i])) * scale;
  }
}

// ---- dropout(gelu(x)), the exact GELU ----

// Elements per task: a multiple of kDropoutGroup (each task draws the Philox blocks the whole-tensor
// dropout draws for its elements), small enough that its GELU values stay in L1 until dropped.
constexpr int64_t kGeluDropoutChunk = 2048;

// out[i] = gelu(in[i]) as the unary GELU kernel computes it (fast::gelu8 for float32, lane by lane,
// so any alignment of the chunk gives the same bits; gelu_exact otherwise).
template <class T>
inline void gelu_values(const T* in, T* out, int64_t n) {
  if constexpr (std::is_same_v<T, float>) {
    fast::map_row([](fast::F8 v) { return fast::gelu8(v); }, in, 1, out, 1, n);
  } else {
    for (int64_t i = 0; i < n; ++i) out[i] = gelu_exact(in[i]);
  }
}

template <class T>
void gelu_dropout_elements(const T* in, T* out, uint8_t* mask, int64_t n, double p, GeneratorState state) {
  const T scale = T(1.0 / (1.0 - p));
  const int64_t chunks = (n + kGeluDropoutChunk - 1) / kGeluDropoutChunk;
#pragma omp parallel for if (worth_parallel(chunks, n)) schedule(static)
  for (int64_t c = 0; c < chunks; ++c) {
    T activated[kGeluDropoutChunk];  // (chunk) gelu of the chunk's elements
    const int64_t first = c * kGeluDropoutChunk, end = std::min(n, first + kGeluDropoutChunk);
    gelu_values(in + first, activated, end - first);
    dropout_run(activated, static_cast<const T*>(nullptr), out + first, mask + first, first, end, p, scale, state);
  }
}

// grad_in = ((grad_out · mask) · scale) · gelu'(x): dropout's backward, then the GELU's (which
// multiplies the incoming gradient by the derivative), the same operations in the same order.
template <class T>
void gelu_dropout_backward_elements(const T* grad_out, const T* in, const uint8_t* mask, T scale, T* grad_in,
                                    int64_t n) {
  const int64_t chunks = (n + kGeluDropoutChunk - 1) / kGeluDropoutChunk;
#pragma omp parallel for if (worth_parallel(chunks, n)) schedule(static)
  for (int64_t c = 0; c < chunks; ++c) {
    T dropped[kGeluDropoutChunk];  // (chunk) the gradient through the dropout
    const int64_t first = c * kGeluDropoutChunk, count = std::min(n, first + kGeluDropoutChunk) - first;
    for (int64_t i = 0; i < count; ++i) dropped[i] = (grad_out[first + i] * T(mask[first + i])) * scale;
    if constexpr (std::is_same_v<T, float>) {
      fast::map_row([](fast::F8 xv, fast::F8 gv) { return gv * fast::gelu_grad8(xv); }, in + first, 1, dropped, 1,
                    grad_in + first, 1, count);
    } else {
      for (int64_t i = 0; i < count; ++i) grad_in[first + i] = dropped[i] * gelu_exact_grad(in[first + i]);
    }
  }
}

template <class T>
const T* optional_data(const Tensor& t) {
  return t.defined() ? t.data_ptr<T>() : nullptr;
}

}  // namespace

void CpuBackend::softmax_forward(const Tensor& in, const Tensor& out, int dim, bool log) {
  const DimSplit s = split_at(in, dim);
  LUNA_DISPATCH_FLOAT(in.dtype(), log ? "log_softmax" : "softmax", [&] {
    if (s.inner == 1) softmax_rows(in.data_ptr<scalar_t>(), out.data_ptr<scalar_t>(), s.outer, s.size, log);
    else softmax_columns(in.data_ptr<scalar_t>(), out.data_ptr<scalar_t>(), s, log);
  });
}

void CpuBackend::softmax_backward(const Tensor& out, const Tensor& grad_out, const Tensor& grad_in, int dim,
                                  bool log) {
  const DimSplit s = split_at(out, dim);
  LUNA_DISPATCH_FLOAT(out.dtype(), log ? "log_softmax_backward" : "softmax_backward", [&] {
    const scalar_t* y = out.data_ptr<scalar_t>();
    const scalar_t* g = grad_out.data_ptr<scalar_t>();
    scalar_t* gi = grad_in.data_ptr<scalar_t>();
    if (s.inner == 1) softmax_backward_rows(y, g, gi, s.outer, s.size, log);
    else softmax_backward_columns(y, g, gi, s, log);
  });
}

void CpuBackend::layer_norm_forward(const Tensor& in, const Tensor& weight, const Tensor& bias, double eps,
                                    const Tensor& out, const Tensor& mean, const Tensor& rstd) {
  const int64_t rows = mean.numel(), cols = rows == 0 ? 0 : in.numel() / rows;
  LUNA_DISPATCH_FLOAT(in.dtype(), "layer_norm", [&] {
    using T = scalar_t;
    const T* x = in.data_ptr<T>();
    const T* w = optional_data<T>(weight);
    const T* b = optional_data<T>(bias);
    T* y = out.data_ptr<T>();
    T* m = mean.data_ptr<T>();
    T* r = rstd.data_ptr<T>();
    if (w && b) layer_norm_rows<T, true, true>(x, w, b, eps, y, m, r, rows, cols);
    else if (w) layer_norm_rows<T, true, false>(x, w, b, eps, y, m, r, rows, cols);
    else if (b) layer_norm_rows<T, false, true>(x, w, b, eps, y, m, r, rows, cols);
    else layer_norm_rows<T, false, false>(x, w, b, eps, y, m, r, rows, cols);
  });
}

void CpuBackend::layer_norm_backward(const Tensor& grad_out, const Tensor& in, const Tensor& mean,
                                     const Tensor& rstd, const Tensor& weight, const Tensor& grad_in,
                                     const Tensor& grad_weight, const Tensor& grad_bias) {
  const int64_t rows = mean.numel(), cols = rows == 0 ? 0 : in.numel() / rows;
  LUNA_DISPATCH_FLOAT(in.dtype(), "layer_norm_backward", [&] {
    using T = scalar_t;
    T* gw = grad_weight.defined() ? grad_weight.data_ptr<T>() : nullptr;
    T* gb = grad_bias.defined() ? grad_bias.data_ptr<T>() : nullptr;
    if (rows == 0) {
      // No rows: the parameter gradients are empty sums.
      if (gw) std::fill(gw, gw + grad_weight.numel(), T(0));
      if (gb) std::fill(gb, gb + grad_bias.numel(), T(0));
      return;
    }
    const auto run = [&]<bool kWeight>() {
      layer_norm_backward_rows<T, kWeight>(grad_out.data_ptr<T>(), in.data_ptr<T>(), mean.data_ptr<T>(),
                                           rstd.data_ptr<T>(), optional_data<T>(weight), grad_in.data_ptr<T>(),
                                           gw, gb, rows, cols);
    };
    if (weight.defined()) run.template operator()<true>();
    else run.template operator()<false>();
  });
}

void CpuBackend::cross_entropy_forward(const Tensor& logits, const Tensor& target, int64_t ignore_index,
                                       double label_smoothing, const Tensor& losses, const Tensor& lse) {
  const int64_t N = losses.numel(), C = N == 0 ? 0 : logits.numel() / N;
  LUNA_DISPATCH_FLOAT(logits.dtype(), "cross_entropy", [&] {
    cross_entropy_rows(logits.data_ptr<scalar_t>(), target.data_ptr<int64_t>(), ignore_index, label_smoothing,
                       losses.data_ptr<scalar_t>(), lse.data_ptr<scalar_t>(), N, C);
  });
}

void CpuBackend::cross_entropy_backward(const Tensor& logits, const Tensor& target, const Tensor& lse,
                                        const Tensor& grad_losses, int64_t ignore_index, double label_smoothing,
                                        const Tensor& grad_logits) {
  const int64_t N = lse.numel(), C = N == 0 ? 0 : logits.numel() / N;
  LUNA_DISPATCH_FLOAT(logits.dtype(), "cross_entropy_backward", [&] {
    cross_entropy_backward_rows(logits.data_ptr<scalar_t>(), target.data_ptr<int64_t>(), lse.data_ptr<scalar_t>(),
                                grad_losses.data_ptr<scalar_t>(), ignore_index, label_smoothing,
                                grad_logits.data_ptr<scalar_t>(), N, C);
  });
}

void CpuBackend::dropout_forward(const Tensor& in, const Tensor& out, const Tensor& mask, double p,
                                 GeneratorState state) {
  LUNA_DISPATCH_FLOAT(in.dtype(), "dropout", [&] {
    dropout_elements(in.data_ptr<scalar_t>(), static_cast<const scalar_t*>(nullptr), out.data_ptr<scalar_t>(),
                     mask.data_ptr<uint8_t>(), in.numel(), p, state);
  });
}

void CpuBackend::dropout_add_forward(const Tensor& in, const Tensor& residual, const Tensor& out, const Tensor& mask,
                                     double p, GeneratorState state) {
  LUNA_DISPATCH_FLOAT(in.dtype(), "dropout_add", [&] {
    dropout_elements(in.data_ptr<scalar_t>(), residual.data_ptr<scalar_t>(), out.data_ptr<scalar_t>(),
                     mask.data_ptr<uint8_t>(), in.numel(), p, state);
  });
}

void CpuBackend::dropout_backward(const Tensor& grad_out, const Tensor& mask, double scale, const Tensor& grad_in) {
  LUNA_DISPATCH_FLOAT(grad_out.dtype(), "dropout backward", [&] {
    dropout_backward_elements(grad_out.data_ptr<scalar_t>(), mask.data_ptr<uint8_t>(), scalar_t(scale),
                              grad_in.data_ptr<scalar_t>(), grad_out.numel());
  });
}

void CpuBackend::gelu_dropout_forward(const Tensor& in, const Tensor& out, const Tensor& mask, double p,
                                      GeneratorState state) {
  LUNA_DISPATCH_FLOAT(in.dtype(), "gelu_dropout", [&] {
    gelu_dropout_elements(in.data_ptr<scalar_t>(), out.data_ptr<scalar_t>(), mask.data_ptr<uint8_t>(), in.numel(), p,
                          state);
  });
}

void CpuBackend::gelu_dropout_backward(const Tensor& grad_out, const Tensor& in, const Tensor& mask, double scale,
                                       const Tensor& grad_in) {
  LUNA_DISPATCH_FLOAT(grad_out.dtype(), "gelu_dropout backward", [&] {
    gelu_dropout_backward_elements(grad_out.data_ptr<scalar_t>(), in.data_ptr<scalar_t>(), mask.data_ptr<uint8_t>(),
                                   scalar_t(scale), grad_in.data_ptr<scalar_t>(), grad_out.numel());
  });
}

}  // namespace luna::cpu
