// Backend parity: every op with a CUDA kernel, run on CUDA and on the CPU from the same random
// inputs, forward and (through autograd) backward, within per-op tolerances. float32 tolerances
// cover libm differences (a few ulp) and different summation orders; float64 ones are tight.
// Each test ends with a "no CUDA device" warning where there is no GPU.
#include "cuda_test_util.h"

#include <cmath>
#include <limits>

#include <luna/backends/backend.h>

using namespace luna;
using namespace luna::testing;

namespace {

using Fn = std::function<Tensor(const std::vector<Tensor>&)>;

// A 0-dim tensor on t's device, for comparisons with a number.
Tensor scalar_on(double value, const Tensor& t) { return full({}, value, TensorOptions(t.dtype()).device(t.device())); }

struct UnaryCase {
  const char* name;
  std::function<Tensor(const Tensor&)> fn;
  bool positive_domain;  // inputs in [0.25, 3) instead of [-3, 3)
};

std::vector<UnaryCase> unary_cases() {
  return {
      {"neg", [](const Tensor& x) { return neg(x); }, false},
      {"exp", [](const Tensor& x) { return exp(x); }, false},
      {"log", [](const Tensor& x) { return log(x); }, true},
      {"log1p", [](const Tensor& x) { return log1p(x); }, true},
      {"sqrt", [](const Tensor& x) { return sqrt(x); }, true},
      {"rsqrt", [](const Tensor& x) { return rsqrt(x); }, true},
      {"abs", [](const Tensor& x) { return abs(x); }, false},
      {"sign", [](const Tensor& x) { return sign(x); }, false},
      {"tanh", [](const Tensor& x) { return tanh(x); }, false},
      {"sigmoid", [](const Tensor& x) { return sigmoid(x); }, false},
      {"relu", [](const Tensor& x) { return relu(x); }, false},
      {"gelu", [](const Tensor& x) { return gelu(x); }, false},
      {"gelu_tanh", [](const Tensor& x) { return gelu(x, "tanh"); }, false},
      {"elu", [](const Tensor& x) { return elu(x, 0.7); }, false},
      {"silu", [](const Tensor& x) { return silu(x); }, false},
      {"softplus", [](const Tensor& x) { return softplus(x, 2.0, 3.0); }, false},
      {"sin", [](const Tensor& x) { return sin(x); }, false},
      {"cos", [](const Tensor& x) { return cos(x); }, false},
      {"square", [](const Tensor& x) { return square(x); }, false},
      {"reciprocal", [](const Tensor& x) { return reciprocal(x); }, true},
      {"clamp", [](const Tensor& x) { return clamp(x, -0.5, 1.25); }, false},
      {"clamp_min", [](const Tensor& x) { return clamp(x, 0.1); }, false},
      {"pow_scalar", [](const Tensor& x) { return pow(x, 2.5); }, true},
      {"erf", [](const Tensor& x) { return erf(x); }, false},
  };
}

}  // namespace

TEST_CASE("cuda: unary ops and their derivatives match the CPU (f32, f64, strided inputs)", "[cuda]") {
  LUNA_SKIP_WITHOUT_CUDA_DEVICE();
  for (const UnaryCase& c : unary_cases()) {
    const double lo = c.positive_domain ? 0.25 : -3.0, hi = 3.0;
    const Fn on_matrix = [&](const std::vector<Tensor>& in) { return c.fn(in[0]); };
    // A transposed view: the kernel reads through strides.
    const Fn on_transpose = [&](const std::vector<Tensor>& in) { return c.fn(in[0].t()); };
    require_forward_backward_match(on_matrix, {uniform_cpu({37, 41}, 21, lo, hi)}, 1e-5, 2e-6, std::string(c.name) + " f32");
    require_forward_backward_match(on_transpose, {uniform_cpu({13, 29}, 22, lo, hi)}, 1e-5, 2e-6,
                                   std::string(c.name) + " f32 transposed");
    require_forward_backward_match(on_matrix, {uniform_cpu({19, 23}, 23, lo, hi, kFloat64)}, 1e-13, 1e-14,
                                   std::string(c.name) + " f64");
  }
}

