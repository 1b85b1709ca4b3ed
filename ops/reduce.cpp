// Reduction ops and their backward formulas.
#include <luna/ops/reduce.h>
#include <luna/backends/backend.h>
#include <luna/ops/autograd_record.h>
#include <luna/ops/elementwise.h>
#include <luna/ops/factories.h>

#include <cmath>
#include <limits>

namespace luna {
namespace {
using ops::Grads;
using ops::record;
using ops::Saved;

// Bitmask of the dims to reduce (all dims when `dims` is empty).
uint32_t dim_mask(const Tensor& x, const Dims& dims, const char* op) {
  uint32_t mask = 0;
  if (dims.empty()) return x.dim() == 0 ? 0 : (uint32_t(1) << x.dim()) - 1;
  for (int64_t d : dims) {
    const int w = wrap_dim(d, x.dim(), op);
    LUNA_CHECK(!(mask >> w & 1) || x.dim() == 0, op, ": dim ", w, " appears more than once in ", dims);
    if (x.dim() > 0) mask |= uint32_t(1) << w;
  }
  return mask;
}

Dims keepdim_shape(const Tensor& x, uint32_t mask) {
  Dims s = x.sizes();
  for (int d = 0; d < x.dim(); ++d)
    if (mask >> d & 1) s[d] = 1;
  return s;
}

Dims final_shape(const Tensor& x, uint32_t mask, bool keepdim) {
  if (keepdim) return keepdim_shape(x, mask);
  Dims s;
  for (int d = 0; d < x.dim(); ++d)
    if (!(mask >> d & 1)) s.push_back(x.sizes()[d]);
  return s;
}

int64_t reduced_count(const Tensor& x, uint32_t mask) {
  int64_t n = 1;
  for (int d = 0; d < x.dim(); ++d)
    if (mask >> d & 1) n *= x.sizes()[d];
  return n;
}

// Runs the kernel; result has the final shape. No autograd. The result is allocated in its final
// shape and the kernel writes through a keepdim-shaped alias, so the result is not a view (a view
// would refuse later in-place ops under autograd).
Tensor reduce_raw(ReduceOp op, const Tensor& x, uint32_t mask, bool keepdim, DType dtype) {
  Tensor input = x.detach();
  if (input.dtype() != dtype) input = input.to(dtype);
  Tensor out = empty_tensor(final_shape(x, mask, keepdim), dtype, x.device());
  backend_for(out).reduce(op, input, keepdim ? out : out.view(keepdim_shape(x, mask)), mask);
  return out;
}

// Gradient of a reduction, brought back to x's shape: g (final shape) re-expanded.
Tensor expand_back(const Tensor& g, const Dims& keep_shape, const Dims& x_shape) {
  return g.reshape(keep_shape).expand(x_shape);
}

Tensor sum_impl(const Tensor& x, const Dims& dims, bool keepdim) {
  LUNA_CHECK(x.defined(), "sum: input is undefined");
  const uint32_t mask = dim_mask(x, dims, "sum");
  const DType dtype = x.is_floating_point() ? x.dtype() : kInt64;
  Tensor out = reduce_raw(ReduceOp::Sum, x, mask, keepdim, dtype);
  const Dims keep = keepdim_shape(x, mask), xs = x.sizes();
  return record("sum", out, {x}, {}, [keep, xs](const Tensor& g, const Saved&) {
    return Grads{expand_back(g, keep, xs)};
  });
}

// amax/amin over dims with even tie-splitting in backward.
Tensor extreme(ReduceOp op, const Tensor& x, const Dims& dims, bool keepdim, const char* name) {
  LUNA_CHECK(x.defined(), name, ": input is undefined");
  const uint32_t mask = dim_mask(x, dims, name);
  LUNA_CHECK(reduced_count(x, mask) > 0, name, ": cannot reduce over an empty dimension (shape ", x.sizes(), ")");
  Tensor out = reduce_raw(op, x, mask, keepdim, x.dtype());
  const Dims keep = keepdim_shape(x, mask), xs = x.sizes();
  const Dims red = [&] {
    Dims r;
    for (int d = 0; d < x.dim(); ++d)
      if (mask >> d & 1) r.push_back(d);
    return r;
  }();
  return record(name, out, {x}, {x, out}, [keep, xs, red](const Tensor& g, const Saved& s) {
    const Tensor hit = eq(s[0], s[1].reshape(keep)).to(g.dtype());
    const Tensor count = red.empty() ? hit : hit.sum(red, true);
    return Grads{expand_back(g, keep, xs) * hit / count};
  });
}

std::tuple<Tensor, Tensor> extreme_dim(ReduceOp op, const Tensor& x, int64_t dim, bool keepdim, const char* name) {
  LUNA_CHECK(x.defined(), name, ": input is undefined");
  const int d = wrap_dim(dim, x.dim(), name);
  if (x.dim() == 0) return {x.clone(), zeros({}, kInt64)};
  LUNA_CHECK(x.sizes()[d] > 0, name, ": cannot reduce over dim ", d, " of size 0 (shape ", x.sizes(), ")");
  Dims keep = x.sizes();
  keep[d] = 1;
  // Allocated in the final shape (not squeezed views of the keepdim form, see reduce_raw).
  const Dims out_shape = keepdim ? keep : final_shape(x, uint32_t(1) << d, false);
  Tensor values = empty_tensor(out_shape, x.dtype(), x.device());
  Tensor indices = empty_tensor(out_shape, kInt64, x.device());
  backend_for(x).arg_reduce(op, x.detach(), d, values.view(keep), indices.view(keep));
  const Dims xs = x.sizes();
  values = record(name, values, {x}, {indices}, [keep, xs, d](const Tensor& g, const Saved& s) {
    // Route each gradient to the position its index names.
    Dims pos_shape;
    pos_shape.resize(xs.size(), 1);
    pos_shape[d] = xs[d];
    const Tensor positions = arange(xs[d], TensorOptions(kInt64).device(g.device())).view(pos_shape);
    const Tensor hit = eq(positions, s[0].reshape(keep));
    return Grads{where(hit, g.reshape(keep).expand(xs), wrap_scalar(0, g))};
  });
  return {values, indices};
}
}  // namespace

Tensor sum(const Tensor& x) { return sum_impl(x, {}, false); }
Tensor sum(const Tensor& x, const Dims& dims, bool keepdim) {
  LUNA_CHECK(!dims.empty(), "sum: dims is empty; call sum(x) to reduce over all elements");
  return sum_impl(x, dims, keepdim);
}

Tensor mean(const Tensor& x) { return mean(x, Dims{}, false); }
Tensor mean(const Tensor& x, const Dims& dims, bool keepdim) {
  LUNA_CHECK(x.defined() && x.is_floating_point(), "mean: input dtype must be floating point, got ",
             x.defined() ? dtype_name(x.dtype()) : "undefined", "; convert it with .to(kFloat32)");
  const uint32_t mask = dim_mask(x, dims, "mean");
  const int64_t n = reduced_count(x, mask);
  return sum_impl(x, dims, keepdim) / double(n);
}

Tensor var(const Tensor& x, const Dims& dims, int64_t correction, bool keepdim) {
  LUNA_CHECK(x.defined() && x.is_floating_point(), "var: input dtype must be floating point");
  const uint32_t mask = dim_mask(x, dims, "var");
  const int64_t n = reduced_count(x, mask);
  const Tensor centered = x - mean(x, dims, true);
  // Like PyTorch, n <= correction gives inf/nan rather than an error.
  return sum_impl(centered * centered, dims, keepdim) / double(std::max<int64_t>(n - correction, 0));
}

Tensor std(const Tensor& x, const Dims& dims, int64_t correction, bool keepdim) {
  return sqrt(var(x, dims, correction, keepdim));
}

Tensor max(const Tensor& x) { return extreme(ReduceOp::Max, x, {}, false, "max"); }
Tensor min(const Tensor& x) { return extreme(ReduceOp::Min, x, {}, false, "min"); }
Tensor amax(const Tensor& x, const Dims& dims, bool keepdim) { return extreme(ReduceOp::Max, x, dims, keepdim, "amax"); }
Tensor amin(const Tensor& x, const Dims& dims, bool keepdim) { return extreme(ReduceOp::Min, x, dims, keepdim, "amin"); }
std::tuple<Tensor, Tensor> max(const Tensor& x, int64_t dim, bool keepdim) {
  return extreme_dim(ReduceOp::Max, x, dim, keepdim, "max");
}
std::tuple<Tensor, Tensor> min(const Tensor& x, int64_t dim, bool keepdim) {
  return extreme_dim(ReduceOp::Min, x, dim, keepdim, "min");
}
Tensor argmax(const Tensor& x, int64_t dim, bool keepdim) {
  NoGradGuard no_grad;
  return std::get<1>(extreme_dim(ReduceOp::Max, x, dim, keepdim, "argmax"));
}
Tensor argmin(const Tensor& x, int64_t dim, bool keepdim) {
  NoGradGuard no_grad;
  return std::get<1>(extreme_dim(ReduceOp::Min, x, dim, keepdim, "argmin"));
}
Tensor argmax(const Tensor& x) {
  LUNA_CHECK(x.defined(), "argmax: input is undefined");
  return argmax(x.reshape({-1}), 0);
}
Tensor argmin(const Tensor& x) {
  LUNA_CHECK(x.defined(), "argmin: input is undefined");
  return argmin(x.reshape({-1}), 0);
}

Tensor logsumexp(const Tensor& x, const Dims& dims, bool keepdim) {
  LUNA_CHECK(x.defined() && x.is_floating_point(), "logsumexp: input dtype must be floating point");
  const uint32_t mask = dim_mask(x, dims, "logsumexp");
  Tensor shift;
  {
    // The shift cancels mathematically, so it carries no gradient; infinite maxima shift by 0.
    NoGradGuard no_grad;
    shift = reduce_raw(ReduceOp::Max, x, mask, true, x.dtype());
    shift = where(lt(shift.abs(), wrap_scalar(INFINITY, shift)), shift, wrap_scalar(0, shift));
  }
  Dims red;
  for (int d = 0; d < x.dim(); ++d)
    if (mask >> d & 1) red.push_back(d);
  Tensor summed = red.empty() ? exp(x - shift) : sum_impl(exp(x - shift), red, keepdim);
  return log(summed) + (keepdim ? shift : shift.reshape(final_shape(x, mask, false)));
}

Tensor norm(const Tensor& x, double p) { return norm(x, p, Dims{}, false); }

Tensor norm(const Tensor& x, double p, const Dims& dims, bool keepdim) {
  LUNA_CHECK(x.defined() && x.is_floating_point(), "norm: input dtype must be floating point");
  LUNA_CHECK(p > 0, "norm: p must be positive, got ", p);
  const uint32_t mask = dim_mask(x, dims, "norm");
  Dims red;
  for (int d = 0; d < x.dim(); ++d)
    if (mask >> d & 1) red.push_back(d);
  if (std::isinf(p)) return amax(x.abs(), red, keepdim);
  Tensor out;
  {
    NoGradGuard no_grad;
    const Tensor powered = p == 2.0 ? x.detach() * x.detach() : x.detach().abs().pow(p);
    out = (red.empty() ? powered : powered.sum(red, keepdim)).pow(1.0 / p);
  }
  const Dims keep = keepdim_shape(x, mask), xs = x.sizes();
  return record("norm", out, {x}, {x, out}, [p, keep, xs](const Tensor& g, const Saved& s) {
    // d||x||_p/dx = sign(x) |x|^(p-1) / ||x||^(p-1); taken as 0 where the norm is 0 (PyTorch's
    // choice). sign(x) rather than x/|x| keeps the p = 1 gradient at x = 0 finite (0).
    const Tensor n = s[1].reshape(keep);
    const Tensor scale = p == 2.0 ? s[0] / n : sign(s[0]) * s[0].abs().pow(p - 1) / n.pow(p - 1);
    const Tensor safe = where(eq(n, wrap_scalar(0, n)).expand(xs), wrap_scalar(0, g), scale);
    return Grads{g.reshape(keep).expand(xs) * safe};
  });
}

Tensor Tensor::sum() const { return luna::sum(*this); }
Tensor Tensor::sum(const Dims& dims, bool keepdim) const { return luna::sum(*this, dims, keepdim); }
Tensor Tensor::mean() const { return luna::mean(*this); }
Tensor Tensor::mean(const Dims& dims, bool keepdim) const { return luna::mean(*this, dims, keepdim); }
Tensor Tensor::var(const Dims& dims, int64_t correction, bool keepdim) const {
  return luna::var(*this, dims, correction, keepdim);
}
Tensor Tensor::std(const Dims& dims, int64_t correction, bool keepdim) const {
  return luna::std(*this, dims, correction, keepdim);
}
Tensor Tensor::max() const { return luna::max(*this); }
Tensor Tensor::min() const { return luna::min(*this); }
std::tuple<Tensor, Tensor> Tensor::max(int64_t dim, bool keepdim) const { return luna::max(*this, dim, keepdim); }
std::tuple<Tensor, Tensor> Tensor::min(int64_t dim, bool keepdim) const { return luna::min(*this, dim, keepdim); }
Tensor Tensor::argmax() const { return luna::argmax(*this); }
Tensor Tensor::argmin() const { return luna::argmin(*this); }
Tensor Tensor::argmax(int64_t dim, bool keepdim) const { return luna::argmax(*this, dim, keepdim); }
Tensor Tensor::argmin(int64_t dim, bool keepdim) const { return luna::argmin(*this, dim, keepdim); }
Tensor Tensor::logsumexp(const Dims& dims, bool keepdim) const { return luna::logsumexp(*this, dims, keepdim); }
Tensor Tensor::norm(double p) const { return luna::norm(*this, p); }
Tensor Tensor::norm(double p, const Dims& dims, bool keepdim) const { return luna::norm(*this, p, dims, keepdim); }

}  // namespace luna
