// Tests of nn::init and the basic layers (nn/init.h, nn/layers.h, nn/containers.h): forward values
// against plain-loop references, initial distributions against PyTorch's formulas, padding rows,
// dropout in train/eval, and container naming down to the exact checkpoint keys PyTorch writes.
#include "test_util.h"

#include <algorithm>
#include <cmath>
#include <sstream>

#include <luna/nn/containers.h>
#include <luna/nn/init.h>
#include <luna/nn/layers.h>
#include <luna/nn/transformer.h>

using namespace luna;
using Catch::Contains;
using luna::testing::require_close;
using luna::testing::values;

namespace {

// Uniform values in [-1, 1) as float32, reproducible from seed; no autograd.
Tensor random_tensor(const Dims& shape, uint64_t seed, DType dtype = kFloat32) {
  NoGradGuard no_grad;
  Generator gen(seed);
  return (rand(shape, TensorOptions(kFloat64), &gen) * 2.0 - 1.0).to(dtype);
}

struct Moments {
  double mean = 0, std = 0, min = 0, max = 0;
};
Moments moments(const Tensor& t) {
  const std::vector<double> v = values(t);
  Moments m;
  m.min = *std::min_element(v.begin(), v.end());
  m.max = *std::max_element(v.begin(), v.end());
  for (double x : v) m.mean += x;
  m.mean /= double(v.size());
  for (double x : v) m.std += (x - m.mean) * (x - m.mean);
  m.std = std::sqrt(m.std / double(v.size()));
  return m;
}

// U(-bound, bound) over n samples: values inside, reaching near both ends, with the uniform's
// mean 0 and std bound/sqrt(3).
void require_uniform(const Tensor& t, double bound) {
  const Moments m = moments(t);
  const double n = double(t.numel());
  INFO("bound " << bound << " min " << m.min << " max " << m.max << " mean " << m.mean << " std " << m.std);
  REQUIRE(m.min >= -bound);
  REQUIRE(m.max <= bound);
  REQUIRE(m.min < -0.98 * bound);
  REQUIRE(m.max > 0.98 * bound);
  REQUIRE(std::abs(m.mean) < 5 * bound / std::sqrt(3 * n));
  REQUIRE(std::abs(m.std / (bound / std::sqrt(3.0)) - 1) < 0.03);
}

void require_normal(const Tensor& t, double mean, double std) {
  const Moments m = moments(t);
  const double n = double(t.numel());
  INFO("want mean " << mean << " std " << std << ", got mean " << m.mean << " std " << m.std);
  REQUIRE(std::abs(m.mean - mean) < 5 * std / std::sqrt(n));
  REQUIRE(std::abs(m.std / std - 1) < 0.03);
}

std::vector<std::string> keys(const nn::NamedTensors& named) {
  std::vector<std::string> out;
  for (const auto& [name, _] : named) out.push_back(name);
  return out;
}

std::string printed(const nn::Module& module) {
  std::ostringstream os;
  os << module;
  return os.str();
}

// y[r, o] = b[o] + sum_i x[r, i] W[o, i] over the rows of x [..., in].
std::vector<double> reference_linear(const Tensor& x, const Tensor& weight, const Tensor& bias) {
  const std::vector<double> xv = values(x), wv = values(weight);
  const std::vector<double> bv = bias.defined() ? values(bias) : std::vector<double>(size_t(weight.size(0)), 0.0);
  const int64_t in = weight.size(1), out = weight.size(0), rows = x.numel() / in;
  std::vector<double> y(size_t(rows * out));
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t o = 0; o < out; ++o) {
      double s = bv[size_t(o)];
      for (int64_t i = 0; i < in; ++i) s += xv[size_t(r * in + i)] * wv[size_t(o * in + i)];
      y[size_t(r * out + o)] = s;
    }
  return y;
}

