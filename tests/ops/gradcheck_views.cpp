// Float64 finite-difference checks of every view op (ops/views.cpp), on contiguous and strided
// leaves, plus exact checks that a view's gradient lands on exactly the elements it selected.
#include "test_util.h"

#include <functional>

using namespace luna;
using luna::testing::random_leaf;
using luna::testing::require_close;
using luna::testing::require_gradcheck;
using luna::testing::values;

namespace {

using Inputs = std::vector<Tensor>;

// A [2,3,4] leaf stored permuted (non-contiguous).
Tensor permuted_leaf(uint64_t seed) {
  Tensor t = random_leaf({4, 2, 3}, seed).detach().permute({1, 2, 0});
  t.requires_grad_(true);
  return t;
}

// upstream gradient 1, 2, 3, ... in `shape`.
Tensor counting(const Dims& shape) { return arange(1, shape.product() + 1).to(kFloat64).view(shape); }

}  // namespace

TEST_CASE("gradcheck every view op on contiguous and permuted inputs", "[gradcheck][views]") {
  using Op = std::function<Tensor(const Tensor&)>;
  const std::vector<std::pair<const char*, Op>> cases = {
      {"view", [](const Tensor& x) { return x.reshape({-1}).view({4, 6}); }},
      {"view split last dim", [](const Tensor& x) { return x.view({2, 3, 2, 2}); }},
      {"reshape", [](const Tensor& x) { return x.reshape({6, -1}); }},
      {"reshape to 0-dim sum", [](const Tensor& x) { return x.narrow(0, 0, 1).narrow(1, 0, 1).narrow(2, 1, 1).reshape({}); }},
      {"permute", [](const Tensor& x) { return x.permute({2, 0, 1}); }},
      {"transpose", [](const Tensor& x) { return x.transpose(0, -1); }},
      {"t", [](const Tensor& x) { return x.select(1, 1).t(); }},
      {"narrow", [](const Tensor& x) { return x.narrow(2, 1, 2); }},
      {"narrow negative start", [](const Tensor& x) { return x.narrow(1, -2, 2); }},
      {"slice with step", [](const Tensor& x) { return x.slice(2, 0, 4, 2); }},
      {"slice negative bounds", [](const Tensor& x) { return x.slice(-1, -3, -1); }},
      {"slice step 2 of dim 1", [](const Tensor& x) { return x.slice(1, 1, 3, 2); }},
      {"select", [](const Tensor& x) { return x.select(2, 3); }},
      {"select negative index", [](const Tensor& x) { return x.select(-2, -1); }},
      {"expand", [](const Tensor& x) { return x.narrow(2, 0, 1).expand({5, 2, 3, 3}); }},
      {"expand_as", [](const Tensor& x) { return x.select(0, 0).expand_as(zeros({2, 3, 4})); }},
      {"squeeze", [](const Tensor& x) { return x.narrow(1, 1, 1).squeeze(); }},
      {"squeeze dim", [](const Tensor& x) { return x.narrow(1, 1, 1).squeeze(1); }},
      {"unsqueeze", [](const Tensor& x) { return x.unsqueeze(1).unsqueeze(-1); }},
      {"flatten", [](const Tensor& x) { return x.flatten(); }},
      {"flatten range", [](const Tensor& x) { return x.flatten(1, 2); }},
      {"unflatten", [](const Tensor& x) { return x.unflatten(2, {2, 2}); }},
      // On an already-contiguous view contiguous() returns that view itself.
      {"contiguous", [](const Tensor& x) { return x.narrow(0, 0, 2).contiguous(); }},
      {"contiguous of a transpose", [](const Tensor& x) { return x.transpose(0, 1).contiguous(); }},
      {"chain", [](const Tensor& x) { return x.select(0, 1).t().slice(0, 1, 4, 2).unsqueeze(0).expand({2, 2, 3}).flatten(0, 1); }},
  };
  for (const auto& [name, op] : cases) {
    CAPTURE(name);
    require_gradcheck([&](const Inputs& in) { return op(in[0]); }, {random_leaf({2, 3, 4}, 1)});
    require_gradcheck([&](const Inputs& in) { return op(in[0]); }, {permuted_leaf(2)});
    // Through an elementwise op, so the view's incoming gradient is itself a computed tensor.
    require_gradcheck([&](const Inputs& in) { return op(in[0] * in[0]); }, {permuted_leaf(3)});
  }
}

TEST_CASE("view gradients land on the selected elements", "[views]") {
  Tensor x = zeros({4, 5}, TensorOptions(kFloat64));
  x.requires_grad_(true);
  auto grad_of = [&](const std::function<Tensor(const Tensor&)>& op) {
    x.set_grad(Tensor());
    const Tensor y = op(x);
    y.backward(counting(y.sizes()));
    return values(x.grad());
  };
  // Columns 1 and 3.
  require_close(grad_of([](const Tensor& t) { return t.slice(1, 1, 5, 2); }),
                {0, 1, 0, 2, 0, 0, 3, 0, 4, 0, 0, 5, 0, 6, 0, 0, 7, 0, 8, 0}, 0, 0);
  // The last row.
  require_close(grad_of([](const Tensor& t) { return t.select(0, -1); }),
                {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4, 5}, 0, 0);
  // Column -2 (= 3).
  require_close(grad_of([](const Tensor& t) { return t.select(1, -2); }),
                {0, 0, 0, 1, 0, 0, 0, 0, 2, 0, 0, 0, 0, 3, 0, 0, 0, 0, 4, 0}, 0, 0);
  // Transposed: gradient element (j, i) goes to x(i, j).
  std::vector<double> want(20);
  for (int i = 0; i < 4; ++i)
    for (int j = 0; j < 5; ++j) want[size_t(i * 5 + j)] = j * 4 + i + 1;
  require_close(grad_of([](const Tensor& t) { return t.t(); }), want, 0, 0);
  // Expanding a row sums the gradient over the new dim.
  require_close(grad_of([](const Tensor& t) { return t.narrow(0, 1, 1).expand({3, 5}); }),
                {0, 0, 0, 0, 0, 18, 21, 24, 27, 30, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, 0, 0);
  // Overlapping views accumulate.
  require_close(grad_of([](const Tensor& t) { return t.narrow(0, 0, 3) + t.narrow(0, 1, 3); }),
                {1, 2, 3, 4, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 11, 12, 13, 14, 15}, 0, 0);
  // Rows 0 and 3 of a negative-bound slice with step.
  require_close(grad_of([](const Tensor& t) { return t.slice(0, -4, 4, 3).slice(1, -1, 5); }),
                {0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2}, 0, 0);
}
