// Float64 finite-difference checks of the fused nn ops' backward formulas: softmax/log_softmax
// over several dims, layer_norm (input, weight, bias), cross_entropy (ignore_index, label
// smoothing, each reduction), mse_loss and dropout (a fixed mask), on contiguous and strided leaves.
#include "test_util.h"

using namespace luna;
using luna::testing::random_leaf;
using luna::testing::require_gradcheck;

namespace {

// A float64 leaf whose layout is transposed: a [rows, cols] view of [cols, rows] storage.
Tensor transposed_leaf(int64_t rows, int64_t cols, uint64_t seed) {
  Tensor t = random_leaf({cols, rows}, seed).detach().t().detach();
  t.requires_grad_(true);
  return t;
}

Tensor labels(const std::vector<int64_t>& values) { return tensor(values); }

}  // namespace

TEST_CASE("gradcheck softmax and log_softmax", "[gradcheck][nn]") {
  const Tensor x = random_leaf({3, 4, 5}, 1, -2.0, 2.0);
  for (int64_t dim : {0, 1, 2, -1}) {
    INFO("dim " << dim);
    require_gradcheck([dim](const std::vector<Tensor>& in) { return softmax(in[0], dim); }, {x});
    require_gradcheck([dim](const std::vector<Tensor>& in) { return log_softmax(in[0], dim); }, {x});
  }
  const Tensor strided = transposed_leaf(4, 6, 2);
  REQUIRE_FALSE(strided.is_contiguous());
  for (int64_t dim : {0, 1}) {
    require_gradcheck([dim](const std::vector<Tensor>& in) { return in[0].softmax(dim); }, {strided});
    require_gradcheck([dim](const std::vector<Tensor>& in) { return in[0].log_softmax(dim); }, {strided});
  }
  // Composed: the incoming gradient is not all ones and comes back through another op.
  require_gradcheck([](const std::vector<Tensor>& in) { return softmax(in[0] * in[0], 1).sum({0}); }, {x});
}

TEST_CASE("gradcheck layer_norm", "[gradcheck][nn]") {
  const Tensor x = random_leaf({2, 3, 5}, 3, -2.0, 2.0);
  const Tensor weight = random_leaf({5}, 4, 0.5, 1.5);
  const Tensor bias = random_leaf({5}, 5);
  require_gradcheck([](const std::vector<Tensor>& in) { return layer_norm(in[0], {5}, in[1], in[2]); },
                    {x, weight, bias});
  require_gradcheck([](const std::vector<Tensor>& in) { return layer_norm(in[0], {5}); }, {x});
  require_gradcheck([](const std::vector<Tensor>& in) { return layer_norm(in[0], {5}, in[1]); }, {x, weight});
  require_gradcheck([](const std::vector<Tensor>& in) { return layer_norm(in[0], {5}, Tensor(), in[1], 0.1); },
                    {x, bias});

  const Tensor weight2 = random_leaf({3, 5}, 6), bias2 = random_leaf({3, 5}, 7);
  require_gradcheck([](const std::vector<Tensor>& in) { return layer_norm(in[0], {3, 5}, in[1], in[2]); },
                    {x, weight2, bias2});
  // Only the parameters require grad.
  const Tensor constant_x = random_leaf({4, 5}, 8).detach();
  require_gradcheck([](const std::vector<Tensor>& in) { return layer_norm(in[0], {5}, in[1], in[2]); },
                    {constant_x, weight, bias});
  const Tensor strided = transposed_leaf(4, 6, 9);
  const Tensor weight6 = random_leaf({6}, 10), bias6 = random_leaf({6}, 11);
  require_gradcheck([](const std::vector<Tensor>& in) { return layer_norm(in[0], {6}, in[1], in[2]); },
                    {strided, weight6, bias6});
}

TEST_CASE("gradcheck cross_entropy", "[gradcheck][nn]") {
  const Tensor logits = random_leaf({5, 4}, 12, -3.0, 3.0);
  const Tensor target = labels({1, 0, 3, 2, 3});
  const Tensor with_ignored = labels({1, -100, 3, -100, 0});
  for (const std::string reduction : {"mean", "sum", "none"}) {
    for (double smoothing : {0.0, 0.3}) {
      for (const Tensor& t : {target, with_ignored}) {
        INFO("reduction " << reduction << " smoothing " << smoothing << " ignored " << t.is_same(with_ignored));
        CrossEntropyOptions options;
        options.reduction = reduction;
        options.label_smoothing = smoothing;
        require_gradcheck([&](const std::vector<Tensor>& in) { return cross_entropy(in[0], t, options); },
                          {logits});
      }
    }
  }
  SECTION("a custom ignore_index, unbatched logits and strided logits") {
    CrossEntropyOptions options;
    options.ignore_index = 3;
    options.label_smoothing = 0.1;
    require_gradcheck([&](const std::vector<Tensor>& in) { return cross_entropy(in[0], target, options); },
                      {logits});
    const Tensor row = random_leaf({6}, 13, -2.0, 2.0);
    const Tensor one = labels({4}).reshape({});
    require_gradcheck([&](const std::vector<Tensor>& in) { return cross_entropy(in[0], one); }, {row});
    const Tensor strided = transposed_leaf(5, 4, 14);
    require_gradcheck([&](const std::vector<Tensor>& in) { return cross_entropy(in[0], target, options); },
                      {strided});
  }
}

TEST_CASE("gradcheck mse_loss", "[gradcheck][nn]") {
  const Tensor input = random_leaf({3, 4}, 15), target = random_leaf({3, 4}, 16);
  for (const std::string reduction : {"mean", "sum", "none"}) {
    INFO("reduction " << reduction);
    require_gradcheck([reduction](const std::vector<Tensor>& in) { return mse_loss(in[0], in[1], reduction); },
                      {input, target});
  }
}

TEST_CASE("gradcheck dropout with a fixed mask", "[gradcheck][nn]") {
  // Every evaluation restarts the generator at the same state, so the mask does not change.
  Generator gen(17);
  const GeneratorState start = gen.get_state();
  auto fixed_dropout = [&](const std::vector<Tensor>& in) {
    gen.set_state(start);
    return dropout(in[0], 0.35, true, &gen);
  };
  const Tensor x = random_leaf({6, 7}, 18);
  require_gradcheck(fixed_dropout, {x});
  require_gradcheck(fixed_dropout, {transposed_leaf(5, 3, 19)});
  // The mask really drops something here, so the check covers both branches.
  const Tensor out = fixed_dropout({x});
  int64_t dropped = 0;
  for (double v : luna::testing::values(out)) dropped += v == 0.0;
  REQUIRE(dropped > 0);
  REQUIRE(dropped < out.numel());
}