// Normalise each row of `width` trailing elements with biased variance, then scale and shift.
std::vector<double> reference_layer_norm(const Tensor& x, int64_t width, const std::vector<double>& weight,
                                         const std::vector<double>& bias, double eps) {
  const std::vector<double> xv = values(x);
  std::vector<double> y(xv.size());
  for (size_t r = 0; r * size_t(width) < xv.size(); ++r) {
    const double* row = xv.data() + r * size_t(width);
    double mean = 0, var = 0;
    for (int64_t i = 0; i < width; ++i) mean += row[i];
    mean /= double(width);
    for (int64_t i = 0; i < width; ++i) var += (row[i] - mean) * (row[i] - mean);
    var /= double(width);
    for (int64_t i = 0; i < width; ++i)
      y[r * size_t(width) + size_t(i)] =
          (row[i] - mean) / std::sqrt(var + eps) * weight[size_t(i)] + bias[size_t(i)];
  }
  return y;
}

double normal_pdf(double x) { return std::exp(-x * x / 2) / std::sqrt(2 * M_PI); }
double normal_cdf(double x) { return 0.5 * std::erfc(-x / std::sqrt(2.0)); }

}  // namespace

// ---------------------------------------------------------------------------------------------
// init

TEST_CASE("init: fans and gains follow torch.nn.init", "[nn][init]") {
  REQUIRE(nn::init::calculate_fan_in_and_fan_out(empty({10, 20})) == std::pair<int64_t, int64_t>{20, 10});
  // Conv-shaped [out, in, kh, kw]: the receptive field multiplies both fans.
  REQUIRE(nn::init::calculate_fan_in_and_fan_out(empty({8, 3, 5, 5})) == std::pair<int64_t, int64_t>{75, 200});
  REQUIRE_THROWS_WITH(nn::init::calculate_fan_in_and_fan_out(empty({7})),
                      Contains("at least 2 dims") && Contains("[7]"));

  REQUIRE(nn::init::calculate_gain("linear") == 1.0);
  REQUIRE(nn::init::calculate_gain("sigmoid") == 1.0);
  REQUIRE(nn::init::calculate_gain("tanh") == Approx(5.0 / 3.0));
  REQUIRE(nn::init::calculate_gain("relu") == Approx(std::sqrt(2.0)));
  REQUIRE(nn::init::calculate_gain("leaky_relu") == Approx(std::sqrt(2.0 / (1 + 0.01 * 0.01))));
  REQUIRE(nn::init::calculate_gain("leaky_relu", std::sqrt(5.0)) == Approx(std::sqrt(1.0 / 3.0)));
  REQUIRE(nn::init::calculate_gain("selu") == 0.75);
  REQUIRE_THROWS_WITH(nn::init::calculate_gain("swish"), Contains("swish") && Contains("relu"));
}

TEST_CASE("init: uniform, normal and constant fills", "[nn][init]") {
  Generator gen(11);
  Tensor t = empty({256, 256});
  require_uniform(nn::init::uniform_(t, -0.3, 0.3, &gen), 0.3);
  require_normal(nn::init::normal_(t, 2.0, 0.5, &gen), 2.0, 0.5);
  REQUIRE(moments(nn::init::constant_(t, 1.5)).min == 1.5);
  REQUIRE(moments(t).max == 1.5);
  REQUIRE(moments(nn::init::zeros_(t)).max == 0.0);
  REQUIRE(moments(nn::init::ones_(t)).min == 1.0);

  // The same generator state gives the same numbers; the default generator is used without one.
  Generator a(5), b(5);
  Tensor x = empty({100}), y = empty({100});
  nn::init::normal_(x, 0, 1, &a);
  nn::init::normal_(y, 0, 1, &b);
  require_close(values(x), values(y), 0, 0);
  manual_seed(3);
  nn::init::uniform_(x);
  manual_seed(3);
  nn::init::uniform_(y);
  require_close(values(x), values(y), 0, 0);
  REQUIRE(moments(x).min >= 0.0);
  REQUIRE(moments(x).max < 1.0);
}

