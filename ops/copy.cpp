// Copies and conversions: contiguous, clone, to(dtype/device), copy_ and fill_.
#include <luna/backends/backend.h>
#include <luna/ops/autograd_record.h>

namespace luna {
namespace {
using ops::Grads;
using ops::record;
using ops::Saved;

bool overlaps(const Tensor& a, const Tensor& b) {
  if (a.impl()->storage() != b.impl()->storage()) return false;
  return !(a.sizes() == b.sizes() && a.strides() == b.strides() && a.storage_offset() == b.storage_offset());
}

// dst = src where both may live on different devices; src already has dst's shape.
void copy_values(const Tensor& src, const Tensor& dst) {
  if (src.device() == dst.device()) {
    if (overlaps(src, dst)) {
      Tensor tmp = empty_tensor(src.sizes(), src.dtype(), src.device());
      backend_for(src).copy(src, tmp);
      backend_for(dst).copy(tmp, dst);
    } else {
      backend_for(dst).copy(src, dst);
    }
    return;
  }
  // Across devices: convert on the source device, move contiguous bytes, scatter on the target.
  Tensor staged = empty_tensor(src.sizes(), dst.dtype(), src.device());
  backend_for(src).copy(src, staged);
  Tensor landed = dst.is_contiguous() ? dst : empty_tensor(dst.sizes(), dst.dtype(), dst.device());
  if (src.device().is_cpu()) backend_for(dst).copy_from_cpu(staged, landed);
  else if (dst.device().is_cpu()) backend_for(src).copy_to_cpu(staged, landed);
  else {
    Tensor host = empty_tensor(src.sizes(), dst.dtype(), Device::cpu());
    backend_for(src).copy_to_cpu(staged, host);
    backend_for(dst).copy_from_cpu(host, landed);
  }
  if (!landed.is_same(dst)) backend_for(dst).copy(landed, dst);
}
}  // namespace

Tensor Tensor::contiguous() const { return is_contiguous() ? *this : clone(); }

Tensor Tensor::clone() const {
  Tensor out = empty_tensor(sizes(), dtype(), device());
  copy_values(*this, out);
  return record("clone", out, {*this}, {}, [](const Tensor& g, const Saved&) { return Grads{g}; });
}

Tensor Tensor::to(DType target) const { return to(device(), target); }
Tensor Tensor::to(Device target) const { return to(target, dtype()); }

Tensor Tensor::to(Device target_device, DType target_dtype) const {
  if (target_device == device() && target_dtype == dtype()) return *this;
  Tensor out = empty_tensor(sizes(), target_dtype, target_device);
  copy_values(*this, out);
  if (!luna::is_floating_point(target_dtype)) return out;  // integers carry no gradient
  const Device source_device = device();
  const DType source_dtype = dtype();
  return record("to", out, {*this}, {}, [source_device, source_dtype](const Tensor& g, const Saved&) {
    return Grads{g.to(source_device, source_dtype)};
  });
}

const Tensor& Tensor::copy_(const Tensor& src) const {
  LUNA_CHECK(src.defined(), "copy_: source tensor is undefined");
  ops::check_inplace("copy_", *this);
  // As in PyTorch: with an expand()ed destination the outcome would depend on which write lands last.
  for (int d = 0; d < dim(); ++d)
    LUNA_CHECK(sizes()[d] <= 1 || strides()[d] != 0, "copy_: more than one element of the written-to tensor (shape ",
               sizes(), ", strides ", strides(), ") refers to a single memory location; clone() it first");
  Tensor source;
  {
    NoGradGuard no_grad;
    source = src.expand(sizes());
  }
  copy_values(source, *this);
  bump_version();
  if (ops::needs_grad({src})) {
    const Dims src_sizes = src.sizes();
    const DType src_dtype = src.dtype();
    Tensor tracked = record("copy_", detach(), {src}, {}, [src_sizes, src_dtype](const Tensor& g, const Saved&) {
      return Grads{ops::sum_to(g, src_sizes).to(src_dtype)};
    });
    impl()->autograd().grad_fn = tracked.grad_fn();
    impl()->autograd().requires_grad = true;
  } else if (GradMode::is_enabled() && !is_leaf()) {
    // Overwritten with values that carry no gradient: the old history no longer applies.
    impl()->autograd().grad_fn = nullptr;
    impl()->autograd().requires_grad = false;
  }
  return *this;
}

const Tensor& Tensor::fill_(Scalar value) const {
  ops::check_inplace("fill_", *this);
  backend_for(*this).fill(*this, value);
  bump_version();
  if (GradMode::is_enabled() && !is_leaf()) {
    impl()->autograd().grad_fn = nullptr;
    impl()->autograd().requires_grad = false;
  }
  return *this;
}

}  // namespace luna
