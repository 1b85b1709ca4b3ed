// Fused nn ops against plain double-precision reference loops written here: softmax/log_softmax,
// layer_norm, cross_entropy (ignore_index, label smoothing, every reduction), dropout (Philox
// layout, statistics, reproducibility) and mse_loss; the fused backward kernels against the same
// formulas built from ordinary ops on inputs large enough to run multi-threaded; bad inputs.
#include "test_util.h"

#include <cmath>
#include <limits>

#include <luna/backends/backend.h>

using namespace luna;
using luna::testing::require_close;
using luna::testing::values;

namespace {

Tensor random_normal(const Dims& shape, DType dtype, uint64_t seed) {
  Generator gen(seed);
  return randn(shape, TensorOptions(dtype), &gen);
}

// A contiguous shape seen as [outer, size, inner] around dim.
struct Split {
  int64_t outer = 1, size = 1, inner = 1;
};
Split split(const Dims& shape, int dim) {
  Split s;
  for (int d = 0; d < shape.size(); ++d) {
    if (d < dim) s.outer *= shape[d];
    else if (d == dim) s.size = shape[d];
    else s.inner *= shape[d];
  }
  return s;
}

std::vector<double> ref_softmax(const std::vector<double>& x, const Dims& shape, int dim, bool log) {
  const Split s = split(shape, dim);
  std::vector<double> y(x.size());
  for (int64_t o = 0; o < s.outer; ++o) {
    for (int64_t i = 0; i < s.inner; ++i) {
      auto at = [&](int64_t k) { return size_t((o * s.size + k) * s.inner + i); };
      double max = -INFINITY;
      for (int64_t k = 0; k < s.size; ++k) max = std::max(max, x[at(k)]);
      double sum = 0;
      for (int64_t k = 0; k < s.size; ++k) sum += std::exp(x[at(k)] - max);
      for (int64_t k = 0; k < s.size; ++k)
        y[at(k)] = log ? x[at(k)] - max - std::log(sum) : std::exp(x[at(k)] - max) / sum;
    }
  }
  return y;
}

// x (rows, cols); weight, bias (cols) or empty.
std::vector<double> ref_layer_norm(const std::vector<double>& x, int64_t cols, const std::vector<double>& weight,
                                   const std::vector<double>& bias, double eps) {
  const int64_t rows = int64_t(x.size()) / cols;
  std::vector<double> y(x.size());
  for (int64_t r = 0; r < rows; ++r) {
    const double* row = x.data() + r * cols;
    double mean = 0, var = 0;
    for (int64_t c = 0; c < cols; ++c) mean += row[c];
    mean /= double(cols);
    for (int64_t c = 0; c < cols; ++c) var += (row[c] - mean) * (row[c] - mean);
    var /= double(cols);
    for (int64_t c = 0; c < cols; ++c) {
      double v = (row[c] - mean) / std::sqrt(var + eps);
      if (!weight.empty()) v *= weight[size_t(c)];
      if (!bias.empty()) v += bias[size_t(c)];
      y[size_t(r * cols + c)] = v;
    }
  }
  return y;
}

// Per-row losses (0 where ignored) of logits (N, C), PyTorch's label-smoothing formula.
std::vector<double> ref_cross_entropy(const std::vector<double>& logits, const std::vector<int64_t>& target,
                                      int64_t C, int64_t ignore_index, double smoothing) {
  std::vector<double> losses(target.size(), 0.0);
  for (size_t n = 0; n < target.size(); ++n) {
    if (target[n] == ignore_index) continue;
    const double* row = logits.data() + n * size_t(C);
    double max = -INFINITY, sum = 0, total = 0;
    for (int64_t c = 0; c < C; ++c) max = std::max(max, row[c]);
    for (int64_t c = 0; c < C; ++c) sum += std::exp(row[c] - max), total += row[c];
    const double lse = max + std::log(sum);
    losses[n] = (1 - smoothing) * (lse - row[target[n]]) + smoothing * (lse - total / double(C));
  }
  return losses;
}

double tolerance(DType dtype) { return dtype == kFloat32 ? 2e-5 : 1e-12; }

}  // namespace

