// Factory implementations: allocate through the device's allocator, fill through its backend.
#include <luna/ops/factories.h>
#include <luna/backends/backend.h>
#include <luna/ops/autograd_record.h>

#include <algorithm>
#include <cmath>
#include <cstring>

namespace luna {
namespace {
Tensor finish(Tensor t, const TensorOptions& options) {
  if (options.requires_grad_) t.requires_grad_(true);
  return t;
}

void fill_random(const Tensor& t, RandomKind kind, double a, double b, Generator* generator) {
  Generator& gen = generator ? *generator : default_generator();
  const GeneratorState claimed = gen.reserve(random_blocks_needed(kind, t.dtype(), t.numel()));
  if (t.is_contiguous()) {
    backend_for(t).random(t, kind, a, b, claimed);
  } else {
    Tensor tmp = empty_tensor(t.sizes(), t.dtype(), t.device());
    backend_for(t).random(tmp, kind, a, b, claimed);
    backend_for(t).copy(tmp, t);
  }
  t.bump_version();
}
}  // namespace

Tensor empty(const Dims& size, TensorOptions options) {
  return finish(empty_tensor(size, options.dtype_, options.device_), options);
}

Tensor zeros(const Dims& size, TensorOptions options) { return full(size, 0, options); }
Tensor ones(const Dims& size, TensorOptions options) { return full(size, 1, options); }

Tensor full(const Dims& size, Scalar value, TensorOptions options) {
  Tensor t = empty_tensor(size, options.dtype_, options.device_);
  backend_for(t).fill(t, value);
  return finish(t, options);
}

Tensor eye(int64_t n, TensorOptions options) { return eye(n, n, options); }
Tensor eye(int64_t n, int64_t m, TensorOptions options) {
  LUNA_CHECK(n >= 0 && m >= 0, "eye: sizes must be non-negative, got ", n, " x ", m);
  Tensor t = zeros({n, m}, TensorOptions(options.dtype_).device(options.device_));
  const int64_t k = std::min(n, m);
  if (k > 0) t.as_strided({k}, {m + 1}, 0).fill_(1);
  return finish(t, options);
}

Tensor arange(Scalar end, std::optional<TensorOptions> options) { return arange(0, end, 1, options); }

Tensor arange(Scalar start, Scalar end, Scalar step, std::optional<TensorOptions> options) {
  const double s = start.to_double(), e = end.to_double(), st = step.to_double();
  LUNA_CHECK(st != 0, "arange: step must be nonzero");
  LUNA_CHECK((st > 0 && e >= s) || (st < 0 && e <= s), "arange: upper bound ", e, " and lower bound ", s,
             " are inconsistent with step sign ", st);
  const int64_t n = int64_t(std::ceil((e - s) / st));
  TensorOptions opts = options.value_or(
      TensorOptions(start.is_integral() && end.is_integral() && step.is_integral() ? kInt64 : kFloat32));
  Tensor t = empty_tensor({n}, opts.dtype_, opts.device_);
  backend_for(t).arange(t, s, st);
  return finish(t, opts);
}

Tensor linspace(double start, double end, int64_t steps, TensorOptions options) {
  LUNA_CHECK(steps >= 0, "linspace: number of steps must be non-negative, got ", steps);
  // Computed in double on the host like PyTorch: the first half counts up from start and the
  // second half back from end, so both endpoints are exact (start + (steps-1)*step may miss end).
  Tensor host = empty_tensor({steps}, kFloat64, Device::cpu());
  double* p = host.data_ptr<double>();
  const double step = steps > 1 ? (end - start) / double(steps - 1) : 0.0;
  const int64_t halfway = steps / 2;
  for (int64_t i = 0; i < steps; ++i)
    p[i] = i < halfway ? start + step * double(i) : end - step * double(steps - i - 1);
  if (steps == 1) p[0] = start;
  return finish(host.to(options.device_, options.dtype_), options);
}

Tensor rand(const Dims& size, TensorOptions options, Generator* generator) {
  LUNA_CHECK(is_floating_point(options.dtype_), "rand: dtype must be floating point, got ", options.dtype_);
  Tensor t = empty_tensor(size, options.dtype_, options.device_);
  fill_random(t, RandomKind::Uniform, 0.0, 1.0, generator);
  return finish(t, options);
}

Tensor randn(const Dims& size, TensorOptions options, Generator* generator) {
  LUNA_CHECK(is_floating_point(options.dtype_), "randn: dtype must be floating point, got ", options.dtype_);
  Tensor t = empty_tensor(size, options.dtype_, options.device_);
  fill_random(t, RandomKind::Normal, 0.0, 1.0, generator);
  return finish(t, options);
}

Tensor randint(int64_t low, int64_t high, const Dims& size, TensorOptions options, Generator* generator) {
  LUNA_CHECK(high > low, "randint: high (", high, ") must be greater than low (", low, ")");
  LUNA_CHECK(high - low <= (int64_t(1) << 32), "randint: range [", low, ", ", high, ") exceeds 2^32 values");
  Tensor t = empty_tensor(size, options.dtype_, options.device_);
  fill_random(t, RandomKind::Int, double(low), double(high), generator);
  return finish(t, options);
}

Tensor randperm(int64_t n, Generator* generator) {
  LUNA_CHECK(n >= 0, "randperm: n must be non-negative, got ", n);
  // Fisher-Yates driven by one block of Philox words per swap, so it is seed-reproducible.
  Generator& gen = generator ? *generator : default_generator();
  const GeneratorState claimed = gen.reserve(uint64_t(std::max<int64_t>(n, 1)));
  Tensor t = empty_tensor({n}, kInt64, Device::cpu());
  int64_t* p = t.data_ptr<int64_t>();
  for (int64_t i = 0; i < n; ++i) p[i] = i;
  for (int64_t i = n - 1; i > 0; --i) {
    const PhiloxBlock r = philox4x32_10(claimed.seed, claimed.offset + uint64_t(i));
    const uint64_t bits = (uint64_t(r[1]) << 32) | r[0];
    std::swap(p[i], p[int64_t(bits % uint64_t(i + 1))]);
  }
  return t;
}

Tensor empty_like(const Tensor& t) { return empty_tensor(t.sizes(), t.dtype(), t.device()); }
Tensor zeros_like(const Tensor& t) { return zeros(t.sizes(), TensorOptions(t.dtype()).device(t.device())); }
Tensor ones_like(const Tensor& t) { return ones(t.sizes(), TensorOptions(t.dtype()).device(t.device())); }
Tensor full_like(const Tensor& t, Scalar value) {
  return full(t.sizes(), value, TensorOptions(t.dtype()).device(t.device()));
}
Tensor rand_like(const Tensor& t, Generator* g) { return rand(t.sizes(), TensorOptions(t.dtype()).device(t.device()), g); }
Tensor randn_like(const Tensor& t, Generator* g) {
  return randn(t.sizes(), TensorOptions(t.dtype()).device(t.device()), g);
}

template <class T>
Tensor tensor(const std::vector<T>& values, const Dims& size, TensorOptions options) {
  const Dims shape = size.empty() ? Dims{int64_t(values.size())} : size;
  LUNA_CHECK(shape.product() == int64_t(values.size()), "tensor: ", values.size(), " values do not fill shape ",
             shape, " (", shape.product(), " elements)");
  Tensor host = empty_tensor(shape, dtype_of<T>::value, Device::cpu());
  if (!values.empty()) {
    if constexpr (std::is_same_v<T, bool>) {
      bool* p = host.data_ptr<bool>();
      for (size_t i = 0; i < values.size(); ++i) p[i] = values[i];
    } else {
      std::memcpy(host.data_ptr(), values.data(), values.size() * sizeof(T));
    }
  }
  Tensor t = host.to(options.device_, options.dtype_);
  return finish(t, options);
}
template Tensor tensor<float>(const std::vector<float>&, const Dims&, TensorOptions);
template Tensor tensor<double>(const std::vector<double>&, const Dims&, TensorOptions);
template Tensor tensor<int64_t>(const std::vector<int64_t>&, const Dims&, TensorOptions);
template Tensor tensor<int32_t>(const std::vector<int32_t>&, const Dims&, TensorOptions);
template Tensor tensor<uint8_t>(const std::vector<uint8_t>&, const Dims&, TensorOptions);
template Tensor tensor<bool>(const std::vector<bool>&, const Dims&, TensorOptions);

Tensor scalar_tensor(Scalar value, TensorOptions options) { return full({}, value, options); }

Tensor from_blob(void* data, const Dims& size, TensorOptions options, std::function<void(void*)> deleter) {
  LUNA_CHECK(data != nullptr || size.product() == 0, "from_blob: null data pointer for shape ", size);
  const size_t nbytes = size_t(size.product()) * element_size(options.dtype_);
  auto storage = std::make_shared<StorageImpl>(data, nbytes, options.device_, std::move(deleter));
  return finish(make_tensor(std::move(storage), size, contiguous_strides(size), 0, options.dtype_), options);
}

const Tensor& uniform_(const Tensor& t, double low, double high, Generator* generator) {
  ops::check_inplace("uniform_", t);
  fill_random(t, RandomKind::Uniform, low, high, generator);
  return t;
}

const Tensor& normal_(const Tensor& t, double mean, double std, Generator* generator) {
  ops::check_inplace("normal_", t);
  fill_random(t, RandomKind::Normal, mean, std, generator);
  return t;
}

}  // namespace luna