TEST_CASE("init: fills a parameter in place without recording history", "[nn][init]") {
  Tensor w = zeros({4, 3});
  w.requires_grad_(true);
  const Tensor alias = w;
  nn::init::xavier_uniform_(w);
  REQUIRE(w.is_leaf());
  REQUIRE(w.requires_grad());
  REQUIRE(alias.is_same(w));
  REQUIRE(moments(alias).max > 0.0);
}

TEST_CASE("init: xavier and kaiming match PyTorch's bounds and stds", "[nn][init]") {
  Generator gen(21);
  const int64_t out = 300, in = 200;
  Tensor w = empty({out, in});

  require_uniform(nn::init::xavier_uniform_(w, 1.0, &gen), std::sqrt(6.0 / (in + out)));
  require_uniform(nn::init::xavier_uniform_(w, 2.0, &gen), 2.0 * std::sqrt(6.0 / (in + out)));
  require_normal(nn::init::xavier_normal_(w, 1.0, &gen), 0.0, std::sqrt(2.0 / (in + out)));

  // Default: leaky_relu with a = 0 (gain sqrt(2)) over fan_in.
  require_uniform(nn::init::kaiming_uniform_(w, 0.0, "fan_in", "leaky_relu", &gen), std::sqrt(6.0 / in));
  // a = sqrt(5), Linear's default: bound 1/sqrt(fan_in).
  require_uniform(nn::init::kaiming_uniform_(w, std::sqrt(5.0), "fan_in", "leaky_relu", &gen), 1.0 / std::sqrt(in));
  require_normal(nn::init::kaiming_normal_(w, 0.0, "fan_out", "relu", &gen), 0.0, std::sqrt(2.0 / out));
  require_normal(nn::init::kaiming_normal_(w, 0.0, "fan_in", "tanh", &gen), 0.0, (5.0 / 3.0) / std::sqrt(in));

  REQUIRE_THROWS_WITH(nn::init::kaiming_uniform_(w, 0.0, "fan_avg"), Contains("fan_in") && Contains("fan_avg"));
  Tensor ints = zeros({3, 3}, TensorOptions(kInt64));
  REQUIRE_THROWS_WITH(nn::init::xavier_uniform_(ints), Contains("xavier_uniform_") && Contains("floating"));
}

TEST_CASE("init: trunc_normal_ is the exact truncated normal", "[nn][init]") {
  struct Case {
    double mean, std, a, b;
  };
  // Centred (ViT's std 0.02 in [-2, 2] is effectively untruncated), asymmetric, and an interval
  // far in the upper tail, where a naive Phi rounds to 1.
  const std::vector<Case> cases = {{0.0, 1.0, -2.0, 2.0}, {0.5, 2.0, -1.0, 4.0}, {0.0, 1.0, 4.0, 6.0},
                                   {0.0, 0.02, -2.0, 2.0}, {1.0, 1.0, -5.0, -4.0}};
  Generator gen(31);
  for (const Case& c : cases) {
    Tensor t = empty({200, 200}, TensorOptions(kFloat64));
    nn::init::trunc_normal_(t, c.mean, c.std, c.a, c.b, &gen);
    const std::vector<double> v = values(t);
    const double alpha = (c.a - c.mean) / c.std, beta = (c.b - c.mean) / c.std;
    const double Z = normal_cdf(beta) - normal_cdf(alpha);
    const double shift = (normal_pdf(alpha) - normal_pdf(beta)) / Z;
    const double want_mean = c.mean + c.std * shift;
    const double want_var =
        c.std * c.std * (1 + (alpha * normal_pdf(alpha) - beta * normal_pdf(beta)) / Z - shift * shift);
    const Moments m = moments(t);
    INFO("case mean " << c.mean << " std " << c.std << " [" << c.a << ", " << c.b << "]: got mean " << m.mean
                      << " std " << m.std << ", want " << want_mean << " " << std::sqrt(want_var));
    REQUIRE(m.min >= c.a);
    REQUIRE(m.max <= c.b);
    REQUIRE(std::abs(m.mean - want_mean) < 5 * std::sqrt(want_var / double(v.size())));
    REQUIRE(std::abs(m.std / std::sqrt(want_var) - 1) < 0.03);
    // The empirical CDF at interior points (not just the moments): a clamp would pile mass at the
    // bounds, a rejection bug would skew it.
    for (double q : {0.1, 0.3, 0.5, 0.7, 0.9}) {
      const double x = c.a + q * (c.b - c.a);
      const double want = (normal_cdf((x - c.mean) / c.std) - normal_cdf(alpha)) / Z;
      const double got = double(std::count_if(v.begin(), v.end(), [x](double e) { return e <= x; })) / double(v.size());
      INFO("CDF at " << x << ": got " << got << " want " << want);
      REQUIRE(std::abs(got - want) < 0.01);
    }
    REQUIRE(std::count(v.begin(), v.end(), c.a) + std::count(v.begin(), v.end(), c.b) < 3);
  }
  Tensor f = empty({10});
  REQUIRE_THROWS_WITH(nn::init::trunc_normal_(f, 0, 1, 2.0, -2.0), Contains("a = 2") && Contains("b = -2"));
  REQUIRE_THROWS_WITH(nn::init::trunc_normal_(f, 0, 0.0), Contains("std must be positive"));
}

