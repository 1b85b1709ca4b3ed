// luna::Tensor: a cheap handle to storage plus a strided layout (sizes and strides in elements,
// an offset, a dtype) and autograd metadata. Views share storage; math methods are declared here
// and implemented in ops/ (the core layer itself knows no op).
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include <luna/core/device.h>
#include <luna/core/dtype.h>
#include <luna/core/error.h>
#include <luna/core/scalar.h>
#include <luna/core/shape.h>
#include <luna/core/storage.h>

namespace luna {

namespace autograd {
class Node;
}

class Tensor;

// Options for factories, PyTorch-style: luna::zeros({2,3}, TensorOptions().dtype(kFloat64)).
struct TensorOptions {
  DType dtype_ = kFloat32;
  Device device_ = Device::cpu();
  bool requires_grad_ = false;

  TensorOptions() = default;
  TensorOptions(DType d) : dtype_(d) {}
  TensorOptions(Device d) : device_(d) {}
  TensorOptions& dtype(DType d) { dtype_ = d; return *this; }
  TensorOptions& device(Device d) { device_ = d; return *this; }
  TensorOptions& requires_grad(bool r = true) { requires_grad_ = r; return *this; }
};

struct AutogradMeta {
  bool requires_grad = false;
  std::shared_ptr<class TensorImpl> grad;            // accumulated gradient (leaves)
  std::shared_ptr<autograd::Node> grad_fn;           // the op that produced this tensor
  std::weak_ptr<autograd::Node> grad_accumulator;    // cached AccumulateGrad node of a leaf
  bool is_view = false;                              // shares storage with a tensor of its own history
};

class TensorImpl {
 public:
  TensorImpl(Storage storage, Dims sizes, Dims strides, int64_t offset, DType dtype)
      : storage_(std::move(storage)), sizes_(sizes), strides_(strides), offset_(offset), dtype_(dtype) {}

  const Storage& storage() const { return storage_; }
  const Dims& sizes() const { return sizes_; }
  const Dims& strides() const { return strides_; }
  int64_t offset() const { return offset_; }
  DType dtype() const { return dtype_; }
  AutogradMeta& autograd() { return autograd_; }
  // Re-points this tensor at other data, keeping its identity and autograd metadata (used to move
  // parameters between devices/dtypes without invalidating handles that optimizers hold).
  void set_data(Storage storage, Dims sizes, Dims strides, int64_t offset, DType dtype) {
    storage_ = std::move(storage);
    sizes_ = sizes;
    strides_ = strides;
    offset_ = offset;
    dtype_ = dtype;
  }
  const AutogradMeta& autograd() const { return autograd_; }

 private:
  Storage storage_;
  Dims sizes_;
  Dims strides_;
  int64_t offset_;
  DType dtype_;
  AutogradMeta autograd_;
};

class Tensor {
 public:
  Tensor() = default;
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

  // ---- layout (core/tensor.cpp) ----
  bool defined() const { return impl_ != nullptr; }
  TensorImpl* impl() const { return impl_.get(); }
  const std::shared_ptr<TensorImpl>& impl_ptr() const { return impl_; }
  int dim() const { return impl()->sizes().size(); }
  const Dims& sizes() const { return impl()->sizes(); }
  const Dims& shape() const { return impl()->sizes(); }
  const Dims& strides() const { return impl()->strides(); }
  int64_t size(int64_t dim) const;
  int64_t stride(int64_t dim) const;
  int64_t numel() const { return impl()->sizes().product(); }
  int64_t storage_offset() const { return impl()->offset(); }
  DType dtype() const { return impl()->dtype(); }
  DType scalar_type() const { return dtype(); }
  Device device() const { return impl()->storage()->device(); }
  size_t element_size() const { return luna::element_size(dtype()); }
  size_t nbytes() const { return size_t(numel()) * element_size(); }
  bool is_contiguous() const;
  bool is_floating_point() const { return luna::is_floating_point(dtype()); }
  bool is_same(const Tensor& other) const { return impl_ == other.impl_; }
  void* data_ptr() const;
  template <class T>
  T* data_ptr() const {
    LUNA_CHECK(dtype_of<T>::value == dtype(), "data_ptr: tensor has dtype ", dtype(),
               ", requested ", dtype_of<T>::value);
    return static_cast<T*>(data_ptr());
  }
  std::string str() const;  // "Tensor[2,3] float32 cpu"
  uint32_t version() const { return impl()->storage()->version(); }
  void bump_version() const { impl()->storage()->bump_version(); }

