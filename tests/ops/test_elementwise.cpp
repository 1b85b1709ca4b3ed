// Forward tests for the elementwise ops (ops/binary.cpp, ops/unary.cpp): every op against a plain
// std:: loop in double, over f32 and f64, broadcast, strided and 0-dim operands, plus PyTorch's
// type promotion, in-place semantics and the scalar operators.
#include "test_util.h"

#include <cmath>
#include <functional>
#include <limits>

using namespace luna;
using luna::testing::require_close;
using luna::testing::values;

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// Uniform values in [lo, hi) of the given dtype, reproducible from seed; no autograd.
Tensor random_tensor(const Dims& shape, uint64_t seed, double lo, double hi, DType dtype) {
  NoGradGuard no_grad;
  Generator gen(seed);
  return (rand(shape, TensorOptions(kFloat64), &gen) * (hi - lo) + lo).to(dtype);
}

// Small integers in [0, high) as `dtype`: many exact ties for comparisons.
Tensor random_ints(const Dims& shape, uint64_t seed, int64_t high, DType dtype) {
  Generator gen(seed);
  return randint(0, high, shape, TensorOptions(kInt64), &gen).to(dtype);
}

// Row-major position in a tensor of shape `in` of element `i` of the broadcast shape `out`.
int64_t broadcast_index(const Dims& out, const Dims& in, int64_t i) {
  int64_t index = 0, multiplier = 1;
  const int lead = out.size() - in.size();
  for (int d = out.size() - 1; d >= 0; --d) {
    const int64_t coord = i % out[d];
    i /= out[d];
    const int di = d - lead;
    if (di < 0) continue;
    if (in[di] != 1) index += coord * multiplier;
    multiplier *= in[di];
  }
  return index;
}

std::vector<double> reference_binary(const Tensor& a, const Tensor& b, const std::function<double(double, double)>& f) {
  const Dims out = broadcast_shapes(a.sizes(), b.sizes(), "test");
  const std::vector<double> va = values(a), vb = values(b);
  std::vector<double> r(size_t(out.product()));
  for (int64_t i = 0; i < out.product(); ++i)
    r[size_t(i)] = f(va[size_t(broadcast_index(out, a.sizes(), i))], vb[size_t(broadcast_index(out, b.sizes(), i))]);
  return r;
}

std::vector<double> reference_unary(const Tensor& x, const std::function<double(double)>& f) {
  std::vector<double> r = values(x);
  for (double& v : r) v = f(v);
  return r;
}

double tolerance_r(DType dtype) { return dtype == kFloat32 ? 2e-5 : 1e-10; }
double tolerance_a(DType dtype) { return dtype == kFloat32 ? 2e-6 : 1e-12; }

// Operand pairs covering the layouts elementwise kernels must handle. `make_a`/`make_b` build an
// operand of a shape from a seed, so every op can pick its own value range per side.
using Make = std::function<Tensor(const Dims&, uint64_t)>;
struct Layout {
  const char* name;
  bool strided_a, strided_b;
  std::function<std::pair<Tensor, Tensor>(const Make& make_a, const Make& make_b)> build;
};

std::vector<Layout> binary_layouts() {
  return {
      {"same shape", false, false, [](const Make& a, const Make& b) { return std::pair{a({3, 4}, 1), b({3, 4}, 2)}; }},
      {"broadcast [4,1,3] with [5,1]", false, false,
       [](const Make& a, const Make& b) { return std::pair{a({4, 1, 3}, 3), b({5, 1}, 4)}; }},
      {"transposed lhs", true, false, [](const Make& a, const Make& b) { return std::pair{a({4, 3}, 5).t(), b({3, 4}, 6)}; }},
      {"sliced-with-step rhs, row-broadcast lhs", false, true,
       [](const Make& a, const Make& b) { return std::pair{a({4}, 7), b({3, 8}, 8).slice(1, 1, 8, 2)}; }},
      {"0-dim lhs", false, false, [](const Make& a, const Make& b) { return std::pair{a({}, 9), b({2, 3}, 10)}; }},
      {"0-dim both", false, false, [](const Make& a, const Make& b) { return std::pair{a({}, 11), b({}, 12)}; }},
      {"both transposed, broadcast", true, true,
       [](const Make& a, const Make& b) { return std::pair{a({3, 2}, 13).t(), b({3, 4}, 14).t().slice(0, 1, 2)}; }},
  };
}

struct BinaryCase {
  const char* name;
  std::function<Tensor(const Tensor&, const Tensor&)> op;
  std::function<double(double, double)> ref;
  double a_lo, a_hi, b_lo, b_hi;
};

}  // namespace