TEST_CASE("cuda: integer unary ops match the CPU", "[cuda]") {
  LUNA_SKIP_WITHOUT_CUDA_DEVICE();
  const Tensor ints = uniform_cpu({50}, 24, -40.0, 40.0).to(kInt64);
  require_matches_cpu(neg(ints.to(kCuda)), neg(ints), 0, 0, "neg int64");
  require_matches_cpu(abs(ints.to(kInt32).to(kCuda)), abs(ints.to(kInt32)), 0, 0, "abs int32");
  require_matches_cpu(sign(ints.to(kCuda)), sign(ints), 0, 0, "sign int64");
  require_matches_cpu(square(ints.to(kInt16).to(kCuda)), square(ints.to(kInt16)), 0, 0, "square int16");
  require_matches_cpu(clamp(ints.to(kCuda), -5, 7), clamp(ints, -5, 7), 0, 0, "clamp int64");
  // The op computes integer inputs of float-only functions in float32, as on the CPU ...
  require_matches_cpu(exp(clamp(ints, -5, 5).to(kCuda)), exp(clamp(ints, -5, 5)), 2e-6, 1e-6, "exp of int64");
  // ... and the kernel itself refuses them rather than computing nonsense.
  const Tensor ints_cuda = ints.to(kCuda);
  REQUIRE_THROWS_WITH(backend_for(kCuda).unary(UnaryOp::Exp, ints_cuda, empty_like(ints_cuda), UnaryParams{}),
                      Catch::Contains("not defined for integer dtype"));
}

TEST_CASE("cuda: binary ops with broadcasting match the CPU for floats and integers", "[cuda]") {
  LUNA_SKIP_WITHOUT_CUDA_DEVICE();
  const Tensor a = uniform_cpu({4, 1, 5}, 31, 0.5, 3.0);
  const Tensor b = uniform_cpu({3, 1}, 32, 0.5, 3.0);
  const std::vector<std::pair<const char*, Fn>> differentiable = {
      {"add", [](const std::vector<Tensor>& t) { return add(t[0], t[1], 2.0); }},
      {"sub", [](const std::vector<Tensor>& t) { return sub(t[0], t[1]); }},
      {"mul", [](const std::vector<Tensor>& t) { return mul(t[0], t[1]); }},
      {"div", [](const std::vector<Tensor>& t) { return div(t[0], t[1]); }},
      {"pow", [](const std::vector<Tensor>& t) { return pow(t[0], t[1]); }},
      {"maximum", [](const std::vector<Tensor>& t) { return maximum(t[0], t[1]); }},
      {"minimum", [](const std::vector<Tensor>& t) { return minimum(t[0], t[1]); }},
  };
  for (const auto& [name, fn] : differentiable) {
    require_forward_backward_match(fn, {a, b}, 2e-6, 1e-6, std::string(name) + " f32");
    require_forward_backward_match(fn, {a.to(kFloat64), b.to(kFloat64)}, 1e-13, 1e-14, std::string(name) + " f64");
  }
  const Tensor ca = a.to(kCuda), cb = b.to(kCuda);
  require_matches_cpu(eq(ca, cb), eq(a, b), 0, 0, "eq");
  require_matches_cpu(lt(ca, cb), lt(a, b), 0, 0, "lt");
  require_matches_cpu(ge(ca, cb), ge(a, b), 0, 0, "ge");
  require_matches_cpu(logical_and(gt(ca, scalar_on(1.0, ca)), lt(cb, scalar_on(2.0, cb))), logical_and(gt(a, scalar_on(1.0, a)), lt(b, scalar_on(2.0, b))), 0, 0, "logical_and");
  require_matches_cpu(logical_or(gt(ca, scalar_on(2.0, ca)), lt(cb, scalar_on(1.0, cb))), logical_or(gt(a, scalar_on(2.0, a)), lt(b, scalar_on(1.0, b))), 0, 0, "logical_or");
  // NaN propagates through maximum/minimum as on the CPU.
  const Tensor with_nan = tensor({1.0f, NAN, 3.0f});
  require_matches_cpu(maximum(with_nan.to(kCuda), ones({3}).to(kCuda)), maximum(with_nan, ones({3})), 0, 0, "maximum NaN");
  // Integers: exact, including integer pow and comparisons.
  const Tensor ia = uniform_cpu({6, 4}, 33, -9.0, 9.0).to(kInt64), ib = uniform_cpu({4}, 34, 0.0, 4.0).to(kInt64);
  const Tensor cia = ia.to(kCuda), cib = ib.to(kCuda);
  require_matches_cpu(add(cia, cib), add(ia, ib), 0, 0, "add int64");
  require_matches_cpu(mul(cia.to(kInt32), cib.to(kInt32)), mul(ia.to(kInt32), ib.to(kInt32)), 0, 0, "mul int32");
  require_matches_cpu(pow(cia, cib), pow(ia, ib), 0, 0, "pow int64");
  require_matches_cpu(maximum(cia, cib), maximum(ia, ib), 0, 0, "maximum int64");
  require_matches_cpu(ne(cia, cib), ne(ia, ib), 0, 0, "ne int64");
  require_matches_cpu(div(cia, cib + 1), div(ia, ib + 1), 2e-6, 1e-7, "true division of integers");
}