TEST_CASE("softmax and log_softmax match a double reference over any dim", "[nn]") {
  struct Case {
    Dims shape;
    int64_t dim;
  };
  const std::vector<Case> cases = {
      {{5}, 0},          {{3, 7}, 1},        {{3, 7}, 0},         {{4, 5, 6}, 0},      {{4, 5, 6}, 1},
      {{4, 5, 6}, -1},   {{2, 3, 70, 3}, 2}, {{2, 5, 130}, 1},    {{3, 1000}, 1},      {{64, 1024}, -1},
      {{300, 8, 30}, 1}, {{1, 77}, 1},       {{6, 1}, 1},
  };
  for (DType dtype : {kFloat32, kFloat64}) {
    uint64_t seed = 1;
    for (const Case& c : cases) {
      const Tensor x = random_normal(c.shape, dtype, seed++) * 3.0;
      const int dim = wrap_dim(c.dim, c.shape.size(), "test");
      INFO("shape " << c.shape << " dim " << c.dim << " dtype " << dtype);
      const Tensor y = softmax(x, c.dim);
      REQUIRE(y.sizes() == x.sizes());
      REQUIRE(y.dtype() == dtype);
      require_close(values(y), ref_softmax(values(x), c.shape, dim, false), tolerance(dtype), 1e-7);
      require_close(values(log_softmax(x, c.dim)), ref_softmax(values(x), c.shape, dim, true), tolerance(dtype),
                    1e-6);
    }
  }
}

TEST_CASE("softmax of a non-contiguous input", "[nn]") {
  const Tensor base = random_normal({9, 6}, kFloat32, 11);
  const Tensor x = base.t();  // [6, 9], strides (1, 6)
  REQUIRE_FALSE(x.is_contiguous());
  for (int dim : {0, 1}) {
    require_close(values(softmax(x, dim)), ref_softmax(values(x), {6, 9}, dim, false), 2e-5, 1e-7);
    require_close(values(x.log_softmax(dim)), ref_softmax(values(x), {6, 9}, dim, true), 2e-5, 1e-6);
    require_close(values(x.softmax(dim)), values(softmax(x.contiguous(), dim)), 0, 0);
  }
}

TEST_CASE("softmax is stable for large and infinite logits", "[nn]") {
  const Tensor big = tensor({1000.0f, 1001.0f, 1002.0f});
  require_close(values(softmax(big, 0)), ref_softmax({0, 1, 2}, {3}, 0, false), 1e-6, 1e-7);
  require_close(values(log_softmax(big, 0)), ref_softmax({0, 1, 2}, {3}, 0, true), 1e-6, 1e-6);
  const Tensor masked = tensor({0.5f, -INFINITY, 0.5f});
  require_close(values(softmax(masked, 0)), {0.5, 0.0, 0.5}, 1e-6, 0);
  require_close(values(log_softmax(masked, 0)), {std::log(0.5), -INFINITY, std::log(0.5)}, 1e-6, 0);
  // A 0-dim tensor is a softmax over one element.
  const Tensor scalar = scalar_tensor(3.5);
  REQUIRE(softmax(scalar, 0).dim() == 0);
  REQUIRE(softmax(scalar, -1).item<float>() == 1.0f);
  REQUIRE(log_softmax(scalar, 0).item<float>() == 0.0f);
}

