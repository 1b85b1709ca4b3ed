// Float64 finite-difference checks of every differentiable elementwise op (ops/binary.cpp,
// ops/unary.cpp), with broadcasting between inputs of different shapes, strided inputs, and the
// in-place forms. Inputs stay away from kinks and poles so central differences are meaningful.
#include "test_util.h"

#include <functional>

using namespace luna;
using luna::testing::random_leaf;
using luna::testing::require_gradcheck;

namespace {

using Inputs = std::vector<Tensor>;

// A [rows, cols] f64 leaf that is a transposed (non-contiguous) view.
Tensor strided_leaf(int64_t rows, int64_t cols, uint64_t seed, double lo = -1, double hi = 1) {
  Tensor t = random_leaf({cols, rows}, seed, lo, hi).detach().t();
  t.requires_grad_(true);
  return t;
}

// A [rows, cols] f64 leaf taken every other column of a wider tensor.
Tensor stepped_leaf(int64_t rows, int64_t cols, uint64_t seed, double lo = -1, double hi = 1) {
  Tensor t = random_leaf({rows, 2 * cols}, seed, lo, hi).detach().slice(1, 1, 2 * cols, 2);
  t.requires_grad_(true);
  return t;
}

struct BinaryCase {
  const char* name;
  std::function<Tensor(const Tensor&, const Tensor&)> op;
  double a_lo, a_hi, b_lo, b_hi;
};

}  // namespace

TEST_CASE("gradcheck binary ops with broadcasting and strided inputs", "[gradcheck][elementwise]") {
  const std::vector<BinaryCase> cases = {
      {"add", [](const Tensor& a, const Tensor& b) { return a + b; }, -1, 1, -1, 1},
      {"add alpha", [](const Tensor& a, const Tensor& b) { return add(a, b, 2.5); }, -1, 1, -1, 1},
      {"sub", [](const Tensor& a, const Tensor& b) { return a - b; }, -1, 1, -1, 1},
      {"sub alpha", [](const Tensor& a, const Tensor& b) { return a.sub(b, -3); }, -1, 1, -1, 1},
      {"mul", [](const Tensor& a, const Tensor& b) { return a * b; }, -1, 1, -1, 1},
      {"div", [](const Tensor& a, const Tensor& b) { return a / b; }, -1, 1, 0.5, 2},
      {"div negative divisor", [](const Tensor& a, const Tensor& b) { return div(a, b); }, -1, 1, -2, -0.5},
      {"pow", [](const Tensor& a, const Tensor& b) { return a.pow(b); }, 0.5, 2, -2, 2},
      {"maximum", [](const Tensor& a, const Tensor& b) { return maximum(a, b); }, -1, 1, -1, 1},
      {"minimum", [](const Tensor& a, const Tensor& b) { return minimum(a, b); }, -1, 1, -1, 1},
  };
  for (const BinaryCase& c : cases) {
    CAPTURE(c.name);
    auto fn = [&](const Inputs& in) { return c.op(in[0], in[1]); };
    // [2,1,3] with [4,1] -> [2,4,3]: both gradients must be summed over broadcast dims.
    require_gradcheck(fn, {random_leaf({2, 1, 3}, 1, c.a_lo, c.a_hi), random_leaf({4, 1}, 2, c.b_lo, c.b_hi)});
    // Transposed with stepped-slice operands.
    require_gradcheck(fn, {strided_leaf(3, 4, 3, c.a_lo, c.a_hi), stepped_leaf(3, 4, 4, c.b_lo, c.b_hi)});
    // A 0-dim operand on either side.
    require_gradcheck(fn, {random_leaf({}, 5, c.a_lo, c.a_hi), random_leaf({2, 3}, 6, c.b_lo, c.b_hi)});
    require_gradcheck(fn, {random_leaf({3}, 7, c.a_lo, c.a_hi), random_leaf({}, 8, c.b_lo, c.b_hi)});
    // Only one side requires grad; the other is a constant (the op must not need its gradient).
    Tensor constant = random_leaf({3}, 9, c.b_lo, c.b_hi).detach();
    require_gradcheck([&](const Inputs& in) { return c.op(in[0], constant); }, {random_leaf({2, 3}, 10, c.a_lo, c.a_hi)});
    Tensor constant_a = random_leaf({2, 1}, 11, c.a_lo, c.a_hi).detach();
    require_gradcheck([&](const Inputs& in) { return c.op(constant_a, in[0]); }, {random_leaf({2, 3}, 12, c.b_lo, c.b_hi)});
  }
}

