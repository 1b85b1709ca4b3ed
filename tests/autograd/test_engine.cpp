// The backward engine: dependency order on diamonds and shared leaves, accumulation, broadcast
// reduction, retain_graph, very deep graphs, grad mode, in-place checks via the version counter,
// and anomaly mode.
#include "test_util.h"

#include <functional>

#include <luna/ops/autograd_record.h>

using namespace luna;
using luna::testing::require_close;
using luna::testing::values;

namespace {
Tensor leaf(std::vector<double> v, const Dims& shape = {}) {
  Tensor t = tensor(v, shape);
  t.requires_grad_(true);
  return t;
}
}  // namespace

TEST_CASE("chain rule through a diamond", "[autograd]") {
  // y = 3x; z = y*y + y  =>  dz/dx = (2y + 1) * 3
  Tensor x = leaf({1.0, -2.0});
  Tensor y = x * 3.0;
  Tensor z = (y * y + y).sum();
  z.backward();
  require_close(x.grad(), {(2 * 3.0 + 1) * 3, (2 * -6.0 + 1) * 3}, 1e-12, 0);
}

TEST_CASE("a leaf used by several ops gets the sum of their gradients", "[autograd]") {
  Tensor x = leaf({2.0});
  Tensor z = (x * x * x + x.exp() + x).sum();  // 3x^2 + e^x + 1
  z.backward();
  require_close(x.grad(), {12.0 + std::exp(2.0) + 1.0}, 1e-12, 0);
}

TEST_CASE("gradients accumulate across backward calls and stay private per leaf", "[autograd]") {
  Tensor a = leaf({1.0, 2.0}), b = leaf({3.0, 4.0});
  (a + b).sum().backward();
  (a * 2.0).sum().backward();
  require_close(a.grad(), {3.0, 3.0}, 0, 0);
  require_close(b.grad(), {1.0, 1.0}, 0, 0);
  a.grad().add_(100.0);  // must not leak into b's gradient
  require_close(b.grad(), {1.0, 1.0}, 0, 0);
}

TEST_CASE("broadcast inputs get gradients reduced to their own shape", "[autograd]") {
  Tensor a = leaf({1.0, 2.0, 3.0}, {3, 1});
  Tensor b = leaf({10.0, 20.0, 30.0, 40.0}, {4});
  (a * b).sum().backward();
  REQUIRE(a.grad().sizes() == Dims{3, 1});
  REQUIRE(b.grad().sizes() == Dims{4});
  require_close(a.grad(), {100.0, 100.0, 100.0}, 0, 0);
  require_close(b.grad(), {6.0, 6.0, 6.0, 6.0}, 0, 0);
  Tensor x = leaf({1.0, 2.0, 3.0});
  x.expand({4, 3}).sum().backward();
  REQUIRE(x.grad().is_contiguous());
  require_close(x.grad(), {4.0, 4.0, 4.0}, 0, 0);
}

TEST_CASE("a second backward needs retain_graph", "[autograd]") {
  Tensor x = leaf({2.0});
  Tensor y = (x * x).sum();
  y.backward(Tensor(), /*retain_graph=*/true);
  y.backward();
  require_close(x.grad(), {8.0}, 0, 0);
  REQUIRE_THROWS_WITH(y.backward(), Catch::Contains("backward through the graph a second time"));
}

TEST_CASE("a 100k-node chain runs and frees without recursion", "[autograd]") {
  Tensor x = leaf({1.0});
  Tensor y = x;
  for (int i = 0; i < 100000; ++i) y = y * 1.0 + 0.0;
  y.sum().backward();
  require_close(x.grad(), {1.0}, 0, 0);
  y = Tensor();  // tearing down the chain must not overflow the stack either
  SUCCEED("no stack overflow");
}