TEST_CASE("cuda: where and masked_fill match the CPU", "[cuda]") {
  LUNA_SKIP_WITHOUT_CUDA_DEVICE();
  const Tensor cond = gt(uniform_cpu({5, 6}, 41), zeros({}));
  const Tensor a = uniform_cpu({5, 6}, 42), b = uniform_cpu({6}, 43);
  const Fn fn = [&](const std::vector<Tensor>& t) { return where(t[0].device().is_cpu() ? cond : cond.to(kCuda), t[0], t[1]); };
  // Exact forward; b's gradient is a sum over broadcast rows (1e-6 covers a different order).
  require_forward_backward_match(fn, {a, b}, 1e-6, 1e-7, "where");
  require_matches_cpu(masked_fill(a.to(kCuda), cond.to(kCuda), -7.5), masked_fill(a, cond, -7.5), 0, 0, "masked_fill");
  const Tensor ints = a.to(kInt32);
  require_matches_cpu(where(cond.to(kCuda), ints.to(kCuda), ints.to(kCuda) * 2), where(cond, ints, ints * 2), 0, 0,
                      "where int32");
}

TEST_CASE("cuda: reductions match the CPU (dims, full, long rows, long columns, strided, integers)", "[cuda]") {
  LUNA_SKIP_WITHOUT_CUDA_DEVICE();
  const Tensor x = uniform_cpu({6, 7, 8}, 51);
  const std::vector<std::pair<const char*, Fn>> cases = {
      {"sum dim 2", [](const std::vector<Tensor>& t) { return sum(t[0], {2}); }},
      {"sum dims 0,2", [](const std::vector<Tensor>& t) { return sum(t[0], {0, 2}, true); }},
      {"sum dim 0", [](const std::vector<Tensor>& t) { return sum(t[0], {0}); }},
      {"sum all", [](const std::vector<Tensor>& t) { return sum(t[0]); }},
      {"mean dim 1", [](const std::vector<Tensor>& t) { return mean(t[0], {1}); }},
      {"amax dim 1", [](const std::vector<Tensor>& t) { return amax(t[0], {1}); }},
      {"amin dims 0,1", [](const std::vector<Tensor>& t) { return amin(t[0], {0, 1}); }},
      {"max all", [](const std::vector<Tensor>& t) { return max(t[0]); }},
      {"var dim 2", [](const std::vector<Tensor>& t) { return var(t[0], {2}); }},
      {"logsumexp dim 1", [](const std::vector<Tensor>& t) { return logsumexp(t[0], {1}); }},
      {"norm", [](const std::vector<Tensor>& t) { return norm(t[0]); }},
      {"sum of a permuted view", [](const std::vector<Tensor>& t) { return sum(t[0].permute({2, 0, 1}), {0, 2}); }},
  };
  for (const auto& [name, fn] : cases) {
    require_forward_backward_match(fn, {x}, 1e-5, 1e-6, std::string(name) + " f32");
    require_forward_backward_match(fn, {x.to(kFloat64)}, 1e-12, 1e-13, std::string(name) + " f64");
  }
  // A full reduction long enough to be split into segments, and one column-wise over many rows.
  const Tensor long_vector = uniform_cpu({1 << 20}, 52);
  require_matches_cpu(sum(long_vector.to(kCuda)), sum(long_vector), 1e-6, 1e-6, "sum of 2^20 elements");
  require_matches_cpu(max(long_vector.to(kCuda)), max(long_vector), 0, 0, "max of 2^20 elements");
  const Tensor tall = uniform_cpu({65536, 3}, 53);
  require_matches_cpu(sum(tall.to(kCuda), {0}), sum(tall, {0}), 1e-6, 1e-6, "column sums of 65536 rows");
  require_matches_cpu(sum(tall.to(kCuda), {1}), sum(tall, {1}), 1e-6, 1e-6, "row sums of 3 columns");
  // Prod has no op yet: the two backends' kernels directly, over dim 1 (keepdim form).
  const Tensor near_one = uniform_cpu({9, 40}, 54, 0.9, 1.1);
  Tensor prod_cpu = empty({9, 1}), prod_cuda = empty({9, 1}, TensorOptions().device(kCuda));
  backend_for(Device::cpu()).reduce(ReduceOp::Prod, near_one, prod_cpu, 0b10);
  backend_for(kCuda).reduce(ReduceOp::Prod, near_one.to(kCuda), prod_cuda, 0b10);
  require_matches_cpu(prod_cuda, prod_cpu, 1e-6, 1e-7, "prod dim 1");
  // Integer sums are exact.
  const Tensor ints = uniform_cpu({33, 17}, 55, -1000.0, 1000.0).to(kInt64);
  require_matches_cpu(sum(ints.to(kCuda), {0}), sum(ints, {0}), 0, 0, "sum int64 dim 0");
  require_matches_cpu(sum(ints.to(kCuda)), sum(ints), 0, 0, "sum int64");
  require_matches_cpu(amax(ints.to(kInt32).to(kCuda), {1}), amax(ints.to(kInt32), {1}), 0, 0, "amax int32");
  // NaN propagates through max.
  const Tensor with_nan = tensor({1.0f, 5.0f, NAN, 2.0f}, {2, 2});
  require_matches_cpu(amax(with_nan.to(kCuda), {1}), amax(with_nan, {1}), 0, 0, "amax with NaN");
}