// ---------------------------------------------------------------------------------------------
// Linear

TEST_CASE("Linear: forward matches x W^T + b, with and without bias", "[nn][linear]") {
  nn::Linear fc(5, 3);
  REQUIRE(fc->weight.sizes() == Dims({3, 5}));
  REQUIRE(fc->bias.sizes() == Dims({3}));
  REQUIRE(keys(fc->named_parameters()) == std::vector<std::string>{"weight", "bias"});
  const Tensor x = random_tensor({2, 4, 5}, 1);
  const Tensor y = fc(x);
  REQUIRE(y.sizes() == Dims({2, 4, 3}));
  require_close(y, reference_linear(x, fc->weight, fc->bias), 1e-5, 1e-6);

  nn::Linear no_bias(nn::LinearOptions(5, 2).bias(false));
  REQUIRE(!no_bias->bias.defined());
  REQUIRE(keys(no_bias->named_parameters()) == std::vector<std::string>{"weight"});
  require_close(no_bias(x), reference_linear(x, no_bias->weight, Tensor()), 1e-5, 1e-6);

  std::ostringstream os;
  os << *fc;
  REQUIRE(os.str() == "Linear(in_features=5, out_features=3, bias=true)");
  REQUIRE(printed(*no_bias) == "Linear(in_features=5, out_features=2, bias=false)");
}

TEST_CASE("Linear: PyTorch's default init U(-1/sqrt(in), 1/sqrt(in))", "[nn][linear]") {
  manual_seed(7);
  nn::Linear fc(400, 300);
  require_uniform(fc->weight, 1.0 / std::sqrt(400.0));
  const Moments bias = moments(fc->bias);
  REQUIRE(bias.min >= -1.0 / 20);
  REQUIRE(bias.max <= 1.0 / 20);
  REQUIRE(bias.max - bias.min > 1.8 / 20);
  REQUIRE(fc->weight.requires_grad());
  REQUIRE(fc->weight.is_leaf());

  // Seeded construction is reproducible; reset_parameters redraws.
  manual_seed(7);
  nn::Linear again(400, 300);
  require_close(values(again->weight), values(fc->weight), 0, 0);
  Generator gen(1);
  again->reset_parameters(&gen);
  REQUIRE(values(again->weight) != values(fc->weight));
}

