// Forward tests for the reductions (ops/reduce.cpp, backends/cpu/reduce.cpp) against plain loops
// in double: every reduction over all dims, single and multiple dims (negative, inner, outer),
// keepdim, strided inputs, integer inputs, the numerically delicate cases and the argument errors.
#include "test_util.h"

#include <cmath>
#include <functional>
#include <limits>

using namespace luna;
using luna::testing::require_close;
using luna::testing::values;

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

Tensor random_tensor(const Dims& shape, uint64_t seed, double lo, double hi, DType dtype) {
  NoGradGuard no_grad;
  Generator gen(seed);
  return (rand(shape, TensorOptions(kFloat64), &gen) * (hi - lo) + lo).to(dtype);
}

// The elements of x grouped by output position of a reduction over `dims` (empty = all), in
// row-major order within each group, plus the output shape. Reference side: plain index math.
struct Groups {
  Dims shape;
  std::vector<std::vector<double>> members;
};

Groups group_by(const Tensor& x, std::vector<int64_t> dims, bool keepdim) {
  const int nd = x.dim();
  std::vector<bool> reduced(size_t(nd), dims.empty());
  for (int64_t d : dims) reduced[size_t(d < 0 ? d + nd : d)] = true;
  Groups g;
  int64_t n_out = 1;
  for (int d = 0; d < nd; ++d) {
    if (!reduced[size_t(d)]) {
      g.shape.push_back(x.sizes()[d]);
      n_out *= x.sizes()[d];
    } else if (keepdim) {
      g.shape.push_back(1);
    }
  }
  g.members.resize(size_t(n_out));
  const std::vector<double> v = values(x);
  for (int64_t i = 0; i < int64_t(v.size()); ++i) {
    int64_t rem = i, out = 0, mult = 1;
    for (int d = nd - 1; d >= 0; --d) {
      const int64_t coord = rem % x.sizes()[d];
      rem /= x.sizes()[d];
      if (!reduced[size_t(d)]) {
        out += coord * mult;
        mult *= x.sizes()[d];
      }
    }
    g.members[size_t(out)].push_back(v[size_t(i)]);
  }
  return g;
}

std::vector<double> per_group(const Groups& g, const std::function<double(const std::vector<double>&)>& f) {
  std::vector<double> r;
  for (const auto& m : g.members) r.push_back(f(m));
  return r;
}

double ref_sum(const std::vector<double>& m) {
  double s = 0;
  for (double v : m) s += v;
  return s;
}
double ref_mean(const std::vector<double>& m) { return ref_sum(m) / double(m.size()); }
double ref_var(const std::vector<double>& m, int correction) {
  const double mu = ref_mean(m);
  double s = 0;
  for (double v : m) s += (v - mu) * (v - mu);
  return s / double(int64_t(m.size()) - correction);
}
double ref_max(const std::vector<double>& m) {
  double best = -kInf;
  for (double v : m) {
    if (std::isnan(v)) return v;
    best = std::max(best, v);
  }
  return best;
}
double ref_min(const std::vector<double>& m) {
  double best = kInf;
  for (double v : m) {
    if (std::isnan(v)) return v;
    best = std::min(best, v);
  }
  return best;
}
double ref_logsumexp(const std::vector<double>& m) {
  const double mx = ref_max(m);
  if (std::isinf(mx)) return mx == -kInf ? -kInf : kInf;
  double s = 0;
  for (double v : m) s += std::exp(v - mx);
  return mx + std::log(s);
}
double ref_norm(const std::vector<double>& m, double p) {
  if (std::isinf(p)) {
    double best = 0;
    for (double v : m) best = std::max(best, std::abs(v));
    return best;
  }
  double s = 0;
  for (double v : m) s += std::pow(std::abs(v), p);
  return std::pow(s, 1 / p);
}