TEST_CASE("cuda: argmax and argmin match the CPU, ties and NaN included", "[cuda]") {
  LUNA_SKIP_WITHOUT_CUDA_DEVICE();
  const Tensor x = uniform_cpu({9, 300}, 61);
  for (int64_t dim : {0, 1}) {
    require_matches_cpu(argmax(x.to(kCuda), dim), argmax(x, dim), 0, 0, "argmax");
    require_matches_cpu(argmin(x.to(kCuda), dim), argmin(x, dim), 0, 0, "argmin");
    auto [values_cuda, indices_cuda] = max(x.to(kCuda), dim);
    auto [values_cpu, indices_cpu] = max(x, dim);
    require_matches_cpu(values_cuda, values_cpu, 0, 0, "max values");
    require_matches_cpu(indices_cuda, indices_cpu, 0, 0, "max indices");
  }
  // The first of equal values wins; the first NaN wins over any number.
  const Tensor ties = tensor({1.0f, 3.0f, 3.0f, 2.0f, 3.0f}, {1, 5});
  require_matches_cpu(argmax(ties.to(kCuda), 1), argmax(ties, 1), 0, 0, "argmax ties");
  const Tensor nans = tensor({1.0f, NAN, 5.0f, NAN, -9.0f}, {1, 5});
  require_matches_cpu(argmax(nans.to(kCuda), 1), argmax(nans, 1), 0, 0, "argmax NaN");
  require_matches_cpu(argmin(nans.to(kCuda), 1), argmin(nans, 1), 0, 0, "argmin NaN");
  const Tensor long_row = uniform_cpu({1, 5000}, 62).to(kInt32);
  require_matches_cpu(argmax(long_row.to(kCuda), 1), argmax(long_row, 1), 0, 0, "argmax int32 long row");
}