TEST_CASE("Linear: wrong input width names the module and both shapes", "[nn][linear][errors]") {
  nn::Linear fc(4, 2);
  REQUIRE_THROWS_WITH(fc(zeros({2, 3, 5})), Contains("Linear") && Contains("[..., 4]") && Contains("[2,3,5]"));
  REQUIRE_THROWS_WITH(fc(zeros({2, 4}, TensorOptions(kInt64))), Contains("Linear") && Contains("floating"));
}

// ---------------------------------------------------------------------------------------------
// LayerNorm

TEST_CASE("LayerNorm: forward matches the normalisation formula", "[nn][layernorm]") {
  nn::LayerNorm norm(8);
  REQUIRE(keys(norm->named_parameters()) == std::vector<std::string>{"weight", "bias"});
  require_close(values(norm->weight), std::vector<double>(8, 1.0), 0, 0);
  require_close(values(norm->bias), std::vector<double>(8, 0.0), 0, 0);
  {
    NoGradGuard no_grad;
    norm->weight.copy_(random_tensor({8}, 2));
    norm->bias.copy_(random_tensor({8}, 3));
  }
  const Tensor x = random_tensor({3, 5, 8}, 4) * 3.0 + 1.0;
  require_close(norm(x), reference_layer_norm(x, 8, values(norm->weight), values(norm->bias), 1e-5), 1e-4, 1e-5);

  // Two trailing dims normalised together, no affine parameters.
  nn::LayerNorm plain(nn::LayerNormOptions({4, 6}).eps(1e-3).elementwise_affine(false));
  REQUIRE(plain->parameters().empty());
  const Tensor x2 = random_tensor({2, 4, 6}, 5);
  require_close(plain(x2), reference_layer_norm(x2, 24, std::vector<double>(24, 1.0), std::vector<double>(24, 0.0), 1e-3),
                1e-4, 1e-5);

  nn::LayerNorm no_bias(nn::LayerNormOptions({8}).bias(false));
  REQUIRE(keys(no_bias->named_parameters()) == std::vector<std::string>{"weight"});

  REQUIRE(printed(*norm) == "LayerNorm((8,), eps=1e-05, elementwise_affine=true)");
  REQUIRE(printed(*plain) == "LayerNorm((4,6,), eps=0.001, elementwise_affine=false)");
  REQUIRE_THROWS_WITH(norm(zeros({2, 7})), Contains("LayerNorm") && Contains("[..., 8]") && Contains("[2,7]"));
}

// ---------------------------------------------------------------------------------------------
// Embedding

TEST_CASE("Embedding: rows by index, N(0,1) init, padding row zero without gradient", "[nn][embedding]") {
  manual_seed(9);
  nn::Embedding big(1000, 64);
  require_normal(big->weight, 0.0, 1.0);

  nn::Embedding emb(nn::EmbeddingOptions(6, 3).padding_idx(2));
  REQUIRE(keys(emb->named_parameters()) == std::vector<std::string>{"weight"});
  const std::vector<double> w = values(emb->weight);
  for (int j = 0; j < 3; ++j) REQUIRE(w[size_t(2 * 3 + j)] == 0.0);

  const std::vector<int64_t> ids = {0, 2, 5, 2, 5, 5};
  const Tensor indices = tensor(ids, {2, 3});
  const Tensor out = emb(indices);
  REQUIRE(out.sizes() == Dims({2, 3, 3}));
  std::vector<double> want;
  for (int64_t id : ids)
    for (int j = 0; j < 3; ++j) want.push_back(w[size_t(id * 3 + j)]);
  require_close(values(out), want, 0, 0);

  // d(sum out)/dW[r] = number of times r was looked up, except the padding row.
  (out * 1.0).sum().backward();
  const std::vector<double> g = values(emb->weight.grad());
  const std::vector<double> counts = {1, 0, 0, 0, 0, 3};
  for (int r = 0; r < 6; ++r)
    for (int j = 0; j < 3; ++j) REQUIRE(g[size_t(r * 3 + j)] == counts[size_t(r)]);

  REQUIRE(printed(*emb) == "Embedding(6, 3, padding_idx=2)");
  REQUIRE(printed(*big) == "Embedding(1000, 64)");
}