// Inputs of shape [3,4,5] in several layouts: the reduction kernels pick different loops for each.
// `make(shape, seed)` supplies the values.
std::vector<std::pair<const char*, Tensor>> layouts_345(const std::function<Tensor(const Dims&, uint64_t)>& make) {
  return {
      {"contiguous", make({3, 4, 5}, 1)},
      {"permuted", make({5, 3, 4}, 2).permute({1, 2, 0})},
      {"sliced with step", make({3, 8, 5}, 3).slice(1, 0, 8, 2)},
      {"expanded", make({3, 1, 5}, 4).expand({3, 4, 5})},
  };
}
std::vector<std::pair<const char*, Tensor>> inputs_345(DType dtype, double lo = -2, double hi = 2) {
  return layouts_345([&](const Dims& s, uint64_t seed) { return random_tensor(s, seed, lo, hi, dtype); });
}

const std::vector<std::vector<int64_t>> kDimSets = {{}, {0}, {1}, {2}, {-1}, {-3}, {0, 2}, {1, 2}, {-1, 0}, {0, 1, 2}};

double rtol(DType d) { return d == kFloat32 ? 1e-5 : 1e-12; }
double atol(DType d) { return d == kFloat32 ? 1e-5 : 1e-12; }

Tensor call_dims(const std::function<Tensor(const Tensor&, const Dims&, bool)>& f, const Tensor& x,
                 const std::vector<int64_t>& dims, bool keepdim) {
  return f(x, Dims(dims), keepdim);
}

}  // namespace

TEST_CASE("sum, mean, var, std, amax, amin, logsumexp and norm over dims match reference loops", "[reduce]") {
  using Op = std::function<Tensor(const Tensor&, const Dims&, bool)>;
  using Ref = std::function<double(const std::vector<double>&)>;
  const std::vector<std::tuple<const char*, Op, Ref>> cases = {
      {"sum", [](const Tensor& x, const Dims& d, bool k) { return d.empty() ? (k ? x.sum(Dims{0, 1, 2}, true) : x.sum()) : x.sum(d, k); }, ref_sum},
      {"mean", [](const Tensor& x, const Dims& d, bool k) { return x.mean(d, k); }, ref_mean},
      {"var correction 1", [](const Tensor& x, const Dims& d, bool k) { return x.var(d, 1, k); },
       [](const std::vector<double>& m) { return ref_var(m, 1); }},
      {"var correction 0", [](const Tensor& x, const Dims& d, bool k) { return var(x, d, 0, k); },
       [](const std::vector<double>& m) { return ref_var(m, 0); }},
      {"std correction 1", [](const Tensor& x, const Dims& d, bool k) { return x.std(d, 1, k); },
       [](const std::vector<double>& m) { return std::sqrt(ref_var(m, 1)); }},
      {"std correction 0", [](const Tensor& x, const Dims& d, bool k) { return luna::std(x, d, 0, k); },
       [](const std::vector<double>& m) { return std::sqrt(ref_var(m, 0)); }},
      {"amax", [](const Tensor& x, const Dims& d, bool k) { return amax(x, d, k); }, ref_max},
      {"amin", [](const Tensor& x, const Dims& d, bool k) { return amin(x, d, k); }, ref_min},
      {"logsumexp", [](const Tensor& x, const Dims& d, bool k) { return x.logsumexp(d, k); }, ref_logsumexp},
      {"norm 1", [](const Tensor& x, const Dims& d, bool k) { return x.norm(1, d, k); },
       [](const std::vector<double>& m) { return ref_norm(m, 1); }},
      {"norm 2", [](const Tensor& x, const Dims& d, bool k) { return x.norm(2, d, k); },
       [](const std::vector<double>& m) { return ref_norm(m, 2); }},
      {"norm 3", [](const Tensor& x, const Dims& d, bool k) { return norm(x, 3, d, k); },
       [](const std::vector<double>& m) { return ref_norm(m, 3); }},
      {"norm inf", [](const Tensor& x, const Dims& d, bool k) { return x.norm(kInf, d, k); },
       [](const std::vector<double>& m) { return ref_norm(m, kInf); }},
  };
  for (DType dtype : {kFloat32, kFloat64}) {
    for (const auto& [layout, x] : inputs_345(dtype)) {
      for (const auto& [name, op, ref] : cases) {
        for (const auto& dims : kDimSets) {
          for (bool keepdim : {false, true}) {
            CAPTURE(dtype_name(dtype), layout, name, Dims(dims), keepdim);
            const Tensor out = call_dims(op, x, dims, keepdim);
            const Groups g = group_by(x, dims, keepdim);
            REQUIRE(out.sizes() == g.shape);
            REQUIRE(out.dtype() == dtype);
            require_close(values(out), per_group(g, ref), rtol(dtype), atol(dtype));
          }
        }
      }
    }
  }
}

