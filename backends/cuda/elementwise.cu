// CUDA unary and binary elementwise kernels over strided, broadcast (stride-0) operands, the unary
// derivatives, and where(). One kernel per dtype with the op chosen at run time: the switch is
// uniform across the grid, so it costs next to nothing on memory-bound loops and keeps the number
// of compiled kernels (and the build time) small. Formulas mirror backends/cpu/unary.cpp.
#include <luna/backends/cuda/device_math.cuh>
#include <luna/backends/cuda/kernel_utils.cuh>

namespace luna::cuda {
namespace {

constexpr double kSqrt1_2 = 0.70710678118654752440;
constexpr double kSqrt2OverPi = 0.79788456080286535588;
constexpr double kInvSqrt2Pi = 0.39894228040143267794;
constexpr double kTwoOverSqrtPi = 1.12837916709551257390;

struct UnaryConsts {
  double a = 0, b = 0;
  bool has_a = false, has_b = false;
};

template <class T>
__device__ __forceinline__ T unary_float(UnaryOp op, T x, T a, T b, bool lo, bool hi) {
  switch (op) {
    case UnaryOp::Neg: return -x;
    case UnaryOp::Exp: return dmath::exp(x);
    case UnaryOp::Log: return dmath::log(x);
    case UnaryOp::Log1p: return dmath::log1p(x);
    case UnaryOp::Sqrt: return dmath::sqrt(x);
    case UnaryOp::Rsqrt: return T(1) / dmath::sqrt(x);
    case UnaryOp::Abs: return dmath::fabs(x);
    case UnaryOp::Sign: return T((x > T(0)) - (x < T(0)));
    case UnaryOp::Tanh: return dmath::tanh(x);
    case UnaryOp::Sigmoid: return T(1) / (T(1) + dmath::exp(-x));
    case UnaryOp::Relu: return x > T(0) ? x : T(0);
    case UnaryOp::Gelu: return T(0.5) * x * (T(1) + dmath::erf(x * T(kSqrt1_2)));
    case UnaryOp::GeluTanh: return T(0.5) * x * (T(1) + dmath::tanh(T(kSqrt2OverPi) * (x + T(0.044715) * x * x * x)));
    case UnaryOp::Elu: return x > T(0) ? x : a * dmath::expm1(x);
    case UnaryOp::Silu: return x / (T(1) + dmath::exp(-x));
    case UnaryOp::Softplus: return a * x > b ? x : dmath::log1p(dmath::exp(a * x)) / a;
    case UnaryOp::Sin: return dmath::sin(x);
    case UnaryOp::Cos: return dmath::cos(x);
    case UnaryOp::Square: return x * x;
    case UnaryOp::Reciprocal: return T(1) / x;
    case UnaryOp::Clamp:
      if (dmath::isnan(x)) return x;
      if (lo && x < a) x = a;
      if (hi && x > b) x = b;
      return x;
    case UnaryOp::PowScalar: return dmath::pow(x, a);
    case UnaryOp::Erf: return dmath::erf(x);
  }
  return x;
}

// grad_in for grad_out g, input x and result y = op(x).
template <class T>
__device__ __forceinline__ T unary_grad(UnaryOp op, T x, T y, T g, T a, T b, bool lo, bool hi) {
  switch (op) {
    case UnaryOp::Neg: return -g;
    case UnaryOp::Exp: return g * y;
    case UnaryOp::Log: return g / x;
    case UnaryOp::Log1p: return g / (T(1) + x);
    case UnaryOp::Sqrt: return g / (T(2) * y);
    case UnaryOp::Rsqrt: return T(-0.5) * g * y * y * y;
    case UnaryOp::Abs: return g * T((x > T(0)) - (x < T(0)));
    case UnaryOp::Sign: return T(0);
    case UnaryOp::Tanh: return g * (T(1) - y * y);
    case UnaryOp::Sigmoid: return g * y * (T(1) - y);
    case UnaryOp::Relu: return x > T(0) ? g : T(0);
    case UnaryOp::Gelu: {
      const T cdf = T(0.5) * (T(1) + dmath::erf(x * T(kSqrt1_2)));
      const T pdf = T(kInvSqrt2Pi) * dmath::exp(T(-0.5) * x * x);
      return g * (cdf + x * pdf);
    }
    case UnaryOp::GeluTanh: {
      const T inner = T(kSqrt2OverPi) * (x + T(0.044715) * x * x * x);
      const T t = dmath::tanh(inner);
      const T dinner = T(kSqrt2OverPi) * (T(1) + T(3 * 0.044715) * x * x);
      return g * (T(0.5) * (T(1) + t) + T(0.5) * x * (T(1) - t * t) * dinner);
    }
    case UnaryOp::Elu: return x > T(0) ? g : g * (y + a);
    case UnaryOp::Silu: {
      const T s = T(1) / (T(1) + dmath::exp(-x));
      return g * s * (T(1) + x * (T(1) - s));
    }
    case UnaryOp::Softplus: {
      if (a * x > b) return g;
      const T z = dmath::exp(a * x);
      return g * z / (z + T(1));
    }
    case UnaryOp::Sin: return g * dmath::cos(x);
    case UnaryOp::Cos: return -g * dmath::sin(x);
    case UnaryOp::Square: return T(2) * g * x;
    case UnaryOp::Reciprocal: return -g * y * y;
    case UnaryOp::Clamp: return ((!lo || x >= a) && (!hi || x <= b)) ? g : T(0);
    case UnaryOp::PowScalar: return a == T(0) ? T(0) : g * a * dmath::pow(x, a - T(1));
    case UnaryOp::Erf: return g * T(kTwoOverSqrtPi) * dmath::exp(-x * x);
  }
  return g;
}

// The integer ops (neg, abs, sign, relu, square, clamp); the host rejects every other op.
template <class T>
__device__ __forceinline__ T unary_integral(UnaryOp op, T x, T a, T b, bool lo, bool hi) {
  constexpr bool kUnsigned = T(-1) > T(0);  // bool and uint8: abs and sign are the identity
  switch (op) {
    case UnaryOp::Neg: return T(-x);
    case UnaryOp::Abs:
      if constexpr (kUnsigned) return x;
      else return T(x < 0 ? -x : x);
    case UnaryOp::Sign:
      if constexpr (kUnsigned) return T(x > 0);
      else return T((x > 0) - (x < 0));
    case UnaryOp::Relu: return T(x > 0 ? x : 0);
    case UnaryOp::Square: return T(x * x);
    case UnaryOp::Clamp:
      if (lo && x < a) x = a;
      if (hi && x > b) x = b;
      return x;
    default: return x;
  }
}

template <class T>
__global__ void unary_kernel(Layout<2> l, UnaryOp op, const T* in, T* out, UnaryConsts c) {
  const T a = T(c.a), b = T(c.b);
  LUNA_GRID_STRIDE_LOOP(i, l.numel) {
    int64_t off[2];
    element_offsets(l, i, off);
    if constexpr (std::is_floating_point_v<T>) out[off[1]] = unary_float<T>(op, in[off[0]], a, b, c.has_a, c.has_b);
    else out[off[1]] = unary_integral<T>(op, in[off[0]], a, b, c.has_a, c.has_b);
  }
}

template <class T>
__global__ void unary_backward_kernel(Layout<4> l, UnaryOp op, const T* x, const T* y, const T* g, T* out,
                                      UnaryConsts c) {
  const T a = T(c.a), b = T(c.b);
  LUNA_GRID_STRIDE_LOOP(i, l.numel) {
    int64_t off[4];
    element_offsets(l, i, off);
    out[off[3]] = unary_grad<T>(op, x[off[0]], y[off[1]], g[off[2]], a, b, c.has_a, c.has_b);
  }
}

template <class T>
__device__ __forceinline__ T integer_pow(T base, T exp) {
  if constexpr (std::is_signed_v<T>) {
    if (exp < 0) return base == 1 ? T(1) : (base == T(-1) ? ((exp % 2) ? T(-1) : T(1)) : T(0));
  }
  T result = 1;
  while (exp) {
    if (exp & 1) result *= base;
    base *= base;
    exp >>= 1;
  }
  return result;
}

template <class T>
__device__ __forceinline__ T binary_arith(BinaryOp op, T x, T y) {
  switch (op) {
    case BinaryOp::Add: return T(x + y);
    case BinaryOp::Sub: return T(x - y);
    case BinaryOp::Mul: return T(x * y);
    case BinaryOp::Div: return T(x / y);  // floating point only (checked on the host)
    case BinaryOp::Pow:
      if constexpr (std::is_same_v<T, bool>) return x || !y;
      else if constexpr (std::is_integral_v<T>) return integer_pow<T>(x, y);
      else return dmath::pow(x, y);
    case BinaryOp::Maximum:
      if constexpr (std::is_floating_point_v<T>) {
        if (dmath::isnan(x) || dmath::isnan(y)) return T(NAN);
      }
      return x > y ? x : y;
    case BinaryOp::Minimum:
      if constexpr (std::is_floating_point_v<T>) {
        if (dmath::isnan(x) || dmath::isnan(y)) return T(NAN);
      }
      return x < y ? x : y;
    default: return x;
  }
}

template <class T>
__device__ __forceinline__ bool binary_predicate(BinaryOp op, T x, T y) {
  switch (op) {
    case BinaryOp::Eq: return x == y;
    case BinaryOp::Ne: return x != y;
    case BinaryOp::Lt: return x < y;
    case BinaryOp::Le: return x <= y;
    case BinaryOp::Gt: return x > y;
    case BinaryOp::Ge: return x >= y;
    case BinaryOp::LogicalAnd: return bool(x) && bool(y);
    case BinaryOp::LogicalOr: return bool(x) || bool(y);
    default: return false;
  }
}

template <class T>
__global__ void binary_kernel(Layout<3> l, BinaryOp op, const T* a, const T* b, void* out) {
  const bool predicate = op >= BinaryOp::Eq;
  LUNA_GRID_STRIDE_LOOP(i, l.numel) {
    int64_t off[3];
    element_offsets(l, i, off);
    const T x = a[off[0]], y = b[off[1]];
    if (predicate) static_cast<bool*>(out)[off[2]] = binary_predicate<T>(op, x, y);
    else static_cast<T*>(out)[off[2]] = binary_arith<T>(op, x, y);
  }
}

template <class Bits>
__global__ void where_kernel(Layout<4> l, const bool* cond, const Bits* a, const Bits* b, Bits* out) {
  LUNA_GRID_STRIDE_LOOP(i, l.numel) {
    int64_t off[4];
    element_offsets(l, i, off);
    out[off[3]] = cond[off[0]] ? a[off[1]] : b[off[2]];
  }
}

UnaryConsts consts(const UnaryParams& p) { return UnaryConsts{p.a, p.b, p.has_a, p.has_b}; }

bool defined_for_integers(UnaryOp op) {
  return op == UnaryOp::Neg || op == UnaryOp::Abs || op == UnaryOp::Sign || op == UnaryOp::Relu ||
         op == UnaryOp::Square || op == UnaryOp::Clamp;
}

}  // namespace

void CudaBackend::unary(UnaryOp op, const Tensor& in, const Tensor& out, const UnaryParams& params) {
  DeviceContext& ctx = context_for(unary_op_name(op), {&out, &in});
  if (out.numel() == 0) return;
  if (is_integral(in.dtype(), /*include_bool=*/true))
    LUNA_CHECK(defined_for_integers(op), unary_op_name(op), ": not defined for integer dtype ", in.dtype(),
               "; convert to float first");
  const Layout<2> l = make_layout<2>({&in, &out});
  const unsigned grid = grid_for(l.numel, ctx);
  LUNA_DISPATCH_ALL(in.dtype(), unary_op_name(op), [&] {
    unary_kernel<scalar_t><<<grid, kThreads, 0, ctx.stream>>>(l, op, ptr<const scalar_t>(in), ptr<scalar_t>(out),
                                                               consts(params));
  });
  LUNA_CUDA_CHECK_LAUNCH(unary_op_name(op));
}

void CudaBackend::unary_backward(UnaryOp op, const Tensor& in, const Tensor& result, const Tensor& grad_out,
                                 const Tensor& grad_in, const UnaryParams& params) {
  DeviceContext& ctx = context_for(unary_op_name(op), {&grad_in, &in, &result, &grad_out});
  if (grad_in.numel() == 0) return;
  const Layout<4> l = make_layout<4>({&in, &result, &grad_out, &grad_in});
  const unsigned grid = grid_for(l.numel, ctx);
  LUNA_DISPATCH_FLOAT(in.dtype(), unary_op_name(op), [&] {
    unary_backward_kernel<scalar_t><<<grid, kThreads, 0, ctx.stream>>>(
        l, op, ptr<const scalar_t>(in), ptr<const scalar_t>(result), ptr<const scalar_t>(grad_out),
        ptr<scalar_t>(grad_in), consts(params));
  });
  LUNA_CUDA_CHECK_LAUNCH(unary_op_name(op));
}

void CudaBackend::binary(BinaryOp op, const Tensor& a, const Tensor& b, const Tensor& out) {
  DeviceContext& ctx = context_for(binary_op_name(op), {&out, &a, &b});
  if (out.numel() == 0) return;
  LUNA_CHECK(op != BinaryOp::Div || is_floating_point(a.dtype()),
             "div: integer division is computed in floating point; the op should have promoted");
  const Layout<3> l = make_layout<3>({&a, &b, &out});
  const unsigned grid = grid_for(l.numel, ctx);
  LUNA_DISPATCH_ALL(a.dtype(), binary_op_name(op), [&] {
    binary_kernel<scalar_t><<<grid, kThreads, 0, ctx.stream>>>(l, op, ptr<const scalar_t>(a), ptr<const scalar_t>(b),
                                                                out.data_ptr());
  });
  LUNA_CUDA_CHECK_LAUNCH(binary_op_name(op));
}

void CudaBackend::where(const Tensor& cond, const Tensor& a, const Tensor& b, const Tensor& out) {
  DeviceContext& ctx = context_for("where", {&out, &cond, &a, &b});
  if (out.numel() == 0) return;
  const Layout<4> l = make_layout<4>({&cond, &a, &b, &out});
  const unsigned grid = grid_for(l.numel, ctx);
  const auto launch = [&](auto bits) {
    using Bits = decltype(bits);
    where_kernel<Bits><<<grid, kThreads, 0, ctx.stream>>>(l, ptr<const bool>(cond), ptr<const Bits>(a),
                                                          ptr<const Bits>(b), ptr<Bits>(out));
  };
  switch (out.element_size()) {
    case 1: launch(uint8_t{}); break;
    case 2: launch(uint16_t{}); break;
    case 4: launch(uint32_t{}); break;
    default: launch(uint64_t{}); break;
  }
  LUNA_CUDA_CHECK_LAUNCH("where");
}

}  // namespace luna::cuda