TEST_CASE("Embedding: bad indices and options are rejected clearly", "[nn][embedding][errors]") {
  nn::Embedding emb(5, 2);
  REQUIRE_THROWS_WITH(emb(tensor(std::vector<int64_t>{1, 7})), Contains("embedding") && Contains("7") && Contains("5"));
  REQUIRE_THROWS_WITH(emb(tensor(std::vector<int64_t>{-1})), Contains("embedding") && Contains("-1"));
  REQUIRE_THROWS_WITH(emb(zeros({2})), Contains("Embedding") && Contains("int64"));
  REQUIRE_THROWS_WITH(nn::Embedding(5, 2, 5), Contains("padding_idx 5") && Contains("5 embeddings"));
}

// ---------------------------------------------------------------------------------------------
// Dropout and activations

TEST_CASE("Dropout: drops with probability p while training, identity in eval", "[nn][dropout]") {
  manual_seed(13);
  nn::Dropout drop(0.3);
  const Tensor x = ones({200, 500});
  const std::vector<double> y = values(drop(x));
  const double zeros_fraction = double(std::count(y.begin(), y.end(), 0.0)) / double(y.size());
  REQUIRE(std::abs(zeros_fraction - 0.3) < 0.01);
  // Survivors are scaled by 1 / (1 - p) so the expectation is unchanged.
  const auto unexpected = std::count_if(y.begin(), y.end(), [](double v) {
    return v != 0.0 && std::abs(v - 1.0 / 0.7) > 1e-6;
  });
  REQUIRE(unexpected == 0);

  drop->eval();
  require_close(values(drop(x)), values(x), 0, 0);
  drop->train();
  REQUIRE(values(drop(x)) != values(x));
  // p = 0 is the identity even while training.
  require_close(values(nn::Dropout(0.0)(x)), values(x), 0, 0);
  REQUIRE(printed(*drop) == "Dropout(p=0.3)");
  REQUIRE_THROWS_WITH(nn::Dropout(1.5), Contains("Dropout") && Contains("1.5"));
}

TEST_CASE("GELU, ReLU and Tanh compute their formulas", "[nn][activation]") {
  const Tensor x = random_tensor({64}, 17) * 4.0;
  const std::vector<double> xv = values(x);
  std::vector<double> gelu_exact, gelu_tanh, relu, tanh_values;
  for (double v : xv) {
    gelu_exact.push_back(0.5 * v * (1 + std::erf(v / std::sqrt(2.0))));
    gelu_tanh.push_back(0.5 * v * (1 + std::tanh(std::sqrt(2 / M_PI) * (v + 0.044715 * v * v * v))));
    relu.push_back(std::max(v, 0.0));
    tanh_values.push_back(std::tanh(v));
  }
  require_close(nn::GELU()(x), gelu_exact, 1e-5, 1e-6);
  require_close(nn::GELU("tanh")(x), gelu_tanh, 1e-5, 1e-6);
  require_close(nn::ReLU()(x), relu, 0, 0);
  require_close(nn::Tanh()(x), tanh_values, 1e-5, 1e-6);
  REQUIRE(printed(*nn::GELU()) == "GELU(approximate='none')");
  REQUIRE(printed(*nn::ReLU()) == "ReLU()");
  REQUIRE_THROWS_WITH(nn::GELU("fast"), Contains("GELU") && Contains("fast"));
}

// ---------------------------------------------------------------------------------------------
// Containers and MLP