TEST_CASE("cuda: matmul on cuBLAS matches the CPU (transposes, batches, broadcast, f64, linear)", "[cuda]") {
  LUNA_SKIP_WITHOUT_CUDA_DEVICE();
  const std::vector<std::tuple<const char*, Fn, std::vector<Tensor>>> cases = {
      {"mm", [](const std::vector<Tensor>& t) { return matmul(t[0], t[1]); },
       {uniform_cpu({37, 53}, 71), uniform_cpu({53, 29}, 72)}},
      {"mm of transposed views", [](const std::vector<Tensor>& t) { return matmul(t[0].t(), t[1].t()); },
       {uniform_cpu({53, 37}, 73), uniform_cpu({29, 53}, 74)}},
      {"bmm", [](const std::vector<Tensor>& t) { return bmm(t[0], t[1]); },
       {uniform_cpu({4, 17, 23}, 75), uniform_cpu({4, 23, 9}, 76)}},
      {"batch @ shared weight", [](const std::vector<Tensor>& t) { return matmul(t[0], t[1]); },
       {uniform_cpu({3, 4, 17, 23}, 77), uniform_cpu({23, 9}, 78)}},
      {"broadcast batch dims", [](const std::vector<Tensor>& t) { return matmul(t[0], t[1]); },
       {uniform_cpu({2, 1, 5, 6}, 79), uniform_cpu({3, 6, 7}, 80)}},
      {"vector @ matrix", [](const std::vector<Tensor>& t) { return matmul(t[0], t[1]); },
       {uniform_cpu({31}, 81), uniform_cpu({31, 12}, 82)}},
      {"linear with bias", [](const std::vector<Tensor>& t) { return linear(t[0], t[1], t[2]); },
       {uniform_cpu({2, 10, 24}, 83), uniform_cpu({16, 24}, 84), uniform_cpu({16}, 85)}},
  };
  for (const auto& [name, fn, inputs] : cases) {
    require_forward_backward_match(fn, inputs, 1e-5, 1e-5, std::string(name) + " f32");
    std::vector<Tensor> doubles;
    for (const Tensor& t : inputs) doubles.push_back(t.to(kFloat64));
    require_forward_backward_match(fn, doubles, 1e-12, 1e-12, std::string(name) + " f64");
  }
  // An empty inner dimension gives zeros.
  require_matches_cpu(matmul(zeros({3, 0}).to(kCuda), zeros({0, 4}).to(kCuda)), matmul(zeros({3, 0}), zeros({0, 4})), 0,
                      0, "k = 0");
}

