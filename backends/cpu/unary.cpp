// CPU unary elementwise kernels and their derivatives, plus where().
#include <luna/backends/cpu/cpu_backend.h>
#include <luna/backends/cpu/fast_math.h>
#include <luna/backends/cpu/gelu_exact.h>
#include <luna/backends/cpu/loops.h>

#include <cmath>

namespace luna::cpu {
namespace {

constexpr double kSqrt2OverPi = 0.79788456080286535588;
constexpr double kInvSqrt2Pi = 0.39894228040143267794;

template <class T, class F>
void map1(const Tensor& in, const Tensor& out, F f) {
  for_each_row<2>({&in, &out}, [f](std::array<char*, 2> p, int64_t n, std::array<int64_t, 2> s) {
    const T* x = reinterpret_cast<const T*>(p[0]);
    T* o = reinterpret_cast<T*>(p[1]);
    if (s[0] == 1 && s[1] == 1) {
      for (int64_t i = 0; i < n; ++i) o[i] = f(x[i]);
    } else {
      for (int64_t i = 0; i < n; ++i) o[i * s[1]] = f(x[i * s[0]]);
    }
  });
}

// grad_in = f(x, y, g) with y = op(x), g = grad_out.
template <class T, class F>
void map3(const Tensor& x, const Tensor& y, const Tensor& g, const Tensor& out, F f) {
  for_each_row<4>({&x, &y, &g, &out}, [f](std::array<char*, 4> p, int64_t n, std::array<int64_t, 4> s) {
    const T* xp = reinterpret_cast<const T*>(p[0]);
    const T* yp = reinterpret_cast<const T*>(p[1]);
    const T* gp = reinterpret_cast<const T*>(p[2]);
    T* o = reinterpret_cast<T*>(p[3]);
    if (s[0] == 1 && s[1] == 1 && s[2] == 1 && s[3] == 1) {
      for (int64_t i = 0; i < n; ++i) o[i] = f(xp[i], yp[i], gp[i]);
    } else {
      for (int64_t i = 0; i < n; ++i) o[i * s[3]] = f(xp[i * s[0]], yp[i * s[1]], gp[i * s[2]]);
    }
  });
}

// float32 fast paths: rows handed whole to the 8-lane kernels of fast_math.h.
template <class F8Fn>
void map1_f32x8(const Tensor& in, const Tensor& out, F8Fn f) {
  for_each_row<2>({&in, &out}, [f](std::array<char*, 2> p, int64_t n, std::array<int64_t, 2> s) {
    fast::map_row(f, reinterpret_cast<const float*>(p[0]), s[0], reinterpret_cast<float*>(p[1]), s[1], n);
  });
}

// grad_in = grad_out * f'(x) for float32, f' an 8-lane function of x.
template <class F8Fn>
void grad_f32x8(const Tensor& x, const Tensor& g, const Tensor& out, F8Fn dfdx) {
  for_each_row<3>({&x, &g, &out}, [dfdx](std::array<char*, 3> p, int64_t n, std::array<int64_t, 3> s) {
    fast::map_row([dfdx](fast::F8 xv, fast::F8 gv) { return gv * dfdx(xv); }, reinterpret_cast<const float*>(p[0]),
                  s[0], reinterpret_cast<const float*>(p[1]), s[1], reinterpret_cast<float*>(p[2]), s[2], n);
  });
}

template <class T>
void unary_float(UnaryOp op, const Tensor& in, const Tensor& out, const UnaryParams& p) {
  const T a = T(p.a), b = T(p.b);
  switch (op) {
    case UnaryOp::Neg: return map1<T>(in, out, [](T x) { return -x; });
    case UnaryOp::Exp: return map1<T>(in, out, [](T x) { return std::exp(x); });
    case UnaryOp::Log: return map1<T>(in, out, [](T x) { return std::log(x); });
    case UnaryOp::Log1p: return map1<T>(in, out, [](T x) { return std::log1p(x); });
    case UnaryOp::Sqrt: return map1<T>(in, out, [](T x) { return std::sqrt(x); });
    case UnaryOp::Rsqrt: return map1<T>(in, out, [](T x) { return T(1) / std::sqrt(x); });
    case UnaryOp::Abs: return map1<T>(in, out, [](T x) { return std::abs(x); });
    case UnaryOp::Sign: return map1<T>(in, out, [](T x) { return T((x > 0) - (x < 0)); });
    case UnaryOp::Tanh: return map1<T>(in, out, [](T x) { return std::tanh(x); });
    case UnaryOp::Sigmoid: return map1<T>(in, out, [](T x) { return T(1) / (T(1) + std::exp(-x)); });
    case UnaryOp::Relu: return map1<T>(in, out, [](T x) { return x > 0 ? x : T(0); });
    case UnaryOp::Gelu:
      // float32: an 8-lane erf (|error| < 4e-7, fast_math.h); std::erf is a scalar libm call.
      if constexpr (std::is_same_v<T, float>) return map1_f32x8(in, out, [](fast::F8 v) { return fast::gelu8(v); });
      return map1<T>(in, out, [](T x) { return gelu_exact(x); });
    case UnaryOp::GeluTanh:
      return map1<T>(in, out, [](T x) {
        return T(0.5) * x * (T(1) + std::tanh(T(kSqrt2OverPi) * (x + T(0.044715) * x * x * x)));
      });
    case UnaryOp::Elu: return map1<T>(in, out, [a](T x) { return x > 0 ? x : a * std::expm1(x); });
    case UnaryOp::Silu: return map1<T>(in, out, [](T x) { return x / (T(1) + std::exp(-x)); });
    case UnaryOp::Softplus:
      return map1<T>(in, out, [a, b](T x) { return a * x > b ? x : std::log1p(std::exp(a * x)) / a; });
    case UnaryOp::Sin: return map1<T>(in, out, [](T x) { return std::sin(x); });
    case UnaryOp::Cos: return map1<T>(in, out, [](T x) { return std::cos(x); });
    case UnaryOp::Square: return map1<T>(in, out, [](T x) { return x * x; });
    case UnaryOp::Reciprocal: return map1<T>(in, out, [](T x) { return T(1) / x; });
    case UnaryOp::Clamp: {
      const bool lo = p.has_a, hi = p.has_b;
      return map1<T>(in, out, [=](T x) {
        if (std::isnan(x)) return x;
        if (lo && x < a) x = a;
        if (hi && x > b) x = b;
        return x;
      });
    }
    case UnaryOp::PowScalar: return map1<T>(in, out, [a](T x) { return std::pow(x, a); });
    case UnaryOp::Erf:
      if constexpr (std::is_same_v<T, float>) return map1_f32x8(in, out, [](fast::F8 v) { return fast::erf8(v); });
      return map1<T>(in, out, [](T x) { return std::erf(x); });
  }
}

template <class T>
void unary_integral(UnaryOp op, const Tensor& in, const Tensor& out, const UnaryParams& p) {
  switch (op) {
    case UnaryOp::Neg: return map1<T>(in, out, [](T x) { return T(-x); });
    // For bool (and unsigned) inputs abs and sign are the identity; spelling that out keeps the
    // compiler from comparing a bool with 0.
    case UnaryOp::Abs:
      return map1<T>(in, out, [](T x) {
        if constexpr (std::is_unsigned_v<T> || std::is_same_v<T, bool>) return x;
        else return T(x < 0 ? -x : x);
      });
    case UnaryOp::Sign:
      return map1<T>(in, out, [](T x) {
        if constexpr (std::is_same_v<T, bool>) return x;
        else if constexpr (std::is_unsigned_v<T>) return T(x > 0);
        else return T((x > 0) - (x < 0));
      });
    case UnaryOp::Relu: return map1<T>(in, out, [](T x) { return T(x > 0 ? x : 0); });
    case UnaryOp::Square: return map1<T>(in, out, [](T x) { return T(x * x); });
    case UnaryOp::Clamp: {
      const T a = T(p.a), b = T(p.b);
      const bool lo = p.has_a, hi = p.has_b;
      return map1<T>(in, out, [=](T x) {
        if (lo && x < a) x = a;
        if (hi && x > b) x = b;
        return x;
      });
    }
    default:
      LUNA_FAIL(unary_op_name(op), ": not defined for integer dtype ", in.dtype(), "; convert to float first");
  }
}

template <class T>
void unary_grad(UnaryOp op, const Tensor& x, const Tensor& y, const Tensor& g, const Tensor& out,
                const UnaryParams& p) {
  const T a = T(p.a), b = T(p.b);
  switch (op) {
    case UnaryOp::Neg: return map3<T>(x, y, g, out, [](T, T, T gv) { return -gv; });
    case UnaryOp::Exp: return map3<T>(x, y, g, out, [](T, T yv, T gv) { return gv * yv; });
    case UnaryOp::Log: return map3<T>(x, y, g, out, [](T xv, T, T gv) { return gv / xv; });
    case UnaryOp::Log1p: return map3<T>(x, y, g, out, [](T xv, T, T gv) { return gv / (T(1) + xv); });
    case UnaryOp::Sqrt: return map3<T>(x, y, g, out, [](T, T yv, T gv) { return gv / (T(2) * yv); });
    case UnaryOp::Rsqrt: return map3<T>(x, y, g, out, [](T, T yv, T gv) { return T(-0.5) * gv * yv * yv * yv; });
    case UnaryOp::Abs: return map3<T>(x, y, g, out, [](T xv, T, T gv) { return gv * T((xv > 0) - (xv < 0)); });
    case UnaryOp::Sign: return map3<T>(x, y, g, out, [](T, T, T) { return T(0); });
    case UnaryOp::Tanh: return map3<T>(x, y, g, out, [](T, T yv, T gv) { return gv * (T(1) - yv * yv); });
    case UnaryOp::Sigmoid: return map3<T>(x, y, g, out, [](T, T yv, T gv) { return gv * yv * (T(1) - yv); });
    case UnaryOp::Relu: return map3<T>(x, y, g, out, [](T xv, T, T gv) { return xv > 0 ? gv : T(0); });
    case UnaryOp::Gelu:
      if constexpr (std::is_same_v<T, float>)
        return grad_f32x8(x, g, out, [](fast::F8 v) { return fast::gelu_grad8(v); });
      return map3<T>(x, y, g, out, [](T xv, T, T gv) { return gv * gelu_exact_grad(xv); });
    case UnaryOp::GeluTanh:
      return map3<T>(x, y, g, out, [](T xv, T, T gv) {
        const T inner = T(kSqrt2OverPi) * (xv + T(0.044715) * xv * xv * xv);
        const T t = std::tanh(inner);
        const T dinner = T(kSqrt2OverPi) * (T(1) + T(3 * 0.044715) * xv * xv);
        return gv * (T(0.5) * (T(1) + t) + T(0.5) * xv * (T(1) - t * t) * dinner);
      });
    case UnaryOp::Elu: return map3<T>(x, y, g, out, [a](T xv, T yv, T gv) { return xv > 0 ? gv : gv * (yv + a); });
    case UnaryOp::Silu:
      return map3<T>(x, y, g, out, [](T xv, T, T gv) {
        const T s = T(1) / (T(1) + std::exp(-xv));
        return gv * s * (T(1) + xv * (T(1) - s));
      });
    case UnaryOp::Softplus:
      return map3<T>(x, y, g, out, [a, b](T xv, T, T gv) {
        if (a * xv > b) return gv;
        const T z = std::exp(a * xv);
        return gv * z / (z + T(1));
      });
    case UnaryOp::Sin: return map3<T>(x, y, g, out, [](T xv, T, T gv) { return gv * std::cos(xv); });
    case UnaryOp::Cos: return map3<T>(x, y, g, out, [](T xv, T, T gv) { return -gv * std::sin(xv); });
    case UnaryOp::Square: return map3<T>(x, y, g, out, [](T xv, T, T gv) { return T(2) * gv * xv; });
    case UnaryOp::Reciprocal: return map3<T>(x, y, g, out, [](T, T yv, T gv) { return -gv * yv * yv; });
    case UnaryOp::Clamp: {
      const bool lo = p.has_a, hi = p.has_b;
      // Gradient passes where the input lies inside [min, max] (bounds included, as in PyTorch).
      return map3<T>(x, y, g, out, [=](T xv, T, T gv) {
        return ((!lo || xv >= a) && (!hi || xv <= b)) ? gv : T(0);
      });
    }
    case UnaryOp::PowScalar:
      return map3<T>(x, y, g, out, [a](T xv, T, T gv) { return a == T(0) ? T(0) : gv * a * std::pow(xv, a - T(1)); });
    case UnaryOp::Erf:
      return map3<T>(x, y, g, out, [](T xv, T, T gv) { return gv * T(2 * kInvSqrt2Pi * 1.4142135623730951) * std::exp(-xv * xv); });
  }
}

}  // namespace

void CpuBackend::unary(UnaryOp op, const Tensor& in, const Tensor& out, const UnaryParams& params) {
  if (is_floating_point(in.dtype())) {
    LUNA_DISPATCH_FLOAT(in.dtype(), unary_op_name(op), [&] { unary_float<scalar_t>(op, in, out, params); });
  } else {
    LUNA_DISPATCH_ALL(in.dtype(), unary_op_name(op), [&] { unary_integral<scalar_t>(op, in, out, params); });
  }
}

void CpuBackend::unary_backward(UnaryOp op, const Tensor& in, const Tensor& result, const Tensor& grad_out,
                                const Tensor& grad_in, const UnaryParams& params) {
  LUNA_DISPATCH_FLOAT(in.dtype(), unary_op_name(op),
                      [&] { unary_grad<scalar_t>(op, in, result, grad_out, grad_in, params); });
}

void CpuBackend::where(const Tensor& cond, const Tensor& a, const Tensor& b, const Tensor& out) {
  LUNA_DISPATCH_ALL(a.dtype(), "where", [&] {
    using T = scalar_t;
    for_each_row<4>({&cond, &a, &b, &out}, [](std::array<char*, 4> p, int64_t n, std::array<int64_t, 4> s) {
      const bool* c = reinterpret_cast<const bool*>(p[0]);
      const T* x = reinterpret_cast<const T*>(p[1]);
      const T* y = reinterpret_cast<const T*>(p[2]);
      T* o = reinterpret_cast<T*>(p[3]);
      for (int64_t i = 0; i < n; ++i) o[i * s[3]] = c[i * s[0]] ? x[i * s[1]] : y[i * s[2]];
    });
  });
}

}  // namespace luna::cpu
