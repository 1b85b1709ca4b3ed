// Accuracy of the float32 fast paths of the CPU erf and gelu kernels (backends/cpu/fast_math.h:
// a rational erf and a polynomial exp in 8-lane vectors) against double-precision std::
// references, through the ops themselves: dense grids, special values, backward, and layout
// independence. (The header is not included here: its vector code is built for the library's ISA.)
#include "test_util.h"

#include <cmath>
#include <limits>

using namespace luna;
using luna::testing::require_close;
using luna::testing::values;

namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

double gelu_ref(double x) { return 0.5 * x * (1 + std::erf(x / std::sqrt(2.0))); }
double gelu_grad_ref(double x) {
  return 0.5 * (1 + std::erf(x / std::sqrt(2.0))) + x * std::exp(-0.5 * x * x) / std::sqrt(2 * M_PI);
}

// float32 tensor of every value in [lo, hi] at `step`, plus the float neighbours of the points
// where the approximations clamp (|x| = 4 for erf; x²/2 = 87 for the exp in gelu's backward).
Tensor grid(double lo, double hi, double step) {
  std::vector<float> xs;
  for (double x = lo; x <= hi; x += step) xs.push_back(float(x));
  for (float edge : {4.0f, -4.0f, 4.0f * std::sqrt(2.0f), -4.0f * std::sqrt(2.0f), std::sqrt(174.0f),
                     -std::sqrt(174.0f)}) {
    xs.push_back(std::nextafter(edge, 0.0f));
    xs.push_back(edge);
    xs.push_back(std::nextafter(edge, 2 * edge));
  }
  return tensor(xs);
}

// max |got - want| / (atol + rtol |want|) with the argument where it happens.
std::pair<double, double> worst_error(const std::vector<double>& x, const std::vector<double>& got,
                                      const std::function<double(double)>& ref, double rtol, double atol) {
  double worst = 0, at = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    const double want = ref(x[i]);
    const double e = std::abs(got[i] - want) / (atol + rtol * std::abs(want));
    if (!(e <= worst)) worst = e, at = x[i];
  }
  return {worst, at};
}

}  // namespace

TEST_CASE("float32 erf is within 1e-6 of erf everywhere", "[fast_math]") {
  const Tensor x = grid(-10, 10, 1e-5);
  const auto [worst, at] = worst_error(values(x), values(erf(x)), [](double v) { return std::erf(v); }, 0, 1e-6);
  INFO("worst |erf_fast - erf| / 1e-6 = " << worst << " at x = " << at);
  REQUIRE(worst < 1.0);
  // Exact at 0, odd, saturating to exactly ±1 (so gelu(-large) is exactly 0, not x * 1e-8).
  const std::vector<double> e = values(erf(tensor({0.0f, 0.3f, -0.3f, 4.0f, -50.0f, kInf, -kInf, kNaN})));
  REQUIRE(e[0] == 0.0);
  REQUIRE(e[1] == -e[2]);
  REQUIRE(e[3] == 1.0);
  REQUIRE(e[4] == -1.0);
  REQUIRE(e[5] == 1.0);
  REQUIRE(e[6] == -1.0);
  REQUIRE(std::isnan(e[7]));
  // Tiny arguments keep their relative accuracy (erf(x) ~ 2x/sqrt(pi)).
  REQUIRE(std::abs(values(erf(tensor({1e-20f})))[0] / double(1e-20f) - 2 / std::sqrt(M_PI)) < 1e-6);
}

TEST_CASE("float32 gelu forward and backward match double references", "[fast_math]") {
  const Tensor x = grid(-30, 30, 1e-4);
  const std::vector<double> xv = values(x);
  {
    // gelu = x/2 (1 + erf(x/√2)) inherits erf's absolute error (< 4e-7, checked above) scaled by
    // |x|/2, plus float rounding: the bound is 2e-7 |x| + 1e-7 (about 1.2e-6 where erf saturates).
    const std::vector<double> got = values(gelu(x));
    double worst = 0, at = 0;
    for (size_t i = 0; i < xv.size(); ++i) {
      const double bound = 2e-7 * std::abs(xv[i]) + 1e-7 + 1e-6 * std::abs(gelu_ref(xv[i]));
      const double ratio = std::abs(got[i] - gelu_ref(xv[i])) / bound;
      if (!(ratio <= worst)) worst = ratio, at = xv[i];
    }
    INFO("gelu worst error ratio " << worst << " at x = " << at);
    REQUIRE(worst <= 1.0);
  }
  Tensor leaf = x.clone();
  leaf.requires_grad_(true);
  gelu(leaf).sum().backward();
  // Φ(x) + x φ(x): checks the exp approximation too, through φ.
  const auto [worst, at] = worst_error(xv, values(leaf.grad()), gelu_grad_ref, 0, 1e-6);
  INFO("gelu' worst error ratio " << worst << " at x = " << at);
  REQUIRE(worst <= 1.0);
}

