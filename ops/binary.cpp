// Binary elementwise ops: promotion, broadcasting, and their backward formulas.
#include <luna/backends/backend.h>
#include <luna/ops/autograd_record.h>
#include <luna/ops/elementwise.h>

namespace luna {
namespace {
using ops::Grads;
using ops::record;
using ops::Saved;

struct Operands {
  Tensor a, b;  // detached, converted to the compute dtype and expanded to `shape`
  Dims shape;
  DType dtype;
};

Operands prepare(const Tensor& a, const Tensor& b, const char* op) {
  LUNA_CHECK(a.defined() && b.defined(), op, ": an operand is undefined");
  LUNA_CHECK(a.device() == b.device() || a.dim() == 0 || b.dim() == 0, op, ": operands are on different devices (",
             a.device(), " and ", b.device(), ")");
  Operands o;
  o.dtype = result_type(a, b);
  o.shape = broadcast_shapes(a.sizes(), b.sizes(), op);
  const Device device = a.dim() == 0 && b.dim() != 0 ? b.device() : a.device();
  NoGradGuard no_grad;
  o.a = a.detach().to(device, o.dtype).expand(o.shape);
  o.b = b.detach().to(device, o.dtype).expand(o.shape);
  return o;
}

Tensor run(BinaryOp op, const Operands& o) {
  Tensor out = empty_tensor(o.shape, is_comparison(op) ? kBool : o.dtype, o.a.device());
  backend_for(out).binary(op, o.a, o.b, out);
  return out;
}

// The gradient of an input: broadcast dims summed away, back in the input's dtype.
Tensor to_input(const Tensor& g, const Dims& sizes, DType dtype) {
  Tensor r = ops::sum_to(g, sizes);
  return r.dtype() == dtype ? r : r.to(dtype);
}

Tensor compare(BinaryOp op, const Tensor& a, const Tensor& b) {
  return run(op, prepare(a, b, binary_op_name(op)));
}

// PyTorch rejects a fractional alpha for integer operands rather than silently going to float.
void check_alpha(const char* op, const Tensor& a, const Tensor& b, Scalar alpha) {
  LUNA_CHECK(alpha.is_integral() || luna::is_floating_point(result_type(a, b)), op,
             ": alpha ", alpha.to_double(), " must be an integer for integer operands (", a.dtype(), " and ",
             b.dtype(), ")");
}
}  // namespace

namespace {
int category(DType d) { return d == kBool ? 0 : (is_floating_point(d) ? 2 : 1); }
}  // namespace

DType result_type(const Tensor& a, const Tensor& b) {
  const bool a_zero = a.dim() == 0, b_zero = b.dim() == 0;
  if (a_zero == b_zero) return promote_types(a.dtype(), b.dtype());
  const DType dimensioned = a_zero ? b.dtype() : a.dtype();
  const DType zero_dim = a_zero ? a.dtype() : b.dtype();
  return category(zero_dim) > category(dimensioned) ? promote_types(dimensioned, zero_dim) : dimensioned;
}

Tensor wrap_scalar(Scalar value, const Tensor& like) {
  DType dtype = like.dtype();
  if (!value.is_integral() && !luna::is_floating_point(dtype)) dtype = kFloat32;
  else if (value.is_integral() && !value.is_bool() && dtype == kBool) dtype = kInt64;
  Tensor t = empty_tensor({}, dtype, like.device());
  if (value.is_integral()) t.fill_(value.to_int());
  else t.fill_(value.to_double());
  return t;
}

Tensor add(const Tensor& a, const Tensor& b, Scalar alpha) {
  const bool unit = alpha.is_integral() && alpha.to_int() == 1;
  if (!unit) {
    check_alpha("add", a, b, alpha);
    return add(a, mul(b, wrap_scalar(alpha, b)));
  }
  Tensor out = run(BinaryOp::Add, prepare(a, b, "add"));
  const Dims sa = a.sizes(), sb = b.sizes();
  const DType da = a.dtype(), db = b.dtype();
  return record("add", out, {a, b}, {}, [=](const Tensor& g, const Saved&) {
    return Grads{to_input(g, sa, da), to_input(g, sb, db)};
  });
}

Tensor sub(const Tensor& a, const Tensor& b, Scalar alpha) {
  LUNA_CHECK(!(a.defined() && b.defined() && a.dtype() == kBool && b.dtype() == kBool),
             "sub: subtracting two bool tensors is not supported; to invert a mask use logical ops "
             "(e.g. logical_and, or where)");
  const bool unit = alpha.is_integral() && alpha.to_int() == 1;
  if (!unit) {
    check_alpha("sub", a, b, alpha);
    return sub(a, mul(b, wrap_scalar(alpha, b)));
  }
  Tensor out = run(BinaryOp::Sub, prepare(a, b, "sub"));
  const Dims sa = a.sizes(), sb = b.sizes();
  const DType da = a.dtype(), db = b.dtype();
  return record("sub", out, {a, b}, {}, [=](const Tensor& g, const Saved&) {
    return Grads{to_input(g, sa, da), to_input(neg(g), sb, db)};
  });
}

Tensor mul(const Tensor& a, const Tensor& b) {
  Tensor out = run(BinaryOp::Mul, prepare(a, b, "mul"));
  const Dims sa = a.sizes(), sb = b.sizes();
  const DType da = a.dtype(), db = b.dtype();
  // Each input's gradient reads only the other input; skip saving what no gradient needs.
  const bool need_a = ops::needs_grad({a}), need_b = ops::needs_grad({b});
  return record("mul", out, {a, b}, {need_b ? a : Tensor(), need_a ? b : Tensor()},
                [=](const Tensor& g, const Saved& s) {
                  return Grads{need_a ? to_input(g * s[1], sa, da) : Tensor(),
                               need_b ? to_input(g * s[0], sb, db) : Tensor()};
                });
}

Tensor div(const Tensor& a, const Tensor& b) {
  Operands o = prepare(a, b, "div");
  if (!luna::is_floating_point(o.dtype)) {
    o.a = o.a.to(kFloat32);
    o.b = o.b.to(kFloat32);
    o.dtype = kFloat32;
  }
  Tensor out = run(BinaryOp::Div, o);
  const Dims sa = a.sizes(), sb = b.sizes();
  const DType da = a.dtype(), db = b.dtype();
  const bool need_b = ops::needs_grad({b});
  return record("div", out, {a, b}, {b, need_b ? out : Tensor()}, [=](const Tensor& g, const Saved& s) {
    const Tensor ga = g / s[0];
    return Grads{to_input(ga, sa, da), need_b ? to_input(neg(ga * s[1]), sb, db) : Tensor()};
  });
}

Tensor pow(const Tensor& base, const Tensor& exponent) {
  Tensor out = run(BinaryOp::Pow, prepare(base, exponent, "pow"));
  const Dims sa = base.sizes(), sb = exponent.sizes();
  const DType da = base.dtype(), db = exponent.dtype();
  const bool need_b = ops::needs_grad({exponent});
  return record("pow", out, {base, exponent}, {base, exponent, out}, [=](const Tensor& g, const Saved& s) {
    const Tensor& x = s[0];
    const Tensor& y = s[1];
    // d/dx x^y = y x^(y-1); where y == 0 this is 0 even at x == 0 (PyTorch's convention).
    Tensor gx = where(eq(y, wrap_scalar(0, y)), wrap_scalar(0, g), g * y * pow(x, y - 1));
    Tensor gy;
    if (need_b) {
      // d/dy x^y = x^y log x, taken as 0 where x == 0 and y >= 0.
      Tensor safe = where(logical_and(eq(x, wrap_scalar(0, x)), ge(y, wrap_scalar(0, y))), wrap_scalar(0, g),
                          g * s[2] * log(x));
      gy = to_input(safe, sb, db);
    }
    return Grads{to_input(gx, sa, da), gy};
  });
}

Tensor maximum(const Tensor& a, const Tensor& b) {
  Tensor out = run(BinaryOp::Maximum, prepare(a, b, "maximum"));
  const Dims sa = a.sizes(), sb = b.sizes();
  const DType da = a.dtype(), db = b.dtype();
  return record("maximum", out, {a, b}, {a, b}, [=](const Tensor& g, const Saved& s) {
    // Ties split the gradient evenly, as in PyTorch.
    const Tensor half = g * 0.5;
    const Tensor tie = eq(s[0], s[1]);
    const Tensor ga = where(tie, half, where(gt(s[0], s[1]), g, 0.0));
    const Tensor gb = where(tie, half, where(lt(s[0], s[1]), g, 0.0));
    return Grads{to_input(ga, sa, da), to_input(gb, sb, db)};
  });
}

Tensor minimum(const Tensor& a, const Tensor& b) {
  Tensor out = run(BinaryOp::Minimum, prepare(a, b, "minimum"));
  const Dims sa = a.sizes(), sb = b.sizes();
  const DType da = a.dtype(), db = b.dtype();
  return record("minimum", out, {a, b}, {a, b}, [=](const Tensor& g, const Saved& s) {
    const Tensor half = g * 0.5;
    const Tensor tie = eq(s[0], s[1]);
    const Tensor ga = where(tie, half, where(lt(s[0], s[1]), g, 0.0));
    const Tensor gb = where(tie, half, where(gt(s[0], s[1]), g, 0.0));
    return Grads{to_input(ga, sa, da), to_input(gb, sb, db)};
  });
}

Tensor eq(const Tensor& a, const Tensor& b) { return compare(BinaryOp::Eq, a, b); }
Tensor ne(const Tensor& a, const Tensor& b) { return compare(BinaryOp::Ne, a, b); }
Tensor lt(const Tensor& a, const Tensor& b) { return compare(BinaryOp::Lt, a, b); }
Tensor le(const Tensor& a, const Tensor& b) { return compare(BinaryOp::Le, a, b); }
Tensor gt(const Tensor& a, const Tensor& b) { return compare(BinaryOp::Gt, a, b); }
Tensor ge(const Tensor& a, const Tensor& b) { return compare(BinaryOp::Ge, a, b); }
Tensor logical_and(const Tensor& a, const Tensor& b) { return compare(BinaryOp::LogicalAnd, a, b); }
Tensor logical_or(const Tensor& a, const Tensor& b) { return compare(BinaryOp::LogicalOr, a, b); }

// ---- Tensor methods and operators ----
Tensor Tensor::add(const Tensor& o, Scalar alpha) const { return luna::add(*this, o, alpha); }
Tensor Tensor::sub(const Tensor& o, Scalar alpha) const { return luna::sub(*this, o, alpha); }
Tensor Tensor::mul(const Tensor& o) const { return luna::mul(*this, o); }
Tensor Tensor::div(const Tensor& o) const { return luna::div(*this, o); }
Tensor Tensor::pow(const Tensor& e) const { return luna::pow(*this, e); }
Tensor Tensor::maximum(const Tensor& o) const { return luna::maximum(*this, o); }
Tensor Tensor::minimum(const Tensor& o) const { return luna::minimum(*this, o); }
Tensor Tensor::eq(const Tensor& o) const { return luna::eq(*this, o); }
Tensor Tensor::ne(const Tensor& o) const { return luna::ne(*this, o); }
Tensor Tensor::lt(const Tensor& o) const { return luna::lt(*this, o); }
Tensor Tensor::le(const Tensor& o) const { return luna::le(*this, o); }
Tensor Tensor::gt(const Tensor& o) const { return luna::gt(*this, o); }
Tensor Tensor::ge(const Tensor& o) const { return luna::ge(*this, o); }

Tensor operator+(const Tensor& a, const Tensor& b) { return add(a, b); }
Tensor operator-(const Tensor& a, const Tensor& b) { return sub(a, b); }
Tensor operator*(const Tensor& a, const Tensor& b) { return mul(a, b); }
Tensor operator/(const Tensor& a, const Tensor& b) { return div(a, b); }
Tensor operator+(const Tensor& a, Scalar b) { return add(a, wrap_scalar(b, a)); }
Tensor operator-(const Tensor& a, Scalar b) { return sub(a, wrap_scalar(b, a)); }
Tensor operator*(const Tensor& a, Scalar b) { return mul(a, wrap_scalar(b, a)); }
Tensor operator/(const Tensor& a, Scalar b) { return div(a, wrap_scalar(b, a)); }
Tensor operator+(Scalar a, const Tensor& b) { return add(wrap_scalar(a, b), b); }
Tensor operator-(Scalar a, const Tensor& b) { return sub(wrap_scalar(a, b), b); }
Tensor operator*(Scalar a, const Tensor& b) { return mul(wrap_scalar(a, b), b); }
Tensor operator/(Scalar a, const Tensor& b) { return div(wrap_scalar(a, b), b); }
Tensor operator-(const Tensor& a) { return neg(a); }

// ---- in place: compute out of place, write back, and take over the new history ----
namespace {
// True when several elements of t share one memory location (an expand()ed dim).
bool has_internal_overlap(const Tensor& t) {
  for (int d = 0; d < t.dim(); ++d)
    if (t.sizes()[d] > 1 && t.strides()[d] == 0) return true;
  return false;
}

const Tensor& assign_inplace(const char* op, const Tensor& self, const Tensor& result) {
  ops::check_inplace(op, self);
  // As in PyTorch: the outcome would depend on which write lands last.
  LUNA_CHECK(!has_internal_overlap(self), op, ": more than one element of the written-to tensor (shape ",
             self.sizes(), ", strides ", self.strides(), ") refers to a single memory location; clone() it first");
  LUNA_CHECK(result.sizes() == self.sizes(), op, ": the result of shape ", result.sizes(),
             " cannot be written in place into a tensor of shape ", self.sizes(), " (broadcasting would grow it)");
  {
    NoGradGuard no_grad;
    backend_for(self).copy(result.dtype() == self.dtype() ? result : result.to(self.dtype()), self);
  }
  self.bump_version();
  if (result.grad_fn()) {
    self.impl()->autograd().grad_fn = result.grad_fn();
    self.impl()->autograd().requires_grad = true;
  }
  return self;
}

// PyTorch refuses an in-place op whose result type self cannot hold (a float result in an integer
// tensor, a number in a bool tensor) instead of silently truncating it.
const Tensor& assign_binary_inplace(const char* op, const Tensor& self, const Tensor& result) {
  const DType want = self.dtype(), got = result.dtype();
  const bool fits = (luna::is_floating_point(want) || !luna::is_floating_point(got)) && (want != kBool || got == kBool);
  LUNA_CHECK(fits, op, ": result type ", got, " can't be cast to the desired output type ", want,
             "; use the out-of-place op or convert self with .to(", got, ") first");
  return assign_inplace(op, self, result);
}

// Ops whose backward reads self must record a copy of its old value, since self is about to be
// overwritten (PyTorch saves the "original self" the same way).
Tensor original_self(const Tensor& self, const Tensor& other) {
  return ops::needs_grad({self, other}) ? self.clone() : self;
}

// Without autograd and with a contiguous self, the kernel writes straight into self.
bool try_direct(BinaryOp op, const Tensor& self, const Tensor& other, const char* name) {
  if (GradMode::is_enabled() && (self.requires_grad() || other.requires_grad())) return false;
  if (!self.is_contiguous() || self.dtype() != result_type(self, other)) return false;
  if (op == BinaryOp::Div && !luna::is_floating_point(self.dtype())) return false;
  LUNA_CHECK(broadcast_shapes(self.sizes(), other.sizes(), name) == self.sizes(), name, ": the result of shape ",
             broadcast_shapes(self.sizes(), other.sizes(), name), " cannot be written in place into a tensor of shape ",
             self.sizes());
  ops::check_inplace(name, self);
  Tensor rhs = other.detach().to(self.device(), self.dtype()).expand(self.sizes());
  if (rhs.impl()->storage() == self.impl()->storage() && !(rhs.strides() == self.strides() &&
                                                           rhs.storage_offset() == self.storage_offset()))
    rhs = rhs.clone();
  backend_for(self).binary(op, self, rhs, self);
  self.bump_version();
  return true;
}
}  // namespace

const Tensor& Tensor::add_(const Tensor& other, Scalar alpha) const {
  const bool unit = alpha.is_integral() && alpha.to_int() == 1;
  if (unit && try_direct(BinaryOp::Add, *this, other, "add_")) return *this;
  return assign_binary_inplace("add_", *this, luna::add(*this, other, alpha));
}
const Tensor& Tensor::add_(Scalar other) const { return add_(wrap_scalar(other, *this)); }
const Tensor& Tensor::sub_(const Tensor& other, Scalar alpha) const {
  const bool unit = alpha.is_integral() && alpha.to_int() == 1;
  if (unit && try_direct(BinaryOp::Sub, *this, other, "sub_")) return *this;
  return assign_binary_inplace("sub_", *this, luna::sub(*this, other, alpha));
}
const Tensor& Tensor::mul_(const Tensor& other) const {
  if (try_direct(BinaryOp::Mul, *this, other, "mul_")) return *this;
  return assign_binary_inplace("mul_", *this, luna::mul(original_self(*this, other), other));
}
const Tensor& Tensor::mul_(Scalar other) const { return mul_(wrap_scalar(other, *this)); }
const Tensor& Tensor::div_(const Tensor& other) const {
  if (try_direct(BinaryOp::Div, *this, other, "div_")) return *this;
  return assign_binary_inplace("div_", *this, luna::div(*this, other));
}
const Tensor& Tensor::div_(Scalar other) const { return div_(wrap_scalar(other, *this)); }

namespace ops {
const Tensor& assign_result_inplace(const char* op, const Tensor& self, const Tensor& result) {
  return assign_inplace(op, self, result);
}
}  // namespace ops

}  // namespace luna
