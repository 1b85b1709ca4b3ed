// Tensor factories with PyTorch's names and defaults (float32 on the CPU unless told otherwise).
#pragma once
#include <functional>
#include <vector>

#include <luna/core/generator.h>
#include <luna/core/tensor.h>

namespace luna {

Tensor empty(const Dims& size, TensorOptions options = {});
Tensor zeros(const Dims& size, TensorOptions options = {});
Tensor ones(const Dims& size, TensorOptions options = {});
Tensor full(const Dims& size, Scalar value, TensorOptions options = {});
Tensor eye(int64_t n, TensorOptions options = {});
Tensor eye(int64_t n, int64_t m, TensorOptions options = {});
// arange(end) / arange(start, end, step): int64 when every bound is integral, like PyTorch.
Tensor arange(Scalar end, std::optional<TensorOptions> options = std::nullopt);
Tensor arange(Scalar start, Scalar end, Scalar step = 1, std::optional<TensorOptions> options = std::nullopt);
Tensor linspace(double start, double end, int64_t steps, TensorOptions options = {});

// Random factories draw from `generator` (the default one if null).
Tensor rand(const Dims& size, TensorOptions options = {}, Generator* generator = nullptr);
Tensor randn(const Dims& size, TensorOptions options = {}, Generator* generator = nullptr);
// Integers uniform in [low, high); int64 by default.
Tensor randint(int64_t low, int64_t high, const Dims& size, TensorOptions options = TensorOptions(kInt64),
               Generator* generator = nullptr);
Tensor randperm(int64_t n, Generator* generator = nullptr);

Tensor empty_like(const Tensor& t);
Tensor zeros_like(const Tensor& t);
Tensor ones_like(const Tensor& t);
Tensor full_like(const Tensor& t, Scalar value);
Tensor rand_like(const Tensor& t, Generator* generator = nullptr);
Tensor randn_like(const Tensor& t, Generator* generator = nullptr);

// A tensor holding a copy of `values`, shaped `size` (1-D when size is empty).
template <class T>
Tensor tensor(const std::vector<T>& values, const Dims& size = {}, TensorOptions options = TensorOptions(dtype_of<T>::value));
inline Tensor tensor(std::initializer_list<float> values, const Dims& size = {}) {
  return tensor(std::vector<float>(values), size);
}
// A 0-dim tensor.
Tensor scalar_tensor(Scalar value, TensorOptions options = {});
// Wraps existing memory without copying; `deleter` (optional) runs when the last view goes away.
Tensor from_blob(void* data, const Dims& size, TensorOptions options = {},
                 std::function<void(void*)> deleter = nullptr);

// Fills with values drawn in place (used by nn::init).
const Tensor& uniform_(const Tensor& t, double low = 0.0, double high = 1.0, Generator* generator = nullptr);
const Tensor& normal_(const Tensor& t, double mean = 0.0, double std = 1.0, Generator* generator = nullptr);

}  // namespace luna