TEST_CASE("reductions over all elements", "[reduce]") {
  for (DType dtype : {kFloat32, kFloat64}) {
    CAPTURE(dtype_name(dtype));
    const Tensor x = random_tensor({4, 6}, 11, -3, 3, dtype).t();
    const std::vector<double> v = values(x);
    REQUIRE(x.sum().dim() == 0);
    require_close(values(x.sum()), {ref_sum(v)}, rtol(dtype), atol(dtype));
    require_close(values(sum(x)), {ref_sum(v)}, rtol(dtype), atol(dtype));
    require_close(values(x.mean()), {ref_mean(v)}, rtol(dtype), atol(dtype));
    require_close(values(x.max()), {ref_max(v)}, 0, 0);
    require_close(values(min(x)), {ref_min(v)}, 0, 0);
    require_close(values(x.norm()), {ref_norm(v, 2)}, rtol(dtype), atol(dtype));
    require_close(values(norm(x, 1)), {ref_norm(v, 1)}, rtol(dtype), atol(dtype));
    require_close(values(x.norm(kInf)), {ref_norm(v, kInf)}, 0, 0);
    require_close(values(x.var({}, 0)), {ref_var(v, 0)}, rtol(dtype), atol(dtype));
    REQUIRE(x.max().dim() == 0);
    REQUIRE(x.norm().dim() == 0);
  }
  // 0-dim inputs reduce to themselves; dim 0 and -1 are accepted, like PyTorch.
  const Tensor s = scalar_tensor(2.5);
  REQUIRE(s.sum().item<float>() == 2.5f);
  REQUIRE(s.sum({0}).item<float>() == 2.5f);
  REQUIRE(s.mean({-1}, true).dim() == 0);
  REQUIRE(s.max().item<float>() == 2.5f);
  REQUIRE(s.logsumexp({0}).item<float>() == 2.5f);
  REQUIRE(std::get<0>(s.max(0)).item<float>() == 2.5f);
  REQUIRE(std::get<1>(s.max(0)).item<int64_t>() == 0);
  // Empty inputs: sums are 0, a mean is NaN, max has no answer.
  const Tensor e = zeros({0, 3});
  REQUIRE(e.sum().item<float>() == 0);
  require_close(values(e.sum({0})), {0, 0, 0}, 0, 0);
  REQUIRE(std::isnan(e.mean().item<float>()));
  REQUIRE_THROWS_WITH(e.max(), Catch::Contains("empty"));
  REQUIRE_THROWS_WITH(e.max(0), Catch::Contains("size 0"));
}

TEST_CASE("sum of integer and bool tensors is int64 and exact", "[reduce]") {
  Generator gen(21);
  for (DType dtype : {kInt64, kInt32, kInt16, kInt8, kUInt8, kBool}) {
    CAPTURE(dtype_name(dtype));
    const int64_t high = dtype == kBool ? 2 : 100;
    const Tensor x = randint(0, high, {6, 7}, TensorOptions(kInt64), &gen).to(dtype);
    const Tensor all = x.sum();
    REQUIRE(all.dtype() == kInt64);
    require_close(values(all), {ref_sum(values(x))}, 0, 0);
    for (const std::vector<int64_t>& dims : {std::vector<int64_t>{0}, std::vector<int64_t>{1}}) {
      const Tensor out = x.sum(Dims(dims), true);
      REQUIRE(out.dtype() == kInt64);
      require_close(values(out), per_group(group_by(x, dims, true), ref_sum), 0, 0);
    }
    // max/min keep the integer dtype.
    REQUIRE(x.max().dtype() == dtype);
    require_close(values(x.max()), {ref_max(values(x))}, 0, 0);
    require_close(values(amin(x, {1})), per_group(group_by(x, {1}, false), ref_min), 0, 0);
  }
  // int8 values that would overflow an int8 accumulator.
  const Tensor big = full({300}, 100, TensorOptions(kInt8));
  REQUIRE(big.sum().item<int64_t>() == 30000);
  // Values beyond 2^53 sum exactly: no float detour.
  const int64_t huge = (int64_t(1) << 60) + 1;
  REQUIRE(tensor(std::vector<int64_t>{huge, 2}).sum().item<int64_t>() == huge + 2);
}

