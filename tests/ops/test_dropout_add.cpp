// Tests of dropout_add (ops/nn_functional.h), a transformer block's dropout and residual connection in
// one pass: against residual + dropout(x) with the same generator, bit for bit in float32 and float64
// (values, the generator's advance and both gradients), on sizes that end mid-group and span several
// tasks, awkward values, strided inputs, more than one thread; its float64 gradcheck with a fixed mask;
// the cases it hands to the composition; and nn::TransformerEncoderLayer, which ends both blocks in it,
// against the same layer's modules composed by hand.
#include "test_util.h"

#include <omp.h>

#include <luna/nn/transformer.h>

using namespace luna;
using luna::testing::awkward_input;
using luna::testing::bits;
using luna::testing::random_leaf;
using luna::testing::require_gradcheck;
using luna::testing::values;

namespace {

struct Run {
  Tensor out, grad_x, grad_residual;
  GeneratorState after;
};

// f(x, residual) with a fresh generator of `seed`, then backward of Σ out·w.
template <class F>
Run run(F f, const Tensor& x_value, const Tensor& residual_value, const Tensor& w, uint64_t seed) {
  Tensor x = x_value.detach().clone(), residual = residual_value.detach().clone();
  x.requires_grad_(true);
  residual.requires_grad_(true);
  Generator gen(seed);
  const Tensor out = f(x, residual, &gen);
  (out * w).sum().backward();
  return {out, x.grad(), residual.grad(), gen.get_state()};
}

Run fused_run(const Tensor& x, const Tensor& residual, const Tensor& w, double p, uint64_t seed) {
  return run([p](const Tensor& in, const Tensor& res, Generator* g) { return dropout_add(in, res, p, true, g); }, x,
             residual, w, seed);
}

Run composed_run(const Tensor& x, const Tensor& residual, const Tensor& w, double p, uint64_t seed) {
  return run([p](const Tensor& in, const Tensor& res, Generator* g) { return res + dropout(in, p, true, g); }, x,
             residual, w, seed);
}

void require_same(const Run& fused, const Run& composed) {
  REQUIRE(bits(fused.out) == bits(composed.out));
  REQUIRE(bits(fused.grad_x) == bits(composed.grad_x));
  REQUIRE(bits(fused.grad_residual) == bits(composed.grad_residual));
  REQUIRE(fused.after.seed == composed.after.seed);
  REQUIRE(fused.after.offset == composed.after.offset);
}

// The awkward values (NaN, infinities, signed zeros) in x; the residual has zeros of both signs but
// no NaN where x has one, whose payload an add may take from either operand.
void require_same_as_composition(const Tensor& x, double p, uint64_t seed) {
  Generator others(seed + 1);
  const Tensor w = randn(x.sizes(), TensorOptions(x.dtype()), &others);
  Tensor residual = randn(x.sizes(), TensorOptions(x.dtype()), &others).contiguous();
  residual.view({-1}).narrow(0, 0, 1).fill_(-0.0);
  if (residual.numel() > 1) residual.view({-1}).narrow(0, 1, 1).fill_(0.0);
  require_same(fused_run(x, residual, w, p, seed), composed_run(x, residual, w, p, seed));
}

}  // namespace

TEST_CASE("dropout_add equals residual + dropout(x) bit for bit, values and gradients", "[nn][dropout_add]") {
  for (DType dtype : {kFloat32, kFloat64}) {
    // 1 element, under one group of 32, one task's worth, and several tasks ending mid-group.
    for (const Dims& shape : {Dims{1}, Dims{3, 7}, Dims{64, 32}, Dims{3, 2091}, Dims{97, 131}, Dims{2, 8192 + 45}}) {
      for (double p : {0.1, 0.5, 0.93}) {
        INFO("dtype " << dtype << " shape " << shape << " p " << p);
        require_same_as_composition(awkward_input(shape, dtype, 11), p, 21);
      }
    }
  }
}

TEST_CASE("dropout_add adds the residual: kept elements scaled, dropped ones the residual alone",
          "[nn][dropout_add]") {
  const Tensor x = full({40, 33}, 2.0, TensorOptions(kFloat32));
  const Tensor residual = full({40, 33}, 0.5, TensorOptions(kFloat32));
  Generator gen(5);
  const Tensor out = dropout_add(x, residual, 0.2, true, &gen);
  int64_t kept = 0, dropped = 0;
  for (double v : values(out)) {
    if (v == 3.0) ++kept;  // 0.5 + 2 · 1.25
    else if (v == 0.5) ++dropped;
  }
  REQUIRE(kept + dropped == out.numel());
  REQUIRE(dropped > 0);
  REQUIRE(kept > dropped);
}

TEST_CASE("dropout_add on strided inputs and any thread count", "[nn][dropout_add]") {
  const Tensor base = awkward_input({131, 97}, kFloat32, 5);
  require_same_as_composition(base.t(), 0.2, 8);  // the mask of the row-major order of the view
  require_same_as_composition(base.narrow(1, 3, 60), 0.2, 9);
  Generator others(2);
  const Tensor x = awkward_input({257, 129}, kFloat32, 6);
  const Tensor residual_base = randn({129, 257}, TensorOptions(kFloat32), &others);
  const Tensor residual = residual_base.t();  // a transposed residual
  const Tensor w = randn(x.sizes(), TensorOptions(kFloat32), &others);
  require_same(fused_run(x, residual, w, 0.3, 4), composed_run(x, residual, w, 0.3, 4));
  const int threads = omp_get_max_threads();
  omp_set_num_threads(1);
  const Run one = fused_run(x, residual, w, 0.1, 3);
  omp_set_num_threads(std::max(2, threads));
  const Run many = fused_run(x, residual, w, 0.1, 3);
  omp_set_num_threads(threads);
  require_same(one, many);
}

