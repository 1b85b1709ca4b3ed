// Tensor layout queries, autograd metadata accessors and low-level construction.
#include <luna/core/tensor.h>

#include <cstring>
#include <sstream>

namespace luna {

Tensor make_tensor(Storage storage, const Dims& sizes, const Dims& strides, int64_t offset, DType dtype) {
  LUNA_CHECK(sizes.size() == strides.size(), "make_tensor: sizes ", sizes, " and strides ", strides,
             " have different lengths");
  return Tensor(std::make_shared<TensorImpl>(std::move(storage), sizes, strides, offset, dtype));
}

Tensor empty_tensor(const Dims& sizes, DType dtype, Device device) {
  for (int i = 0; i < sizes.size(); ++i)
    LUNA_CHECK(sizes[i] >= 0, "empty: negative dimension ", sizes[i], " in shape ", sizes);
  const size_t nbytes = size_t(sizes.product()) * element_size(dtype);
  auto storage = std::make_shared<StorageImpl>(nbytes, device, &allocator_for(device));
  return make_tensor(std::move(storage), sizes, contiguous_strides(sizes), 0, dtype);
}

int64_t Tensor::size(int64_t d) const { return sizes()[wrap_dim(d, dim(), "size")]; }
int64_t Tensor::stride(int64_t d) const { return strides()[wrap_dim(d, dim(), "stride")]; }

bool Tensor::is_contiguous() const {
  if (numel() == 0) return true;  // as in PyTorch: an empty tensor has no layout to violate
  int64_t expected = 1;
  for (int i = dim() - 1; i >= 0; --i) {
    if (sizes()[i] == 1) continue;
    if (strides()[i] != expected) return false;
    expected *= sizes()[i];
  }
  return true;
}

void* Tensor::data_ptr() const {
  LUNA_CHECK(defined(), "data_ptr: tensor is undefined");
  return static_cast<char*>(impl()->storage()->data()) + impl()->offset() * int64_t(element_size());
}

std::string Tensor::str() const {
  if (!defined()) return "Tensor(undefined)";
  std::ostringstream os;
  os << "Tensor" << sizes() << " " << dtype() << " " << device();
  return os.str();
}

Tensor& Tensor::requires_grad_(bool requires_grad) {
  LUNA_CHECK(!requires_grad || luna::is_floating_point(dtype()), "requires_grad_: only floating-point tensors can require grad, got ", dtype());
  LUNA_CHECK(is_leaf() || requires_grad, "requires_grad_: cannot set requires_grad=false on a non-leaf tensor; use detach()");
  impl()->autograd().requires_grad = requires_grad;
  return *this;
}

Tensor Tensor::grad() const {
  const auto& g = impl()->autograd().grad;
  return g ? Tensor(g) : Tensor();
}

void Tensor::set_grad(const Tensor& grad) const {
  if (grad.defined()) {
    LUNA_CHECK(grad.sizes() == sizes(), "set_grad: gradient shape ", grad.sizes(), " does not match tensor shape ", sizes());
  }
  impl()->autograd().grad = grad.impl_ptr();
}

Tensor Tensor::detach() const {
  return make_tensor(impl()->storage(), sizes(), strides(), storage_offset(), dtype());
}

void Tensor::set_data(const Tensor& data) const {
  LUNA_CHECK(data.defined(), "set_data: new data is undefined");
  impl()->set_data(data.impl()->storage(), data.sizes(), data.strides(), data.storage_offset(), data.dtype());
}

namespace {
template <class T>
T read_as(const Tensor& cpu_tensor) {
  const void* p = cpu_tensor.data_ptr();
  switch (cpu_tensor.dtype()) {
    case kFloat32: return T(*static_cast<const float*>(p));
    case kFloat64: return T(*static_cast<const double*>(p));
    case kFloat16: return T(float(*static_cast<const Half*>(p)));
    case kBFloat16: return T(float(*static_cast<const BFloat16*>(p)));
    case kInt64: return T(*static_cast<const int64_t*>(p));
    case kInt32: return T(*static_cast<const int32_t*>(p));
    case kInt16: return T(*static_cast<const int16_t*>(p));
    case kInt8: return T(*static_cast<const int8_t*>(p));
    case kUInt8: return T(*static_cast<const uint8_t*>(p));
    case kBool: return T(*static_cast<const bool*>(p));
  }
  LUNA_FAIL("item: unknown dtype");
}
}  // namespace

template <class T>
T Tensor::item() const {
  LUNA_CHECK(defined(), "item: tensor is undefined");
  LUNA_CHECK(numel() == 1, "item: a Tensor with ", numel(), " elements (shape ", sizes(),
             ") cannot be converted to a scalar");
  return read_as<T>(device().is_cpu() ? *this : to(Device::cpu()));
}

template float Tensor::item<float>() const;
template double Tensor::item<double>() const;
template int64_t Tensor::item<int64_t>() const;
template int32_t Tensor::item<int32_t>() const;
template uint8_t Tensor::item<uint8_t>() const;
template bool Tensor::item<bool>() const;

}  // namespace luna