TEST_CASE("Sequential: chains forward and names children by index", "[nn][containers]") {
  nn::Sequential seq(nn::Linear(4, 8), nn::ReLU(), nn::Linear(8, 2));
  REQUIRE(seq->size() == 3);
  REQUIRE(keys(seq->state_dict()) == std::vector<std::string>{"0.weight", "0.bias", "2.weight", "2.bias"});
  const Tensor x = random_tensor({3, 4}, 19);
  auto first = seq->ptr<nn::LinearImpl>(0);
  auto last = seq->ptr<nn::LinearImpl>(2);
  std::vector<double> hidden = reference_linear(x, first->weight, first->bias);
  for (double& h : hidden) h = std::max(h, 0.0);
  const Tensor hidden_tensor = tensor(hidden, {3, 8}).to(kFloat32);
  require_close(seq(x), reference_linear(hidden_tensor, last->weight, last->bias), 1e-5, 1e-6);

  // Named and shared_ptr appends; an empty Sequential is the identity.
  seq->push_back("head", nn::Linear(2, 1));
  seq->push_back(std::make_shared<nn::TanhImpl>());
  REQUIRE(keys(seq->state_dict()).back() == "head.bias");
  REQUIRE(seq->named_children()[4].first == "4");
  REQUIRE(seq(x).sizes() == Dims({3, 1}));
  REQUIRE((*seq)[1]->type_name() == "ReLU");
  require_close(values(nn::Sequential()(x)), values(x), 0, 0);

  REQUIRE_THROWS_WITH(seq->ptr(9), Contains("Sequential") && Contains("index 9") && Contains("5"));
  REQUIRE_THROWS_WITH(seq->ptr<nn::LinearImpl>(1), Contains("ReLU"));
  REQUIRE(printed(*seq) ==
          "Sequential(\n"
          "  (0): Linear(in_features=4, out_features=8, bias=true)\n"
          "  (1): ReLU()\n"
          "  (2): Linear(in_features=8, out_features=2, bias=true)\n"
          "  (head): Linear(in_features=2, out_features=1, bias=true)\n"
          "  (4): Tanh()\n"
          ")");
}

TEST_CASE("ModuleList: index names, access and iteration", "[nn][containers]") {
  nn::ModuleList list;
  list->push_back(nn::Linear(2, 3));
  list->push_back(nn::LayerNorm(3));
  list->push_back(std::make_shared<nn::LinearImpl>(3, 1, false));
  REQUIRE(list->size() == 3);
  REQUIRE(keys(list->state_dict()) ==
          std::vector<std::string>{"0.weight", "0.bias", "1.weight", "1.bias", "2.weight"});
  std::vector<std::string> types;
  for (const auto& module : *list) types.push_back(module->type_name());
  REQUIRE(types == std::vector<std::string>{"Linear", "LayerNorm", "Linear"});
  REQUIRE(list->at<nn::LinearImpl>(2).options.out_features() == 1);
  REQUIRE((*list)[1]->type_name() == "LayerNorm");
  REQUIRE_THROWS_WITH(list->ptr(3), Contains("ModuleList") && Contains("index 3") && Contains("3 modules"));
  REQUIRE_THROWS_WITH(list->push_back(nn::Linear(nullptr)), Contains("null"));
}

