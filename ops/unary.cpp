// Unary elementwise ops, clamp, where and masked_fill. Backward of a unary op is one fused kernel
// reading the saved input and output.
#include <luna/backends/backend.h>
#include <luna/ops/autograd_record.h>
#include <luna/ops/elementwise.h>

namespace luna {
namespace {
using ops::Grads;
using ops::record;
using ops::Saved;

// Ops that only make sense on floats compute integer inputs in float32, like PyTorch.
bool keeps_integers(UnaryOp op) {
  switch (op) {
    case UnaryOp::Neg: case UnaryOp::Abs: case UnaryOp::Sign: case UnaryOp::Relu: case UnaryOp::Square:
    case UnaryOp::Clamp:
      return true;
    default:
      return false;
  }
}

Tensor unary_op(UnaryOp op, const Tensor& x, UnaryParams params = {}) {
  const char* name = unary_op_name(op);
  LUNA_CHECK(x.defined(), name, ": input is undefined");
  LUNA_CHECK(x.dtype() != kBool || op == UnaryOp::Clamp, name, ": not defined for bool tensors");
  Tensor input = x.detach();
  if (!x.is_floating_point() && !keeps_integers(op)) input = input.to(kFloat32);
  Tensor out = empty_tensor(x.sizes(), input.dtype(), x.device());
  backend_for(out).unary(op, input, out, params);
  if (!out.is_floating_point()) return out;
  return record(name, out, {x}, {x, out}, [op, params](const Tensor& g, const Saved& s) {
    Tensor grad_in = empty_tensor(g.sizes(), g.dtype(), g.device());
    backend_for(g).unary_backward(op, s[0], s[1], g, grad_in, params);
    return Grads{grad_in};
  });
}
}  // namespace

Tensor neg(const Tensor& x) { return unary_op(UnaryOp::Neg, x); }
Tensor exp(const Tensor& x) { return unary_op(UnaryOp::Exp, x); }
Tensor log(const Tensor& x) { return unary_op(UnaryOp::Log, x); }
Tensor log1p(const Tensor& x) { return unary_op(UnaryOp::Log1p, x); }
Tensor sqrt(const Tensor& x) { return unary_op(UnaryOp::Sqrt, x); }
Tensor rsqrt(const Tensor& x) { return unary_op(UnaryOp::Rsqrt, x); }
Tensor abs(const Tensor& x) { return unary_op(UnaryOp::Abs, x); }
Tensor sign(const Tensor& x) { return unary_op(UnaryOp::Sign, x); }
Tensor tanh(const Tensor& x) { return unary_op(UnaryOp::Tanh, x); }
Tensor sigmoid(const Tensor& x) { return unary_op(UnaryOp::Sigmoid, x); }
Tensor relu(const Tensor& x) { return unary_op(UnaryOp::Relu, x); }
Tensor silu(const Tensor& x) { return unary_op(UnaryOp::Silu, x); }
Tensor sin(const Tensor& x) { return unary_op(UnaryOp::Sin, x); }
Tensor cos(const Tensor& x) { return unary_op(UnaryOp::Cos, x); }
Tensor square(const Tensor& x) { return unary_op(UnaryOp::Square, x); }
Tensor reciprocal(const Tensor& x) { return unary_op(UnaryOp::Reciprocal, x); }
Tensor erf(const Tensor& x) { return unary_op(UnaryOp::Erf, x); }

Tensor gelu(const Tensor& x, const std::string& approximate) {
  LUNA_CHECK(approximate == "none" || approximate == "tanh", "gelu: approximate must be 'none' or 'tanh', got '",
             approximate, "'");
  return unary_op(approximate == "none" ? UnaryOp::Gelu : UnaryOp::GeluTanh, x);
}

Tensor elu(const Tensor& x, double alpha) {
  UnaryParams p;
  p.a = alpha;
  return unary_op(UnaryOp::Elu, x, p);
}

Tensor softplus(const Tensor& x, double beta, double threshold) {
  LUNA_CHECK(beta > 0, "softplus: beta must be positive, got ", beta);
  UnaryParams p;
  p.a = beta;
  p.b = threshold;
  return unary_op(UnaryOp::Softplus, x, p);
}

Tensor pow(const Tensor& base, Scalar exponent) {
  if (!base.is_floating_point() && exponent.is_integral()) {
    LUNA_CHECK(exponent.to_int() >= 0 || base.dtype() == kBool, "pow: integers to negative integer powers are "
               "not allowed (exponent ", exponent.to_int(), " for a ", base.dtype(), " tensor); convert the base "
               "to float first");
    return pow(base, wrap_scalar(exponent, base));  // integer power stays integral
  }
  UnaryParams p;
  p.a = exponent.to_double();
  return unary_op(UnaryOp::PowScalar, base, p);
}

namespace {
// A fractional bound makes an integer tensor's clamp compute in float32, like PyTorch's promotion.
bool has_float_bound(std::optional<Scalar> min, std::optional<Scalar> max) {
  return (min && !min->is_integral()) || (max && !max->is_integral());
}
}  // namespace

Tensor clamp(const Tensor& x, std::optional<Scalar> min, std::optional<Scalar> max) {
  LUNA_CHECK(min || max, "clamp: at least one of min and max must be given");
  UnaryParams p;
  if (min) { p.a = min->to_double(); p.has_a = true; }
  if (max) { p.b = max->to_double(); p.has_b = true; }
  if (x.defined() && !x.is_floating_point() && has_float_bound(min, max))
    return unary_op(UnaryOp::Clamp, x.to(kFloat32), p);
  return unary_op(UnaryOp::Clamp, x, p);
}

Tensor where(const Tensor& condition, const Tensor& a, const Tensor& b) {
  LUNA_CHECK(condition.defined() && a.defined() && b.defined(), "where: an argument is undefined");
  LUNA_CHECK(condition.dtype() == kBool, "where: condition must be a bool tensor, got ", condition.dtype());
  LUNA_CHECK(a.device() == b.device() && a.device() == condition.device(), "where: arguments are on different "
             "devices (", condition.device(), ", ", a.device(), ", ", b.device(), ")");
  const DType dtype = result_type(a, b);
  const Dims shape = broadcast_shapes(broadcast_shapes(condition.sizes(), a.sizes(), "where"), b.sizes(), "where");
  Tensor out = empty_tensor(shape, dtype, a.device());
  {
    NoGradGuard no_grad;
    backend_for(out).where(condition.expand(shape), a.detach().to(dtype).expand(shape),
                           b.detach().to(dtype).expand(shape), out);
  }
  const Dims sa = a.sizes(), sb = b.sizes();
  const DType da = a.dtype(), db = b.dtype();
  return record("where", out, {a, b}, {condition}, [=](const Tensor& g, const Saved& s) {
    const Tensor zero = wrap_scalar(0, g);
    Tensor ga = ops::sum_to(where(s[0], g, zero), sa);
    Tensor gb = ops::sum_to(where(s[0], zero, g), sb);
    return Grads{ga.dtype() == da ? ga : ga.to(da), gb.dtype() == db ? gb : gb.to(db)};
  });
}

Tensor where(const Tensor& condition, const Tensor& a, Scalar b) { return where(condition, a, wrap_scalar(b, a)); }

Tensor masked_fill(const Tensor& x, const Tensor& mask, Scalar value) {
  LUNA_CHECK(mask.defined() && mask.dtype() == kBool, "masked_fill: mask must be a bool tensor, got ",
             mask.defined() ? dtype_name(mask.dtype()) : "undefined");
  const Dims shape = broadcast_shapes(x.sizes(), mask.sizes(), "masked_fill");
  LUNA_CHECK(shape == x.sizes(), "masked_fill: mask of shape ", mask.sizes(), " does not broadcast to the input's shape ",
             x.sizes());
  Tensor fill = empty_tensor({}, x.dtype(), x.device());
  if (value.is_integral()) fill.fill_(value.to_int());
  else fill.fill_(value.to_double());
  return where(mask, fill, x);
}

Tensor Tensor::neg() const { return luna::neg(*this); }
Tensor Tensor::exp() const { return luna::exp(*this); }
Tensor Tensor::log() const { return luna::log(*this); }
Tensor Tensor::log1p() const { return luna::log1p(*this); }
Tensor Tensor::sqrt() const { return luna::sqrt(*this); }
Tensor Tensor::rsqrt() const { return luna::rsqrt(*this); }
Tensor Tensor::abs() const { return luna::abs(*this); }
Tensor Tensor::tanh() const { return luna::tanh(*this); }
Tensor Tensor::sigmoid() const { return luna::sigmoid(*this); }
Tensor Tensor::relu() const { return luna::relu(*this); }
Tensor Tensor::sin() const { return luna::sin(*this); }
Tensor Tensor::cos() const { return luna::cos(*this); }
Tensor Tensor::square() const { return luna::square(*this); }
Tensor Tensor::pow(Scalar e) const { return luna::pow(*this, e); }
Tensor Tensor::clamp(std::optional<Scalar> min, std::optional<Scalar> max) const { return luna::clamp(*this, min, max); }
Tensor Tensor::masked_fill(const Tensor& mask, Scalar value) const { return luna::masked_fill(*this, mask, value); }

const Tensor& Tensor::clamp_(std::optional<Scalar> min, std::optional<Scalar> max) const {
  LUNA_CHECK(is_floating_point() || !has_float_bound(min, max), "clamp_: result type float32 can't be cast to "
             "the desired output type ", dtype(), " (a bound is fractional); use clamp() or integer bounds");
  // clamp's backward reads its input, which is about to be overwritten: record a copy of it.
  const Tensor input = ops::needs_grad({*this}) ? clone() : *this;
  return ops::assign_result_inplace("clamp_", *this, luna::clamp(input, min, max));
}
const Tensor& Tensor::masked_fill_(const Tensor& mask, Scalar value) const {
  return ops::assign_result_inplace("masked_fill_", *this, luna::masked_fill(*this, mask, value));
}

}  // namespace luna
