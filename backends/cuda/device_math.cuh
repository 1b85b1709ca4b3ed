// float/double overloads of the device math functions, so kernels templated on T call the
// single-precision routine for float (expf, not exp on a promoted double).
#pragma once
#include <cuda_runtime.h>

namespace luna::cuda::dmath {

#define LUNA_DMATH_UNARY(name, fname)                                             \
  __device__ __forceinline__ float name(float x) { return ::fname(x); }          \
  __device__ __forceinline__ double name(double x) { return ::name(x); }
LUNA_DMATH_UNARY(exp, expf)
LUNA_DMATH_UNARY(expm1, expm1f)
LUNA_DMATH_UNARY(log, logf)
LUNA_DMATH_UNARY(log1p, log1pf)
LUNA_DMATH_UNARY(sqrt, sqrtf)
LUNA_DMATH_UNARY(tanh, tanhf)
LUNA_DMATH_UNARY(erf, erff)
LUNA_DMATH_UNARY(sin, sinf)
LUNA_DMATH_UNARY(cos, cosf)
LUNA_DMATH_UNARY(fabs, fabsf)
#undef LUNA_DMATH_UNARY

__device__ __forceinline__ float pow(float x, float y) { return ::powf(x, y); }
__device__ __forceinline__ double pow(double x, double y) { return ::pow(x, y); }

template <class T>
__device__ __forceinline__ bool isnan(T x) {
  return x != x;
}

}  // namespace luna::cuda::dmath