TEST_CASE("layer_norm matches a double reference with and without affine parameters", "[nn]") {
  struct Case {
    Dims shape, normalized;
  };
  const std::vector<Case> cases = {
      {{4, 10}, {10}},     {{2, 3, 4, 5}, {4, 5}}, {{7}, {7}},           {{300, 1024}, {1024}},
      {{3, 5000}, {5000}}, {{9, 33}, {9, 33}},     {{1000, 37}, {37}},
  };
  for (DType dtype : {kFloat32, kFloat64}) {
    uint64_t seed = 100;
    for (const Case& c : cases) {
      const Tensor x = random_normal(c.shape, dtype, seed++) * 2.0 + 0.5;
      const Tensor weight = random_normal(c.normalized, dtype, seed++);
      const Tensor bias = random_normal(c.normalized, dtype, seed++);
      const int64_t cols = c.normalized.product();
      const std::vector<double> xs = values(x), ws = values(weight), bs = values(bias);
      INFO("shape " << c.shape << " normalized " << c.normalized << " dtype " << dtype);
      const double tol = tolerance(dtype);
      require_close(values(layer_norm(x, c.normalized)), ref_layer_norm(xs, cols, {}, {}, 1e-5), tol, tol);
      require_close(values(layer_norm(x, c.normalized, weight, bias)), ref_layer_norm(xs, cols, ws, bs, 1e-5), tol,
                    tol);
      require_close(values(layer_norm(x, c.normalized, weight)), ref_layer_norm(xs, cols, ws, {}, 1e-5), tol, tol);
      require_close(values(layer_norm(x, c.normalized, Tensor(), bias, 0.1)), ref_layer_norm(xs, cols, {}, bs, 0.1),
                    tol, tol);
    }
  }
}

TEST_CASE("layer_norm on large, offset and non-contiguous inputs", "[nn]") {
  SECTION("an output too big for cache (streamed stores, rows not 32-byte aligned)") {
    const Tensor x = random_normal({4200, 1001}, kFloat32, 7);
    const Tensor weight = random_normal({1001}, kFloat32, 8), bias = random_normal({1001}, kFloat32, 9);
    require_close(values(layer_norm(x, {1001}, weight, bias)),
                  ref_layer_norm(values(x), 1001, values(weight), values(bias), 1e-5), 2e-5, 2e-5);
  }
  SECTION("a mean far from zero (the variance is centred, not E[x^2] - E[x]^2)") {
    const Tensor x = random_normal({16, 256}, kFloat32, 10) + 3000.0;
    require_close(values(layer_norm(x, {256})), ref_layer_norm(values(x), 256, {}, {}, 1e-5), 2e-5, 2e-5);
  }
  SECTION("a transposed input") {
    const Tensor x = random_normal({10, 6}, kFloat64, 12).t();
    REQUIRE_FALSE(x.is_contiguous());
    require_close(values(layer_norm(x, {10})), ref_layer_norm(values(x), 10, {}, {}, 1e-5), 1e-12, 1e-12);
  }
}