TEST_CASE("binary arithmetic ops match reference loops on f32 and f64 in every layout", "[elementwise]") {
  const std::vector<BinaryCase> cases = {
      {"add", [](const Tensor& a, const Tensor& b) { return add(a, b); }, [](double a, double b) { return a + b; },
       -2, 2, -2, 2},
      {"add alpha=2", [](const Tensor& a, const Tensor& b) { return add(a, b, 2); },
       [](double a, double b) { return a + 2 * b; }, -2, 2, -2, 2},
      {"add alpha=0.5", [](const Tensor& a, const Tensor& b) { return a.add(b, 0.5); },
       [](double a, double b) { return a + 0.5 * b; }, -2, 2, -2, 2},
      {"sub", [](const Tensor& a, const Tensor& b) { return sub(a, b); }, [](double a, double b) { return a - b; },
       -2, 2, -2, 2},
      {"sub alpha=3", [](const Tensor& a, const Tensor& b) { return a.sub(b, 3); },
       [](double a, double b) { return a - 3 * b; }, -2, 2, -2, 2},
      {"mul", [](const Tensor& a, const Tensor& b) { return a * b; }, [](double a, double b) { return a * b; },
       -2, 2, -2, 2},
      {"div", [](const Tensor& a, const Tensor& b) { return a / b; }, [](double a, double b) { return a / b; },
       -2, 2, 0.5, 2},
      {"div by negatives", [](const Tensor& a, const Tensor& b) { return div(a, b); },
       [](double a, double b) { return a / b; }, -2, 2, -2, -0.5},
      {"pow", [](const Tensor& a, const Tensor& b) { return a.pow(b); },
       [](double a, double b) { return std::pow(a, b); }, 0.1, 3, -2, 2},
      {"maximum", [](const Tensor& a, const Tensor& b) { return maximum(a, b); },
       [](double a, double b) { return std::max(a, b); }, -2, 2, -2, 2},
      {"minimum", [](const Tensor& a, const Tensor& b) { return a.minimum(b); },
       [](double a, double b) { return std::min(a, b); }, -2, 2, -2, 2},
  };
  for (DType dtype : {kFloat32, kFloat64}) {
    for (const BinaryCase& c : cases) {
      for (const Layout& layout : binary_layouts()) {
        CAPTURE(dtype_name(dtype), c.name, layout.name);
        auto [a, b] = layout.build(
            [&](const Dims& s, uint64_t seed) { return random_tensor(s, seed, c.a_lo, c.a_hi, dtype); },
            [&](const Dims& s, uint64_t seed) { return random_tensor(s, seed, c.b_lo, c.b_hi, dtype); });
        // The layouts would be pointless if the strided ones came out contiguous.
        REQUIRE(a.is_contiguous() != layout.strided_a);
        REQUIRE(b.is_contiguous() != layout.strided_b);
        const Tensor out = c.op(a, b);
        REQUIRE(out.dtype() == dtype);
        REQUIRE(out.sizes() == broadcast_shapes(a.sizes(), b.sizes(), "test"));
        require_close(values(out), reference_binary(a, b, c.ref), tolerance_r(dtype), tolerance_a(dtype));
      }
    }
  }
}

TEST_CASE("comparisons and logical ops return bool and match reference loops", "[elementwise]") {
  using Cmp = std::function<Tensor(const Tensor&, const Tensor&)>;
  const std::vector<std::tuple<const char*, Cmp, std::function<double(double, double)>>> cases = {
      {"eq", [](const Tensor& a, const Tensor& b) { return eq(a, b); }, [](double a, double b) { return double(a == b); }},
      {"ne", [](const Tensor& a, const Tensor& b) { return a.ne(b); }, [](double a, double b) { return double(a != b); }},
      {"lt", [](const Tensor& a, const Tensor& b) { return lt(a, b); }, [](double a, double b) { return double(a < b); }},
      {"le", [](const Tensor& a, const Tensor& b) { return a.le(b); }, [](double a, double b) { return double(a <= b); }},
      {"gt", [](const Tensor& a, const Tensor& b) { return gt(a, b); }, [](double a, double b) { return double(a > b); }},
      {"ge", [](const Tensor& a, const Tensor& b) { return a.ge(b); }, [](double a, double b) { return double(a >= b); }},
      {"logical_and", [](const Tensor& a, const Tensor& b) { return logical_and(a, b); },
       [](double a, double b) { return double(a != 0 && b != 0); }},
      {"logical_or", [](const Tensor& a, const Tensor& b) { return logical_or(a, b); },
       [](double a, double b) { return double(a != 0 || b != 0); }},
  };
  for (DType dtype : {kFloat32, kFloat64, kInt64, kInt32}) {
    for (const auto& [name, op, ref] : cases) {
      for (const Layout& layout : binary_layouts()) {
        CAPTURE(dtype_name(dtype), name, layout.name);
        // Values in {0, 1, 2}: plenty of ties and zeros.
        const Make make = [&](const Dims& s, uint64_t seed) { return random_ints(s, seed, 3, dtype); };
        auto [a, b] = layout.build(make, make);
        const Tensor out = op(a, b);
        REQUIRE(out.dtype() == kBool);
        REQUIRE_FALSE(out.requires_grad());
        require_close(values(out), reference_binary(a, b, ref), 0, 0);
      }
    }
  }
  // Mixed dtypes compare in the promoted type: 1 (int) == 1.0 (float), 2 < 2.5.
  const Tensor i = tensor(std::vector<int64_t>{1, 2, 3});
  const Tensor f = tensor({1.0f, 2.5f, 2.0f});
  require_close(values(eq(i, f)), {1, 0, 0}, 0, 0);
  require_close(values(lt(i, f)), {0, 1, 0}, 0, 0);
}

TEST_CASE("maximum and minimum propagate NaN from either side", "[elementwise]") {
  for (DType dtype : {kFloat32, kFloat64}) {
    CAPTURE(dtype_name(dtype));
    const Tensor a = tensor(std::vector<double>{1, kNaN, 3, kNaN, -1}).to(dtype);
    const Tensor b = tensor(std::vector<double>{kNaN, 2, 1, kNaN, -2}).to(dtype);
    for (const Tensor& out : {maximum(a, b), minimum(a, b), maximum(b, a), minimum(b, a)}) {
      const std::vector<double> v = values(out);
      REQUIRE(std::isnan(v[0]));
      REQUIRE(std::isnan(v[1]));
      REQUIRE(std::isnan(v[3]));
    }
    REQUIRE(values(maximum(a, b))[2] == 3);
    REQUIRE(values(minimum(a, b))[2] == 1);
    REQUIRE(values(maximum(a, b))[4] == -1);
    REQUIRE(values(minimum(a, b))[4] == -2);
  }
}

