// Float64 finite-difference checks of every differentiable reduction (ops/reduce.cpp) over all
// dims, chosen dims and keepdim, on contiguous and strided inputs; plus the exact gradients at
// ties, where max-type reductions are not differentiable and PyTorch's conventions apply.
#include "test_util.h"

#include <functional>
#include <limits>

using namespace luna;
using luna::testing::random_leaf;
using luna::testing::require_close;
using luna::testing::require_gradcheck;
using luna::testing::values;

namespace {

using Inputs = std::vector<Tensor>;
constexpr double kInf = std::numeric_limits<double>::infinity();

// The same [2,3,4] values as a contiguous leaf and as a permuted (non-contiguous) leaf.
std::vector<std::pair<const char*, Tensor>> leaves(uint64_t seed, double lo = -1, double hi = 1) {
  Tensor permuted = random_leaf({4, 2, 3}, seed + 1, lo, hi).detach().permute({1, 2, 0});
  permuted.requires_grad_(true);
  return {{"contiguous", random_leaf({2, 3, 4}, seed, lo, hi)}, {"permuted", permuted}};
}

const std::vector<std::vector<int64_t>> kDimSets = {{0}, {-1}, {1}, {0, 2}, {2, 0, 1}};

}  // namespace

TEST_CASE("gradcheck sum, mean, var, std, logsumexp and norm", "[gradcheck][reduce]") {
  using Op = std::function<Tensor(const Tensor&, const Dims&, bool)>;
  const std::vector<std::pair<const char*, Op>> cases = {
      {"sum", [](const Tensor& x, const Dims& d, bool k) { return x.sum(d, k); }},
      {"mean", [](const Tensor& x, const Dims& d, bool k) { return x.mean(d, k); }},
      {"var correction 1", [](const Tensor& x, const Dims& d, bool k) { return x.var(d, 1, k); }},
      {"var correction 0", [](const Tensor& x, const Dims& d, bool k) { return x.var(d, 0, k); }},
      {"std correction 1", [](const Tensor& x, const Dims& d, bool k) { return x.std(d, 1, k); }},
      {"std correction 0", [](const Tensor& x, const Dims& d, bool k) { return x.std(d, 0, k); }},
      {"logsumexp", [](const Tensor& x, const Dims& d, bool k) { return x.logsumexp(d, k); }},
      {"norm 1", [](const Tensor& x, const Dims& d, bool k) { return x.norm(1, d, k); }},
      {"norm 2", [](const Tensor& x, const Dims& d, bool k) { return x.norm(2, d, k); }},
      {"norm 3", [](const Tensor& x, const Dims& d, bool k) { return x.norm(3, d, k); }},
      {"norm 1.5", [](const Tensor& x, const Dims& d, bool k) { return x.norm(1.5, d, k); }},
      {"norm inf", [](const Tensor& x, const Dims& d, bool k) { return x.norm(kInf, d, k); }},
      {"amax", [](const Tensor& x, const Dims& d, bool k) { return amax(x, d, k); }},
      {"amin", [](const Tensor& x, const Dims& d, bool k) { return amin(x, d, k); }},
  };
  for (const auto& [name, op] : cases) {
    for (const auto& [layout, x] : leaves(1)) {
      for (const auto& dims : kDimSets) {
        for (bool keepdim : {false, true}) {
          CAPTURE(name, layout, Dims(dims), keepdim);
          require_gradcheck([&](const Inputs& in) { return op(in[0], Dims(dims), keepdim); }, {x});
        }
      }
    }
  }
}

TEST_CASE("gradcheck reductions over all elements", "[gradcheck][reduce]") {
  for (const auto& [layout, x] : leaves(11)) {
    CAPTURE(layout);
    require_gradcheck([](const Inputs& in) { return in[0].sum(); }, {x});
    require_gradcheck([](const Inputs& in) { return in[0].mean(); }, {x});
    require_gradcheck([](const Inputs& in) { return in[0].max(); }, {x});
    require_gradcheck([](const Inputs& in) { return min(in[0]); }, {x});
    require_gradcheck([](const Inputs& in) { return in[0].norm(); }, {x});
    require_gradcheck([](const Inputs& in) { return norm(in[0], 1); }, {x});
    require_gradcheck([](const Inputs& in) { return in[0].norm(kInf); }, {x});
    require_gradcheck([](const Inputs& in) { return in[0].var({}, 1); }, {x});
    // A reduction feeding another op, so the incoming gradient is not 1.
    require_gradcheck([](const Inputs& in) { return in[0].sum({1}) * in[0].mean({1}); }, {x});
  }
  // 0-dim inputs.
  require_gradcheck([](const Inputs& in) { return in[0].sum() * 3.0; }, {random_leaf({}, 12)});
  require_gradcheck([](const Inputs& in) { return in[0].logsumexp({0}); }, {random_leaf({}, 13)});
  require_gradcheck([](const Inputs& in) { return in[0].max(); }, {random_leaf({}, 14)});
}

