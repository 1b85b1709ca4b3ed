// The exact (erf) GELU and its derivative, one element at a time: the float64 kernels of the unary
// GELU (unary.cpp) and of the fused GELU-then-dropout (nn_kernels.cpp) both use these, so the two
// give the same bits. float32 goes through fast_math.h's 8-lane versions instead.
#pragma once
#include <cmath>

namespace luna::cpu {

inline constexpr double kGeluSqrt1_2 = 0.70710678118654752440;
inline constexpr double kGeluInvSqrt2Pi = 0.39894228040143267794;

// x Φ(x)
template <class T>
inline T gelu_exact(T x) {
  return T(0.5) * x * (T(1) + std::erf(x * T(kGeluSqrt1_2)));
}

// d/dx [x Φ(x)] = Φ(x) + x φ(x)
template <class T>
inline T gelu_exact_grad(T x) {
  const T cdf = T(0.5) * (T(1) + std::erf(x * T(kGeluSqrt1_2)));
  const T pdf = T(kGeluInvSqrt2Pi) * std::exp(T(-0.5) * x * x);
  return cdf + x * pdf;
}

}  // namespace luna::cpu