TEST_CASE("integer ops stay integral except true division", "[elementwise]") {
  const Tensor a = tensor(std::vector<int64_t>{7, -7, 1, 0, 9});
  const Tensor b = tensor(std::vector<int64_t>{2, 2, 3, 5, -4});
  SECTION("div is true division in float32") {
    const Tensor q = a / b;
    REQUIRE(q.dtype() == kFloat32);
    require_close(values(q), {3.5, -3.5, 1.0 / 3.0, 0.0, -2.25}, 1e-6, 0);
    // Division by an integer zero gives inf like float division, not a crash.
    const std::vector<double> by_zero = values(tensor(std::vector<int64_t>{1, -1}) / tensor(std::vector<int64_t>{0, 0}));
    REQUIRE(by_zero[0] == std::numeric_limits<double>::infinity());
    REQUIRE(by_zero[1] == -std::numeric_limits<double>::infinity());
  }
  SECTION("add, sub, mul, pow, maximum keep int64 and are exact") {
    REQUIRE((a + b).dtype() == kInt64);
    require_close(values(a + b), {9, -5, 4, 5, 5}, 0, 0);
    require_close(values(a - b), {5, -9, -2, -5, 13}, 0, 0);
    require_close(values(a * b), {14, -14, 3, 0, -36}, 0, 0);
    require_close(values(add(a, b, 3)), {13, -1, 10, 15, -3}, 0, 0);
    require_close(values(maximum(a, b)), {7, 2, 3, 5, 9}, 0, 0);
    const Tensor p = tensor(std::vector<int64_t>{2, 3, -2, 5, 0}).pow(tensor(std::vector<int64_t>{10, 2, 3, 0, 0}));
    REQUIRE(p.dtype() == kInt64);
    require_close(values(p), {1024, 9, -8, 1, 1}, 0, 0);
    // Beyond 2^53 a float detour would lose the low bits.
    const int64_t big = (int64_t(1) << 60) + 1;
    REQUIRE((tensor(std::vector<int64_t>{big}) + tensor(std::vector<int64_t>{2})).item<int64_t>() == big + 2);
  }
  SECTION("int32 and int64 unary ops keep their dtype") {
    const Tensor x = tensor(std::vector<int32_t>{-3, 0, 4});
    REQUIRE(neg(x).dtype() == kInt32);
    require_close(values(neg(x)), {3, 0, -4}, 0, 0);
    require_close(values(abs(x)), {3, 0, 4}, 0, 0);
    require_close(values(sign(x)), {-1, 0, 1}, 0, 0);
    require_close(values(relu(x)), {0, 0, 4}, 0, 0);
    require_close(values(square(x)), {9, 0, 16}, 0, 0);
    require_close(values(x.clamp(-1, 2)), {-1, 0, 2}, 0, 0);
    REQUIRE(x.pow(2).dtype() == kInt32);
    require_close(values(x.pow(2)), {9, 0, 16}, 0, 0);
    // Float-only ops compute integers in float32, like PyTorch.
    REQUIRE(exp(x).dtype() == kFloat32);
    require_close(values(sqrt(tensor(std::vector<int64_t>{4, 9}))), {2, 3}, 1e-7, 0);
    REQUIRE(x.pow(0.5).dtype() == kFloat32);
    // A fractional clamp bound promotes to float32, like PyTorch's result type.
    const Tensor c = tensor(std::vector<int64_t>{1, 2, 3}).clamp(1.5, 2.5);
    REQUIRE(c.dtype() == kFloat32);
    require_close(values(c), {1.5, 2, 2.5}, 0, 0);
    REQUIRE(tensor(std::vector<int64_t>{1, 2, 3}).clamp(std::nullopt, 2).dtype() == kInt64);
  }
  SECTION("PyTorch's integer restrictions") {
    REQUIRE_THROWS_WITH(tensor(std::vector<int64_t>{2}).pow(-1), Catch::Contains("negative integer powers") &&
                                                                    Catch::Contains("-1"));
    REQUIRE_THROWS_WITH(add(a, b, 0.5), Catch::Contains("alpha 0.5") && Catch::Contains("int64"));
    REQUIRE_THROWS_WITH(a.sub(b, 1.5), Catch::Contains("alpha 1.5"));
    const Tensor m = tensor(std::vector<bool>{true, false});
    REQUIRE_THROWS_WITH(m - m, Catch::Contains("bool"));
    Tensor i = tensor(std::vector<int64_t>{1, 5});
    REQUIRE_THROWS_WITH(i.clamp_(0.5, 2), Catch::Contains("clamp_") && Catch::Contains("int64"));
    i.clamp_(2, 3);
    require_close(values(i), {2, 3}, 0, 0);
  }
}

TEST_CASE("type promotion follows PyTorch", "[elementwise]") {
  const Tensor i64 = tensor(std::vector<int64_t>{1, 2, 3});
  const Tensor i32 = tensor(std::vector<int32_t>{4, 5, 6});
  const Tensor u8 = tensor(std::vector<uint8_t>{1, 2, 250});
  const Tensor f32 = tensor({0.5f, 1.5f, 2.5f});
  const Tensor f64 = tensor(std::vector<double>{0.25, 0.5, 0.75});
  const Tensor b = tensor(std::vector<bool>{true, false, true});

  REQUIRE((i64 + f32).dtype() == kFloat32);
  require_close(values(i64 + f32), {1.5, 3.5, 5.5}, 0, 0);
  REQUIRE((f32 + f64).dtype() == kFloat64);
  REQUIRE((i32 + i64).dtype() == kInt64);
  REQUIRE((i32 * f64).dtype() == kFloat64);
  REQUIRE((u8 + tensor(std::vector<int32_t>{1, 1, 1})).dtype() == kInt32);
  REQUIRE((u8.to(kInt8) + u8).dtype() == kInt16);
  REQUIRE(promote_types(kFloat16, kBFloat16) == kFloat32);
  REQUIRE(promote_types(kBFloat16, kInt64) == kBFloat16);

  SECTION("Python-number scalars") {
    // int tensor * 2.5 -> float32; int tensor * 2 stays int64.
    REQUIRE((i64 * 2.5).dtype() == kFloat32);
    require_close(values(i64 * 2.5), {2.5, 5.0, 7.5}, 0, 0);
    REQUIRE((i64 * 2).dtype() == kInt64);
    require_close(values(i64 * 2), {2, 4, 6}, 0, 0);
    REQUIRE((i32 + 1).dtype() == kInt32);
    // A float scalar does not widen a float tensor.
    REQUIRE((f32 * 2.5).dtype() == kFloat32);
    REQUIRE((f64 * 2).dtype() == kFloat64);
    REQUIRE((u8 + 10).dtype() == kUInt8);
  }
  SECTION("bool with int") {
    REQUIRE((b + i32).dtype() == kInt32);
    require_close(values(b + i32), {5, 5, 7}, 0, 0);
    REQUIRE((b + i64).dtype() == kInt64);
    REQUIRE((b + 1).dtype() == kInt64);
    require_close(values(b + 1), {2, 1, 2}, 0, 0);
    REQUIRE((b * 1.5).dtype() == kFloat32);
    require_close(values(b * 1.5), {1.5, 0, 1.5}, 0, 0);
    // bool + bool stays bool (logical or), bool * bool is logical and.
    const Tensor c = tensor(std::vector<bool>{true, true, false});
    REQUIRE((b + c).dtype() == kBool);
    require_close(values(b + c), {1, 1, 1}, 0, 0);
    require_close(values(b * c), {1, 0, 0}, 0, 0);
  }
}