TEST_CASE("gradcheck max and min along a dim", "[gradcheck][reduce]") {
  for (const auto& [layout, x] : leaves(21)) {
    for (int64_t dim : {0, 1, 2, -1}) {
      for (bool keepdim : {false, true}) {
        CAPTURE(layout, dim, keepdim);
        require_gradcheck([&](const Inputs& in) { return std::get<0>(in[0].max(dim, keepdim)); }, {x});
        require_gradcheck([&](const Inputs& in) { return std::get<0>(min(in[0], dim, keepdim)); }, {x});
      }
    }
  }
}

TEST_CASE("gradcheck logsumexp with large values", "[gradcheck][reduce]") {
  // Around 1000 a naive exp overflows; the shifted form must still differentiate to softmax.
  require_gradcheck([](const Inputs& in) { return in[0].logsumexp({1}); }, {random_leaf({3, 4}, 31, 995, 1005)},
                    GradcheckOptions{1e-6, 1e-5, 1e-3});
}

TEST_CASE("gradients at ties and zeros follow PyTorch", "[reduce]") {
  SECTION("max over all and amax split ties evenly") {
    Tensor x = tensor(std::vector<double>{1, 3, 3, -2});
    x.requires_grad_(true);
    x.max().backward();
    require_close(values(x.grad()), {0, 0.5, 0.5, 0}, 0, 0);
    Tensor y = tensor(std::vector<double>{5, 5, 5, 1, 0, 1}, {2, 3});
    y.requires_grad_(true);
    amin(y, {1}).sum().backward();
    require_close(values(y.grad()), {1.0 / 3, 1.0 / 3, 1.0 / 3, 0, 1, 0}, 1e-15, 0);
  }
  SECTION("max along a dim routes the gradient to the returned (first) index only") {
    Tensor x = tensor(std::vector<double>{2, 7, 7, 1, 1, 0}, {2, 3});
    x.requires_grad_(true);
    const auto [v, i] = x.max(1);
    require_close(values(i), {1, 0}, 0, 0);
    (v * tensor(std::vector<double>{10, 20})).sum().backward();
    require_close(values(x.grad()), {0, 10, 0, 20, 0, 0}, 0, 0);
  }
  SECTION("norm at zero") {
    // p = 1: the subgradient sign(0) = 0 rather than NaN.
    Tensor x = tensor(std::vector<double>{0, 3, -4});
    x.requires_grad_(true);
    x.norm(1).backward();
    require_close(values(x.grad()), {0, 1, -1}, 0, 0);
    // p = 3 with a zero element.
    Tensor y = tensor(std::vector<double>{0, 1, -2});
    y.requires_grad_(true);
    y.norm(3).backward();
    const double n = std::cbrt(9.0);
    require_close(values(y.grad()), {0, 1 / (n * n), -4 / (n * n)}, 1e-12, 0);
    // An all-zero vector has gradient 0 (not NaN), for p = 2 and p = 3.
    for (double p : {2.0, 3.0}) {
      Tensor z = zeros({3}, TensorOptions(kFloat64));
      z.requires_grad_(true);
      z.norm(p).backward();
      require_close(values(z.grad()), {0, 0, 0}, 0, 0);
    }
  }
  SECTION("sum of an int-valued product keeps gradients in the input dtype") {
    Tensor x = tensor(std::vector<double>{1, 2, 3});
    x.requires_grad_(true);
    (x * tensor(std::vector<int64_t>{4, 5, 6})).sum().backward();
    REQUIRE(x.grad().dtype() == kFloat64);
    require_close(values(x.grad()), {4, 5, 6}, 0, 0);
  }
}