TEST_CASE("MLP: fc1 -> activation -> dropout -> fc2 with PyTorch names", "[nn][mlp]") {
  for (const std::string activation : {"gelu", "relu", "tanh"}) {
    nn::MLP mlp(4, 6, 3, activation);
    REQUIRE(keys(mlp->state_dict()) == std::vector<std::string>{"fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"});
    const Tensor x = random_tensor({2, 5, 4}, 23);
    std::vector<double> hidden = reference_linear(x, mlp->fc1->weight, mlp->fc1->bias);
    for (double& h : hidden) {
      if (activation == "gelu") h = 0.5 * h * (1 + std::erf(h / std::sqrt(2.0)));
      if (activation == "relu") h = std::max(h, 0.0);
      if (activation == "tanh") h = std::tanh(h);
    }
    const Tensor hidden_tensor = tensor(hidden, {2, 5, 6}).to(kFloat32);
    require_close(mlp(x), reference_linear(hidden_tensor, mlp->fc2->weight, mlp->fc2->bias), 1e-5, 1e-6);
  }
  nn::MLP with_dropout(4, 6, 3, "gelu", 0.5);
  const Tensor x = random_tensor({8, 4}, 29);
  with_dropout->eval();
  const std::vector<double> eval_out = values(with_dropout(x));
  REQUIRE(values(with_dropout(x)) == eval_out);
  with_dropout->train();
  REQUIRE(values(with_dropout(x)) != eval_out);

  REQUIRE(printed(*nn::MLP(4, 6, 3)) ==
          "MLP(\n"
          "  (fc1): Linear(in_features=4, out_features=6, bias=true)\n"
          "  (act): GELU(approximate='none')\n"
          "  (drop): Dropout(p=0)\n"
          "  (fc2): Linear(in_features=6, out_features=3, bias=true)\n"
          ")");
  REQUIRE_THROWS_WITH(nn::MLP(4, 6, 3, "swish"), Contains("MLP") && Contains("swish") && Contains("gelu"));
  REQUIRE_THROWS_WITH(nn::MLP(4, 6, 3)(zeros({2, 5})), Contains("MLP") && Contains("[..., 4]"));
}

TEST_CASE("Nested containers give PyTorch's dotted checkpoint keys", "[nn][containers]") {
  nn::TransformerEncoder encoder(nn::TransformerEncoderLayerOptions(8, 2).dim_feedforward(16), 2, /*final_norm=*/true);
  std::vector<std::string> want;
  for (int layer = 0; layer < 2; ++layer) {
    const std::string prefix = "layers." + std::to_string(layer) + ".";
    for (const char* name : {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.out_proj",
                             "linear1", "linear2", "norm1", "norm2"}) {
      want.push_back(prefix + name + ".weight");
      want.push_back(prefix + name + ".bias");
    }
  }
  want.push_back("norm.weight");
  want.push_back("norm.bias");
  REQUIRE(keys(encoder->state_dict()) == want);
  REQUIRE(keys(encoder->named_parameters()) == want);

  // Shapes as PyTorch stores them ([out, in] for linear weights).
  const nn::NamedTensors state = encoder->state_dict();
  auto shape_of = [&](const std::string& name) {
    for (const auto& [n, t] : state)
      if (n == name) return t.sizes();
    FAIL("no key " << name);
    return Dims();
  };
  REQUIRE(shape_of("layers.1.self_attn.q_proj.weight") == Dims({8, 8}));
  REQUIRE(shape_of("layers.0.linear1.weight") == Dims({16, 8}));
  REQUIRE(shape_of("layers.0.linear2.weight") == Dims({8, 16}));
  REQUIRE(shape_of("norm.bias") == Dims({8}));

  // A Sequential of MLPs inside a parent module: "blocks.1.fc2.weight".
  struct Parent : nn::Module {
    Parent() : Module("Parent") {
      blocks = register_module("blocks", nn::Sequential(nn::MLP(2, 4, 2), nn::MLP(2, 4, 2)));
    }
    nn::Sequential blocks{nullptr};
  };
  Parent parent;
  REQUIRE(keys(parent.state_dict()) ==
          std::vector<std::string>{"blocks.0.fc1.weight", "blocks.0.fc1.bias", "blocks.0.fc2.weight",
                                   "blocks.0.fc2.bias", "blocks.1.fc1.weight", "blocks.1.fc1.bias",
                                   "blocks.1.fc2.weight", "blocks.1.fc2.bias"});
  std::vector<std::string> module_names;
  for (const auto& [name, _] : parent.named_modules()) module_names.push_back(name);
  REQUIRE(module_names == std::vector<std::string>{"blocks", "blocks.0", "blocks.0.fc1", "blocks.0.act",
                                                   "blocks.0.drop", "blocks.0.fc2", "blocks.1", "blocks.1.fc1",
                                                   "blocks.1.act", "blocks.1.drop", "blocks.1.fc2"});
}