TEST_CASE("scalar operators", "[elementwise]") {
  for (DType dtype : {kFloat32, kFloat64}) {
    CAPTURE(dtype_name(dtype));
    const Tensor x = random_tensor({2, 3}, 21, 0.5, 2.0, dtype);
    const std::vector<double> v = values(x);
    auto each = [&](const std::function<double(double)>& f) {
      std::vector<double> r = v;
      for (double& e : r) e = f(e);
      return r;
    };
    const double rt = tolerance_r(dtype), at = tolerance_a(dtype);
    for (const Tensor& out : {x + 1, 2 * x, 1 / x, -x, x - 1, 3 - x, x / 4, x * 0.5, 0.5 + x}) REQUIRE(out.dtype() == dtype);
    require_close(values(x + 1), each([](double e) { return e + 1; }), rt, at);
    require_close(values(2 * x), each([](double e) { return 2 * e; }), rt, at);
    require_close(values(1 / x), each([](double e) { return 1 / e; }), rt, at);
    require_close(values(-x), each([](double e) { return -e; }), 0, 0);
    require_close(values(x - 1), each([](double e) { return e - 1; }), rt, at);
    require_close(values(3 - x), each([](double e) { return 3 - e; }), rt, at);
    require_close(values(x / 4), each([](double e) { return e / 4; }), rt, at);
    require_close(values(x * 0.5), each([](double e) { return e * 0.5; }), rt, at);
    require_close(values(0.5 + x), each([](double e) { return 0.5 + e; }), rt, at);
  }
  // 1 / int tensor is true division.
  const Tensor q = 1 / tensor(std::vector<int64_t>{2, 4});
  REQUIRE(q.dtype() == kFloat32);
  require_close(values(q), {0.5, 0.25}, 0, 0);
}