TEST_CASE("cross_entropy matches hand-computed values for every reduction", "[nn]") {
  // Row 0: lse = 3 + log(1 + e^-1 + e^-2); row 1: lse = 2 + log(1 + e^-1.5 + e^-3).
  const Tensor logits = tensor({1.0f, 2.0f, 3.0f, 0.5f, -1.0f, 2.0f}, {2, 3});
  const Tensor target = tensor(std::vector<int64_t>{2, 1});
  const double row0 = 0.4076059644443806, row1 = 3.241311296657157;
  CrossEntropyOptions options;
  REQUIRE(cross_entropy(logits, target).item<float>() == Approx((row0 + row1) / 2).epsilon(1e-6));
  options.reduction = "sum";
  REQUIRE(cross_entropy(logits, target, options).item<float>() == Approx(row0 + row1).epsilon(1e-6));
  options.reduction = "none";
  require_close(values(cross_entropy(logits, target, options)), {row0, row1}, 1e-6, 0);

  SECTION("label smoothing: (1 - eps) * nll + eps * mean_c(-log p_c)") {
    options.label_smoothing = 0.1;
    require_close(values(cross_entropy(logits, target, options)), {0.5076059644443807, 3.091311296657157}, 1e-6, 0);
    options.reduction = "mean";
    REQUIRE(cross_entropy(logits, target, options).item<float>() == Approx(1.799458630550769).epsilon(1e-6));
    options.label_smoothing = 1.0;
    options.reduction = "sum";
    REQUIRE(cross_entropy(logits, target, options).item<float>() == Approx(3.1489172611015377).epsilon(1e-6));
  }
  SECTION("ignored targets contribute 0 and are not counted by the mean") {
    const Tensor partly_ignored = tensor(std::vector<int64_t>{2, -100});
    require_close(values(cross_entropy(logits, partly_ignored, options)), {row0, 0.0}, 1e-6, 0);
    options.reduction = "mean";
    REQUIRE(cross_entropy(logits, partly_ignored, options).item<float>() == Approx(row0).epsilon(1e-6));
    options.ignore_index = 2;  // a custom ignore_index that is also a valid class
    REQUIRE(cross_entropy(logits, target, options).item<float>() == Approx(row1).epsilon(1e-6));
  }
  SECTION("all targets ignored: mean is NaN (as in PyTorch), sum is 0") {
    const Tensor ignored = tensor(std::vector<int64_t>{-100, -100});
    options.reduction = "mean";
    REQUIRE(std::isnan(cross_entropy(logits, ignored, options).item<float>()));
    options.reduction = "sum";
    REQUIRE(cross_entropy(logits, ignored, options).item<float>() == 0.0f);
  }
  SECTION("unbatched logits [C] with a 0-dim target") {
    const Tensor row = tensor({0.5f, -1.0f, 2.0f});
    const Tensor one = tensor(std::vector<int64_t>{1}).reshape({});
    const Tensor loss = cross_entropy(row, one, options);  // reduction none keeps the 0-dim shape
    REQUIRE(loss.dim() == 0);
    REQUIRE(loss.item<float>() == Approx(row1).epsilon(1e-6));
    REQUIRE(cross_entropy(row, one).item<float>() == Approx(row1).epsilon(1e-6));
  }
  SECTION("huge logits stay finite") {
    const Tensor big = tensor({1000.0f, 0.0f}, {1, 2});
    REQUIRE(cross_entropy(big, tensor(std::vector<int64_t>{1})).item<float>() == Approx(1000.0f));
    REQUIRE(cross_entropy(big, tensor(std::vector<int64_t>{0})).item<float>() == Approx(0.0f).margin(1e-6));
  }
}

TEST_CASE("cross_entropy matches a double reference on random logits", "[nn]") {
  for (DType dtype : {kFloat32, kFloat64}) {
    for (const auto& [N, C] : std::vector<std::pair<int64_t, int64_t>>{{37, 11}, {5, 1000}, {400, 130}}) {
      const Tensor logits = random_normal({N, C}, dtype, uint64_t(N * C)) * 4.0;
      std::vector<int64_t> labels(static_cast<size_t>(N));
      for (int64_t n = 0; n < N; ++n) labels[size_t(n)] = n % 5 == 3 ? -1 : (n * 7 + 3) % C;
      const Tensor target = tensor(labels);
      for (double smoothing : {0.0, 0.2}) {
        INFO("N " << N << " C " << C << " dtype " << dtype << " smoothing " << smoothing);
        CrossEntropyOptions options;
        options.ignore_index = -1;
        options.label_smoothing = smoothing;
        options.reduction = "none";
        const std::vector<double> want = ref_cross_entropy(values(logits), labels, C, -1, smoothing);
        require_close(values(cross_entropy(logits, target, options)), want, tolerance(dtype), 1e-7);
        double total = 0;
        int64_t counted = 0;
        for (int64_t n = 0; n < N; ++n) total += want[size_t(n)], counted += labels[size_t(n)] != -1;
        options.reduction = "sum";
        require_close(values(cross_entropy(logits, target, options)), {total}, tolerance(dtype), 0);
        options.reduction = "mean";
        require_close(values(cross_entropy(logits, target, options)), {total / double(counted)}, tolerance(dtype), 0);
      }
    }
  }
}