TEST_CASE("gradcheck binary ops with operands of other dtypes", "[gradcheck][elementwise]") {
  // The f64 leaf mixes with int64 and f32 constants; its gradient must stay f64 and be exact.
  const Tensor ints = tensor(std::vector<int64_t>{2, -3, 1});
  const Tensor floats = tensor({0.5f, 1.5f, -2.0f});
  require_gradcheck([&](const Inputs& in) { return in[0] * ints + floats; }, {random_leaf({2, 3}, 21)});
  require_gradcheck([&](const Inputs& in) { return in[0] / floats - ints; }, {random_leaf({2, 3}, 22)});
  require_gradcheck([&](const Inputs& in) { return ints / in[0]; }, {random_leaf({3}, 23, 0.5, 2)});
  require_gradcheck([&](const Inputs& in) { return 2 * in[0] + 1 - in[0] / 4 + 3 / in[0] - (-in[0]); },
                    {random_leaf({3}, 24, 0.5, 2)});
}

namespace {
struct UnaryCase {
  const char* name;
  std::function<Tensor(const Tensor&)> op;
  double lo, hi;
};
}  // namespace

TEST_CASE("gradcheck unary ops on contiguous, strided and 0-dim inputs", "[gradcheck][elementwise]") {
  const std::vector<UnaryCase> cases = {
      {"neg", [](const Tensor& x) { return neg(x); }, -1, 1},
      {"exp", [](const Tensor& x) { return exp(x); }, -2, 2},
      {"log", [](const Tensor& x) { return log(x); }, 0.3, 3},
      {"log1p", [](const Tensor& x) { return log1p(x); }, -0.5, 2},
      {"sqrt", [](const Tensor& x) { return sqrt(x); }, 0.3, 3},
      {"rsqrt", [](const Tensor& x) { return rsqrt(x); }, 0.3, 3},
      {"abs", [](const Tensor& x) { return abs(x); }, -1, 1},
      {"sign", [](const Tensor& x) { return sign(x); }, -1, 1},
      {"tanh", [](const Tensor& x) { return tanh(x); }, -2, 2},
      {"sigmoid", [](const Tensor& x) { return sigmoid(x); }, -3, 3},
      {"relu", [](const Tensor& x) { return relu(x); }, -1, 1},
      {"gelu", [](const Tensor& x) { return gelu(x); }, -3, 3},
      {"gelu tanh", [](const Tensor& x) { return gelu(x, "tanh"); }, -3, 3},
      {"elu", [](const Tensor& x) { return elu(x); }, -2, 2},
      {"elu alpha", [](const Tensor& x) { return elu(x, 0.3); }, -2, 2},
      {"silu", [](const Tensor& x) { return silu(x); }, -3, 3},
      {"softplus", [](const Tensor& x) { return softplus(x); }, -3, 3},
      // beta * x passes the threshold for x > 0.5: both the log1p and the linear branch.
      {"softplus beta=2 threshold=1", [](const Tensor& x) { return softplus(x, 2.0, 1.0); }, -1, 1},
      {"sin", [](const Tensor& x) { return sin(x); }, -3, 3},
      {"cos", [](const Tensor& x) { return cos(x); }, -3, 3},
      {"square", [](const Tensor& x) { return square(x); }, -1, 1},
      {"reciprocal", [](const Tensor& x) { return reciprocal(x); }, 0.5, 2},
      {"erf", [](const Tensor& x) { return erf(x); }, -2, 2},
      {"pow 2.5", [](const Tensor& x) { return x.pow(2.5); }, 0.3, 2},
      {"pow -1.5", [](const Tensor& x) { return x.pow(-1.5); }, 0.3, 2},
      {"pow 3", [](const Tensor& x) { return x.pow(3); }, -1, 1},
      {"pow 0", [](const Tensor& x) { return x.pow(0); }, -1, 1},
      {"clamp min", [](const Tensor& x) { return x.clamp(-0.5); }, -1, 1},
      {"clamp max", [](const Tensor& x) { return x.clamp(std::nullopt, 0.5); }, -1, 1},
      {"clamp both", [](const Tensor& x) { return clamp(x, -0.5, 0.5); }, -1, 1},
      {"clamp integral bounds", [](const Tensor& x) { return clamp(x, -1, 1); }, -2, 2},
  };
  for (const UnaryCase& c : cases) {
    CAPTURE(c.name);
    auto fn = [&](const Inputs& in) { return c.op(in[0]); };
    require_gradcheck(fn, {random_leaf({2, 3}, 31, c.lo, c.hi)});
    require_gradcheck(fn, {strided_leaf(3, 4, 32, c.lo, c.hi)});
    require_gradcheck(fn, {stepped_leaf(2, 3, 33, c.lo, c.hi)});
    require_gradcheck(fn, {random_leaf({}, 34, c.lo, c.hi)});
    // Composed with a broadcast product, so the incoming gradient is not all ones.
    require_gradcheck([&](const Inputs& in) { return c.op(in[0]) * in[1]; },
                      {random_leaf({2, 3}, 35, c.lo, c.hi), random_leaf({3}, 36)});
  }
}