namespace {
struct UnaryCase {
  const char* name;
  std::function<Tensor(const Tensor&)> op;
  std::function<double(double)> ref;
  double lo, hi;
};

double sigmoid_ref(double x) { return 1 / (1 + std::exp(-x)); }
double softplus_ref(double x, double beta, double threshold) {
  return beta * x > threshold ? x : std::log1p(std::exp(beta * x)) / beta;
}

std::vector<UnaryCase> unary_cases() {
  return {
      {"neg", [](const Tensor& x) { return neg(x); }, [](double x) { return -x; }, -3, 3},
      {"exp", [](const Tensor& x) { return x.exp(); }, [](double x) { return std::exp(x); }, -3, 3},
      {"log", [](const Tensor& x) { return log(x); }, [](double x) { return std::log(x); }, 0.01, 5},
      {"log1p", [](const Tensor& x) { return x.log1p(); }, [](double x) { return std::log1p(x); }, -0.9, 3},
      {"sqrt", [](const Tensor& x) { return sqrt(x); }, [](double x) { return std::sqrt(x); }, 0, 5},
      {"rsqrt", [](const Tensor& x) { return x.rsqrt(); }, [](double x) { return 1 / std::sqrt(x); }, 0.1, 5},
      {"abs", [](const Tensor& x) { return abs(x); }, [](double x) { return std::abs(x); }, -3, 3},
      {"sign", [](const Tensor& x) { return sign(x); }, [](double x) { return double((x > 0) - (x < 0)); }, -3, 3},
      {"tanh", [](const Tensor& x) { return x.tanh(); }, [](double x) { return std::tanh(x); }, -4, 4},
      {"sigmoid", [](const Tensor& x) { return sigmoid(x); }, sigmoid_ref, -8, 8},
      {"relu", [](const Tensor& x) { return x.relu(); }, [](double x) { return x > 0 ? x : 0.0; }, -3, 3},
      {"gelu erf", [](const Tensor& x) { return gelu(x); },
       [](double x) { return 0.5 * x * (1 + std::erf(x / std::sqrt(2.0))); }, -4, 4},
      {"gelu tanh", [](const Tensor& x) { return gelu(x, "tanh"); },
       [](double x) { return 0.5 * x * (1 + std::tanh(std::sqrt(2 / M_PI) * (x + 0.044715 * x * x * x))); }, -4, 4},
      {"elu", [](const Tensor& x) { return elu(x); }, [](double x) { return x > 0 ? x : std::expm1(x); }, -3, 3},
      {"elu alpha=0.5", [](const Tensor& x) { return elu(x, 0.5); },
       [](double x) { return x > 0 ? x : 0.5 * std::expm1(x); }, -3, 3},
      {"silu", [](const Tensor& x) { return silu(x); }, [](double x) { return x * sigmoid_ref(x); }, -6, 6},
      {"softplus", [](const Tensor& x) { return softplus(x); }, [](double x) { return softplus_ref(x, 1, 20); }, -6, 6},
      // beta * x crosses the threshold inside the range, so both branches are exercised.
      {"softplus beta=2 threshold=5", [](const Tensor& x) { return softplus(x, 2.0, 5.0); },
       [](double x) { return softplus_ref(x, 2, 5); }, -5, 5},
      {"sin", [](const Tensor& x) { return x.sin(); }, [](double x) { return std::sin(x); }, -4, 4},
      {"cos", [](const Tensor& x) { return cos(x); }, [](double x) { return std::cos(x); }, -4, 4},
      {"square", [](const Tensor& x) { return x.square(); }, [](double x) { return x * x; }, -3, 3},
      {"reciprocal", [](const Tensor& x) { return reciprocal(x); }, [](double x) { return 1 / x; }, 0.2, 3},
      {"reciprocal negative", [](const Tensor& x) { return reciprocal(x); }, [](double x) { return 1 / x; }, -3, -0.2},
      {"erf", [](const Tensor& x) { return erf(x); }, [](double x) { return std::erf(x); }, -3, 3},
      {"pow 2.5", [](const Tensor& x) { return x.pow(2.5); }, [](double x) { return std::pow(x, 2.5); }, 0, 3},
      {"pow -1.5", [](const Tensor& x) { return pow(x, -1.5); }, [](double x) { return std::pow(x, -1.5); }, 0.2, 3},
      {"pow 3 of negatives", [](const Tensor& x) { return x.pow(3); }, [](double x) { return x * x * x; }, -2, 2},
      {"pow 0", [](const Tensor& x) { return x.pow(0); }, [](double) { return 1.0; }, -2, 2},
      {"clamp min only", [](const Tensor& x) { return x.clamp(-0.5); }, [](double x) { return std::max(x, -0.5); },
       -2, 2},
      {"clamp max only", [](const Tensor& x) { return clamp(x, std::nullopt, 0.25); },
       [](double x) { return std::min(x, 0.25); }, -2, 2},
      {"clamp both", [](const Tensor& x) { return x.clamp(-1, 1); },
       [](double x) { return std::clamp(x, -1.0, 1.0); }, -2, 2},
      {"clamp unbounded max", [](const Tensor& x) { return x.clamp(0.0, std::numeric_limits<double>::infinity()); },
       [](double x) { return std::max(x, 0.0); }, -2, 2},
  };
}

std::vector<std::pair<const char*, std::function<Tensor(double, double, DType)>>> unary_layouts() {
  return {
      {"contiguous", [](double lo, double hi, DType d) { return random_tensor({3, 5}, 31, lo, hi, d); }},
      {"transposed", [](double lo, double hi, DType d) { return random_tensor({5, 3}, 32, lo, hi, d).t(); }},
      {"sliced with step", [](double lo, double hi, DType d) { return random_tensor({3, 9}, 33, lo, hi, d).slice(1, 1, 9, 2); }},
      {"0-dim", [](double lo, double hi, DType d) { return random_tensor({}, 34, lo, hi, d); }},
  };
}
}  // namespace

TEST_CASE("unary ops match reference loops on f32 and f64 in every layout", "[elementwise]") {
  for (DType dtype : {kFloat32, kFloat64}) {
    for (const UnaryCase& c : unary_cases()) {
      for (const auto& [layout, make] : unary_layouts()) {
        CAPTURE(dtype_name(dtype), c.name, layout);
        const Tensor x = make(c.lo, c.hi, dtype);
        const Tensor out = c.op(x);
        REQUIRE(out.dtype() == dtype);
        REQUIRE(out.sizes() == x.sizes());
        require_close(values(out), reference_unary(x, c.ref), tolerance_r(dtype), tolerance_a(dtype));
      }
    }
  }
}

TEST_CASE("unary ops on a long float32 run (threaded and vectorized paths)", "[elementwise]") {
  // Enough elements that the kernels split the run across threads and take their unit-stride
  // (f32 fast) paths. Input and output go through raw pointers, so each op is the only luna call
  // (this keeps the test fast on a busy two-core machine).
  constexpr int64_t n = 66000;
  Tensor x = empty({n});
  for (const UnaryCase& c : unary_cases()) {
    CAPTURE(c.name);
    float* px = x.data_ptr<float>();
    uint64_t state = 88172645463325252ull;  // xorshift: any fixed spread of values will do
    for (int64_t i = 0; i < n; ++i) {
      state ^= state << 13, state ^= state >> 7, state ^= state << 17;
      px[i] = float(c.lo + (c.hi - c.lo) * double(state >> 11) * 0x1p-53);
    }
    const Tensor out = c.op(x);
    REQUIRE(out.is_contiguous());
    const float* po = out.data_ptr<float>();
    double worst = 0;
    int64_t worst_i = 0;
    for (int64_t i = 0; i < n; ++i) {
      const double want = c.ref(double(px[i]));
      const double ratio = std::abs(double(po[i]) - want) / (tolerance_a(kFloat32) + tolerance_r(kFloat32) * std::abs(want));
      if (!(ratio <= worst)) worst = ratio, worst_i = i;
    }
    INFO("worst element " << worst_i << ": x " << px[worst_i] << ", got " << po[worst_i] << ", want "
                          << c.ref(double(px[worst_i])));
    REQUIRE(worst <= 1.0);
  }
}

