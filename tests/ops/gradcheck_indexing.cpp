// Float64 gradchecks for every differentiable indexing / joining op (ops/indexing.cpp): several
// dims, repeated indices (gradients must accumulate), and strided (transposed) leaves.
#include "test_util.h"

using namespace luna;
using luna::testing::random_leaf;
using luna::testing::require_gradcheck;

namespace {

Tensor int_tensor(const std::vector<int64_t>& v, const Dims& shape = {}) { return tensor(v, shape); }

// A (cols, rows) leaf whose memory is laid out transposed: exercises strided reads in backward too.
Tensor transposed_leaf(int64_t rows, int64_t cols, uint64_t seed) {
  Tensor t = random_leaf({rows, cols}, seed).detach().t();
  t.requires_grad_(true);
  return t;
}

}  // namespace

TEST_CASE("gradcheck cat") {
  for (int64_t dim : {0, 1, -1}) {
    INFO("dim " << dim);
    const int d = dim < 0 ? int(dim + 2) : int(dim);
    Dims b_shape{3, 4};
    b_shape[d] = 2;
    require_gradcheck([dim](const std::vector<Tensor>& in) { return cat({in[0], in[1], in[0]}, dim); },
                      {transposed_leaf(4, 3, 1), random_leaf(b_shape, 2)});
  }
  // Only the second input differentiable; a constant piece in between.
  const Tensor constant = ones({3, 2}, TensorOptions(kFloat64));
  require_gradcheck([constant](const std::vector<Tensor>& in) { return cat({constant, in[0]}, 1) * 3.0; },
                    {random_leaf({3, 5}, 3)});
}

TEST_CASE("gradcheck stack") {
  for (int64_t dim : {0, 1, 2, -1}) {
    INFO("dim " << dim);
    require_gradcheck([dim](const std::vector<Tensor>& in) { return stack({in[0], in[1]}, dim); },
                      {random_leaf({2, 3}, 4), transposed_leaf(3, 2, 5)});
  }
}

TEST_CASE("gradcheck split, split_with_sizes and chunk") {
  // Pieces recombined out of order and through different ops, so each piece's gradient matters.
  require_gradcheck(
      [](const std::vector<Tensor>& in) {
        const std::vector<Tensor> p = split(in[0], 2, 1);  // widths 2, 2, 1
        return cat({p[2] * 2.0, p[0] * p[0], p[1]}, 1);
      },
      {transposed_leaf(5, 3, 6)});
  require_gradcheck(
      [](const std::vector<Tensor>& in) {
        const std::vector<Tensor> p = split_with_sizes(in[0], {1, 0, 3}, 0);
        return cat({p[2], p[1], p[0].exp()}, 0);
      },
      {random_leaf({4, 2}, 7)});
  require_gradcheck(
      [](const std::vector<Tensor>& in) {
        const std::vector<Tensor> p = chunk(in[0], 3, -1);  // widths 3, 3, 1
        return cat({p[1] * p[0], p[2].tanh()}, -1);
      },
      {random_leaf({2, 7}, 8)});
}

TEST_CASE("gradcheck gather") {
  const Tensor x = random_leaf({3, 4, 2}, 9);
  // Repeated positions along each dim: the gradient must sum them.
  const Tensor index0 = int_tensor({0, 2, 2, 1, 0, 0, 2, 2, 1, 1, 0, 2}, {3, 2, 2});
  const Tensor index1 = int_tensor({3, 3, 0, 1, 1, 1, 2, 0, 3, 0, 0, 0, 1, 2, 2, 3, 3, 3}, {3, 3, 2});
  const Tensor index2 = int_tensor({1, 1, 0, 0, 1, 0, 1, 1, 1, 0, 0, 0}, {2, 2, 3});
  require_gradcheck([index0](const std::vector<Tensor>& in) { return gather(in[0], 0, index0); }, {x});
  require_gradcheck([index1](const std::vector<Tensor>& in) { return gather(in[0], 1, index1); }, {x});
  require_gradcheck([index2](const std::vector<Tensor>& in) { return gather(in[0], -1, index2); }, {x});
  const Tensor index_t = int_tensor({0, 3, 3, 1, 2, 2}, {3, 2});
  require_gradcheck([index_t](const std::vector<Tensor>& in) { return gather(in[0], 1, index_t); },
                    {transposed_leaf(4, 3, 10)});
}

