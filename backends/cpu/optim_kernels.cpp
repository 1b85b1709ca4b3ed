// The fused Adam update on the CPU (ops/optim_update.h): one pass over param, grad and the two
// moments instead of fifteen tensor ops with two temporaries. Each line below is one of those ops
// and rounds as it does (its scalar rounded to T first, the result to T), so the bits are the
// composition's. This file is built with -ffp-contract=off (CMakeLists.txt): a multiply-add fused
// into one rounding would change them.
#include <luna/backends/cpu/cpu_backend.h>
#include <luna/backends/cpu/loops.h>

#include <cmath>

#include <omp.h>

namespace luna::cpu {
namespace {

// maximum(x, y) as the binary op computes it: NaN if either is, else x > y ? x : y.
template <class T>
T maximum_of(T x, T y) {
  if (std::isnan(x) || std::isnan(y)) return T(NAN);
  return x > y ? x : y;
}

// max_exp_avg_sq is null without AMSGrad.
template <class T>
void adam_update_elements(T* param, const T* grad, T* exp_avg, T* exp_avg_sq, T* max_exp_avg_sq, int64_t n,
                          const AdamUpdateScalars& s) {
  const T one_minus_beta1 = T(1 - s.beta1), beta1 = T(s.beta1), one_minus_beta2 = T(1 - s.beta2),
          beta2 = T(s.beta2), correction2 = T(s.bias_correction2_sqrt), eps = T(s.eps),
          minus_step_size = T(-s.step_size);
  auto update = [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const T g = grad[i];
      const T m = T(exp_avg[i] * beta1) + T(g * one_minus_beta1);
      const T v = T(exp_avg_sq[i] * beta2) + T(T(g * g) * one_minus_beta2);
      exp_avg[i] = m;
      exp_avg_sq[i] = v;
      T second_moment = v;
      if (max_exp_avg_sq != nullptr) second_moment = max_exp_avg_sq[i] = maximum_of(max_exp_avg_sq[i], v);
      const T denom = T(T(std::sqrt(second_moment)) / correction2) + eps;
      param[i] = param[i] + T(T(m / denom) * minus_step_size);
    }
  };
  run_in_ranges(n, n >= 4 * kParallelGrain ? omp_get_max_threads() : 1, update);
}

}  // namespace

void CpuBackend::adam_update(const Tensor& param, const Tensor& grad, const Tensor& exp_avg, const Tensor& exp_avg_sq,
                             const Tensor& max_exp_avg_sq, const AdamUpdateScalars& scalars) {
  LUNA_DISPATCH_FLOAT(param.dtype(), "adam_update", [&] {
    adam_update_elements(param.data_ptr<scalar_t>(), grad.data_ptr<scalar_t>(), exp_avg.data_ptr<scalar_t>(),
                         exp_avg_sq.data_ptr<scalar_t>(),
                         max_exp_avg_sq.defined() ? max_exp_avg_sq.data_ptr<scalar_t>() : nullptr, param.numel(),
                         scalars);
  });
}

}  // namespace luna::cpu