TEST_CASE("large reductions take the threaded and row-accumulating paths", "[reduce]") {
  for (DType dtype : {kFloat32, kFloat64}) {
    CAPTURE(dtype_name(dtype));
    // [80, 500]: reducing dim 0 accumulates whole rows; dim 1 sweeps contiguous runs.
    const Tensor x = random_tensor({80, 500}, 31, -1, 1, dtype);
    for (const std::vector<int64_t>& dims : {std::vector<int64_t>{0}, std::vector<int64_t>{1}, std::vector<int64_t>{}}) {
      CAPTURE(Dims(dims));
      const Groups g = group_by(x, dims, false);
      const Tensor s = dims.empty() ? x.sum() : x.sum(Dims(dims));
      require_close(values(s), per_group(g, ref_sum), rtol(dtype), 1e-4);
      require_close(values(amax(x, Dims(dims))), per_group(g, ref_max), 0, 0);
      require_close(values(amin(x, Dims(dims))), per_group(g, ref_min), 0, 0);
    }
    // One output over everything, in a single long run.
    const Tensor flat = random_tensor({100000}, 32, 0, 1, dtype);
    require_close(values(flat.sum()), {ref_sum(values(flat))}, 1e-6, 0);
    // The same reduction on a transposed layout.
    const Tensor xt = random_tensor({500, 80}, 33, -1, 1, dtype).t();
    require_close(values(xt.sum({0})), per_group(group_by(xt, {0}, false), ref_sum), rtol(dtype), 1e-4);
    const auto [v, i] = xt.max(0);
    require_close(values(v), per_group(group_by(xt, {0}, false), ref_max), 0, 0);
    REQUIRE(i.sizes() == Dims{500});
  }
  // A bias gradient's shape, (rows, cols) summed over rows, large enough to split the columns over
  // threads (an odd count, so the chunks are uneven): each column sums in row order in double, so
  // the result is that sum rounded once, for every column and chunk.
  {
    const Tensor g = random_tensor({70001, 37}, 34, -1, 1, kFloat32);
    const std::vector<double> xs = values(g);
    std::vector<double> want(37, 0.0);
    for (int64_t r = 0; r < 70001; ++r)
      for (int64_t c = 0; c < 37; ++c) want[size_t(c)] += double(float(xs[size_t(r * 37 + c)]));
    for (double& w : want) w = double(float(w));
    require_close(values(g.sum({0})), want, 0, 0);
  }
  // float32 sums accumulate in double: a float accumulator stalls at 2^24 (2^24 + 1 rounds back
  // down). The exact total 2^24 + 69998 is even, so representable in float32.
  Tensor ones_then = ones({69999});
  ones_then.narrow(0, 0, 1).fill_(16777216.0f);
  REQUIRE(ones_then.sum().item<double>() == 16777216.0 + 69998.0);
}