TEST_CASE("gradcheck scatter_add") {
  // src larger than index along both dims: the uncovered src elements get zero gradient.
  const Tensor index = int_tensor({0, 2, 2, 1, 0, 0, 2, 0}, {2, 4});
  require_gradcheck([index](const std::vector<Tensor>& in) { return scatter_add(in[0], 0, index, in[1]); },
                    {random_leaf({3, 5}, 11), random_leaf({3, 6}, 12)});
  const Tensor index1 = int_tensor({1, 1, 0, 2, 2, 2}, {3, 2});
  require_gradcheck([index1](const std::vector<Tensor>& in) { return scatter_add(in[0], 1, index1, in[1]); },
                    {transposed_leaf(3, 3, 13), transposed_leaf(2, 3, 14)});
  // Gradient to src only.
  const Tensor self = zeros({2, 3}, TensorOptions(kFloat64));
  const Tensor index_top = index1.narrow(0, 0, 2);
  require_gradcheck([self, index_top](const std::vector<Tensor>& in) { return scatter_add(self, -1, index_top, in[0]); },
                    {random_leaf({2, 2}, 15)});
}

TEST_CASE("gradcheck index_select and index_add") {
  const Tensor rows = int_tensor({2, 0, 2, 2, 1});
  require_gradcheck([rows](const std::vector<Tensor>& in) { return index_select(in[0], 0, rows); },
                    {random_leaf({3, 4}, 16)});
  require_gradcheck([rows](const std::vector<Tensor>& in) { return index_select(in[0], -1, rows); },
                    {transposed_leaf(3, 2, 17)});
  require_gradcheck([rows](const std::vector<Tensor>& in) { return index_select(in[0], 1, rows); },
                    {random_leaf({2, 3, 2}, 18)});
  require_gradcheck([rows](const std::vector<Tensor>& in) { return index_add(in[0], 1, rows, in[1]); },
                    {random_leaf({2, 3}, 19), transposed_leaf(5, 2, 20)});
  require_gradcheck([rows](const std::vector<Tensor>& in) { return index_add(in[0], 0, rows, in[1]); },
                    {random_leaf({3, 2, 2}, 21), random_leaf({5, 2, 2}, 22)});
}

TEST_CASE("gradcheck pad") {
  const std::vector<std::vector<int64_t>> cases = {{1, 2}, {0, 1, 2, 0}, {-1, 1}, {2, -1, -1, 1}, {1, 1, 1, 1, 1, 1}};
  for (const auto& pads : cases) {
    INFO("pads of length " << pads.size() << " starting " << pads[0] << ", " << pads[1]);
    require_gradcheck([pads](const std::vector<Tensor>& in) { return pad(in[0], pads, "constant", 0.25); },
                      {random_leaf({2, 3, 3}, 23)});
  }
  require_gradcheck([](const std::vector<Tensor>& in) { return pad(in[0], {1, -1, 2, 0}); },
                    {transposed_leaf(3, 4, 24)});
}

TEST_CASE("gradcheck embedding") {
  const Tensor indices = int_tensor({3, 0, 3, 1, 3, 4}, {2, 3});
  require_gradcheck([indices](const std::vector<Tensor>& in) { return embedding(indices, in[0]); },
                    {random_leaf({5, 3}, 25)});
  // padding_idx deliberately zeroes a real derivative, so it is checked by value in test_indexing.cpp;
  // here a padding row that is never looked up must leave every other gradient intact.
  require_gradcheck([indices](const std::vector<Tensor>& in) { return embedding(indices, in[0], 2); },
                    {random_leaf({5, 2}, 26)});
  require_gradcheck([indices](const std::vector<Tensor>& in) { return embedding(indices, in[0]); },
                    {transposed_leaf(4, 5, 27)});
}