TEST_CASE("gradcheck where and masked_fill", "[gradcheck][elementwise]") {
  const Tensor cond = tensor(std::vector<bool>{true, false, false, true}, {4, 1});
  // Both branches get gradient where they are selected, summed over their broadcast dims.
  require_gradcheck([&](const Inputs& in) { return where(cond, in[0], in[1]); },
                    {random_leaf({1, 3}, 41), strided_leaf(4, 3, 42)});
  require_gradcheck([&](const Inputs& in) { return where(cond, in[0], in[1]); },
                    {random_leaf({4, 3}, 43), random_leaf({}, 44)});
  require_gradcheck([&](const Inputs& in) { return where(cond, in[0], -2.0); }, {random_leaf({4, 3}, 45)});
  // A full-size condition with a strided pattern.
  const Tensor cond2 = gt(random_leaf({3, 4}, 46).detach(), zeros({}, kFloat64)).t();
  require_gradcheck([&](const Inputs& in) { return where(cond2, in[0], in[1]); },
                    {random_leaf({4, 3}, 47), random_leaf({4, 1}, 48)});
  const Tensor mask = tensor(std::vector<bool>{false, true, true, false}, {4});
  require_gradcheck([&](const Inputs& in) { return in[0].masked_fill(mask, 3.5); }, {strided_leaf(3, 4, 49)});
  require_gradcheck([&](const Inputs& in) { return masked_fill(in[0] * in[1], mask, 2.5) * in[1]; },
                    {random_leaf({2, 4}, 50), random_leaf({4}, 51)});
}

TEST_CASE("gradcheck in-place ops on non-leaf tensors", "[gradcheck][elementwise][inplace]") {
  auto through = [](const std::function<void(const Tensor&, const Inputs&)>& modify) {
    return [modify](const Inputs& in) {
      Tensor y = in[0] * 1.0;  // a non-leaf copy that may be modified in place
      modify(y, in);
      return y;
    };
  };
  const Inputs two = {random_leaf({2, 3}, 61), random_leaf({3}, 62, 0.5, 2)};
  require_gradcheck(through([](const Tensor& y, const Inputs& in) { y.add_(in[1], 2); }), two);
  require_gradcheck(through([](const Tensor& y, const Inputs& in) { y.sub_(in[1]); }), two);
  require_gradcheck(through([](const Tensor& y, const Inputs& in) { y.mul_(in[1]); }), two);
  require_gradcheck(through([](const Tensor& y, const Inputs& in) { y.div_(in[1]); }), two);
  require_gradcheck(through([](const Tensor& y, const Inputs& in) { y.mul_(in[1]).add_(3).div_(in[1]).sub_(in[0]); }),
                    two);
  require_gradcheck(through([](const Tensor& y, const Inputs&) { y.mul_(2.0).clamp_(-0.5, 0.5); }),
                    {random_leaf({2, 3}, 63)});
  require_gradcheck(through([](const Tensor& y, const Inputs&) { y.masked_fill_(tensor(std::vector<bool>{true, false, true}), 0); }),
                    {random_leaf({2, 3}, 64)});
  // Strided leaves feeding the in-place chain.
  require_gradcheck(through([](const Tensor& y, const Inputs& in) { y.mul_(in[1]).sub_(in[1]); }),
                    {strided_leaf(2, 3, 65), stepped_leaf(1, 3, 66)});
}
