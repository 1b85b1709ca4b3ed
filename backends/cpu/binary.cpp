// CPU binary elementwise kernels over broadcast (stride-0) operands, with unit-stride fast paths.
#include <luna/backends/cpu/cpu_backend.h>
#include <luna/backends/cpu/loops.h>

#include <cmath>

namespace luna::cpu {
namespace {

template <class T>
T integer_pow(T base, T exp) {
  if (exp < 0) return base == 1 ? 1 : (base == T(-1) ? ((exp % 2) ? T(-1) : 1) : 0);
  T result = 1;
  while (exp) {
    if (exp & 1) result *= base;
    base *= base;
    exp >>= 1;
  }
  return result;
}

template <class T, class Out, class F>
void run_binary(const Tensor& a, const Tensor& b, const Tensor& out, F f) {
  for_each_row<3>({&a, &b, &out}, [f](std::array<char*, 3> p, int64_t n, std::array<int64_t, 3> s) {
    const T* x = reinterpret_cast<const T*>(p[0]);
    const T* y = reinterpret_cast<const T*>(p[1]);
    Out* o = reinterpret_cast<Out*>(p[2]);
    if (s[0] == 1 && s[1] == 1 && s[2] == 1) {
      for (int64_t i = 0; i < n; ++i) o[i] = f(x[i], y[i]);
    } else if (s[0] == 1 && s[1] == 0 && s[2] == 1) {
      const T yv = *y;
      for (int64_t i = 0; i < n; ++i) o[i] = f(x[i], yv);
    } else if (s[0] == 0 && s[1] == 1 && s[2] == 1) {
      const T xv = *x;
      for (int64_t i = 0; i < n; ++i) o[i] = f(xv, y[i]);
    } else {
      for (int64_t i = 0; i < n; ++i) o[i * s[2]] = f(x[i * s[0]], y[i * s[1]]);
    }
  });
}

template <class T>
void binary_typed(BinaryOp op, const Tensor& a, const Tensor& b, const Tensor& out) {
  switch (op) {
    case BinaryOp::Add: return run_binary<T, T>(a, b, out, [](T x, T y) { return T(x + y); });
    case BinaryOp::Sub: return run_binary<T, T>(a, b, out, [](T x, T y) { return T(x - y); });
    case BinaryOp::Mul: return run_binary<T, T>(a, b, out, [](T x, T y) { return T(x * y); });
    case BinaryOp::Div:
      if constexpr (std::is_integral_v<T>) {
        LUNA_FAIL("div: integer division is computed in floating point; the op should have promoted");
      } else {
        return run_binary<T, T>(a, b, out, [](T x, T y) { return T(x / y); });
      }
    case BinaryOp::Pow:
      if constexpr (std::is_same_v<T, bool>) {
        return run_binary<T, T>(a, b, out, [](T x, T y) { return T(x || !y); });
      } else if constexpr (std::is_integral_v<T>) {
        return run_binary<T, T>(a, b, out, [](T x, T y) { return integer_pow<T>(x, y); });
      } else {
        return run_binary<T, T>(a, b, out, [](T x, T y) { return T(std::pow(x, y)); });
      }
    case BinaryOp::Maximum:
      return run_binary<T, T>(a, b, out, [](T x, T y) {
        if constexpr (std::is_floating_point_v<T>) {
          if (std::isnan(x) || std::isnan(y)) return T(NAN);
        }
        return x > y ? x : y;
      });
    case BinaryOp::Minimum:
      return run_binary<T, T>(a, b, out, [](T x, T y) {
        if constexpr (std::is_floating_point_v<T>) {
          if (std::isnan(x) || std::isnan(y)) return T(NAN);
        }
        return x < y ? x : y;
      });
    case BinaryOp::Eq: return run_binary<T, bool>(a, b, out, [](T x, T y) { return x == y; });
    case BinaryOp::Ne: return run_binary<T, bool>(a, b, out, [](T x, T y) { return x != y; });
    case BinaryOp::Lt: return run_binary<T, bool>(a, b, out, [](T x, T y) { return x < y; });
    case BinaryOp::Le: return run_binary<T, bool>(a, b, out, [](T x, T y) { return x <= y; });
    case BinaryOp::Gt: return run_binary<T, bool>(a, b, out, [](T x, T y) { return x > y; });
    case BinaryOp::Ge: return run_binary<T, bool>(a, b, out, [](T x, T y) { return x >= y; });
    case BinaryOp::LogicalAnd: return run_binary<T, bool>(a, b, out, [](T x, T y) { return bool(x) && bool(y); });
    case BinaryOp::LogicalOr: return run_binary<T, bool>(a, b, out, [](T x, T y) { return bool(x) || bool(y); });
  }
}

}  // namespace

void CpuBackend::binary(BinaryOp op, const Tensor& a, const Tensor& b, const Tensor& out) {
  LUNA_DISPATCH_ALL(a.dtype(), binary_op_name(op), [&] { binary_typed<scalar_t>(op, a, b, out); });
}

}  // namespace luna::cpu
