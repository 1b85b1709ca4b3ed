// CPU kernels of the LUNA op: the direct ψ loop (any activation; the exact ReLU tables live in
// ops/luna_psi_piecewise.cpp) and kernelized linear attention (non-causal sums, causal prefix
// sums). No kernel stores the (tokens × M × Hψ) hidden activations or an N×N matrix. See
// ops/luna_kernels.h for layouts.
#include <luna/ops/luna_kernels.h>
#include <luna/ops/luna_kernel_common.h>
#include <luna/backends/cpu/fast_math.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <type_traits>
#include <vector>

#include <omp.h>

namespace luna::cpu::luna_kernels {
namespace {

using detail::kParallelWork;
using detail::outer_relu;
using detail::ThreadPartials;

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

// ---------------------------------------------------------------------------------------------
// Direct ψ: Hψ hidden units per scalar, recomputed in backward.

template <class T, class Activation>
void psi_forward_direct_impl(const T* u, const PsiParams<T>& params, const PsiShape& shape, T scale, T* out) {
  const int64_t M = shape.projections, L = shape.channels, hidden = shape.hidden;
#pragma omp parallel for schedule(static) if (shape.rows * M * L * hidden > kParallelWork)
  for (int64_t step = 0; step < shape.rows; ++step) {
    const int64_t row = shape.row_at(step);
    const int64_t group = shape.group_of_row(row);
    const T* u_row = u + shape.u_offset(row);  // (M)
    T* out_row = out + row * M * L;            // (M, L)
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
    for (int64_t step = 0; step < shape.rows; ++step) {
      const int64_t row = shape.row_at(step);
      const int64_t group = shape.group_of_row(row);
      for (int64_t i = 0; i < M; ++i) {
        const T x = u[shape.u_offset(row) + i];
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
        grad_u[shape.u_offset(row) + i] = grad_x;
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
// Direct ψ in float32 for the smooth activations, 8 values of u at a time through the 8-lane erf and
// exp of backends/cpu/fast_math.h. The loops above make Hψ scalar libm calls (std::erf, std::exp)
// per feature, which made gelu and silu ψ tens of times slower than the ReLU path. Same sums in the
// same order; only erf and exp differ (fast_math.h: |erf8 − erf| < 1e-6, exp8 within 2 ulp).

namespace fast = luna::cpu::fast;
using fast::F8;

struct GeluLanes {
  static F8 value(F8 pre) { return fast::gelu8(pre); }
  static void value_and_grad(F8 pre, F8& value, F8& grad) {
    const F8 cdf = 0.5f * (1.0f + fast::erf8(pre * fast::kSqrt1_2));
    value = pre * cdf;
    grad = cdf + pre * (fast::kInvSqrt2Pi * fast::exp8(-0.5f * pre * pre));
  }
};

struct SiluLanes {
  static F8 value(F8 pre) { return pre / (1.0f + fast::exp8(-pre)); }
  static void value_and_grad(F8 pre, F8& value, F8& grad) {
    const F8 sigmoid = 1.0f / (1.0f + fast::exp8(-pre));
    value = pre * sigmoid;
    grad = sigmoid * (1.0f + pre * (1.0f - sigmoid));
  }
};

template <class Lanes>
void psi_forward_lanes(const float* u, const PsiParams<float>& params, const PsiShape& shape, float scale,
                       float* out) {
  const int64_t M = shape.projections, L = shape.channels, hidden = shape.hidden;
#pragma omp parallel for schedule(static) if (shape.rows * M * L * hidden > kParallelWork)
  for (int64_t step = 0; step < shape.rows; ++step) {
    const int64_t row = shape.row_at(step);
    const int64_t group = shape.group_of_row(row);
    const float* u_row = u + shape.u_offset(row);  // (M)
    float* out_row = out + row * M * L;            // (M, L)
    for (int64_t i = 0; i < M; i += fast::kLanes) {
      const int64_t count = std::min<int64_t>(fast::kLanes, M - i);
      const F8 x = fast::load(u_row + i, 1, count);  // u_i … u_(i+7), zeros past M
      for (int64_t l = 0; l < L; ++l) {
        const int64_t offset = (group * L + l) * hidden;
        const float* a = params.fc1_weight + offset;
        const float* c = params.fc1_bias + offset;
        const float* g = params.fc2_weight + offset;
        F8 s = fast::splat(params.fc2_bias[group * L + l]);
        for (int64_t j = 0; j < hidden; ++j) s += g[j] * Lanes::value(a[j] * x + c[j]);
        s = s < 0.0f ? fast::splat(0.0f) : s;  // the final ReLU; NaN passes, as in outer_relu
        fast::store(out_row + i * L + l, L, count, scale * s);
      }
    }
  }
}

template <class Lanes>
void psi_backward_lanes(const float* grad_out, const float* u, const float* out, const PsiParams<float>& params,
                        const PsiShape& shape, float scale, float* grad_u, const PsiGrads<float>& grads) {
  const int64_t M = shape.projections, L = shape.channels, hidden = shape.hidden, G = shape.groups();
  const int64_t table = G * L * hidden;
  const bool parallel = shape.rows * M * L * hidden > kParallelWork;
  const int threads = parallel ? omp_get_max_threads() : 1;
  // Per thread: d/dg, d/da, d/dc as (G, L, Hψ) each, then d/de as (G, L), in float64.
  ThreadPartials partials(3 * table + G * L, threads);
  // Rows between folds of the float lane sums into the float64 partials: each lane then adds at most
  // kFoldRows · ⌈M/8⌉ terms in float32 (64 when M = 32), and a fold costs 8 additions per entry.
  constexpr int64_t kFoldRows = 16;
#pragma omp parallel num_threads(threads) if (parallel)
  {
    double* acc = partials.slot(omp_get_thread_num());
    std::vector<F8> lanes(size_t(3 * table + G * L), F8{});  // the same four tables, 8 lanes each
    F8* lane_g = lanes.data();
    F8* lane_a = lane_g + table;
    F8* lane_c = lane_a + table;
    F8* lane_e = lane_c + table;
    auto fold = [&] {
      for (size_t t = 0; t < lanes.size(); ++t) {
        double sum = 0;
        for (int k = 0; k < fast::kLanes; ++k) sum += double(lanes[t][k]);
        acc[t] += sum;
        lanes[t] = F8{};
      }
    };
    int64_t unfolded = 0;
#pragma omp for schedule(static)
    for (int64_t step = 0; step < shape.rows; ++step) {
      const int64_t row = shape.row_at(step);
      const int64_t group = shape.group_of_row(row);
      const int64_t u_at = shape.u_offset(row);
      for (int64_t i = 0; i < M; i += fast::kLanes) {
        const int64_t count = std::min<int64_t>(fast::kLanes, M - i);
        const F8 x = fast::load(u + u_at + i, 1, count);
        F8 grad_x = {};
        for (int64_t l = 0; l < L; ++l) {
          const int64_t flat = (row * M + i) * L + l;  // output (row, i, l); lanes step by L
          // Zero where the final ReLU is off (and past M, where out reads as 0).
          const F8 delta = fast::load(out + flat, L, count) > 0.0f ? fast::load(grad_out + flat, L, count) * scale
                                                                   : fast::splat(0.0f);
          const int64_t offset = (group * L + l) * hidden;
          const float* a = params.fc1_weight + offset;
          const float* c = params.fc1_bias + offset;
          const float* g = params.fc2_weight + offset;
          for (int64_t j = 0; j < hidden; ++j) {
            F8 value, slope;
            Lanes::value_and_grad(a[j] * x + c[j], value, slope);
            const F8 through = delta * g[j] * slope;
            lane_g[offset + j] += delta * value;
            lane_a[offset + j] += through * x;
            lane_c[offset + j] += through;
            grad_x += through * a[j];
          }
          lane_e[group * L + l] += delta;
        }
        fast::store(grad_u + u_at + i, 1, count, grad_x);
      }
      if (++unfolded == kFoldRows) {
        fold();
        unfolded = 0;
      }
    }
    fold();
  }
  const double* total = partials.reduce(threads);
  for (int64_t t = 0; t < table; ++t) {
    grads.fc2_weight[t] = float(total[t]);
    grads.fc1_weight[t] = float(total[table + t]);
    grads.fc1_bias[t] = float(total[2 * table + t]);
  }
  for (int64_t t = 0; t < G * L; ++t) grads.fc2_bias[t] = float(total[3 * table + t]);
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
void psi_forward_direct(const T* u, const PsiParams<T>& params, const PsiShape& shape, PsiActivation activation,
                        T scale, T* out) {
  switch (activation) {
    case PsiActivation::Relu: return psi_forward_direct_impl<T, ReluActivation>(u, params, shape, scale, out);
    case PsiActivation::Gelu:
      if constexpr (std::is_same_v<T, float>) return psi_forward_lanes<GeluLanes>(u, params, shape, scale, out);
      return psi_forward_direct_impl<T, GeluActivation>(u, params, shape, scale, out);
    case PsiActivation::Silu:
      if constexpr (std::is_same_v<T, float>) return psi_forward_lanes<SiluLanes>(u, params, shape, scale, out);
      return psi_forward_direct_impl<T, SiluActivation>(u, params, shape, scale, out);
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
      if constexpr (std::is_same_v<T, float>)
        return psi_backward_lanes<GeluLanes>(grad_out, u, out, params, shape, scale, grad_u, grads);
      return psi_backward_direct_impl<T, GeluActivation>(grad_out, u, out, params, shape, scale, grad_u, grads);
    case PsiActivation::Silu:
      if constexpr (std::is_same_v<T, float>)
        return psi_backward_lanes<SiluLanes>(grad_out, u, out, params, shape, scale, grad_u, grads);
      return psi_backward_direct_impl<T, SiluActivation>(grad_out, u, out, params, shape, scale, grad_u, grads);
  }
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
  template void psi_forward_direct<T>(const T*, const PsiParams<T>&, const PsiShape&, PsiActivation, T, T*);       \
  template void psi_backward_direct<T>(const T*, const T*, const T*, const PsiParams<T>&, const PsiShape&,         \
                                       PsiActivation, T, T*, const PsiGrads<T>&);                                  \
  template void causal_linear_attention_forward<T>(const T*, const T*, const T*, const uint8_t*,                   \
                                                   const AttentionShape&, double, T*, T*, double*, double*);       \
  template void causal_linear_attention_backward<T>(const T*, const T*, const T*, const T*, const uint8_t*,        \
                                                    const T*, const T*, const AttentionShape&, T*, T*, T*);

LUNA_INSTANTIATE_KERNELS(float)
LUNA_INSTANTIATE_KERNELS(double)
#undef LUNA_INSTANTIATE_KERNELS

}  // namespace luna::cpu::luna_kernels
