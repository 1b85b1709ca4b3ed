// Tests of gelu_dropout (ops/nn_functional.h), the fused exact GELU then dropout of a transformer's
// FFN: against dropout(gelu(x)) with the same generator, bit for bit in float32 and float64 (values,
// mask, the generator's advance and the input gradient), on sizes that end mid-group and span several
// tasks, awkward values, strided inputs, more than one thread; its float64 gradcheck with a fixed mask;
// the cases it hands to the composition; and nn::TransformerEncoderLayer, which takes the fused path
// for "gelu", against a layer of the same weights whose activation is not fused.
#include "test_util.h"

#include <omp.h>

#include <luna/nn/transformer.h>

using namespace luna;
using luna::testing::random_leaf;
using luna::testing::require_gradcheck;
using luna::testing::values;
using luna::testing::awkward_input;
using luna::testing::bits;

namespace {

struct Run {
  Tensor out, grad;
  GeneratorState after;
};

// f(x) with a fresh generator of `seed`, then backward of Σ out·w.
template <class F>
Run run(F f, const Tensor& x_value, const Tensor& w, uint64_t seed) {
  Tensor x = x_value.detach().clone();
  x.requires_grad_(true);
  Generator gen(seed);
  const Tensor out = f(x, &gen);
  (out * w).sum().backward();
  return {out, x.grad(), gen.get_state()};
}

void require_same_as_composition(const Tensor& x, double p, uint64_t seed) {
  Generator weights(seed + 1);
  const Tensor w = randn(x.sizes(), TensorOptions(x.dtype()), &weights);
  const Run fused = run([p](const Tensor& in, Generator* g) { return gelu_dropout(in, p, true, g); }, x, w, seed);
  const Run composed = run([p](const Tensor& in, Generator* g) { return dropout(gelu(in), p, true, g); }, x, w, seed);
  REQUIRE(bits(fused.out) == bits(composed.out));
  REQUIRE(bits(fused.grad) == bits(composed.grad));
  REQUIRE(fused.after.seed == composed.after.seed);
  REQUIRE(fused.after.offset == composed.after.offset);
}

}  // namespace

TEST_CASE("gelu_dropout equals dropout(gelu(x)) bit for bit, values and gradient", "[nn][gelu_dropout]") {
  for (DType dtype : {kFloat32, kFloat64}) {
    // 1 element, under one group of 32, one task's worth, and several tasks ending mid-group.
    for (const Dims& shape : {Dims{1}, Dims{3, 7}, Dims{64, 32}, Dims{3, 2091}, Dims{97, 131}}) {
      for (double p : {0.1, 0.5, 0.93}) {
        INFO("dtype " << dtype << " shape " << shape << " p " << p);
        require_same_as_composition(awkward_input(shape, dtype, 11), p, 21);
      }
    }
  }
}

TEST_CASE("gelu_dropout on strided inputs and any thread count", "[nn][gelu_dropout]") {
  const Tensor base = awkward_input({131, 97}, kFloat32, 5);
  require_same_as_composition(base.t(), 0.2, 8);  // the mask of the row-major order of the view
  require_same_as_composition(base.narrow(1, 3, 60), 0.2, 9);
  const int threads = omp_get_max_threads();
  const Tensor x = awkward_input({257, 129}, kFloat32, 6);
  Generator w_gen(1);
  const Tensor w = randn(x.sizes(), TensorOptions(kFloat32), &w_gen);
  auto fused = [](const Tensor& in, Generator* g) { return gelu_dropout(in, 0.1, true, g); };
  omp_set_num_threads(1);
  const Run one = run(fused, x, w, 3);
  omp_set_num_threads(std::max(2, threads));
  const Run many = run(fused, x, w, 3);
  omp_set_num_threads(threads);
  REQUIRE(bits(one.out) == bits(many.out));
  REQUIRE(bits(one.grad) == bits(many.grad));
}

TEST_CASE("gelu_dropout hands eval, p = 0, p = 1 and integers to the composition", "[nn][gelu_dropout]") {
  const Tensor x = awkward_input({4, 9}, kFloat32, 2);
  REQUIRE(bits(gelu_dropout(x, 0.3, false)) == bits(gelu(x)));
  REQUIRE(bits(gelu_dropout(x, 0.0, true)) == bits(gelu(x)));
  Generator g1(4), g2(4);
  REQUIRE(bits(gelu_dropout(x, 1.0, true, &g1)) == bits(dropout(gelu(x), 1.0, true, &g2)));
  const Tensor ints = arange(-3.0, 5.0, 1.0, TensorOptions(kInt64));
  Generator g3(4), g4(4);
  REQUIRE(bits(gelu_dropout(ints, 0.5, true, &g3)) == bits(dropout(gelu(ints), 0.5, true, &g4)));
  REQUIRE_THROWS_WITH(gelu_dropout(x, 1.5), Catch::Contains("probability p must be in [0, 1], got 1.5"));
  REQUIRE_THROWS_WITH(gelu_dropout(Tensor(), 0.1), Catch::Contains("input is undefined"));
}

TEST_CASE("gradcheck gelu_dropout with a fixed mask", "[gradcheck][nn][gelu_dropout]") {
  Generator gen(17);
  const GeneratorState start = gen.get_state();
  auto fixed = [&](const std::vector<Tensor>& in) {
    gen.set_state(start);
    return gelu_dropout(in[0], 0.35, true, &gen);
  };
  const Tensor x = random_leaf({6, 7}, 18, -3.0, 3.0);
  require_gradcheck(fixed, {x});
  const Tensor out = fixed({x});
  int64_t dropped = 0;
  for (double v : values(out)) dropped += v == 0.0;
  REQUIRE(dropped > 0);  // both branches are checked
  REQUIRE(dropped < out.numel());
}

namespace {

// The exact GELU as an activation the layer does not recognise, so it composes gelu and dropout.
class ComposedGelu : public nn::ActivationImpl {
 public:
  ComposedGelu() : ActivationImpl("ComposedGelu") {}
  Tensor forward(const Tensor& input) const override { return gelu(input); }
};

}  // namespace

TEST_CASE("TransformerEncoderLayer's fused GELU dropout matches the composed modules", "[nn][gelu_dropout]") {
  for (bool norm_first : {false, true}) {
    const auto options =
        nn::TransformerEncoderLayerOptions(16, 2).dim_feedforward(40).dropout(0.25).activation("gelu").norm_first(
            norm_first);
    nn::TransformerEncoderLayer fused(options), composed(options);
    {
      NoGradGuard no_grad;
      const auto from = fused->named_parameters(), to = composed->named_parameters();
      REQUIRE(from.size() == to.size());
      for (size_t i = 0; i < from.size(); ++i) to[i].second.copy_(from[i].second);
    }
    composed->activation = std::make_shared<ComposedGelu>();
    Generator inputs(3);
    const Tensor x = randn({2, 5, 16}, TensorOptions(kFloat32), &inputs);
    const GeneratorState start = default_generator().get_state();
    const Tensor y_fused = fused(x);
    y_fused.sum().backward();
    default_generator().set_state(start);
    const Tensor y_composed = composed(x);
    y_composed.sum().backward();
    INFO("norm_first " << norm_first);
    REQUIRE(bits(y_fused) == bits(y_composed));
    REQUIRE(bits(fused->linear1->weight.grad()) == bits(composed->linear1->weight.grad()));
    fused->eval();  // and outside training both are the plain GELU
    composed->eval();
    REQUIRE(bits(fused(x)) == bits(composed(x)));
  }
}