TEST_CASE("dropout draws its mask from the documented Philox layout", "[nn]") {
  // Element i keeps its value iff uniform(word i % 4 of block offset + i / 4) >= p.
  const uint64_t seed = 1234, offset = 5;
  const double p = 0.4;
  Generator gen(seed);
  gen.set_state({seed, offset});
  const Tensor x = arange(1.0, 11.0, 1.0, TensorOptions(kFloat32));  // [1, 2, ..., 10]
  const Tensor y = dropout(x, p, true, &gen);
  REQUIRE(gen.get_state().offset == offset + 3);  // 10 words = 3 blocks
  std::vector<double> want(10);
  for (int i = 0; i < 10; ++i) {
    const PhiloxBlock block = philox4x32_10(seed, offset + uint64_t(i / 4));
    const bool keep = double(uniform_float(block[size_t(i % 4)])) >= p;
    want[size_t(i)] = keep ? double(float(i + 1) * float(1.0 / (1.0 - p))) : 0.0;
  }
  require_close(values(y), want, 0, 0);
}

TEST_CASE("dropout statistics, reproducibility and gradient", "[nn]") {
  const double p = 0.3;
  const Tensor x = ones({1 << 20});
  Generator gen(42);
  const Tensor y = dropout(x, p, true, &gen);
  const std::vector<double> ys = values(y);
  const double survivor = double(float(1.0 / (1.0 - p)));
  int64_t zeros = 0;
  bool survivors_scaled = true;
  for (double v : ys) {
    if (v == 0) ++zeros;
    else survivors_scaled = survivors_scaled && v == survivor;
  }
  REQUIRE(survivors_scaled);
  // The standard deviation of the fraction is sqrt(p(1-p)/n) ~ 4.5e-4.
  REQUIRE(double(zeros) / double(ys.size()) == Approx(p).margin(0.003));

  SECTION("the same seed gives the same mask, another seed a different one") {
    Generator again(42), other(43);
    require_close(values(dropout(x, p, true, &again)), ys, 0, 0);
    REQUIRE(values(dropout(x, p, true, &other)) != ys);
    // The generator advances, so a second call draws a fresh mask.
    REQUIRE(values(dropout(x, p, true, &again)) != ys);
  }
  SECTION("a non-contiguous input gets the mask of its row-major order") {
    const Tensor base = random_normal({40, 30}, kFloat32, 3);
    Generator g1(9), g2(9);
    require_close(values(dropout(base.t(), p, true, &g1)), values(dropout(base.t().contiguous(), p, true, &g2)), 0,
                  0);
  }
  SECTION("backward multiplies by mask / (1 - p)") {
    Tensor leaf = ones({1000});
    leaf.requires_grad_(true);
    Generator g(5);
    const Tensor out = dropout(leaf, p, true, &g);
    (out * 2.0).sum().backward();
    const std::vector<double> outs = values(out), grads = values(leaf.grad());
    for (size_t i = 0; i < outs.size(); ++i) REQUIRE(grads[i] == 2 * outs[i]);
  }
  SECTION("eval mode and p = 0 return the input; p = 1 zeroes everything") {
    REQUIRE(dropout(x, p, false).is_same(x));
    REQUIRE(dropout(x, 0.0, true).is_same(x));
    Generator g(1);
    const Tensor dropped = dropout(x, 1.0, true, &g);
    REQUIRE(values(dropped.sum())[0] == 0.0);
    REQUIRE(g.get_state().offset == 0);  // nothing random was drawn
  }
}