TEST_CASE("float32 gelu on random data: parallel split and ragged tails", "[fast_math]") {
  Generator gen(7);
  const Tensor x = (randn({70003}, {}, &gen) * 3).detach();  // over the parallel grain, odd length
  const std::vector<double> xv = values(x);
  const Tensor g = randn({70003}, {}, &gen);
  const std::vector<double> gv = values(g);
  std::vector<double> want(xv.size()), want_grad(xv.size());
  for (size_t i = 0; i < xv.size(); ++i) {
    want[i] = gelu_ref(xv[i]);
    want_grad[i] = gv[i] * gelu_grad_ref(xv[i]);
  }
  require_close(values(gelu(x)), want, 1e-6, 1e-6, "gelu");
  Tensor leaf = x.clone();
  leaf.requires_grad_(true);
  gelu(leaf).backward(g);
  require_close(values(leaf.grad()), want_grad, 1e-6, 1e-6, "gelu backward");
}

TEST_CASE("float32 gelu gives identical values for contiguous and strided inputs", "[fast_math]") {
  Generator gen(8);
  const Tensor base = randn({37, 29}, {}, &gen);  // odd sizes: every row ends in a partial 8-lane block
  const Tensor strided = base.t();                // element stride 29
  const Tensor contiguous = strided.contiguous();
  REQUIRE(values(gelu(strided)) == values(gelu(contiguous)));

  Tensor leaf_strided = base.clone().t().detach();
  leaf_strided.requires_grad_(true);
  Tensor leaf_contiguous = contiguous.clone();
  leaf_contiguous.requires_grad_(true);
  const Tensor g = randn({29, 37}, {}, &gen);
  gelu(leaf_strided).backward(g);
  gelu(leaf_contiguous).backward(g);
  REQUIRE(values(leaf_strided.grad()) == values(leaf_contiguous.grad()));
}

TEST_CASE("float32 gelu on outputs large enough for streaming stores", "[fast_math]") {
  // With 2 threads each half is ~32 MiB, over the 16 MiB streaming threshold. n is odd, so the
  // second thread's half starts off a 32-byte boundary and writes an unaligned head first.
  Generator gen(9);
  const int64_t n = (int64_t(1) << 24) + 5;
  const Tensor x = randn({n}, {}, &gen) * 3;
  const Tensor y = gelu(x);
  // Equal to the small-tensor (cached store) path, bit for bit, at the start, across the split
  // between the threads' halves, and at the end.
  for (int64_t start : {int64_t(0), n / 2 - 10, n - 20}) {
    CAPTURE(start);
    REQUIRE(values(gelu(x.narrow(0, start, 20).clone())) == values(y.narrow(0, start, 20)));
  }
  const std::vector<double> xv = values(x.narrow(0, 0, 100000)), yv = values(y.narrow(0, 0, 100000));
  const auto [worst, at] = worst_error(xv, yv, gelu_ref, 1e-6, 1e-6);
  INFO("gelu worst error ratio " << worst << " at x = " << at);
  REQUIRE(worst <= 1.0);

  Tensor leaf = x.clone();
  leaf.requires_grad_(true);
  gelu(leaf).sum().backward();
  for (int64_t start : {int64_t(0), n / 2 - 10, n - 20}) {
    CAPTURE(start);
    Tensor small_leaf = x.narrow(0, start, 20).clone();
    small_leaf.requires_grad_(true);
    gelu(small_leaf).sum().backward();
    REQUIRE(values(small_leaf.grad()) == values(leaf.grad().narrow(0, start, 20)));
  }
}

TEST_CASE("float32 gelu special values agree with the float64 (std::erf) path", "[fast_math]") {
  const std::vector<double> specials{0.0, -0.0, 1e-30, -1e-30, 100.0, -100.0, 1e30, -1e30};
  require_close(values(gelu(tensor(specials).to(kFloat32))), values(gelu(tensor(specials))), 1e-6, 1e-30);
  const std::vector<double> f32 = values(gelu(tensor({kNaN, kInf, -kInf})));
  const std::vector<double> f64 = values(gelu(tensor(std::vector<double>{NAN, INFINITY, -INFINITY})));
  REQUIRE(std::isnan(f32[0]));
  REQUIRE(f32[1] == INFINITY);
  // -inf * Φ(-inf) = -inf * 0: NaN in both paths.
  REQUIRE(std::isnan(f32[2]) == std::isnan(f64[2]));
}
