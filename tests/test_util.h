// Helpers shared by the tests: element access through plain loops (the reference side never
// uses luna ops), closeness checks with named tolerances, and gradcheck wrappers.
#pragma once
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include <luna/luna.h>

namespace luna::testing {

// All values as doubles in row-major order, read through strides (any dtype, any layout).
inline std::vector<double> values(const Tensor& t) {
  const Tensor c = t.detach().to(Device::cpu(), kFloat64).contiguous();
  const double* p = c.data_ptr<double>();
  return std::vector<double>(p, p + c.numel());
}

// Max |a - b| / (atol + rtol |b|) <= 1 elementwise, with a message naming the worst element.
inline void require_close(const std::vector<double>& got, const std::vector<double>& want, double rtol = 1e-5,
                          double atol = 1e-6, const std::string& what = "") {
  REQUIRE(got.size() == want.size());
  size_t worst = 0;
  double worst_ratio = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    const bool both_nan = std::isnan(got[i]) && std::isnan(want[i]);
    const bool same_inf = std::isinf(got[i]) && got[i] == want[i];
    if (both_nan || same_inf || got[i] == want[i]) continue;
    const double ratio = std::abs(got[i] - want[i]) / (atol + rtol * std::abs(want[i]));
    if (!(ratio <= worst_ratio)) {
      worst_ratio = ratio;
      worst = i;
    }
  }
  INFO(what << " worst element " << worst << ": got " << (got.empty() ? 0 : got[worst]) << ", want "
            << (want.empty() ? 0 : want[worst]) << " (error ratio " << worst_ratio << ")");
  REQUIRE(worst_ratio <= 1.0);
}

inline void require_close(const Tensor& got, const Tensor& want, double rtol = 1e-5, double atol = 1e-6) {
  REQUIRE(got.sizes() == want.sizes());
  require_close(values(got), values(want), rtol, atol);
}

inline void require_close(const Tensor& got, const std::vector<double>& want, double rtol = 1e-5, double atol = 1e-6) {
  require_close(values(got), want, rtol, atol);
}

// f64 leaf with values uniform in [lo, hi), reproducible from seed.
inline Tensor random_leaf(const Dims& shape, uint64_t seed, double lo = -1.0, double hi = 1.0) {
  Generator gen(seed);
  Tensor t = rand(shape, TensorOptions(kFloat64), &gen) * (hi - lo) + lo;
  t = t.detach();
  t.requires_grad_(true);
  return t;
}

// Runs gradcheck and REQUIREs success, printing the report on failure.
inline void require_gradcheck(const std::function<Tensor(const std::vector<Tensor>&)>& fn,
                              const std::vector<Tensor>& inputs, GradcheckOptions options = {}) {
  const GradcheckResult result = gradcheck(fn, inputs, options);
  INFO(result.report);
  REQUIRE(result.ok);
}

// The raw bits of every element (as float32 or float64), NaN payloads and signed zeros included.
inline std::vector<uint64_t> bits(const Tensor& t) {
  const Tensor c = t.detach().contiguous();
  std::vector<uint64_t> out(size_t(c.numel()));
  for (size_t i = 0; i < out.size(); ++i) {
    if (c.dtype() == kFloat32) {
      uint32_t word;
      std::memcpy(&word, c.data_ptr<float>() + i, sizeof word);
      out[i] = word;
    } else {
      std::memcpy(&out[i], c.data_ptr<double>() + i, sizeof(uint64_t));
    }
  }
  return out;
}

// Normal values with zeros of both signs, infinities, NaN, huge and tiny values planted.
inline Tensor awkward_input(const Dims& shape, DType dtype, uint64_t seed) {
  Generator gen(seed);
  Tensor t = (randn(shape, TensorOptions(kFloat64), &gen) * 3.0).to(dtype).contiguous();
  const double planted[] = {0.0, -0.0, std::numeric_limits<double>::infinity(),
                            -std::numeric_limits<double>::infinity(), std::numeric_limits<double>::quiet_NaN(),
                            1e30, -1e30, 1e-30, -9.5, 9.5};
  for (size_t k = 0; k < std::size(planted); ++k) {
    const int64_t at = (int64_t(k) * 977 + 13) % t.numel();
    if (dtype == kFloat32) t.data_ptr<float>()[at] = float(planted[k]);
    else t.data_ptr<double>()[at] = planted[k];
  }
  return t;
}

}  // namespace luna::testing