TEST_CASE("max and min along a dim return values and first indices", "[reduce]") {
  for (DType dtype : {kFloat32, kFloat64, kInt64}) {
    // Small integer values: ties everywhere, and the first index must win.
    Generator gen(61);
    for (const auto& [layout, xi] : layouts_345([&](const Dims& s, uint64_t) {
           return randint(-3, 4, s, TensorOptions(kInt64), &gen).to(dtype);
         })) {
      for (int64_t dim : {0, 1, 2, -1, -2}) {
        for (bool keepdim : {false, true}) {
          CAPTURE(dtype_name(dtype), layout, dim, keepdim);
          const Groups g = group_by(xi, {dim}, keepdim);
          for (bool is_max : {true, false}) {
            const auto [v, idx] = is_max ? xi.max(dim, keepdim) : xi.min(dim, keepdim);
            REQUIRE(v.dtype() == dtype);
            REQUIRE(idx.dtype() == kInt64);
            REQUIRE(v.sizes() == g.shape);
            REQUIRE(idx.sizes() == g.shape);
            std::vector<double> want_v, want_i;
            for (const auto& m : g.members) {
              size_t best = 0;
              for (size_t k = 1; k < m.size(); ++k)
                if (is_max ? m[k] > m[best] : m[k] < m[best]) best = k;
              want_v.push_back(m[best]);
              want_i.push_back(double(best));
            }
            require_close(values(v), want_v, 0, 0);
            require_close(values(idx), want_i, 0, 0);
            require_close(values(is_max ? xi.argmax(dim, keepdim) : argmin(xi, dim, keepdim)), want_i, 0, 0);
          }
        }
      }
    }
  }
  const Tensor ties = tensor({3.0f, 1.0f, 3.0f, 1.0f});
  REQUIRE(ties.argmax(0).item<int64_t>() == 0);
  REQUIRE(ties.argmin(0).item<int64_t>() == 1);
  // Without dim, as torch.argmax(x): the first extreme's index into the flattened tensor, 0-dim int64.
  const Tensor grid = tensor({2.0f, 7.0f, 1.0f, 7.0f, -3.0f, 0.0f}, {2, 3});
  const Tensor at_max = grid.argmax(), at_min = argmin(grid.t());
  REQUIRE(at_max.dim() == 0);
  REQUIRE(at_max.dtype() == kInt64);
  REQUIRE(at_max.item<int64_t>() == 1);
  REQUIRE(at_min.item<int64_t>() == 3);  // grid.t() flattened is 2, 7, 7, -3, 1, 0
  REQUIRE(tensor({5.0f}).reshape({}).argmax().item<int64_t>() == 0);
}

TEST_CASE("NaN propagates through max, min, amax and argmax", "[reduce]") {
  const Tensor x = tensor(std::vector<double>{1, kNaN, 5, 2, 3, 4}, {2, 3});
  REQUIRE(std::isnan(x.max().item<double>()));
  REQUIRE(std::isnan(x.min().item<double>()));
  const std::vector<double> rows = values(amax(x, {1}));
  REQUIRE(std::isnan(rows[0]));
  REQUIRE(rows[1] == 4);
  const auto [v, i] = x.max(1);
  REQUIRE(std::isnan(values(v)[0]));
  require_close(values(i), {1, 2}, 0, 0);
  require_close(values(argmin(x, 1)), {1, 0}, 0, 0);
}

TEST_CASE("logsumexp is stable for large and infinite inputs", "[reduce]") {
  for (DType dtype : {kFloat32, kFloat64}) {
    CAPTURE(dtype_name(dtype));
    // Naive exp(1000) overflows; a row of -inf sums to exp(-inf) = 0 and gives -inf, not NaN.
    const Tensor x = tensor(std::vector<double>{1000, 1000, 999, -kInf, -kInf, -kInf, -1000, -1001, -kInf, kInf, 0, 1},
                            {4, 3}).to(dtype);
    const std::vector<double> got = values(x.logsumexp({1}));
    REQUIRE(got[0] == Approx(1000 + std::log(2 + std::exp(-1.0))).epsilon(1e-6));
    REQUIRE(got[1] == -kInf);
    REQUIRE(got[2] == Approx(-1000 + std::log1p(std::exp(-1.0))).epsilon(1e-6));
    REQUIRE(got[3] == kInf);
    // Over all dims of a large-valued tensor, and over dim 0.
    const Tensor big = random_tensor({3, 4}, 41, 990, 1010, dtype);
    require_close(values(big.logsumexp({0, 1})), {ref_logsumexp(values(big))}, rtol(dtype), 1e-4);
    require_close(values(big.logsumexp({0}, true)), per_group(group_by(big, {0}, true), ref_logsumexp), rtol(dtype), 1e-4);
  }
}