TEST_CASE("mse_loss for every reduction", "[nn]") {
  const Tensor input = tensor({1.0f, 2.0f, 3.0f});
  const Tensor target = tensor({1.0f, 0.0f, 5.0f});
  require_close(values(mse_loss(input, target, "none")), {0, 4, 4}, 0, 0);
  REQUIRE(mse_loss(input, target, "sum").item<float>() == 8.0f);
  REQUIRE(mse_loss(input, target).item<float>() == Approx(8.0 / 3.0));
  Tensor leaf = input.clone().detach();
  leaf.requires_grad_(true);
  mse_loss(leaf, target).backward();
  require_close(values(leaf.grad()), {0.0, 4.0 / 3.0, -4.0 / 3.0}, 1e-6, 1e-7);
}

// The fused backward kernels against the same math built from ordinary ops, on inputs big enough
// for the kernels' multi-threaded paths (the gradchecks use small inputs).
TEST_CASE("fused backward kernels match composite ops on large inputs", "[nn]") {
  const Tensor projection = random_normal({128, 300}, kFloat64, 77);
  auto leaf = [](const Tensor& t) {
    Tensor l = t.detach().clone();
    l.requires_grad_(true);
    return l;
  };
  const Tensor data = random_normal({128, 300}, kFloat64, 78);

  SECTION("softmax and log_softmax over both dims") {
    for (int dim : {0, 1}) {
      for (bool log : {false, true}) {
        INFO("dim " << dim << " log " << log);
        Tensor a = leaf(data), b = leaf(data);
        ((log ? log_softmax(a, dim) : softmax(a, dim)) * projection).sum().backward();
        const Tensor summed = exp(b).sum({dim}, true);
        ((log ? b - luna::log(summed) : exp(b) / summed) * projection).sum().backward();
        require_close(values(a.grad()), values(b.grad()), 1e-9, 1e-12);
      }
    }
  }
  SECTION("layer_norm: input, weight and bias") {
    Tensor a = leaf(data), b = leaf(data);
    Tensor wa = leaf(random_normal({300}, kFloat64, 79)), wb = leaf(wa);
    Tensor ba = leaf(random_normal({300}, kFloat64, 80)), bb = leaf(ba);
    (layer_norm(a, {300}, wa, ba) * projection).sum().backward();
    const Tensor centred = b - b.mean({1}, true);
    const Tensor var = (centred * centred).mean({1}, true);
    ((centred / sqrt(var + 1e-5) * wb + bb) * projection).sum().backward();
    require_close(values(a.grad()), values(b.grad()), 1e-9, 1e-10);
    require_close(values(wa.grad()), values(wb.grad()), 1e-9, 1e-10);
    require_close(values(ba.grad()), values(bb.grad()), 1e-9, 1e-10);
  }
  SECTION("cross_entropy with ignored rows and label smoothing") {
    const int64_t N = 128, C = 300;
    std::vector<int64_t> labels(N);
    std::vector<double> onehot(size_t(N * C), 0.0), counted(N, 0.0);
    for (int64_t n = 0; n < N; ++n) {
      labels[size_t(n)] = n % 7 == 0 ? -100 : (n * 13) % C;
      if (labels[size_t(n)] >= 0) onehot[size_t(n * C + labels[size_t(n)])] = 1, counted[size_t(n)] = 1;
    }
    const double eps = 0.25, kept = double(N - (N + 6) / 7);
    Tensor a = leaf(data), b = leaf(data);
    CrossEntropyOptions options;
    options.label_smoothing = eps;
    cross_entropy(a, tensor(labels), options).backward();
    const Tensor logp = b - b.logsumexp({1}, true);
    const Tensor per_row = -(1 - eps) * (logp * tensor(onehot, {N, C})).sum({1}) - eps * logp.mean({1});
    ((per_row * tensor(counted)).sum() / kept).backward();
    require_close(values(a.grad()), values(b.grad()), 1e-9, 1e-12);
  }
}