TEST_CASE("unary ops stay finite at extreme inputs", "[elementwise]") {
  for (DType dtype : {kFloat32, kFloat64}) {
    CAPTURE(dtype_name(dtype));
    const Tensor x = tensor(std::vector<double>{-1000, -100, 0, 100, 1000}).to(dtype);
    require_close(values(sigmoid(x)), {0, sigmoid_ref(-100), 0.5, 1, 1}, 1e-6, 1e-30);
    require_close(values(silu(x)), {0, -100 * sigmoid_ref(-100), 0, 100, 1000}, 1e-6, 1e-30);
    require_close(values(softplus(x)), {0, softplus_ref(-100, 1, 20), std::log(2.0), 100, 1000}, 1e-6, 1e-30);
    require_close(values(tanh(x)), {-1, -1, 0, 1, 1}, 0, 0);
    require_close(values(gelu(x)), {0, 0, 0, 100, 1000}, 1e-6, 1e-30);
    require_close(values(gelu(x, "tanh")), {0, 0, 0, 100, 1000}, 1e-6, 1e-30);
    require_close(values(elu(x)), {-1, std::expm1(-100.0), 0, 100, 1000}, 1e-6, 1e-30);
  }
  // NaN passes through clamp instead of being clamped to a bound (as in PyTorch).
  const std::vector<double> c = values(tensor(std::vector<double>{kNaN, 5}).clamp(-1, 1));
  REQUIRE(std::isnan(c[0]));
  REQUIRE(c[1] == 1);
  // min > max: every value becomes max, like torch.clamp.
  require_close(values(tensor({-3.0f, 0.0f, 3.0f}).clamp(2, 1)), {1, 1, 1}, 0, 0);
}

TEST_CASE("unary and clamp argument errors", "[elementwise]") {
  const Tensor x = tensor({1.0f, 2.0f});
  REQUIRE_THROWS_WITH(x.clamp(std::nullopt, std::nullopt), Catch::Contains("at least one of min and max"));
  REQUIRE_THROWS_WITH(gelu(x, "fast"), Catch::Contains("'fast'"));
  REQUIRE_THROWS_WITH(softplus(x, -1.0), Catch::Contains("beta must be positive, got -1"));
  REQUIRE_THROWS_AS(exp(tensor(std::vector<bool>{true})), luna::Error);
  REQUIRE_THROWS_WITH(x + tensor({1.0f, 2.0f, 3.0f}), Catch::Contains("[2]") && Catch::Contains("[3]"));
}

TEST_CASE("where selects with broadcasting and promotes the branches", "[elementwise]") {
  for (DType dtype : {kFloat32, kFloat64}) {
    CAPTURE(dtype_name(dtype));
    const Tensor cond = tensor(std::vector<bool>{true, false, false, true}, {4, 1});
    const Tensor a = random_tensor({1, 3}, 41, -1, 1, dtype);
    const Tensor b = random_tensor({3, 4}, 42, -1, 1, dtype).t();  // [4,3], strided
    const Tensor out = where(cond, a, b);
    REQUIRE(out.sizes() == Dims{4, 3});
    REQUIRE(out.dtype() == dtype);
    const std::vector<double> c = values(cond);
    std::vector<double> ref(12);
    const std::vector<double> va = values(a), vb = values(b);
    for (int i = 0; i < 4; ++i)
      for (int j = 0; j < 3; ++j) ref[size_t(i * 3 + j)] = c[size_t(i)] ? va[size_t(j)] : vb[size_t(i * 3 + j)];
    require_close(values(out), ref, 0, 0);
    // Scalar branch.
    const Tensor s = where(cond, a, -7.0);
    REQUIRE(s.dtype() == dtype);
    for (int i = 0; i < 4; ++i)
      for (int j = 0; j < 3; ++j)
        REQUIRE(values(s)[size_t(i * 3 + j)] == (c[size_t(i)] ? va[size_t(j)] : -7.0));
  }
  // int and float branches promote.
  const Tensor mixed = where(tensor(std::vector<bool>{true, false}), tensor(std::vector<int64_t>{1, 2}),
                             tensor({0.5f, 1.5f}));
  REQUIRE(mixed.dtype() == kFloat32);
  require_close(values(mixed), {1, 1.5}, 0, 0);
  REQUIRE_THROWS_WITH(where(tensor({1.0f}), tensor({1.0f}), tensor({2.0f})), Catch::Contains("bool"));
}

TEST_CASE("masked_fill", "[elementwise]") {
  for (DType dtype : {kFloat32, kFloat64, kInt64}) {
    CAPTURE(dtype_name(dtype));
    const Tensor x = random_ints({3, 4}, 51, 100, dtype);
    const Tensor mask = tensor(std::vector<bool>{false, true, true, false}, {1, 4});  // broadcast over rows
    const Tensor out = x.masked_fill(mask, -5);
    REQUIRE(out.dtype() == dtype);
    std::vector<double> ref = values(x);
    for (int i = 0; i < 3; ++i)
      for (int j : {1, 2}) ref[size_t(i * 4 + j)] = -5;
    require_close(values(out), ref, 0, 0);
    // The input is unchanged.
    REQUIRE(values(x) != ref);
  }
  const Tensor f = tensor({1.0f, 2.0f, 3.0f});
  require_close(values(masked_fill(f, tensor(std::vector<bool>{true, false, true}), -1e9)), {-1e9, 2, -1e9}, 0, 0);
  const std::vector<double> inf_fill =
      values(f.masked_fill(tensor(std::vector<bool>{false, true, false}), -std::numeric_limits<double>::infinity()));
  REQUIRE(inf_fill[1] == -std::numeric_limits<double>::infinity());
  REQUIRE_THROWS_WITH(f.masked_fill(tensor({1.0f, 0.0f, 1.0f}), 0), Catch::Contains("bool"));
  // A mask may not grow the input.
  REQUIRE_THROWS_WITH(f.masked_fill(tensor(std::vector<bool>{true, false, true, false, true, false}, {2, 3}), 0),
                      Catch::Contains("[2,3]") && Catch::Contains("[3]"));
}