#if LUNA_WITH_CUDA
TEST_CASE("cuda: TF32 changes float32 GEMM results only when allowed; bf16 GEMM accumulates in fp32", "[cuda]") {
  LUNA_SKIP_WITHOUT_CUDA_DEVICE();
  const Tensor a = uniform_cpu({256, 1024}, 91), b = uniform_cpu({1024, 256}, 92);
  const std::vector<double> exact = values(matmul(a.to(kFloat64), b.to(kFloat64)));  // entries ~ +-40
  const auto max_error = [&](const Tensor& got) {
    const std::vector<double> g = values(got);
    double worst = 0;
    for (size_t i = 0; i < g.size(); ++i) worst = std::max(worst, std::abs(g[i] - exact[i]));
    return worst;
  };
  const double fp32_error = max_error(matmul(a.to(kCuda), b.to(kCuda)));
  cuda::set_allow_tf32(true);
  const double tf32_error = max_error(matmul(a.to(kCuda), b.to(kCuda)));
  cuda::set_allow_tf32(false);
  const double fp32_again = max_error(matmul(a.to(kCuda), b.to(kCuda)));
  INFO("max |error|: fp32 " << fp32_error << ", tf32 " << tf32_error << ", fp32 again " << fp32_again);
  REQUIRE(fp32_error < 1e-3);
  // TF32 rounds inputs to 10 mantissa bits (relative 2^-11): errors grow by orders of magnitude.
  REQUIRE(tf32_error > 10 * fp32_error);
  REQUIRE(tf32_error < 1.0);
  REQUIRE(fp32_again < 1e-3);

  const Tensor a16 = a.to(kBFloat16), b16 = b.to(kBFloat16);
  const Tensor got = matmul(a16.to(kCuda), b16.to(kCuda));
  REQUIRE(got.dtype() == kBFloat16);
  // Exact products of the rounded inputs; the result is rounded once to bf16 (relative <= 2^-8).
  require_close(values(got), values(matmul(a16.to(kFloat64), b16.to(kFloat64))), 5e-3, 1e-3, "bf16 matmul");
}
#endif

TEST_CASE("cuda: index_select, gather, index_add, scatter_add and embedding match the CPU", "[cuda]") {
  LUNA_SKIP_WITHOUT_CUDA_DEVICE();
  const Tensor x = uniform_cpu({10, 7}, 101);
  const Tensor rows = tensor(std::vector<int64_t>{3, 0, 9, 3, 3});
  const Tensor cols = tensor(std::vector<int64_t>{6, 0, 2, 2, 5, 1, 0, 3, 3, 4, 6, 6, 0, 1}, {2, 7});
  const auto device_of = [](const Tensor& index, const Tensor& like) { return like.device().is_cpu() ? index : index.to(kCuda); };
  require_forward_backward_match([&](const std::vector<Tensor>& t) { return index_select(t[0], 0, device_of(rows, t[0])); },
                                 {x}, 1e-6, 1e-7, "index_select dim 0 (backward: index_add with repeats)");
  require_forward_backward_match(
      [&](const std::vector<Tensor>& t) { return index_select(t[0], 1, device_of(tensor(std::vector<int64_t>{6, 1, 1}), t[0])); },
      {x}, 1e-6, 1e-7, "index_select dim 1");
  require_forward_backward_match([&](const std::vector<Tensor>& t) { return gather(t[0], 1, device_of(cols, t[0])); },
                                 {x.slice(0, 0, 2)}, 1e-6, 1e-7, "gather (backward: scatter_add with repeats)");
  const Tensor self = uniform_cpu({6, 4}, 102), src = uniform_cpu({5, 4}, 103);
  const Tensor repeated = tensor(std::vector<int64_t>{1, 5, 1, 1, 0});
  require_forward_backward_match(
      [&](const std::vector<Tensor>& t) { return index_add(t[0], 0, device_of(repeated, t[0]), t[1]); }, {self, src}, 1e-6,
      1e-6, "index_add");
  const Tensor scatter_index = tensor(std::vector<int64_t>{0, 3, 3, 1, 2, 2, 2, 0}, {2, 4});
  require_forward_backward_match(
      [&](const std::vector<Tensor>& t) { return scatter_add(t[0], 1, device_of(scatter_index, t[0]), t[1]); },
      {uniform_cpu({2, 4}, 104), uniform_cpu({2, 4}, 105)}, 1e-6, 1e-6, "scatter_add");
  const Tensor weight = uniform_cpu({50, 16}, 106);
  const Tensor tokens = tensor(std::vector<int64_t>{4, 4, 49, 0, 7, 4, 1, 1}, {2, 4});
  require_forward_backward_match([&](const std::vector<Tensor>& t) { return embedding(device_of(tokens, t[0]), t[0]); },
                                 {weight}, 1e-6, 1e-6, "embedding");
  // Integer scatter and int64 gather are exact.
  const Tensor int_self = zeros({4}, TensorOptions(kInt64));
  const Tensor int_src = tensor(std::vector<int64_t>{5, -2, 7, 1, 1});
  const Tensor int_index = tensor(std::vector<int64_t>{0, 3, 0, 2, 2});
  require_matches_cpu(index_add(int_self.to(kCuda), 0, int_index.to(kCuda), int_src.to(kCuda)),
                      index_add(int_self, 0, int_index, int_src), 0, 0, "index_add int64");
  // A bad index is an error naming it, and the device stays usable.
  REQUIRE_THROWS_WITH(index_select(x.to(kCuda), 0, tensor(std::vector<int64_t>{2, 10}).to(kCuda)),
                      Catch::Contains("index 10 is out of bounds for dim 0 with size 10"));
  REQUIRE_THROWS_WITH(gather(x.to(kCuda), 1, tensor(std::vector<int64_t>{-1}, {1, 1}).to(kCuda)),
                      Catch::Contains("index -1 is out of bounds"));
  require_matches_cpu(index_select(x.to(kCuda), 0, rows.to(kCuda)), index_select(x, 0, rows), 0, 0, "after the errors");
}