TEST_CASE("nn ops reject bad arguments with messages naming the values", "[nn]") {
  const Tensor logits = zeros({2, 3});
  using Catch::Contains;
  REQUIRE_THROWS_WITH(cross_entropy(logits, tensor(std::vector<int64_t>{0, 3})),
                      Contains("cross_entropy: target 3 is out of bounds for 3 classes"));
  REQUIRE_THROWS_WITH(cross_entropy(logits, tensor(std::vector<int64_t>{-2, 0})),
                      Contains("cross_entropy: target -2 is out of bounds for 3 classes"));
  REQUIRE_THROWS_WITH(cross_entropy(logits, tensor(std::vector<int32_t>{0, 1})),
                      Contains("target must hold int64 class indices, got dtype int32"));
  REQUIRE_THROWS_WITH(cross_entropy(logits, tensor({0.0f, 1.0f})), Contains("got dtype float32"));
  REQUIRE_THROWS_WITH(cross_entropy(logits, tensor(std::vector<int64_t>{0, 1, 2})),
                      Contains("target of shape [3] does not match logits of shape [2,3]"));
  REQUIRE_THROWS_WITH(cross_entropy(zeros({2, 3, 4}), tensor(std::vector<int64_t>{0, 1})),
                      Contains("logits must be [N, C] or [C], got shape [2,3,4]"));
  REQUIRE_THROWS_WITH(cross_entropy(zeros({2, 3}, TensorOptions(kInt64)), tensor(std::vector<int64_t>{0, 1})),
                      Contains("cross_entropy: logits dtype must be floating point, got int64"));
  CrossEntropyOptions options;
  options.label_smoothing = 1.5;
  REQUIRE_THROWS_WITH(cross_entropy(logits, tensor(std::vector<int64_t>{0, 1}), options),
                      Contains("label_smoothing must be in [0, 1], got 1.5"));
  options.label_smoothing = 0;
  options.reduction = "avg";
  REQUIRE_THROWS_WITH(cross_entropy(logits, tensor(std::vector<int64_t>{0, 1}), options),
                      Contains("reduction must be 'mean', 'sum' or 'none', got 'avg'"));

  REQUIRE_THROWS_WITH(dropout(logits, 1.5), Contains("dropout: probability p must be in [0, 1], got 1.5"));
  REQUIRE_THROWS_WITH(dropout(logits, -0.25), Contains("got -0.25"));
  REQUIRE_THROWS_WITH(dropout(logits, std::nan(""), false), Contains("got nan"));

  REQUIRE_THROWS_WITH(layer_norm(zeros({4, 5}), {4}), Contains("input of shape [4,5] does not end in normalized_shape [4]"));
  REQUIRE_THROWS_WITH(layer_norm(zeros({5}), {2, 5}), Contains("does not end in normalized_shape [2,5]"));
  REQUIRE_THROWS_WITH(layer_norm(zeros({4, 5}), {5}, zeros({4})),
                      Contains("weight of shape [4] does not match normalized_shape [5]"));
  REQUIRE_THROWS_WITH(layer_norm(zeros({4, 5}), {5}, Tensor(), zeros({5}, TensorOptions(kFloat64))),
                      Contains("bias has dtype float64 but the input has float32"));
  REQUIRE_THROWS_WITH(layer_norm(zeros({4, 5}), {}), Contains("normalized_shape is empty"));

  REQUIRE_THROWS_WITH(softmax(zeros({2, 3}, TensorOptions(kInt64)), 1),
                      Contains("softmax: input dtype must be floating point, got int64"));
  REQUIRE_THROWS_WITH(log_softmax(logits, 2), Contains("log_softmax: dim 2 is out of range"));

  REQUIRE_THROWS_WITH(mse_loss(zeros({3}), zeros({1, 3})),
                      Contains("mse_loss: input of shape [3] and target of shape [1,3] differ"));
  REQUIRE_THROWS_WITH(mse_loss(zeros({3}), zeros({3}), "mean_all"), Contains("got 'mean_all'"));
}