TEST_CASE("backward validates its root and gradient", "[autograd]") {
  Tensor x = leaf({1.0, 2.0});
  REQUIRE_THROWS_WITH((x * 2.0).backward(), Catch::Contains("only for single-element outputs, but the output has shape [2]"));
  REQUIRE_THROWS_WITH((x * 2.0).backward(ones({3}, kFloat64)), Catch::Contains("gradient shape [3] does not match the output shape [2]"));
  REQUIRE_THROWS_WITH(zeros({1}).backward(), Catch::Contains("does not require grad"));
  (x * 2.0).backward(tensor(std::vector<double>{1.0, -1.0}));
  require_close(x.grad(), {2.0, -2.0}, 0, 0);
}

TEST_CASE("NoGradGuard, detach and requires_grad_", "[autograd]") {
  Tensor x = leaf({1.0});
  {
    NoGradGuard no_grad;
    Tensor y = x * 2.0;
    REQUIRE_FALSE(y.requires_grad());
    REQUIRE(y.grad_fn() == nullptr);
    {
      EnableGradGuard enable;
      REQUIRE((x * 2.0).requires_grad());
    }
  }
  Tensor d = (x * 2.0).detach();
  REQUIRE_FALSE(d.requires_grad());
  REQUIRE(d.is_leaf());
  Tensor y = x * 3.0;
  REQUIRE_FALSE(y.is_leaf());
  REQUIRE_THROWS_WITH(y.requires_grad_(false), Catch::Contains("non-leaf"));
  // Detached data shares storage and version with the original.
  Tensor base = ones({2});
  Tensor alias = base.detach();
  alias.add_(1.0);
  require_close(base, {2.0, 2.0}, 0, 0);
}

TEST_CASE("a saved tensor modified in place is reported at backward", "[autograd]") {
  Tensor w = leaf({1.0, 2.0});
  Tensor z = (w * w).sum();  // saves w
  {
    NoGradGuard no_grad;
    w.mul_(2.0);  // an optimizer-style update between forward and backward
  }
  REQUIRE_THROWS_WITH(z.backward(), Catch::Contains("modified by an in-place operation (version 0 when saved, now 1)"));

  Tensor x = leaf({0.5});
  Tensor s = x.sigmoid();  // saves its output, which the in-place add then overwrites
  s.add_(1.0);
  REQUIRE_THROWS_WITH(s.sum().backward(), Catch::Contains("saved for backward by 'sigmoid' was modified"));
}

TEST_CASE("in-place ops on leaves and on non-leaf tensors", "[autograd]") {
  Tensor w = leaf({1.0});
  REQUIRE_THROWS_WITH(w.add_(1.0), Catch::Contains("leaf tensor that requires grad"));
  // On a non-leaf, the in-place op takes over the history: y = 2x; y += x  =>  dy/dx = 3.
  Tensor x = leaf({1.0, 2.0});
  Tensor y = x * 2.0;
  y.add_(x);
  y.sum().backward();
  require_close(x.grad(), {3.0, 3.0}, 0, 0);
  // An op whose backward needs the overwritten value fails loudly instead of returning garbage.
  Tensor a = leaf({3.0});
  Tensor b = a.exp();
  Tensor c = b * b;  // saves b
  b.mul_(2.0);
  REQUIRE_THROWS_WITH(c.backward(), Catch::Contains("modified by an in-place operation"));
}

TEST_CASE("autograd::grad returns gradients without touching .grad", "[autograd]") {
  Tensor x = leaf({1.0, 2.0});
  Tensor y = x * x;
  Tensor z = (y * 3.0).sum();
  const std::vector<Tensor> g = autograd::grad(z, {x, y});
  require_close(g[0], {6.0, 12.0}, 0, 0);
  require_close(g[1], {3.0, 3.0}, 0, 0);
  REQUIRE_FALSE(x.grad().defined());
}

TEST_CASE("anomaly mode names the op that produced a non-finite value", "[autograd]") {
  autograd::DetectAnomalyGuard anomaly;
  Tensor x = leaf({-1.0});
  REQUIRE_THROWS_WITH(x.log(), Catch::Contains("anomaly: forward of 'log' produced a non-finite value"));
  Tensor zero = leaf({0.0});
  Tensor r = zero.sqrt();  // finite forward, infinite derivative at 0
  REQUIRE_THROWS_WITH(r.sum().backward(), Catch::Contains("anomaly: backward of 'sqrt'"));
}