  // ---- autograd (core/tensor.cpp, backward in autograd/engine.cpp) ----
  bool requires_grad() const { return impl()->autograd().requires_grad; }
  Tensor& requires_grad_(bool requires_grad = true);
  Tensor grad() const;
  void set_grad(const Tensor& grad) const;
  const std::shared_ptr<autograd::Node>& grad_fn() const { return impl()->autograd().grad_fn; }
  bool is_leaf() const { return grad_fn() == nullptr; }
  // Same data, no history: shares storage and the version counter.
  Tensor detach() const;
  // Replaces this tensor's data (storage, shape, dtype) with `data`'s, keeping its identity,
  // requires_grad and .grad handle (like torch's `param.data = ...`).
  void set_data(const Tensor& data) const;
  void backward(const Tensor& gradient = Tensor(), bool retain_graph = false) const;

  // A single-element tensor's value; copies to the CPU if needed.
  template <class T>
  T item() const;

  // ---- views (ops/views.cpp) ----
  Tensor view(const Dims& shape) const;
  Tensor reshape(const Dims& shape) const;
  Tensor permute(const Dims& order) const;
  Tensor transpose(int64_t dim0, int64_t dim1) const;
  Tensor t() const;
  Tensor narrow(int64_t dim, int64_t start, int64_t length) const;
  Tensor slice(int64_t dim, int64_t start, int64_t end, int64_t step = 1) const;
  Tensor select(int64_t dim, int64_t index) const;
  Tensor expand(const Dims& shape) const;
  Tensor expand_as(const Tensor& other) const { return expand(other.sizes()); }
  Tensor squeeze() const;
  Tensor squeeze(int64_t dim) const;
  Tensor unsqueeze(int64_t dim) const;
  Tensor flatten(int64_t start_dim = 0, int64_t end_dim = -1) const;
  Tensor unflatten(int64_t dim, const Dims& sizes) const;
  Tensor contiguous() const;
  Tensor as_strided(const Dims& sizes, const Dims& strides, int64_t offset) const;

  // ---- copies and conversion (ops/copy.cpp) ----
  Tensor to(DType dtype) const;
  Tensor to(Device device) const;
  Tensor to(Device device, DType dtype) const;
  Tensor cpu() const { return to(Device::cpu()); }
  Tensor clone() const;
  const Tensor& copy_(const Tensor& src) const;
  const Tensor& fill_(Scalar value) const;
  const Tensor& zero_() const { return fill_(0); }

