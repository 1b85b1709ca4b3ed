// Zero-copy views: each shares storage with its input and differentiates by mapping the
// gradient back through the inverse layout change.
#include <luna/ops/autograd_record.h>
#include <luna/ops/factories.h>

#include <numeric>

namespace luna {
namespace {

using ops::Grads;
using ops::record;
using ops::Saved;

Tensor make_view(const Tensor& self, const Dims& sizes, const Dims& strides, int64_t offset) {
  Tensor v = make_tensor(self.impl()->storage(), sizes, strides, offset, self.dtype());
  v.impl()->autograd().is_view = true;
  return v;
}

// Resolves one -1 entry and checks the element count.
Dims infer_shape(const Dims& shape, int64_t numel, const char* op) {
  Dims out = shape;
  int infer = -1;
  int64_t known = 1;
  for (int i = 0; i < shape.size(); ++i) {
    if (shape[i] == -1) {
      LUNA_CHECK(infer < 0, op, ": only one dimension can be inferred, shape ", shape);
      infer = i;
    } else {
      LUNA_CHECK(shape[i] >= 0, op, ": invalid shape dimension ", shape[i], " in ", shape);
      known *= shape[i];
    }
  }
  if (infer >= 0) {
    LUNA_CHECK(known != 0 && numel % known == 0, op, ": shape ", shape, " is invalid for input of size ", numel);
    out[infer] = numel / known;
  }
  LUNA_CHECK(out.product() == numel, op, ": shape ", shape, " is invalid for input of size ", numel);
  return out;
}

// Strides that express `new_sizes` over the same memory, if any (PyTorch's computeStride): each
// run of old dims that is contiguous within itself can be re-split freely.
bool view_strides(const Dims& old_sizes, const Dims& old_strides, const Dims& new_sizes, Dims& new_strides) {
  new_strides.resize(new_sizes.size());
  if (old_sizes.product() == 0 || old_sizes.size() == 0) {
    new_strides = contiguous_strides(new_sizes);
    return true;
  }
  int view_d = new_sizes.size() - 1;
  int64_t chunk_base_stride = old_strides.size() ? old_strides.back() : 1;
  int64_t tensor_numel = 1, view_numel = 1;
  for (int tensor_d = old_sizes.size() - 1; tensor_d >= 0; --tensor_d) {
    tensor_numel *= old_sizes[tensor_d];
    if (tensor_d == 0 || (old_sizes[tensor_d - 1] != 1 &&
                          old_strides[tensor_d - 1] != tensor_numel * chunk_base_stride)) {
      while (view_d >= 0 && (view_numel < tensor_numel || new_sizes[view_d] == 1)) {
        new_strides[view_d] = view_numel * chunk_base_stride;
        view_numel *= new_sizes[view_d];
        --view_d;
      }
      if (view_numel != tensor_numel) return false;
      if (tensor_d > 0) {
        chunk_base_stride = old_strides[tensor_d - 1];
        tensor_numel = 1;
        view_numel = 1;
      }
    }
  }
  return view_d == -1;
}

}  // namespace

Tensor Tensor::view(const Dims& shape) const {
  const Dims sizes = infer_shape(shape, numel(), "view");
  Dims strides;
  LUNA_CHECK(view_strides(this->sizes(), this->strides(), sizes, strides), "view: shape ", shape,
             " is not compatible with the input's size ", this->sizes(), " and stride ", this->strides(),
             " (at least one dimension spans two non-contiguous runs); use reshape() instead");
  const Dims in_sizes = this->sizes();
  return record("view", make_view(*this, sizes, strides, storage_offset()), {*this}, {},
                [in_sizes](const Tensor& g, const Saved&) { return Grads{g.reshape(in_sizes)}; });
}

Tensor Tensor::reshape(const Dims& shape) const {
  const Dims sizes = infer_shape(shape, numel(), "reshape");
  Dims strides;
  if (view_strides(this->sizes(), this->strides(), sizes, strides)) return view(sizes);
  return contiguous().view(sizes);
}

Tensor Tensor::permute(const Dims& order) const {
  LUNA_CHECK(order.size() == dim(), "permute: order ", order, " has ", order.size(), " entries for a tensor of ",
             dim(), " dims");
  Dims sizes, strides, inverse;
  inverse.resize(dim());
  std::vector<bool> seen(dim(), false);
  for (int i = 0; i < dim(); ++i) {
    const int d = wrap_dim(order[i], dim(), "permute");
    LUNA_CHECK(!seen[d], "permute: dim ", d, " repeats in order ", order);
    seen[d] = true;
    sizes.push_back(this->sizes()[d]);
    strides.push_back(this->strides()[d]);
    inverse[d] = i;
  }
  return record("permute", make_view(*this, sizes, strides, storage_offset()), {*this}, {},
                [inverse](const Tensor& g, const Saved&) { return Grads{g.permute(inverse)}; });
}

Tensor Tensor::transpose(int64_t dim0, int64_t dim1) const {
  const int d0 = wrap_dim(dim0, dim(), "transpose"), d1 = wrap_dim(dim1, dim(), "transpose");
  Dims order;
  for (int i = 0; i < dim(); ++i) order.push_back(i);
  if (dim() == 0) return *this;
  std::swap(order[d0], order[d1]);
  return permute(order);
}

Tensor Tensor::t() const {
  LUNA_CHECK(dim() <= 2, "t: expects a tensor with <= 2 dims, got ", dim(), " (shape ", sizes(), "); use transpose");
  return dim() < 2 ? *this : transpose(0, 1);
}

Tensor Tensor::slice(int64_t dim_, int64_t start, int64_t end, int64_t step) const {
  LUNA_CHECK(dim() > 0, "slice: cannot slice a 0-dim tensor");
  const int d = wrap_dim(dim_, dim(), "slice");
  LUNA_CHECK(step > 0, "slice: step must be positive, got ", step);
  const int64_t n = sizes()[d];
  if (start < 0) start += n;
  if (end < 0) end += n;
  start = std::clamp<int64_t>(start, 0, n);
  end = std::clamp<int64_t>(end, start, n);
  Dims sizes = this->sizes(), strides = this->strides();
  sizes[d] = (end - start + step - 1) / step;
  strides[d] *= step;
  const int64_t offset = storage_offset() + start * this->strides()[d];
  const Dims in_sizes = this->sizes();
  const DType dtype = this->dtype();
  return record("slice", make_view(*this, sizes, strides, offset), {*this}, {},
                [in_sizes, dtype, d, start, end, step](const Tensor& g, const Saved&) {
                  Tensor grad = zeros(in_sizes, TensorOptions(dtype).device(g.device()));
                  grad.slice(d, start, end, step).copy_(g);
                  return Grads{grad};
                });
}

Tensor Tensor::narrow(int64_t dim_, int64_t start, int64_t length) const {
  LUNA_CHECK(dim() > 0, "narrow: cannot narrow a 0-dim tensor");
  const int d = wrap_dim(dim_, dim(), "narrow");
  const int64_t n = sizes()[d];
  if (start < 0) start += n;
  LUNA_CHECK(start >= 0 && length >= 0 && start + length <= n, "narrow: start ", start, " + length ", length,
             " exceeds dimension ", d, " of size ", n, " (shape ", sizes(), ")");
  return slice(d, start, start + length);
}

Tensor Tensor::select(int64_t dim_, int64_t index) const {
  LUNA_CHECK(dim() > 0, "select: cannot select on a 0-dim tensor");
  const int d = wrap_dim(dim_, dim(), "select");
  const int64_t n = sizes()[d];
  LUNA_CHECK(index >= -n && index < n, "select: index ", index, " is out of range for dimension ", d,
             " of size ", n);
  if (index < 0) index += n;
  return narrow(d, index, 1).squeeze(d);
}

Tensor Tensor::expand(const Dims& shape) const {
  LUNA_CHECK(shape.size() >= dim(), "expand: the target shape ", shape, " has fewer dims than the tensor ", sizes());
  const int lead = shape.size() - dim();
  Dims sizes, strides;
  for (int i = 0; i < shape.size(); ++i) {
    const int j = i - lead;
    int64_t target = shape[i];
    if (j < 0) {
      LUNA_CHECK(target >= 0, "expand: -1 is not allowed for the new leading dim ", i, " in ", shape);
      sizes.push_back(target);
      strides.push_back(0);
      continue;
    }
    const int64_t have = this->sizes()[j];
    if (target == -1) target = have;
    LUNA_CHECK(target >= 0, "expand: invalid size ", target, " at dim ", i, " in ", shape,
               " (sizes must be non-negative, or -1 to keep the existing size)");
    LUNA_CHECK(have == target || have == 1, "expand: the expanded size ", target, " must match the existing size ",
               have, " at non-singleton dim ", i, " (tensor ", this->sizes(), ", target ", shape, ")");
    sizes.push_back(target);
    strides.push_back(have == target ? this->strides()[j] : 0);
  }
  const Dims in_sizes = this->sizes();
  return record("expand", make_view(*this, sizes, strides, storage_offset()), {*this}, {},
                [in_sizes](const Tensor& g, const Saved&) { return Grads{ops::sum_to(g, in_sizes)}; });
}

Tensor Tensor::squeeze() const {
  Dims sizes;
  for (int64_t s : this->sizes())
    if (s != 1) sizes.push_back(s);
  return view(sizes);
}

Tensor Tensor::squeeze(int64_t dim_) const {
  if (dim() == 0) return *this;
  const int d = wrap_dim(dim_, dim(), "squeeze");
  if (sizes()[d] != 1) return *this;
  Dims sizes = this->sizes(), strides = this->strides();
  sizes.erase(d);
  strides.erase(d);
  const Dims in_sizes = this->sizes();
  return record("squeeze", make_view(*this, sizes, strides, storage_offset()), {*this}, {},
                [in_sizes](const Tensor& g, const Saved&) { return Grads{g.reshape(in_sizes)}; });
}

Tensor Tensor::unsqueeze(int64_t dim_) const {
  const int d = wrap_dim(dim_, dim() + 1, "unsqueeze");
  Dims sizes = this->sizes(), strides = this->strides();
  const int64_t stride = d < dim() ? this->strides()[d] * this->sizes()[d] : 1;
  sizes.insert(d, 1);
  strides.insert(d, stride);
  const Dims in_sizes = this->sizes();
  return record("unsqueeze", make_view(*this, sizes, strides, storage_offset()), {*this}, {},
                [in_sizes](const Tensor& g, const Saved&) { return Grads{g.reshape(in_sizes)}; });
}

Tensor Tensor::flatten(int64_t start_dim, int64_t end_dim) const {
  if (dim() == 0) return reshape({1});
  const int s = wrap_dim(start_dim, dim(), "flatten"), e = wrap_dim(end_dim, dim(), "flatten");
  LUNA_CHECK(s <= e, "flatten: start_dim ", start_dim, " must not come after end_dim ", end_dim);
  Dims sizes;
  for (int i = 0; i < s; ++i) sizes.push_back(this->sizes()[i]);
  int64_t merged = 1;
  for (int i = s; i <= e; ++i) merged *= this->sizes()[i];
  sizes.push_back(merged);
  for (int i = e + 1; i < dim(); ++i) sizes.push_back(this->sizes()[i]);
  return reshape(sizes);
}

Tensor Tensor::unflatten(int64_t dim_, const Dims& split) const {
  const int d = wrap_dim(dim_, dim(), "unflatten");
  Dims sizes;
  for (int i = 0; i < d; ++i) sizes.push_back(this->sizes()[i]);
  for (int64_t s : split) sizes.push_back(s);
  for (int i = d + 1; i < dim(); ++i) sizes.push_back(this->sizes()[i]);
  return view(sizes);
}

Tensor Tensor::as_strided(const Dims& sizes, const Dims& strides, int64_t offset) const {
  LUNA_CHECK(!ops::needs_grad({*this}), "as_strided: not differentiable; call it on a detached tensor");
  LUNA_CHECK(sizes.size() == strides.size(), "as_strided: sizes ", sizes, " and strides ", strides,
             " differ in length");
  int64_t last = offset;
  for (int i = 0; i < sizes.size(); ++i) {
    LUNA_CHECK(sizes[i] >= 0 && strides[i] >= 0, "as_strided: negative size or stride in ", sizes, " / ", strides);
    if (sizes[i] > 0) last += (sizes[i] - 1) * strides[i];
  }
  const int64_t capacity = int64_t(impl()->storage()->nbytes() / element_size());
  LUNA_CHECK(offset >= 0 && (sizes.product() == 0 || last < capacity), "as_strided: sizes ", sizes, " strides ",
             strides, " offset ", offset, " reach element ", last, " beyond the storage of ", capacity, " elements");
  return make_view(*this, sizes, strides, offset);
}

}  // namespace luna