TEST_CASE("without anomaly mode non-finite values pass through", "[autograd]") {
  REQUIRE_FALSE(autograd::is_anomaly_enabled());
  Tensor x = leaf({-1.0});
  REQUIRE(std::isnan(values(x.log())[0]));
}

TEST_CASE("a leaf can take part in a new graph while an old graph is still alive", "[autograd]") {
  Tensor x = leaf({1.0, 2.0});
  Tensor a = x * 2.0;
  a.sum().backward();
  Tensor b = x * 3.0;  // `a` (and its graph) still alive
  b.sum().backward();
  require_close(x.grad(), {5.0, 5.0}, 0, 0);
}

TEST_CASE("autograd::grad of a tensor with respect to itself and to fresh leaves", "[autograd]") {
  Tensor x = leaf({1.0, 2.0});
  const std::vector<Tensor> self = autograd::grad(x, {x}, ones({2}, kFloat64));
  require_close(self[0], {1.0, 1.0}, 0, 0);
  Tensor y = leaf({3.0});
  const std::vector<Tensor> g = autograd::grad((y * y).sum(), {y});
  require_close(g[0], {6.0}, 0, 0);
}

namespace {
// An identity op whose backward hands back `make(g)` and notes where that gradient's data lives.
Tensor probe(const Tensor& x, std::function<Tensor(const Tensor&)> make, const void** handed) {
  const Tensor out = [&] {
    NoGradGuard no_grad;
    return x.clone();
  }();
  return ops::record("probe", out, {x}, {}, [make, handed](const Tensor& g, const ops::Saved&) {
    Tensor grad = make(g);
    *handed = grad.data_ptr();
    return ops::Grads{grad};
  });
}
}  // namespace

TEST_CASE("gradient sums go into the first gradient in place only when nothing else can see it", "[autograd]") {
  // Two branches meet at x; whichever gradient arrives first is the buffer the other is added to.
  auto fresh = [](const Tensor& g) { return g * 2.0; };
  SECTION("two fresh gradients: the sum is taken in place, and .grad keeps that buffer") {
    const Tensor x = leaf(std::vector<double>(1000, 1.0), {1000});
    const void *first = nullptr, *second = nullptr;
    (probe(x, fresh, &first).sum() + probe(x, [](const Tensor& g) { return g * 3.0; }, &second).sum()).backward();
    require_close(x.grad(), std::vector<double>(1000, 5.0), 0, 0);
    const void* grad_data = x.grad().data_ptr();
    REQUIRE((grad_data == first || grad_data == second));
  }
  SECTION("a gradient something else holds is never written into, whichever branch arrives first") {
    for (bool held_first : {true, false}) {
      CAPTURE(held_first);
      const Tensor x = leaf(std::vector<double>(1000, 1.0), {1000});
      const Tensor held = full({1000}, 7.0, TensorOptions(kFloat64));
      const void *held_ptr = nullptr, *fresh_ptr = nullptr;
      const Tensor a = probe(x, [held](const Tensor&) { return held; }, &held_ptr).sum();
      const Tensor b = probe(x, fresh, &fresh_ptr).sum();
      (held_first ? a + b : b + a).backward();
      require_close(held, std::vector<double>(1000, 7.0), 0, 0);
      require_close(x.grad(), std::vector<double>(1000, 9.0), 0, 0);
      REQUIRE(x.grad().data_ptr() != held_ptr);
    }
  }
  SECTION("x + x: the same gradient arrives twice, and the sum is still right") {
    const Tensor x = leaf({1.0, 2.0}, {2});
    (x + x).sum().backward();
    require_close(x.grad(), {2.0, 2.0}, 0, 0);
  }
}