TEST_CASE("cuda: softmax and log_softmax match the CPU over the last and a middle dim", "[cuda]") {
  LUNA_SKIP_WITHOUT_CUDA_DEVICE();
  for (bool log : {false, true}) {
    const std::string name = log ? "log_softmax" : "softmax";
    const auto op = [log](const Tensor& t, int64_t dim) { return log ? log_softmax(t, dim) : softmax(t, dim); };
    const Fn last = [&](const std::vector<Tensor>& t) { return op(t[0], -1); };
    const Fn middle = [&](const std::vector<Tensor>& t) { return op(t[0], 1); };
    require_forward_backward_match(last, {uniform_cpu({6, 33}, 111, -5, 5)}, 1e-5, 1e-7, name + " rows");
    require_forward_backward_match(last, {uniform_cpu({3, 3000}, 112, -5, 5)}, 1e-5, 1e-7, name + " long rows");
    require_forward_backward_match(middle, {uniform_cpu({4, 33, 5}, 113, -5, 5)}, 1e-5, 1e-7, name + " columns");
    require_forward_backward_match(last, {uniform_cpu({5, 40}, 114, -5, 5, kFloat64)}, 1e-12, 1e-14, name + " f64");
    require_forward_backward_match(middle, {uniform_cpu({2, 9, 7}, 115, -5, 5, kFloat64)}, 1e-12, 1e-14,
                                   name + " f64 columns");
  }
}