TEST_CASE("in-place ops write into self and keep its dtype", "[elementwise][inplace]") {
  for (DType dtype : {kFloat32, kFloat64}) {
    CAPTURE(dtype_name(dtype));
    const double rt = tolerance_r(dtype), at = tolerance_a(dtype);
    const Tensor other = random_tensor({3}, 61, 0.5, 2, dtype);  // broadcast along rows
    const std::vector<double> vo = values(other);
    auto expect = [&](const std::vector<double>& before, const std::function<double(double, double)>& f) {
      std::vector<double> r = before;
      for (size_t i = 0; i < r.size(); ++i) r[i] = f(before[i], vo[i % 3]);
      return r;
    };
    // Contiguous self takes the direct kernel path; a transposed self the out-of-place-and-copy one.
    for (bool transposed : {false, true}) {
      CAPTURE(transposed);
      auto fresh = [&] { return transposed ? random_tensor({3, 2}, 62, -2, 2, dtype).t() : random_tensor({2, 3}, 62, -2, 2, dtype); };
      Tensor x = fresh();
      std::vector<double> before = values(x);
      const void* data = x.data_ptr();
      const uint32_t version = x.version();
      REQUIRE(&x.add_(other) == &x);
      REQUIRE(x.data_ptr() == data);
      REQUIRE(x.version() > version);
      require_close(values(x), expect(before, [](double a, double b) { return a + b; }), rt, at);

      x = fresh();
      x.add_(other, 2.5);
      require_close(values(x), expect(before, [](double a, double b) { return a + 2.5 * b; }), rt, at);
      x = fresh();
      x.sub_(other);
      require_close(values(x), expect(before, [](double a, double b) { return a - b; }), rt, at);
      x = fresh();
      x.sub_(other, 2);
      require_close(values(x), expect(before, [](double a, double b) { return a - 2 * b; }), rt, at);
      x = fresh();
      x.mul_(other);
      require_close(values(x), expect(before, [](double a, double b) { return a * b; }), rt, at);
      x = fresh();
      x.div_(other);
      require_close(values(x), expect(before, [](double a, double b) { return a / b; }), rt, at);
      x = fresh();
      x.add_(3).mul_(0.5).div_(2);
      require_close(values(x), expect(before, [](double a, double) { return (a + 3) * 0.5 / 2; }), rt, at);
      x = fresh();
      x.clamp_(-0.5, 1);
      require_close(values(x), expect(before, [](double a, double) { return std::clamp(a, -0.5, 1.0); }), 0, 0);
      x = fresh();
      x.clamp_(std::nullopt, 0);
      require_close(values(x), expect(before, [](double a, double) { return std::min(a, 0.0); }), 0, 0);
      x = fresh();
      x.masked_fill_(tensor(std::vector<bool>{true, false, true}), 9);  // columns 0 and 2
      std::vector<double> filled = before;
      for (size_t i = 0; i < filled.size(); ++i)
        if (i % 3 != 1) filled[i] = 9;
      require_close(values(x), filled, 0, 0);
    }
  }
}

TEST_CASE("masked_fill_ and in-place ops on views write through to the base", "[elementwise][inplace]") {
  Tensor base = zeros({3, 4});
  base.t().masked_fill_(tensor(std::vector<bool>{true, false, false}), 1);  // mask over base's rows
  require_close(values(base), {1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0}, 0, 0);
  base.select(1, 2).add_(tensor({10.0f, 20.0f, 30.0f}));
  require_close(values(base), {1, 1, 11, 1, 0, 0, 20, 0, 0, 0, 30, 0}, 0, 0);
  base.slice(0, 0, 3, 2).mul_(2);
  require_close(values(base), {2, 2, 22, 2, 0, 0, 20, 0, 0, 0, 60, 0}, 0, 0);
  // Overlapping operands: the right-hand side is read as it was before the write.
  Tensor seq = arange(6).to(kFloat32);
  seq.slice(0, 1, 6).add_(seq.slice(0, 0, 5));
  require_close(values(seq), {0, 1, 3, 5, 7, 9}, 0, 0);
  // Same storage, different layout: m + m^T must read m^T as it was.
  Tensor m = arange(9).to(kFloat32).view({3, 3});
  m.add_(m.t());
  require_close(values(m), {0, 4, 8, 4, 8, 12, 8, 12, 16}, 0, 0);
  m.mul_(m);  // identical operands are fine elementwise
  require_close(values(m.select(0, 0)), {0, 16, 64}, 0, 0);
}

TEST_CASE("in-place integer ops", "[elementwise][inplace]") {
  Tensor x = tensor(std::vector<int64_t>{1, 2, 3});
  x.add_(tensor(std::vector<int64_t>{10, 20, 30}));
  x.mul_(2);
  x.sub_(tensor(std::vector<int32_t>{1, 1, 1}));
  REQUIRE(x.dtype() == kInt64);
  require_close(values(x), {21, 43, 65}, 0, 0);
  // A float result cannot be stored in an integer tensor (PyTorch refuses rather than truncating).
  REQUIRE_THROWS_WITH(x.div_(2), Catch::Contains("int64") && Catch::Contains("float32"));
  REQUIRE_THROWS_WITH(x.add_(tensor({0.5f, 0.5f, 0.5f})), Catch::Contains("int64") && Catch::Contains("float32"));
  REQUIRE_THROWS_WITH(x.mul_(1.5), Catch::Contains("can't be cast"));
  require_close(values(x), {21, 43, 65}, 0, 0);
  // Widening the other way is fine: a float tensor absorbs an integer operand.
  Tensor f = tensor({1.0f, 2.0f, 3.0f});
  f.add_(tensor(std::vector<int64_t>{1, 1, 1}));
  require_close(values(f), {2, 3, 4}, 0, 0);
}

