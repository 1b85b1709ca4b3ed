// CPU kernels of the LUNA op: the scalar ψ MLP applied to every projection u = wᵀx + b (exact
// piecewise-linear tables for ReLU, a fused direct loop for gelu/silu) and kernelized linear
// attention (non-causal sums, causal prefix sums). No kernel stores the (tokens × M × Hψ) hidden
// activations or an N×N matrix. See ops/luna_kernels.h for layouts.
#include <luna/ops/luna_kernels.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include <omp.h>

namespace luna::cpu::luna_kernels {
namespace {

// Below this much work (scalars × channels, or tokens × features) a loop stays on one thread.
constexpr int64_t kParallelWork = 16384;

// ---------------------------------------------------------------------------------------------
// Activations of the hidden layer, with their derivatives (relu'(0) = 0 as in PyTorch).

struct ReluActivation {
  template <class T>
  static void value_and_grad(T pre, T& value, T& grad) {
    value = pre > T(0) ? pre : T(0);
    grad = pre > T(0) ? T(1) : T(0);
  }
  template <class T>
  static T value(T pre) { return pre > T(0) ? pre : T(0); }
};

// Exact (erf) gelu, PyTorch's approximate="none".
struct GeluActivation {
  template <class T>
  static void value_and_grad(T pre, T& value, T& grad) {
    const T cdf = T(0.5) * (T(1) + std::erf(pre * T(0.70710678118654752440)));
    value = pre * cdf;
    grad = cdf + pre * std::exp(T(-0.5) * pre * pre) * T(0.39894228040143267794);
  }
  template <class T>
  static T value(T pre) { return pre * T(0.5) * (T(1) + std::erf(pre * T(0.70710678118654752440))); }
};

struct SiluActivation {
  template <class T>
  static void value_and_grad(T pre, T& value, T& grad) {
    const T sigmoid = T(1) / (T(1) + std::exp(-pre));
    value = pre * sigmoid;
    grad = sigmoid * (T(1) + pre * (T(1) - sigmoid));
  }
  template <class T>
  static T value(T pre) { return pre / (T(1) + std::exp(-pre)); }
};

// The final ReLU of ψ; NaN passes through so anomaly mode can see it.
template <class T>
inline T outer_relu(T s) { return s < T(0) ? T(0) : s; }

// ---------------------------------------------------------------------------------------------
// Piecewise-linear tables for s_ℓ(u) = e_ℓ + Σ_j g_j relu(a_j u + c_j).
//
// The D distinct kinks v_0 < … < v_{D−1} (u = −c_j/a_j for a_j ≠ 0) split the line into 2D+1
// buckets: bucket 2k is the open interval (v_{k−1}, v_k), bucket 2k+1 the point v_k. At a kink
// point the unit of that kink is inactive (its pre-activation is 0 and relu'(0) = 0), so tables
// stay exact on kinks too. Unit j with kink bucket κ_j is active in buckets b > κ_j when a_j > 0
// and b < κ_j when a_j < 0; units with a_j = 0 add the constant g_j relu(c_j).

template <class T>
struct PiecewiseTable {
  std::vector<T> kinks;               // (D) distinct, sorted, rounded to T like the inputs they meet
  std::vector<T> kinks_and_nan;       // (D + 1) the kinks then a NaN, so kinks_and_nan[k] is valid for
                                      // every count k ≤ D and equals no input
  std::vector<int64_t> kink_bucket;   // (Hψ) κ_j, or −1 for a_j = 0
  std::vector<T> slope, intercept;    // (2D+1) per bucket, intercept including e_ℓ
};

// Scalars looked up together against one table; the count below vectorises across them.
constexpr int kLookupBlock = 16;

// bucket[s] = 2·#{kinks < x[s]} + [x[s] is a kink] for n ≤ kLookupBlock scalars. Counting with a
// branch-free compare over all D kinks (D ≤ Hψ, 64 by default) beats a binary search and a grid
// of cells (both measured slower): it runs kLookupBlock scalars per vector pass and never
// mispredicts. NaN counts 0 kinks and stays NaN through the table.
// Fixed trip counts over the whole block (inputs past n are copies of x[0]) so these loops vectorise,
// with gathers for the table lookups.
template <class T>
inline void finish_buckets(const PiecewiseTable<T>& table, const T* values, const int32_t* below, int /*n*/,
                           int32_t* bucket) {
  const T* kinks = table.kinks_and_nan.data();
  for (int s = 0; s < kLookupBlock; ++s) bucket[s] = 2 * below[s] + (kinks[below[s]] == values[s] ? 1 : 0);
}

template <class T>
inline void buckets_of_block(const PiecewiseTable<T>& table, const T* x, int n, int32_t* bucket) {
  T values[kLookupBlock];
  int32_t below[kLookupBlock] = {};
  for (int s = 0; s < kLookupBlock; ++s) values[s] = x[s < n ? s : 0];
  for (const T kink : table.kinks)
    for (int s = 0; s < kLookupBlock; ++s) below[s] += kink < values[s] ? 1 : 0;
  finish_buckets(table, values, below, n, bucket);
}

// float, the training dtype: two 8-lane vectors held in registers across the whole kink loop
// (GCC/Clang vector extensions; a true lane compares to −1, so subtracting counts it).
template <>
inline void buckets_of_block<float>(const PiecewiseTable<float>& table, const float* x, int n, int32_t* bucket) {
  static_assert(kLookupBlock == 16, "two 8-lane vectors");
  typedef float Floats8 __attribute__((vector_size(32)));
  typedef int32_t Ints8 __attribute__((vector_size(32)));
  alignas(32) float values[kLookupBlock];
  for (int s = 0; s < kLookupBlock; ++s) values[s] = x[s < n ? s : 0];
  Floats8 low, high;
  std::memcpy(&low, values, sizeof(low));
  std::memcpy(&high, values + 8, sizeof(high));
  Ints8 below_low = {}, below_high = {};
  const float* kinks = table.kinks.data();
  const int64_t D = int64_t(table.kinks.size());
  int64_t j = 0;
  for (; j + 2 <= D; j += 2) {  // two kinks per trip: half the loop overhead, independent chains
    below_low -= (kinks[j] < low) + (kinks[j + 1] < low);
    below_high -= (kinks[j] < high) + (kinks[j + 1] < high);
  }
  for (; j < D; ++j) {
    below_low -= kinks[j] < low;
    below_high -= kinks[j] < high;
  }
  alignas(32) int32_t below[kLookupBlock];
  std::memcpy(below, &below_low, sizeof(below_low));
  std::memcpy(below + 8, &below_high, sizeof(below_high));
  finish_buckets(table, values, below, n, bucket);
}

inline bool unit_active(double a, int64_t kink_bucket, int64_t bucket) {
  return a > 0 ? bucket > kink_bucket : bucket < kink_bucket;
}

// The kink of a unit in T, so lookups compare like with like.
template <class T>
inline T kink_of(T a, T c) { return T(-double(c) / double(a)); }

// One table per (group, channel), (G·L) in all.
template <class T>
std::vector<PiecewiseTable<T>> build_piecewise_tables(const PsiParams<T>& params, const PsiShape& shape) {
  const int64_t hidden = shape.hidden;
  std::vector<PiecewiseTable<T>> tables(shape.groups() * shape.channels);
  for (int64_t table_index = 0; table_index < int64_t(tables.size()); ++table_index) {
    PiecewiseTable<T>& table = tables[table_index];
    const T* a = params.fc1_weight + table_index * hidden;
    const T* c = params.fc1_bias + table_index * hidden;
    const T* g = params.fc2_weight + table_index * hidden;
    for (int64_t j = 0; j < hidden; ++j)
      if (a[j] != T(0)) table.kinks.push_back(kink_of(a[j], c[j]));
    std::sort(table.kinks.begin(), table.kinks.end());
    table.kinks.erase(std::unique(table.kinks.begin(), table.kinks.end()), table.kinks.end());
    table.kinks_and_nan = table.kinks;
    table.kinks_and_nan.push_back(std::numeric_limits<T>::quiet_NaN());

    double constant = double(params.fc2_bias[table_index]);
    table.kink_bucket.assign(hidden, -1);
    for (int64_t j = 0; j < hidden; ++j) {
      if (a[j] == T(0)) {
        constant += double(g[j]) * std::max(double(c[j]), 0.0);
        continue;
      }
      const T kink = kink_of(a[j], c[j]);
      const int64_t k = std::lower_bound(table.kinks.begin(), table.kinks.end(), kink) - table.kinks.begin();
      table.kink_bucket[j] = 2 * k + 1;
    }
    // Summed per bucket from scratch (O(buckets·Hψ), tiny) so no rounding accumulates across buckets.
    const int64_t buckets = 2 * int64_t(table.kinks.size()) + 1;
    table.slope.resize(buckets);
    table.intercept.resize(buckets);
    for (int64_t b = 0; b < buckets; ++b) {
      double slope = 0, intercept = constant;
      for (int64_t j = 0; j < hidden; ++j) {
        if (table.kink_bucket[j] < 0 || !unit_active(a[j], table.kink_bucket[j], b)) continue;
        slope += double(g[j]) * double(a[j]);
        intercept += double(g[j]) * double(c[j]);
      }
      table.slope[b] = T(slope);
      table.intercept[b] = T(intercept);
    }
  }
  return tables;
}

// Per-thread partial sums, reduced into the first slot after the parallel loop.
struct ThreadPartials {
  int64_t per_thread;
  std::vector<double> data;
  ThreadPartials(int64_t size, int threads) : per_thread(size), data(size_t(size) * threads, 0.0) {}
  double* slot(int thread) { return data.data() + int64_t(thread) * per_thread; }
  const double* reduce(int threads) {
    for (int t = 1; t < threads; ++t)
      for (int64_t i = 0; i < per_thread; ++i) data[i] += data[int64_t(t) * per_thread + i];
    return data.data();
  }
};

// ---------------------------------------------------------------------------------------------
// Direct ψ: Hψ hidden units per scalar, recomputed in backward.

template <class T, class Activation>
void psi_forward_direct_impl(const T* u, const PsiParams<T>& params, const PsiShape& shape, T scale, T* out) {
  const int64_t M = shape.projections, L = shape.channels, hidden = shape.hidden;
#pragma omp parallel for schedule(static) if (shape.rows * M * L * hidden > kParallelWork)
  for (int64_t row = 0; row < shape.rows; ++row) {
    const int64_t group = shape.group_of_row(row);
    const T* u_row = u + row * M;    // (M)
    T* out_row = out + row * M * L;  // (M, L)
    for (int64_t i = 0; i < M; ++i) {
      const T x = u_row[i];
      for (int64_t l = 0; l < L; ++l) {
        const int64_t offset = (group * L + l) * hidden;
        const T* a = params.fc1_weight + offset;
        const T* c = params.fc1_bias + offset;
        const T* g = params.fc2_weight + offset;
        T s = params.fc2_bias[group * L + l];
        for (int64_t j = 0; j < hidden; ++j) s += g[j] * Activation::value(a[j] * x + c[j]);
        out_row[i * L + l] = scale * outer_relu(s);
      }
    }
  }
}

template <class T, class Activation>
void psi_backward_direct_impl(const T* grad_out, const T* u, const T* out, const PsiParams<T>& params,
                              const PsiShape& shape, T scale, T* grad_u, const PsiGrads<T>& grads) {
  const int64_t M = shape.projections, L = shape.channels, hidden = shape.hidden, G = shape.groups();
  // Per thread: d/dg, d/da, d/dc as (G, L, Hψ) each, then d/de as (G, L).
  const int64_t table = G * L * hidden;
  const bool parallel = shape.rows * M * L * hidden > kParallelWork;
  const int threads = parallel ? omp_get_max_threads() : 1;
  ThreadPartials partials(3 * table + G * L, threads);
#pragma omp parallel num_threads(threads) if (parallel)
  {
    double* acc = partials.slot(omp_get_thread_num());
    double* acc_g = acc;
    double* acc_a = acc + table;
    double* acc_c = acc + 2 * table;
    double* acc_e = acc + 3 * table;
#pragma omp for schedule(static)
    for (int64_t row = 0; row < shape.rows; ++row) {
      const int64_t group = shape.group_of_row(row);
      for (int64_t i = 0; i < M; ++i) {
        const T x = u[row * M + i];
        T grad_x = 0;
        for (int64_t l = 0; l < L; ++l) {
          const int64_t flat = (row * M + i) * L + l;
          if (!(out[flat] > T(0))) continue;  // the final ReLU is off
          const T delta = grad_out[flat] * scale;
          const int64_t offset = (group * L + l) * hidden;
          const T* a = params.fc1_weight + offset;
          const T* c = params.fc1_bias + offset;
          const T* g = params.fc2_weight + offset;
          for (int64_t j = 0; j < hidden; ++j) {
            T value, slope;
            Activation::value_and_grad(a[j] * x + c[j], value, slope);
            const T through = delta * g[j] * slope;
            acc_g[offset + j] += double(delta * value);
            acc_a[offset + j] += double(through * x);
            acc_c[offset + j] += double(through);
            grad_x += through * a[j];
          }
          acc_e[group * L + l] += double(delta);
        }
        grad_u[row * M + i] = grad_x;
      }
    }
  }
  const double* total = partials.reduce(threads);
  for (int64_t t = 0; t < table; ++t) {
    grads.fc2_weight[t] = T(total[t]);
    grads.fc1_weight[t] = T(total[table + t]);
    grads.fc1_bias[t] = T(total[2 * table + t]);
  }
  for (int64_t t = 0; t < G * L; ++t) grads.fc2_bias[t] = T(total[3 * table + t]);
}

// ---------------------------------------------------------------------------------------------
// Linear attention helpers on one (batch, head).

// S += φ(k) vᵀ, z += φ(k) for one key. Zero features (common after the ReLU) cost nothing.
template <class T>
inline void add_key(const T* phi_k_row, const T* v_row, int64_t F, int64_t dv, double* S, double* z) {
  for (int64_t f = 0; f < F; ++f) {
    const double kf = phi_k_row[f];
    if (kf == 0) continue;
    z[f] += kf;
    double* S_row = S + f * dv;
    for (int64_t e = 0; e < dv; ++e) S_row[e] += kf * double(v_row[e]);
  }
}

// out = φ(q)ᵀS / (φ(q)ᵀz + ε) for one query; numerator is scratch (dv).
template <class T>
inline void attend_query(const T* phi_q_row, const double* S, const double* z, int64_t F, int64_t dv, double eps,
                         double* numerator, T* out_row, T* denominator) {
  std::fill(numerator, numerator + dv, 0.0);
  double den = eps;
  for (int64_t f = 0; f < F; ++f) {
    const double qf = phi_q_row[f];
    if (qf == 0) continue;
    den += qf * z[f];
    const double* S_row = S + f * dv;
    for (int64_t e = 0; e < dv; ++e) numerator[e] += qf * S_row[e];
  }
  for (int64_t e = 0; e < dv; ++e) out_row[e] = T(numerator[e] / den);
  *denominator = T(den);
}

// Gradients at the numerator and denominator of one output row:
// ∂num = G/den, ∂den = −(G·out)/den. Returns ∂den and fills grad_numerator (dv).
template <class T>
inline double split_output_grad(const T* grad_row, const T* out_row, T denominator, int64_t dv,
                                double* grad_numerator) {
  const double den = denominator;
  double dot = 0;
  for (int64_t e = 0; e < dv; ++e) {
    grad_numerator[e] = double(grad_row[e]) / den;
    dot += double(grad_row[e]) * double(out_row[e]);
  }
  return -dot / den;
}

// ∂φ(q) = S ∂num + z ∂den for one query.
template <class T>
inline void query_grad(const double* S, const double* z, const double* grad_numerator, double grad_denominator,
                       int64_t F, int64_t dv, T* grad_phi_q_row) {
  for (int64_t f = 0; f < F; ++f) {
    const double* S_row = S + f * dv;
    double acc = z[f] * grad_denominator;
    for (int64_t e = 0; e < dv; ++e) acc += S_row[e] * grad_numerator[e];
    grad_phi_q_row[f] = T(acc);
  }
}

// dS += φ(q) ∂numᵀ, dz += φ(q) ∂den for one query.
template <class T>
inline void add_query_to_sum_grads(const T* phi_q_row, const double* grad_numerator, double grad_denominator,
                                   int64_t F, int64_t dv, double* dS, double* dz) {
  for (int64_t f = 0; f < F; ++f) {
    const double qf = phi_q_row[f];
    if (qf == 0) continue;
    dz[f] += qf * grad_denominator;
    double* dS_row = dS + f * dv;
    for (int64_t e = 0; e < dv; ++e) dS_row[e] += qf * grad_numerator[e];
  }
}

// ∂φ(k) = dS v + dz and ∂v = dSᵀ φ(k) for one key (zero when it is padded).
template <class T>
inline void key_grads(const T* phi_k_row, const T* v_row, bool padded, const double* dS, const double* dz,
                      int64_t F, int64_t dv, double* scratch, T* grad_phi_k_row, T* grad_v_row) {
  if (padded) {
    std::fill(grad_phi_k_row, grad_phi_k_row + F, T(0));
    std::fill(grad_v_row, grad_v_row + dv, T(0));
    return;
  }
  std::fill(scratch, scratch + dv, 0.0);
  for (int64_t f = 0; f < F; ++f) {
    const double* dS_row = dS + f * dv;
    double acc = dz[f];
    for (int64_t e = 0; e < dv; ++e) acc += dS_row[e] * double(v_row[e]);
    grad_phi_k_row[f] = T(acc);
    const double kf = phi_k_row[f];
    if (kf == 0) continue;
    for (int64_t e = 0; e < dv; ++e) scratch[e] += kf * dS_row[e];
  }
  for (int64_t e = 0; e < dv; ++e) grad_v_row[e] = T(scratch[e]);
}

inline bool is_padded(const uint8_t* mask, int64_t batch, int64_t keys, int64_t j) {
  return mask != nullptr && mask[batch * keys + j] != 0;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// ψ entry points

template <class T>
void psi_forward_piecewise(const T* u, const PsiParams<T>& params, const PsiShape& shape, T scale, T* out,
                           uint8_t* buckets_out) {
  const std::vector<PiecewiseTable<T>> tables = build_piecewise_tables(params, shape);
  const int64_t M = shape.projections, L = shape.channels;
#pragma omp parallel for schedule(static) if (shape.rows * M * L > kParallelWork)
  for (int64_t row = 0; row < shape.rows; ++row) {
    const PiecewiseTable<T>* group_tables = tables.data() + shape.group_of_row(row) * L;
    const T* u_row = u + row * M;    // (M)
    T* out_row = out + row * M * L;  // (M, L)
    int32_t bucket[kLookupBlock];
    T result[kLookupBlock];
    for (int64_t l = 0; l < L; ++l) {
      const PiecewiseTable<T>& table = group_tables[l];
      const T* slope = table.slope.data();
      const T* intercept = table.intercept.data();
      for (int64_t start = 0; start < M; start += kLookupBlock) {
        const int n = int(std::min<int64_t>(kLookupBlock, M - start));
        const T* x = u_row + start;
        buckets_of_block(table, x, n, bucket);
        for (int s = 0; s < kLookupBlock; ++s) {
          const T value = x[s < n ? s : 0];
          result[s] = scale * outer_relu(slope[bucket[s]] * value + intercept[bucket[s]]);
        }
        for (int s = 0; s < n; ++s) out_row[(start + s) * L + l] = result[s];
        if (buckets_out != nullptr)
          for (int s = 0; s < n; ++s) buckets_out[(row * M + start + s) * L + l] = uint8_t(bucket[s]);
      }
    }
  }
}

template <class T>
void psi_backward_piecewise(const T* grad_out, const T* u, const uint8_t* saved_buckets, const PsiParams<T>& params,
                            const PsiShape& shape, T scale, T* grad_u, const PsiGrads<T>& grads) {
  const std::vector<PiecewiseTable<T>> tables = build_piecewise_tables(params, shape);
  const int64_t M = shape.projections, L = shape.channels, hidden = shape.hidden, G = shape.groups();
  const int64_t max_buckets = 2 * hidden + 1;
  // Per thread and (group, channel, bucket): P0 = Σδ and P1 = Σδu, δ the gated upstream gradient.
  const int64_t sums = G * L * max_buckets;
  const bool parallel = shape.rows * M * L > kParallelWork;
  const int threads = parallel ? omp_get_max_threads() : 1;
  ThreadPartials partials(2 * sums, threads);
#pragma omp parallel num_threads(threads) if (parallel)
  {
    double* P0 = partials.slot(omp_get_thread_num());  // (G, L, max_buckets)
    double* P1 = P0 + sums;                            // (G, L, max_buckets)
#pragma omp for schedule(static)
    for (int64_t row = 0; row < shape.rows; ++row) {
      const int64_t group = shape.group_of_row(row);
      const T* u_row = u + row * M;                // (M)
      const T* grad_row = grad_out + row * M * L;  // (M, L)
      T* grad_u_row = grad_u + row * M;            // (M)
      std::fill(grad_u_row, grad_u_row + M, T(0));
      int32_t bucket[kLookupBlock];
      for (int64_t l = 0; l < L; ++l) {
        const PiecewiseTable<T>& table = tables[group * L + l];
        double* P0_table = P0 + (group * L + l) * max_buckets;
        double* P1_table = P1 + (group * L + l) * max_buckets;
        for (int64_t start = 0; start < M; start += kLookupBlock) {
          const int n = int(std::min<int64_t>(kLookupBlock, M - start));
          if (saved_buckets != nullptr) {
            for (int s = 0; s < n; ++s) bucket[s] = saved_buckets[(row * M + start + s) * L + l];
          } else {
            buckets_of_block(table, u_row + start, n, bucket);
          }
          for (int s = 0; s < n; ++s) {
            const T x = u_row[start + s];
            const int32_t b = bucket[s];
            if (!(table.slope[b] * x + table.intercept[b] > T(0))) continue;  // the final ReLU is off
            const T delta = grad_row[(start + s) * L + l] * scale;
            grad_u_row[start + s] += delta * table.slope[b];
            P0_table[b] += double(delta);
            P1_table[b] += double(delta) * double(x);
          }
        }
      }
    }
  }
  const double* P0 = partials.reduce(threads);
  const double* P1 = P0 + sums;

  std::vector<double> prefix0, prefix1, suffix0, suffix1;  // (buckets + 1): sums over b < k, and b ≥ k
  for (int64_t table_index = 0; table_index < G * L; ++table_index) {
    const PiecewiseTable<T>& table = tables[table_index];
    const int64_t buckets = int64_t(table.slope.size());
    const double* p0 = P0 + table_index * max_buckets;
    const double* p1 = P1 + table_index * max_buckets;
    prefix0.assign(buckets + 1, 0.0);
    prefix1.assign(buckets + 1, 0.0);
    suffix0.assign(buckets + 1, 0.0);
    suffix1.assign(buckets + 1, 0.0);
    for (int64_t b = 0; b < buckets; ++b) {
      prefix0[b + 1] = prefix0[b] + p0[b];
      prefix1[b + 1] = prefix1[b] + p1[b];
    }
    for (int64_t b = buckets - 1; b >= 0; --b) {
      suffix0[b] = suffix0[b + 1] + p0[b];
      suffix1[b] = suffix1[b + 1] + p1[b];
    }
    const double total0 = suffix0[0], total1 = suffix1[0];
    const int64_t offset = table_index * hidden;
    for (int64_t j = 0; j < hidden; ++j) {
      const double a = params.fc1_weight[offset + j], c = params.fc1_bias[offset + j];
      const double g = params.fc2_weight[offset + j];
      const int64_t kink = table.kink_bucket[j];
      double sum0, sum1;  // P0, P1 over the scalars where unit j is active
      if (kink < 0) {
        const bool active = c > 0;  // a = 0: the unit is the constant relu(c)
        sum0 = active ? total0 : 0.0;
        sum1 = active ? total1 : 0.0;
      } else if (a > 0) {
        sum0 = suffix0[kink + 1];
        sum1 = suffix1[kink + 1];
      } else {
        sum0 = prefix0[kink];
        sum1 = prefix1[kink];
      }
      grads.fc2_weight[offset + j] = T(a * sum1 + c * sum0);
      grads.fc1_weight[offset + j] = T(g * sum1);
      grads.fc1_bias[offset + j] = T(g * sum0);
    }
    grads.fc2_bias[table_index] = T(total0);
  }
}

template <class T>
void psi_forward_direct(const T* u, const PsiParams<T>& params, const PsiShape& shape, PsiActivation activation,
                        T scale, T* out) {
  switch (activation) {
    case PsiActivation::Relu: return psi_forward_direct_impl<T, ReluActivation>(u, params, shape, scale, out);
    case PsiActivation::Gelu: return psi_forward_direct_impl<T, GeluActivation>(u, params, shape, scale, out);
    case PsiActivation::Silu: return psi_forward_direct_impl<T, SiluActivation>(u, params, shape, scale, out);
  }
}

template <class T>
void psi_backward_direct(const T* grad_out, const T* u, const T* out, const PsiParams<T>& params,
                         const PsiShape& shape, PsiActivation activation, T scale, T* grad_u,
                         const PsiGrads<T>& grads) {
  switch (activation) {
    case PsiActivation::Relu:
      return psi_backward_direct_impl<T, ReluActivation>(grad_out, u, out, params, shape, scale, grad_u, grads);
    case PsiActivation::Gelu:
      return psi_backward_direct_impl<T, GeluActivation>(grad_out, u, out, params, shape, scale, grad_u, grads);
    case PsiActivation::Silu:
      return psi_backward_direct_impl<T, SiluActivation>(grad_out, u, out, params, shape, scale, grad_u, grads);
  }
}

// ---------------------------------------------------------------------------------------------
// Non-causal linear attention: elementwise steps around the GEMMs that ops/luna.cpp runs.

template <class T>
void values_with_ones(const T* v, const uint8_t* key_padding_mask, const AttentionShape& shape, T* v_aug) {
  const int64_t H = shape.heads, Nk = shape.keys, dv = shape.value_dim;
  const int64_t rows = shape.batch * H * Nk;
#pragma omp parallel for schedule(static) if (rows * dv > kParallelWork)
  for (int64_t row = 0; row < rows; ++row) {
    const int64_t batch = row / (H * Nk), j = row % Nk;
    T* out_row = v_aug + row * (dv + 1);  // (dv + 1)
    if (is_padded(key_padding_mask, batch, Nk, j)) {
      std::fill(out_row, out_row + dv + 1, T(0));
      continue;
    }
    std::copy(v + row * dv, v + (row + 1) * dv, out_row);
    out_row[dv] = T(1);
  }
}

template <class T>
void normalize_numerators(const T* numerator_aug, const AttentionShape& shape, double eps, T* out, T* denominator) {
  const int64_t dv = shape.value_dim;
  const int64_t rows = shape.batch * shape.heads * shape.queries;
#pragma omp parallel for schedule(static) if (rows * dv > kParallelWork)
  for (int64_t row = 0; row < rows; ++row) {
    const T* numerator = numerator_aug + row * (dv + 1);  // (dv + 1): φ(q)ᵀS then φ(q)ᵀz
    const T den = numerator[dv] + T(eps);
    denominator[row] = den;
    const T inverse = T(1) / den;
    for (int64_t e = 0; e < dv; ++e) out[row * dv + e] = numerator[e] * inverse;
  }
}

template <class T>
void augmented_output_grad(const T* grad_out, const T* out, const T* denominator, const AttentionShape& shape,
                           T* grad_aug) {
  const int64_t dv = shape.value_dim;
  const int64_t rows = shape.batch * shape.heads * shape.queries;
#pragma omp parallel for schedule(static) if (rows * dv > kParallelWork)
  for (int64_t row = 0; row < rows; ++row) {
    const T* grad_row = grad_out + row * dv;
    const T* out_row = out + row * dv;
    T* aug_row = grad_aug + row * (dv + 1);  // (dv + 1): ∂num then ∂den
    const T inverse = T(1) / denominator[row];
    T dot = 0;
    for (int64_t e = 0; e < dv; ++e) {
      aug_row[e] = grad_row[e] * inverse;
      dot += grad_row[e] * out_row[e];
    }
    aug_row[dv] = -dot * inverse;
  }
}

template <class T>
void zero_padded_rows(T* rows, const uint8_t* key_padding_mask, const AttentionShape& shape, int64_t width) {
  if (key_padding_mask == nullptr) return;
  const int64_t H = shape.heads, Nk = shape.keys;
  for (int64_t bh = 0; bh < shape.batch * H; ++bh)
    for (int64_t j = 0; j < Nk; ++j)
      if (is_padded(key_padding_mask, bh / H, Nk, j)) std::fill_n(rows + (bh * Nk + j) * width, width, T(0));
}

// ---------------------------------------------------------------------------------------------
// Causal linear attention: one (batch, head) per iteration, float64 prefix sums.

template <class T>
void causal_linear_attention_forward(const T* phi_q, const T* phi_k, const T* v, const uint8_t* key_padding_mask,
                                     const AttentionShape& shape, double eps, T* out, T* denominator,
                                     double* S_state, double* z_state) {
  const int64_t H = shape.heads, N = shape.queries, F = shape.features, dv = shape.value_dim;
  const int64_t BH = shape.batch * H;
#pragma omp parallel for schedule(static) if (BH > 1 && N * F * dv > kParallelWork)
  for (int64_t bh = 0; bh < BH; ++bh) {
    const int64_t batch = bh / H;
    double* S_bh = S_state + bh * F * dv;  // (F, dv)
    double* z_bh = z_state + bh * F;       // (F)
    std::vector<double> numerator(dv);
    for (int64_t i = 0; i < N; ++i) {
      const int64_t row = bh * N + i;
      if (!is_padded(key_padding_mask, batch, N, i)) add_key(phi_k + row * F, v + row * dv, F, dv, S_bh, z_bh);
      attend_query(phi_q + row * F, S_bh, z_bh, F, dv, eps, numerator.data(), out + row * dv, denominator + row);
    }
  }
}

template <class T>
void causal_linear_attention_backward(const T* grad_out, const T* phi_q, const T* phi_k, const T* v,
                                      const uint8_t* key_padding_mask, const T* out, const T* denominator,
                                      const AttentionShape& shape, T* grad_phi_q, T* grad_phi_k, T* grad_v) {
  const int64_t H = shape.heads, N = shape.queries, F = shape.features, dv = shape.value_dim;
  const int64_t BH = shape.batch * H;
#pragma omp parallel for schedule(static) if (BH > 1 && N * F * dv > kParallelWork)
  for (int64_t bh = 0; bh < BH; ++bh) {
    const int64_t batch = bh / H;
    std::vector<double> sums(F * dv + F, 0.0), grad_numerator(dv), scratch(dv);
    double* S = sums.data();       // (F, dv) prefix sums, rebuilt in token order
    double* z = S + F * dv;        // (F)
    for (int64_t i = 0; i < N; ++i) {
      const int64_t row = bh * N + i;
      if (!is_padded(key_padding_mask, batch, N, i)) add_key(phi_k + row * F, v + row * dv, F, dv, S, z);
      const double grad_denominator =
          split_output_grad(grad_out + row * dv, out + row * dv, denominator[row], dv, grad_numerator.data());
      query_grad(S, z, grad_numerator.data(), grad_denominator, F, dv, grad_phi_q + row * F);
    }
    // Key t feeds every query i ≥ t: its gradient reads the suffix sums of φ(q_i)∂num_iᵀ.
    std::fill(sums.begin(), sums.end(), 0.0);
    double* dS = S;  // (F, dv)
    double* dz = z;  // (F)
    for (int64_t i = N - 1; i >= 0; --i) {
      const int64_t row = bh * N + i;
      const double grad_denominator =
          split_output_grad(grad_out + row * dv, out + row * dv, denominator[row], dv, grad_numerator.data());
      add_query_to_sum_grads(phi_q + row * F, grad_numerator.data(), grad_denominator, F, dv, dS, dz);
      key_grads(phi_k + row * F, v + row * dv, is_padded(key_padding_mask, batch, N, i), dS, dz, F, dv,
                scratch.data(), grad_phi_k + row * F, grad_v + row * dv);
    }
  }
}

#define LUNA_INSTANTIATE_KERNELS(T)                                                                                 \
  template void psi_forward_piecewise<T>(const T*, const PsiParams<T>&, const PsiShape&, T, T*, uint8_t*);         \
  template void psi_backward_piecewise<T>(const T*, const T*, const uint8_t*, const PsiParams<T>&, const PsiShape&, \
                                          T, T*, const PsiGrads<T>&);                                               \
  template void psi_forward_direct<T>(const T*, const PsiParams<T>&, const PsiShape&, PsiActivation, T, T*);       \
  template void psi_backward_direct<T>(const T*, const T*, const T*, const PsiParams<T>&, const PsiShape&,         \
                                       PsiActivation, T, T*, const PsiGrads<T>&);                                  \
  template void values_with_ones<T>(const T*, const uint8_t*, const AttentionShape&, T*);                          \
  template void normalize_numerators<T>(const T*, const AttentionShape&, double, T*, T*);                          \
  template void augmented_output_grad<T>(const T*, const T*, const T*, const AttentionShape&, T*);                 \
  template void zero_padded_rows<T>(T*, const uint8_t*, const AttentionShape&, int64_t);                           \
  template void causal_linear_attention_forward<T>(const T*, const T*, const T*, const uint8_t*,                   \
                                                   const AttentionShape&, double, T*, T*, double*, double*);       \
  template void causal_linear_attention_backward<T>(const T*, const T*, const T*, const T*, const uint8_t*,        \
                                                    const T*, const T*, const AttentionShape&, T*, T*, T*);

LUNA_INSTANTIATE_KERNELS(float)
LUNA_INSTANTIATE_KERNELS(double)
#undef LUNA_INSTANTIATE_KERNELS

}  // namespace luna::cpu::luna_kernels