TEST_CASE("cuda: layer_norm matches the CPU with and without affine parameters", "[cuda]") {
  LUNA_SKIP_WITHOUT_CUDA_DEVICE();
  const Fn affine = [](const std::vector<Tensor>& t) { return layer_norm(t[0], {t[0].size(-1)}, t[1], t[2], 1e-5); };
  const Fn plain = [](const std::vector<Tensor>& t) { return layer_norm(t[0], {t[0].size(-1)}); };
  require_forward_backward_match(affine, {uniform_cpu({2, 6, 37}, 121), uniform_cpu({37}, 122), uniform_cpu({37}, 123)},
                                 1e-4, 1e-5, "layer_norm affine");
  require_forward_backward_match(plain, {uniform_cpu({4, 1500}, 124)}, 1e-4, 1e-5, "layer_norm long rows");
  // Many rows: the weight/bias gradients are summed over row segments.
  require_forward_backward_match(affine, {uniform_cpu({5000, 8}, 125), uniform_cpu({8}, 126), uniform_cpu({8}, 127)},
                                 1e-4, 1e-4, "layer_norm many rows");
  // |mean| >> std keeps its precision (values shifted by x[0] before summing, as on the CPU).
  require_forward_backward_match(plain, {uniform_cpu({3, 64}, 128, 2999.0, 3001.0)}, 1e-3, 1e-4, "layer_norm offset rows");
  require_forward_backward_match(affine,
                                 {uniform_cpu({7, 19}, 129, -2, 2, kFloat64), uniform_cpu({19}, 130, -2, 2, kFloat64),
                                  uniform_cpu({19}, 131, -2, 2, kFloat64)},
                                 1e-11, 1e-12, "layer_norm f64");
}

TEST_CASE("cuda: cross_entropy matches the CPU (ignore_index, label smoothing, reductions)", "[cuda]") {
  LUNA_SKIP_WITHOUT_CUDA_DEVICE();
  const Tensor logits = uniform_cpu({9, 13}, 141, -4, 4);
  const Tensor target = tensor(std::vector<int64_t>{0, 12, 5, -100, 5, 7, 1, -100, 3});
  for (double smoothing : {0.0, 0.1}) {
    for (const char* reduction : {"mean", "sum", "none"}) {
      CrossEntropyOptions options;
      options.label_smoothing = smoothing;
      options.reduction = reduction;
      const Fn fn = [&](const std::vector<Tensor>& t) {
        return cross_entropy(t[0], t[0].device().is_cpu() ? target : target.to(kCuda), options);
      };
      const std::string name = std::string("cross_entropy ") + reduction + " smoothing " + std::to_string(smoothing);
      require_forward_backward_match(fn, {logits}, 1e-5, 1e-6, name);
      require_forward_backward_match(fn, {logits.to(kFloat64)}, 1e-12, 1e-13, name + " f64");
    }
  }
  // Many classes: the row reductions span several warps.
  const Tensor wide = uniform_cpu({4, 5000}, 142, -4, 4);
  const Tensor wide_target = tensor(std::vector<int64_t>{4999, 0, 1234, 77});
  require_forward_backward_match(
      [&](const std::vector<Tensor>& t) { return cross_entropy(t[0], t[0].device().is_cpu() ? wide_target : wide_target.to(kCuda)); },
      {wide}, 1e-5, 1e-7, "cross_entropy 5000 classes");
}

TEST_CASE("cuda: dropout keeps the CPU's elements for the same generator state", "[cuda]") {
  LUNA_SKIP_WITHOUT_CUDA_DEVICE();
  const Tensor x = uniform_cpu({37, 29}, 151);
  for (double p : {0.1, 0.5, 0.9}) {
    Generator cpu_gen(99), cuda_gen(99);
    Tensor cpu_x = x.clone(), cuda_x = x.to(kCuda);
    cpu_x.requires_grad_(true);
    cuda_x.requires_grad_(true);
    const Tensor cpu_out = dropout(cpu_x, p, true, &cpu_gen);
    const Tensor cuda_out = dropout(cuda_x, p, true, &cuda_gen);
    require_matches_cpu(cuda_out, cpu_out, 1e-6, 0, "dropout p = " + std::to_string(p));
    cpu_out.sum().backward();
    cuda_out.sum().backward();
    require_matches_cpu(cuda_x.grad(), cpu_x.grad(), 1e-6, 0, "dropout backward");
  }
}