  // ---- elementwise (ops/elementwise*.cpp) ----
  Tensor add(const Tensor& other, Scalar alpha = 1) const;
  Tensor sub(const Tensor& other, Scalar alpha = 1) const;
  Tensor mul(const Tensor& other) const;
  Tensor div(const Tensor& other) const;
  Tensor pow(const Tensor& exponent) const;
  Tensor pow(Scalar exponent) const;
  Tensor maximum(const Tensor& other) const;
  Tensor minimum(const Tensor& other) const;
  Tensor neg() const;
  Tensor exp() const;
  Tensor log() const;
  Tensor log1p() const;
  Tensor sqrt() const;
  Tensor rsqrt() const;
  Tensor abs() const;
  Tensor tanh() const;
  Tensor sigmoid() const;
  Tensor relu() const;
  Tensor sin() const;
  Tensor cos() const;
  Tensor square() const;
  Tensor clamp(std::optional<Scalar> min, std::optional<Scalar> max = std::nullopt) const;
  Tensor masked_fill(const Tensor& mask, Scalar value) const;
  Tensor eq(const Tensor& other) const;
  Tensor ne(const Tensor& other) const;
  Tensor lt(const Tensor& other) const;
  Tensor le(const Tensor& other) const;
  Tensor gt(const Tensor& other) const;
  Tensor ge(const Tensor& other) const;
  // In place. Not allowed on a leaf that requires grad while grad mode is on (as in PyTorch).
  const Tensor& add_(const Tensor& other, Scalar alpha = 1) const;
  const Tensor& add_(Scalar other) const;
  const Tensor& sub_(const Tensor& other, Scalar alpha = 1) const;
  const Tensor& mul_(const Tensor& other) const;
  const Tensor& mul_(Scalar other) const;
  const Tensor& div_(const Tensor& other) const;
  const Tensor& div_(Scalar other) const;
  const Tensor& clamp_(std::optional<Scalar> min, std::optional<Scalar> max = std::nullopt) const;
  const Tensor& masked_fill_(const Tensor& mask, Scalar value) const;

  // ---- reductions (ops/reduce.cpp) ----
  Tensor sum() const;
  Tensor sum(const Dims& dims, bool keepdim = false) const;
  Tensor mean() const;
  Tensor mean(const Dims& dims, bool keepdim = false) const;
  Tensor var(const Dims& dims, int64_t correction = 1, bool keepdim = false) const;
  Tensor std(const Dims& dims, int64_t correction = 1, bool keepdim = false) const;
  Tensor max() const;
  Tensor min() const;
  std::tuple<Tensor, Tensor> max(int64_t dim, bool keepdim = false) const;
  std::tuple<Tensor, Tensor> min(int64_t dim, bool keepdim = false) const;
  Tensor argmax() const;  // into the flattened tensor
  Tensor argmin() const;
  Tensor argmax(int64_t dim, bool keepdim = false) const;
  Tensor argmin(int64_t dim, bool keepdim = false) const;
  Tensor logsumexp(const Dims& dims, bool keepdim = false) const;
  Tensor norm(double p = 2.0) const;
  Tensor norm(double p, const Dims& dims, bool keepdim = false) const;

  // ---- linear algebra (ops/linalg.cpp) ----
  Tensor matmul(const Tensor& other) const;
  Tensor mm(const Tensor& other) const;
  Tensor bmm(const Tensor& other) const;

  // ---- nn (ops/nn_functional.cpp) ----
  Tensor softmax(int64_t dim) const;
  Tensor log_softmax(int64_t dim) const;

 private:
  std::shared_ptr<TensorImpl> impl_;
};

// Arithmetic operators, PyTorch-style.
Tensor operator+(const Tensor& a, const Tensor& b);
Tensor operator-(const Tensor& a, const Tensor& b);
Tensor operator*(const Tensor& a, const Tensor& b);
Tensor operator/(const Tensor& a, const Tensor& b);
Tensor operator+(const Tensor& a, Scalar b);
Tensor operator-(const Tensor& a, Scalar b);
Tensor operator*(const Tensor& a, Scalar b);
Tensor operator/(const Tensor& a, Scalar b);
Tensor operator+(Scalar a, const Tensor& b);
Tensor operator-(Scalar a, const Tensor& b);
Tensor operator*(Scalar a, const Tensor& b);
Tensor operator/(Scalar a, const Tensor& b);
Tensor operator-(const Tensor& a);

// Prints values like PyTorch (implemented in ops/print.cpp).
std::ostream& operator<<(std::ostream& os, const Tensor& t);

// Low-level construction used by factories and views.
Tensor make_tensor(Storage storage, const Dims& sizes, const Dims& strides, int64_t offset, DType dtype);
// Allocates an uninitialised contiguous tensor.
Tensor empty_tensor(const Dims& sizes, DType dtype, Device device);

}  // namespace luna