TEST_CASE("in-place errors: leaves that require grad, and results that would grow self", "[elementwise][inplace]") {
  Tensor w = random_tensor({2, 3}, 71, -1, 1, kFloat64);
  w.requires_grad_(true);
  const Tensor one = ones({2, 3}, TensorOptions(kFloat64));
  REQUIRE_THROWS_WITH(w.add_(one), Catch::Contains("add_") && Catch::Contains("leaf"));
  REQUIRE_THROWS_WITH(w.sub_(one), Catch::Contains("sub_") && Catch::Contains("leaf"));
  REQUIRE_THROWS_WITH(w.mul_(2), Catch::Contains("mul_") && Catch::Contains("leaf"));
  REQUIRE_THROWS_WITH(w.div_(one), Catch::Contains("div_") && Catch::Contains("leaf"));
  REQUIRE_THROWS_WITH(w.clamp_(0), Catch::Contains("clamp_") && Catch::Contains("leaf"));
  REQUIRE_THROWS_WITH(w.masked_fill_(tensor(std::vector<bool>{true}), 0), Catch::Contains("masked_fill_") &&
                                                                            Catch::Contains("leaf"));
  // Untouched by the failed attempts; allowed without grad recording (an optimizer step).
  const std::vector<double> before = values(w);
  {
    NoGradGuard no_grad;
    w.add_(one);
  }
  for (size_t i = 0; i < before.size(); ++i) REQUIRE(values(w)[i] == before[i] + 1);

  // Broadcasting that would grow self, on both the direct and the autograd path.
  Tensor small = zeros({3});
  REQUIRE_THROWS_WITH(small.add_(ones({2, 3})), Catch::Contains("[2,3]") && Catch::Contains("in place"));
  REQUIRE_THROWS_WITH(small.mul_(ones({2, 1})), Catch::Contains("[2,3]") && Catch::Contains("in place"));
  Tensor tracked = w * 1.0;
  REQUIRE_THROWS_WITH(tracked.add_(ones({4, 2, 3}, TensorOptions(kFloat64))),
                      Catch::Contains("[4,2,3]") && Catch::Contains("in place"));
  REQUIRE_THROWS_AS(zeros({2, 1}).masked_fill_(tensor(std::vector<bool>{true, false}), 1), luna::Error);
  // Writing into an expanded view would make several elements race for one location.
  REQUIRE_THROWS_WITH(zeros({3, 1}).expand({3, 4}).add_(ones({3, 4})), Catch::Contains("single memory location"));
  REQUIRE_THROWS_WITH(zeros({1}).expand({5}).clamp_(0, 1), Catch::Contains("clamp_"));
}

TEST_CASE("in-place ops on non-leaf tensors take part in autograd", "[elementwise][inplace]") {
  Tensor x = random_tensor({2, 3}, 81, -2, 2, kFloat64);
  x.requires_grad_(true);
  const std::vector<double> vx = values(x);
  SECTION("mul_, add_ and clamp_ chain") {
    const Tensor c = random_tensor({3}, 82, 0.5, 2, kFloat64);
    Tensor y = x * 1.0;
    y.mul_(c).add_(1).clamp_(-1, 1);
    y.sum().backward();
    // d/dx clamp(x*c + 1) = c where -1 <= x*c+1 <= 1, else 0.
    const std::vector<double> vc = values(c), g = values(x.grad());
    for (size_t i = 0; i < vx.size(); ++i) {
      const double z = vx[i] * vc[i % 3] + 1;
      REQUIRE(g[i] == Approx(z >= -1 && z <= 1 ? vc[i % 3] : 0.0));
    }
  }
  SECTION("mul_ by a tensor that requires grad, whose gradient needs self's old value") {
    Tensor w = random_tensor({2, 3}, 84, -1, 1, kFloat64);
    w.requires_grad_(true);
    Tensor z = x * 1.0;
    z.mul_(w);
    z.sum().backward();
    require_close(values(x.grad()), values(w), 0, 0);
    require_close(values(w.grad()), vx, 0, 0);
  }
  SECTION("sub_ and div_ by tensors that require grad") {
    Tensor w = random_tensor({3}, 85, 0.5, 2, kFloat64);
    w.requires_grad_(true);
    Tensor z = x * 1.0;
    z.sub_(w, 2).div_(w);
    z.sum().backward();
    // z = (x - 2w) / w = x/w - 2: dz/dx = 1/w, dz/dw = -x/w^2 summed over rows.
    const std::vector<double> vw = values(w), gx = values(x.grad()), gw = values(w.grad());
    for (size_t i = 0; i < vx.size(); ++i) REQUIRE(gx[i] == Approx(1 / vw[i % 3]));
    for (size_t j = 0; j < 3; ++j)
      REQUIRE(gw[j] == Approx(-(vx[j] + vx[j + 3]) / (vw[j] * vw[j])));
  }
  SECTION("a tensor saved for backward and then modified in place is detected") {
    Tensor e = x.exp();
    e.add_(1);
    REQUIRE_THROWS_WITH(e.sum().backward(), Catch::Contains("modified by an in-place operation"));
  }
}

TEST_CASE("0-dim operands promote only across categories (torch.result_type)", "[ops]") {
  using namespace luna;
  const Tensor f32 = ones({3});
  REQUIRE(result_type(f32, scalar_tensor(2.0, kFloat64)) == kFloat32);
  REQUIRE((f32 + scalar_tensor(2.0, kFloat64)).dtype() == kFloat32);
  REQUIRE(result_type(ones({3}, kInt32), scalar_tensor(1.5, kFloat64)) == kFloat64);
  REQUIRE(result_type(ones({3}, kBool), scalar_tensor(int64_t(2), kInt64)) == kInt64);
  REQUIRE(result_type(ones({3}, kFloat16), scalar_tensor(1.0, kFloat32)) == kFloat16);
  REQUIRE(result_type(ones({3}), ones({3}, kFloat64)) == kFloat64);  // both dimensioned
  REQUIRE(where(ones({3}, kBool), f32, scalar_tensor(0.0, kFloat64)).dtype() == kFloat32);
}
