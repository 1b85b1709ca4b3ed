// Helpers shared by the tests: element access through plain loops (the reference side never
// uses luna ops), closeness checks with named tolerances, and gradcheck wrappers.
#pragma once
#include <catch2/catch.hpp>

#include <cmath>
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

}  // namespace luna::testing