TEST_CASE("var and std edge cases", "[reduce]") {
  const Tensor c = full({5}, 3.0, TensorOptions(kFloat64));
  REQUIRE(c.var({0}).item<double>() == 0);
  REQUIRE(c.std({0}, 0).item<double>() == 0);
  // One sample with the unbiased estimator: division by zero gives NaN, like PyTorch.
  REQUIRE(std::isnan(tensor({1.0f}).var({0}).item<float>()));
  REQUIRE(tensor({1.0f}).var({0}, 0).item<float>() == 0);
  // Correction 2 (n - 2 in the denominator).
  const Tensor x = tensor(std::vector<double>{1, 2, 4, 8});
  const double mu = 3.75, ss = (1 - mu) * (1 - mu) + (2 - mu) * (2 - mu) + (4 - mu) * (4 - mu) + (8 - mu) * (8 - mu);
  REQUIRE(x.var({0}, 2).item<double>() == Approx(ss / 2));
}

TEST_CASE("reduction results can be modified in place under autograd", "[reduce]") {
  // They are fresh tensors, not views of their input, so in-place ops on them are allowed.
  Tensor x = random_tensor({3, 4}, 51, -1, 1, kFloat64);
  x.requires_grad_(true);
  Tensor s = x.sum({1});
  s.mul_(2);
  auto [m, i] = x.max(1);
  m.add_(1);
  (s.sum() + m.sum()).backward();
  // d/dx (2 * row sums + row maxima): 2 everywhere plus 1 at each row's argmax.
  const std::vector<double> g = values(x.grad()), idx = values(i);
  for (int r = 0; r < 3; ++r)
    for (int c = 0; c < 4; ++c) REQUIRE(g[size_t(r * 4 + c)] == (c == int(idx[size_t(r)]) ? 3.0 : 2.0));
  Tensor l = x.logsumexp({0});
  REQUIRE_NOTHROW(l.add_(1));
  Tensor n = x.norm(2, {1});
  REQUIRE_NOTHROW(n.sub_(ones_like(n)));
  Tensor a = amax(x, {0});
  REQUIRE_NOTHROW(a.mul_(3));
  Tensor v = x.var({1});
  REQUIRE_NOTHROW(v.div_(2));
}

TEST_CASE("reduction argument errors name the values", "[reduce]") {
  const Tensor x = zeros({2, 3, 4});
  REQUIRE_THROWS_AS(x.sum({3}), luna::Error);
  REQUIRE_THROWS_WITH(x.sum({3}), Catch::Contains("dim 3") && Catch::Contains("[-3, 2]"));
  REQUIRE_THROWS_WITH(x.mean({-4}), Catch::Contains("dim -4") && Catch::Contains("[-3, 2]"));
  REQUIRE_THROWS_WITH(x.max(5), Catch::Contains("dim 5") && Catch::Contains("[-3, 2]"));
  REQUIRE_THROWS_WITH(x.argmin(-4), Catch::Contains("dim -4"));
  REQUIRE_THROWS_WITH(zeros({2, 0}).argmax(1), Catch::Contains("argmax") && Catch::Contains("size 0"));
  REQUIRE_THROWS_WITH(zeros({0}).argmin(), Catch::Contains("argmin") && Catch::Contains("size 0"));
  REQUIRE_THROWS_WITH(x.logsumexp({7}), Catch::Contains("dim 7"));
  REQUIRE_THROWS_WITH(x.norm(2, {3}), Catch::Contains("dim 3"));
  REQUIRE_THROWS_WITH(x.var({0, 9}), Catch::Contains("dim 9"));
  REQUIRE_THROWS_WITH(x.sum({1, 1}), Catch::Contains("dim 1") && Catch::Contains("more than once"));
  REQUIRE_THROWS_WITH(x.sum({0, -3}), Catch::Contains("more than once"));
  REQUIRE_THROWS_WITH(amax(x, {2, -1}), Catch::Contains("more than once"));
  const Tensor ints = tensor(std::vector<int64_t>{1, 2, 3});
  REQUIRE_THROWS_WITH(ints.mean(), Catch::Contains("mean") && Catch::Contains("int64"));
  REQUIRE_THROWS_WITH(ints.mean({0}), Catch::Contains("floating point"));
  REQUIRE_THROWS_AS(ints.var({0}), luna::Error);
  REQUIRE_THROWS_AS(ints.logsumexp({0}), luna::Error);
  REQUIRE_THROWS_WITH(x.norm(-1), Catch::Contains("-1"));
}
