// Float64 gradchecks for matmul / mm / bmm / linear: every rank combination, broadcast batch
// dims (whose gradients must be summed back), and non-contiguous leaves (transposed, windowed,
// stepped), since the backward hands transposed views of saved operands back to the GEMM.
#include "test_util.h"

#include <functional>

using namespace luna;
using luna::testing::random_leaf;
using luna::testing::require_gradcheck;

namespace {

using Fn = std::function<Tensor(const std::vector<Tensor>&)>;

// A float64 leaf that is a transposed view: stored [cols, rows], seen as [rows, cols].
Tensor transposed_leaf(int64_t rows, int64_t cols, uint64_t seed) {
  Tensor t = random_leaf({cols, rows}, seed).detach().t();
  t.requires_grad_(true);
  return t;
}

// A float64 leaf [rows, cols] whose rows are `pad` elements apart beyond cols (ld > cols).
Tensor windowed_leaf(int64_t rows, int64_t cols, int64_t pad, uint64_t seed) {
  Tensor t = random_leaf({rows, cols + pad}, seed).detach().narrow(1, 1, cols);
  t.requires_grad_(true);
  return t;
}

// A float64 leaf [rows, cols] with column stride 2 (the op copies it before the GEMM).
Tensor stepped_leaf(int64_t rows, int64_t cols, uint64_t seed) {
  Tensor t = random_leaf({rows, 2 * cols}, seed).detach().slice(1, 0, 2 * cols, 2);
  t.requires_grad_(true);
  return t;
}

const Fn kMatmul = [](const std::vector<Tensor>& in) { return matmul(in[0], in[1]); };

}  // namespace

TEST_CASE("gradcheck mm over contiguous and strided operands", "[gradcheck][linalg]") {
  const Fn fn = [](const std::vector<Tensor>& in) { return mm(in[0], in[1]); };
  require_gradcheck(fn, {random_leaf({3, 4}, 1), random_leaf({4, 5}, 2)});
  require_gradcheck(fn, {transposed_leaf(3, 4, 3), random_leaf({4, 5}, 4)});
  require_gradcheck(fn, {random_leaf({3, 4}, 5), transposed_leaf(4, 5, 6)});
  require_gradcheck(fn, {transposed_leaf(3, 4, 7), transposed_leaf(4, 5, 8)});
  require_gradcheck(fn, {windowed_leaf(3, 4, 3, 9), windowed_leaf(4, 5, 2, 10)});
  require_gradcheck(fn, {stepped_leaf(3, 4, 11), stepped_leaf(4, 5, 12)});
}

TEST_CASE("gradcheck matmul with 1-D operands", "[gradcheck][linalg]") {
  require_gradcheck(kMatmul, {random_leaf({4}, 1), random_leaf({4}, 2)});       // dot
  require_gradcheck(kMatmul, {random_leaf({4}, 3), random_leaf({4, 3}, 4)});    // [4] x [4,3]
  require_gradcheck(kMatmul, {random_leaf({3, 4}, 5), random_leaf({4}, 6)});    // [3,4] x [4]
  require_gradcheck(kMatmul, {random_leaf({4}, 7), random_leaf({2, 4, 3}, 8)});  // [4] x [2,4,3]
  require_gradcheck(kMatmul, {random_leaf({2, 3, 4}, 9), random_leaf({4}, 10)}); // [2,3,4] x [4]
  require_gradcheck(kMatmul, {random_leaf({4}, 11), transposed_leaf(4, 3, 12)});
}

TEST_CASE("gradcheck batched matmul with broadcast batch dims", "[gradcheck][linalg]") {
  // Both operands broadcast: gradients sum over the dims each was expanded along.
  require_gradcheck(kMatmul, {random_leaf({2, 1, 3, 4}, 1), random_leaf({5, 4, 2}, 2)});
  require_gradcheck(kMatmul, {random_leaf({3, 4}, 3), random_leaf({2, 4, 5}, 4)});
  require_gradcheck(kMatmul, {random_leaf({1, 3, 4}, 5), random_leaf({2, 4, 5}, 6)});
  // Several batch dims broadcast both ways: the GEMM loops over the leading ones.
  require_gradcheck(kMatmul, {random_leaf({2, 1, 3, 2, 3}, 13), random_leaf({3, 1, 3, 2}, 14)});
  // Shared weight (the one-GEMM path), with plain and transposed weight.
  require_gradcheck(kMatmul, {random_leaf({2, 3, 4}, 7), random_leaf({4, 5}, 8)});
  require_gradcheck(kMatmul, {random_leaf({2, 3, 4}, 9), transposed_leaf(4, 5, 10)});
  // Non-contiguous batched leaves.
  Tensor a = random_leaf({2, 4, 3}, 11).detach().transpose(1, 2);  // [2,3,4], column-major batches
  a.requires_grad_(true);
  Tensor b = random_leaf({4, 2, 5}, 12).detach().transpose(0, 1);  // [2,4,5], batch stride 5
  b.requires_grad_(true);
  require_gradcheck(kMatmul, {a, b});
}

TEST_CASE("gradcheck bmm", "[gradcheck][linalg]") {
  const Fn fn = [](const std::vector<Tensor>& in) { return bmm(in[0], in[1]); };
  require_gradcheck(fn, {random_leaf({2, 3, 4}, 1), random_leaf({2, 4, 5}, 2)});
  Tensor bt = random_leaf({2, 5, 4}, 3).detach().transpose(1, 2);  // [2,4,5]
  bt.requires_grad_(true);
  require_gradcheck(fn, {random_leaf({2, 3, 4}, 4), bt});
}

TEST_CASE("gradcheck linear with and without bias, 1-D to 3-D input", "[gradcheck][linalg]") {
  const Fn with_bias = [](const std::vector<Tensor>& in) { return linear(in[0], in[1], in[2]); };
  const Fn without_bias = [](const std::vector<Tensor>& in) { return linear(in[0], in[1]); };
  require_gradcheck(with_bias, {random_leaf({3, 4}, 1), random_leaf({5, 4}, 2), random_leaf({5}, 3)});
  require_gradcheck(without_bias, {random_leaf({3, 4}, 4), random_leaf({5, 4}, 5)});
  require_gradcheck(with_bias, {random_leaf({2, 3, 4}, 6), random_leaf({5, 4}, 7), random_leaf({5}, 8)});
  require_gradcheck(with_bias, {random_leaf({4}, 9), random_leaf({5, 4}, 10), random_leaf({5}, 11)});
  // Non-contiguous input and weight.
  Tensor x = random_leaf({3, 2, 4}, 12).detach().transpose(0, 1);  // [2,3,4]
  x.requires_grad_(true);
  require_gradcheck(with_bias, {x, transposed_leaf(5, 4, 13), random_leaf({5}, 14)});
  require_gradcheck(without_bias, {transposed_leaf(3, 4, 15), windowed_leaf(5, 4, 2, 16)});
}

TEST_CASE("gradcheck a composition: linear then matmul with a shared operand", "[gradcheck][linalg]") {
  // x is used twice; both paths' gradients must accumulate.
  const Fn fn = [](const std::vector<Tensor>& in) { return matmul(linear(in[0], in[1]), in[0].t()); };
  require_gradcheck(fn, {random_leaf({3, 4}, 1), random_leaf({4, 4}, 2)});
}