TEST_CASE("dropout_add hands eval, p = 0, p = 1, broadcasts, mixed dtypes and integers to the composition",
          "[nn][dropout_add]") {
  const Tensor x = awkward_input({4, 9}, kFloat32, 2);
  Generator others(7);
  const Tensor residual = randn({4, 9}, TensorOptions(kFloat32), &others);
  REQUIRE(bits(dropout_add(x, residual, 0.3, false)) == bits(residual + x));
  REQUIRE(bits(dropout_add(x, residual, 0.0, true)) == bits(residual + x));
  Generator g1(4), g2(4);
  REQUIRE(bits(dropout_add(x, residual, 1.0, true, &g1)) == bits(residual + dropout(x, 1.0, true, &g2)));
  const Tensor row = randn({9}, TensorOptions(kFloat32), &others);  // broadcast over the rows
  Generator g3(4), g4(4);
  const Tensor broadcast = dropout_add(x, row, 0.5, true, &g3);
  REQUIRE(broadcast.sizes() == Dims{4, 9});
  REQUIRE(bits(broadcast) == bits(row + dropout(x, 0.5, true, &g4)));
  const Tensor residual64 = residual.to(kFloat64);
  Generator g5(4), g6(4);
  const Tensor mixed = dropout_add(x, residual64, 0.5, true, &g5);
  REQUIRE(mixed.dtype() == kFloat64);
  REQUIRE(bits(mixed) == bits(residual64 + dropout(x, 0.5, true, &g6)));
  const Tensor ints = arange(-3.0, 5.0, 1.0, TensorOptions(kInt64));
  Generator g7(4), g8(4);
  REQUIRE(bits(dropout_add(ints.to(kFloat32), ints.to(kFloat32), 0.5, true, &g7)) ==
          bits(ints.to(kFloat32) + dropout(ints.to(kFloat32), 0.5, true, &g8)));
  REQUIRE_THROWS_WITH(dropout_add(x, residual, 1.5), Catch::Contains("probability p must be in [0, 1], got 1.5"));
  REQUIRE_THROWS_WITH(dropout_add(Tensor(), residual, 0.1), Catch::Contains("input is undefined"));
  REQUIRE_THROWS_WITH(dropout_add(x, Tensor(), 0.1), Catch::Contains("residual is undefined"));
  REQUIRE_THROWS_WITH(dropout_add(x, randn({5, 9}), 0.1), Catch::Contains("shapes [5,9] and [4,9] cannot be broadcast"));
}

TEST_CASE("gradcheck dropout_add with a fixed mask", "[gradcheck][nn][dropout_add]") {
  Generator gen(17);
  const GeneratorState start = gen.get_state();
  auto fixed = [&](const std::vector<Tensor>& in) {
    gen.set_state(start);
    return dropout_add(in[0], in[1], 0.35, true, &gen);
  };
  const Tensor x = random_leaf({6, 7}, 18, -3.0, 3.0);
  const Tensor residual = random_leaf({6, 7}, 19, -3.0, 3.0);
  require_gradcheck(fixed, {x, residual});
  const Tensor out = fixed({x, residual});
  const std::vector<double> got = values(out), base = values(residual);
  int64_t dropped = 0;
  for (size_t i = 0; i < got.size(); ++i) dropped += got[i] == base[i];
  REQUIRE(dropped > 0);  // both branches are checked
  REQUIRE(dropped < out.numel());
}

TEST_CASE("TransformerEncoderLayer's fused dropout and residual match its modules composed by hand",
          "[nn][dropout_add]") {
  for (bool norm_first : {false, true}) {
    const auto options =
        nn::TransformerEncoderLayerOptions(16, 2).dim_feedforward(40).dropout(0.25).activation("gelu").norm_first(
            norm_first);
    nn::TransformerEncoderLayer layer(options);
    Generator inputs(3);
    const Tensor x_value = randn({2, 5, 16}, TensorOptions(kFloat32), &inputs);
    Tensor x_fused = x_value.clone(), x_composed = x_value.clone();
    x_fused.requires_grad_(true);
    x_composed.requires_grad_(true);
    const GeneratorState start = default_generator().get_state();
    const Tensor y_fused = layer(x_fused);
    y_fused.sum().backward();
    const Tensor weight_grad_fused = layer->linear1->weight.grad().clone();
    layer->zero_grad();
    default_generator().set_state(start);
    // The layer's forward written out with the Dropout modules and adds (PyTorch's block structure).
    auto attention = [&](const Tensor& in) { return layer->dropout1(layer->self_attn(in, Tensor(), Tensor(), Tensor())); };
    auto feed_forward = [&](const Tensor& in) {
      const Tensor hidden = layer->linear1(in);
      return layer->dropout2(layer->linear2(gelu_dropout(hidden, 0.25, true)));
    };
    Tensor y_composed;
    if (norm_first) {
      const Tensor h = x_composed + attention(layer->norm1(x_composed));
      y_composed = h + feed_forward(layer->norm2(h));
    } else {
      const Tensor h = layer->norm1(x_composed + attention(x_composed));
      y_composed = layer->norm2(h + feed_forward(h));
    }
    y_composed.sum().backward();
    INFO("norm_first " << norm_first);
    REQUIRE(bits(y_fused) == bits(y_composed));
    REQUIRE(bits(x_fused.grad()) == bits(x_composed.grad()));
    REQUIRE(bits(weight_grad_fused) == bits(layer->linear1->weight.grad()));
  }
}
