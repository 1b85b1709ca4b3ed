// Forward tests for the indexing and joining ops (ops/indexing.cpp, backends/cpu/index.cpp): every
// op against a plain loop over row-major coordinates, negative dims, strided inputs, empty pieces,
// and bad input (out-of-range or wrongly typed indices, mismatched shapes) rejected with messages
// that name the values. Gradients are checked numerically in gradcheck_indexing.cpp.
#include "test_util.h"

#include <functional>

#include <luna/autograd/node.h>

using namespace luna;
using Catch::Contains;
using luna::testing::require_close;
using luna::testing::values;

namespace {

// Uniform values in [-1, 1) as `dtype`, reproducible from seed; no autograd.
Tensor random_tensor(const Dims& shape, uint64_t seed, DType dtype = kFloat32) {
  NoGradGuard no_grad;
  Generator gen(seed);
  return (rand(shape, TensorOptions(kFloat64), &gen) * 2.0 - 1.0).to(dtype);
}

// int64 indices uniform in [0, high).
Tensor random_index(const Dims& shape, uint64_t seed, int64_t high) {
  Generator gen(seed);
  return randint(0, high, shape, TensorOptions(kInt64), &gen);
}

Tensor int_tensor(const std::vector<int64_t>& v, const Dims& shape = {}) { return tensor(v, shape); }

// Row-major coordinates of element i of a tensor of `shape`, and back.
std::vector<int64_t> coords_of(int64_t i, const Dims& shape) {
  std::vector<int64_t> c(size_t(shape.size()));
  for (int d = shape.size() - 1; d >= 0; --d) {
    c[size_t(d)] = i % shape[d];
    i /= shape[d];
  }
  return c;
}
int64_t flat_of(const std::vector<int64_t>& c, const Dims& shape) {
  int64_t i = 0;
  for (int d = 0; d < shape.size(); ++d) i = i * shape[d] + c[size_t(d)];
  return i;
}

std::vector<double> reference_gather(const Tensor& x, int d, const Tensor& index) {
  const std::vector<double> xv = values(x), iv = values(index);
  std::vector<double> out(iv.size());
  for (int64_t i = 0; i < index.numel(); ++i) {
    std::vector<int64_t> c = coords_of(i, index.sizes());
    c[size_t(d)] = int64_t(iv[size_t(i)]);
    out[size_t(i)] = xv[size_t(flat_of(c, x.sizes()))];
  }
  return out;
}

std::vector<double> reference_scatter_add(const Tensor& self, int d, const Tensor& index, const Tensor& src) {
  std::vector<double> out = values(self);
  const std::vector<double> iv = values(index), sv = values(src);
  for (int64_t i = 0; i < index.numel(); ++i) {
    std::vector<int64_t> c = coords_of(i, index.sizes());
    const double v = sv[size_t(flat_of(c, src.sizes()))];
    c[size_t(d)] = int64_t(iv[size_t(i)]);
    out[size_t(flat_of(c, self.sizes()))] += v;
  }
  return out;
}

std::vector<double> reference_index_select(const Tensor& x, int d, const Tensor& index) {
  Dims out_shape = x.sizes();
  out_shape[d] = index.numel();
  const std::vector<double> xv = values(x), iv = values(index);
  std::vector<double> out(size_t(out_shape.product()));
  for (int64_t i = 0; i < out_shape.product(); ++i) {
    std::vector<int64_t> c = coords_of(i, out_shape);
    c[size_t(d)] = int64_t(iv[size_t(c[size_t(d)])]);
    out[size_t(i)] = xv[size_t(flat_of(c, x.sizes()))];
  }
  return out;
}

std::vector<double> reference_index_add(const Tensor& self, int d, const Tensor& index, const Tensor& src) {
  std::vector<double> out = values(self);
  const std::vector<double> iv = values(index), sv = values(src);
  for (int64_t i = 0; i < src.numel(); ++i) {
    std::vector<int64_t> c = coords_of(i, src.sizes());
    c[size_t(d)] = int64_t(iv[size_t(c[size_t(d)])]);
    out[size_t(flat_of(c, self.sizes()))] += sv[size_t(i)];
  }
  return out;
}

// cat along d: walk the output and find which input each position falls in.
std::vector<double> reference_cat(const std::vector<Tensor>& parts, int d) {
  Dims out_shape = parts[0].sizes();
  out_shape[d] = 0;
  for (const Tensor& p : parts) out_shape[d] += p.sizes()[d];
  std::vector<double> out(size_t(out_shape.product()));
  for (int64_t i = 0; i < out_shape.product(); ++i) {
    std::vector<int64_t> c = coords_of(i, out_shape);
    for (const Tensor& p : parts) {
      if (c[size_t(d)] < p.sizes()[d]) {
        out[size_t(i)] = values(p)[size_t(flat_of(c, p.sizes()))];
        break;
      }
      c[size_t(d)] -= p.sizes()[d];
    }
  }
  return out;
}

// Constant pad by (left, right) per dim, listed from the last dim; negative amounts crop.
std::vector<double> reference_pad(const Tensor& x, const std::vector<int64_t>& pads, double value, Dims& out_shape) {
  out_shape = x.sizes();
  std::vector<int64_t> left(size_t(x.dim()), 0);
  for (size_t i = 0; i < pads.size() / 2; ++i) {
    const int d = x.dim() - 1 - int(i);
    left[size_t(d)] = pads[2 * i];
    out_shape[d] += pads[2 * i] + pads[2 * i + 1];
  }
  const std::vector<double> xv = values(x);
  std::vector<double> out(size_t(out_shape.product()), value);
  for (int64_t i = 0; i < out_shape.product(); ++i) {
    std::vector<int64_t> c = coords_of(i, out_shape);
    bool inside = true;
    for (int d = 0; d < x.dim(); ++d) {
      c[size_t(d)] -= left[size_t(d)];
      inside = inside && c[size_t(d)] >= 0 && c[size_t(d)] < x.sizes()[d];
    }
    if (inside) out[size_t(i)] = xv[size_t(flat_of(c, x.sizes()))];
  }
  return out;
}

}  // namespace

// ---------------------------------------------------------------- cat / stack

TEST_CASE("cat joins along any dim, negative dims included") {
  const Tensor a = random_tensor({2, 3, 4}, 1), b = random_tensor({2, 1, 4}, 2), c = random_tensor({2, 5, 4}, 3);
  const Tensor out = cat({a, b, c}, 1);
  REQUIRE(out.sizes() == Dims{2, 9, 4});
  require_close(out, reference_cat({a, b, c}, 1), 0, 0);
  const Tensor last = cat({a, random_tensor({2, 3, 2}, 4)}, -1);
  REQUIRE(last.sizes() == Dims{2, 3, 6});
  require_close(last, reference_cat({a, random_tensor({2, 3, 2}, 4)}, 2), 0, 0);
  require_close(cat({a, a}, 0), reference_cat({a, a}, 0), 0, 0);
}

TEST_CASE("cat reads strided inputs and keeps empty pieces") {
  const Tensor base = random_tensor({4, 3}, 5);
  const Tensor transposed = base.t();  // (3, 4), not contiguous
  REQUIRE_FALSE(transposed.is_contiguous());
  const Tensor other = random_tensor({3, 2}, 6);
  const Tensor empty_piece = zeros({3, 0});
  const Tensor out = cat({transposed, empty_piece, other}, 1);
  REQUIRE(out.sizes() == Dims{3, 6});
  require_close(out, reference_cat({transposed.contiguous(), other}, 1), 0, 0);
  // A legacy 1-D empty tensor is skipped whatever the other shapes, as in PyTorch.
  require_close(cat({zeros({0}), other}, 0), values(other), 0, 0);
}

TEST_CASE("cat promotes dtypes like PyTorch") {
  const Tensor ints = int_tensor({1, 2, 3});
  const Tensor floats = tensor({0.5f, 1.5f});
  const Tensor mixed = cat({ints, floats});
  REQUIRE(mixed.dtype() == kFloat32);
  require_close(mixed, {1, 2, 3, 0.5, 1.5}, 0, 0);
  const Tensor with_bool = cat({tensor(std::vector<bool>{true, false}), ints});
  REQUIRE(with_bool.dtype() == kInt64);
  require_close(with_bool, {1, 0, 1, 2, 3}, 0, 0);
  const Tensor doubles = cat({floats, tensor(std::vector<double>{2.25})});
  REQUIRE(doubles.dtype() == kFloat64);
  require_close(doubles, {0.5, 1.5, 2.25}, 0, 0);
}

TEST_CASE("cat rejects mismatched shapes naming the tensor, dim and sizes") {
  const Tensor a = zeros({2, 3}), b = zeros({4, 3}), c = zeros({2, 5});
  REQUIRE_THROWS_WITH(cat({a, b}, 1), Contains("tensor 1") && Contains("size 4") && Contains("dim 0") &&
                                          Contains("size 2"));
  REQUIRE_THROWS_WITH(cat({a, c}, 0), Contains("tensor 1") && Contains("size 5") && Contains("dim 1"));
  REQUIRE_THROWS_WITH(cat({a, zeros({2, 3, 1})}, 0), Contains("tensor 1 has 3 dims"));
  REQUIRE_THROWS_WITH(cat({a, a}, 2), Contains("dim 2 is out of range"));
  REQUIRE_THROWS_WITH(cat({}, 0), Contains("non-empty"));
  REQUIRE_THROWS_WITH(cat({Tensor(), a}, 0), Contains("tensor 0 is undefined"));
  REQUIRE_THROWS_WITH(cat({scalar_tensor(1.0)}, 0), Contains("zero-dimensional"));
}

TEST_CASE("stack inserts a new dim at any position") {
  const Tensor a = random_tensor({2, 3}, 7), b = random_tensor({2, 3}, 8);
  const std::vector<double> va = values(a), vb = values(b);
  for (int64_t dim : {0, 1, 2, -1, -3}) {
    const Tensor out = stack({a, b}, dim);
    const int d = dim < 0 ? int(dim + 3) : int(dim);
    Dims want_shape{2, 3};
    want_shape.insert(d, 2);
    REQUIRE(out.sizes() == want_shape);
    std::vector<double> want(12);
    for (int64_t i = 0; i < 12; ++i) {
      std::vector<int64_t> c = coords_of(i, want_shape);
      const int64_t which = c[size_t(d)];
      c.erase(c.begin() + d);
      want[size_t(i)] = (which == 0 ? va : vb)[size_t(flat_of(c, {2, 3}))];
    }
    INFO("dim " << dim);
    require_close(out, want, 0, 0);
  }
  REQUIRE_THROWS_WITH(stack({a, zeros({3, 2})}), Contains("[2,3] at entry 0") && Contains("[3,2] at entry 1"));
}

// ---------------------------------------------------------------- split / chunk

TEST_CASE("split makes views with a smaller last piece") {
  const Tensor x = random_tensor({7, 2}, 9);
  const std::vector<Tensor> pieces = split(x, 3);
  REQUIRE(pieces.size() == 3);
  const std::vector<int64_t> want_sizes{3, 3, 1};
  const std::vector<double> xv = values(x);
  for (size_t i = 0; i < pieces.size(); ++i) {
    REQUIRE(pieces[i].sizes() == Dims{want_sizes[i], 2});
    REQUIRE(pieces[i].impl()->storage() == x.impl()->storage());  // a view, not a copy
    const auto begin = xv.begin() + int64_t(i) * 3 * 2;
    require_close(pieces[i], std::vector<double>(begin, begin + want_sizes[i] * 2), 0, 0);
  }
  const std::vector<Tensor> columns = split(x, 1, -1);
  REQUIRE(columns.size() == 2);
  for (int64_t r = 0; r < 7; ++r) REQUIRE(values(columns[1])[size_t(r)] == xv[size_t(r * 2 + 1)]);
  REQUIRE(split(x, 10).size() == 1);
  REQUIRE(split(zeros({0, 2}), 3).size() == 1);
  REQUIRE_THROWS_WITH(split(x, 0), Contains("split_size must be positive, got 0"));
}

TEST_CASE("split_with_sizes allows empty pieces and checks the sum") {
  const Tensor x = random_tensor({2, 7}, 10);
  const std::vector<Tensor> pieces = split_with_sizes(x, {2, 0, 5}, 1);
  REQUIRE(pieces.size() == 3);
  REQUIRE(pieces[0].sizes() == Dims{2, 2});
  REQUIRE(pieces[1].sizes() == Dims{2, 0});
  REQUIRE(pieces[2].sizes() == Dims{2, 5});
  const std::vector<double> xv = values(x);
  require_close(pieces[2], {xv[2], xv[3], xv[4], xv[5], xv[6], xv[9], xv[10], xv[11], xv[12], xv[13]}, 0, 0);
  REQUIRE_THROWS_WITH(split_with_sizes(x, {2, 3}, 1), Contains("sum to 5") && Contains("size 7"));
  REQUIRE_THROWS_WITH(split_with_sizes(x, {8, -1}, 1), Contains("-1"));
}

TEST_CASE("chunk follows PyTorch's piece counts") {
  const Tensor x = random_tensor({7}, 11);
  std::vector<Tensor> pieces = chunk(x, 3);
  REQUIRE(pieces.size() == 3);
  REQUIRE(pieces[0].numel() == 3);
  REQUIRE(pieces[1].numel() == 3);
  REQUIRE(pieces[2].numel() == 1);
  require_close(pieces[2], {values(x)[6]}, 0, 0);
  // 6 into 4 chunks: size-2 pieces, so only 3 of them (as torch.chunk does).
  REQUIRE(chunk(zeros({6}), 4).size() == 3);
  REQUIRE(chunk(zeros({2, 6}), 6, -1).size() == 6);
  // An empty dim still yields `chunks` empty pieces.
  pieces = chunk(zeros({0, 3}), 3);
  REQUIRE(pieces.size() == 3);
  for (const Tensor& p : pieces) REQUIRE(p.sizes() == Dims{0, 3});
  REQUIRE_THROWS_WITH(chunk(x, 0), Contains("got 0"));
}

// ---------------------------------------------------------------- gather / scatter_add

TEST_CASE("gather matches the reference along every dim") {
  const Tensor x = random_tensor({3, 4, 5}, 12, kFloat64);
  for (int64_t dim : {0, 1, 2, -1}) {
    const int d = dim < 0 ? int(dim + 3) : int(dim);
    Dims index_shape{2, 3, 4};  // smaller than x outside d, larger along d
    index_shape[d] = 6;
    const Tensor index = random_index(index_shape, 13 + uint64_t(d), x.sizes()[d]);
    const Tensor out = gather(x, dim, index);
    REQUIRE(out.sizes() == index_shape);
    INFO("dim " << dim);
    require_close(out, reference_gather(x, d, index), 0, 0);
  }
}

TEST_CASE("gather reads strided inputs and indices, and non-float dtypes") {
  const Tensor x = random_tensor({5, 4}, 14).t();         // (4, 5), strided
  const Tensor index = random_index({3, 4}, 15, 4).t();   // (4, 3), strided
  require_close(gather(x, 1, index), reference_gather(x, 1, index), 0, 0);
  const Tensor ints = random_index({4, 5}, 16, 1000);
  const Tensor got = gather(ints, 1, index);
  REQUIRE(got.dtype() == kInt64);
  require_close(got, reference_gather(ints, 1, index), 0, 0);
  const Tensor flags = tensor(std::vector<bool>{true, false, false, true}, {2, 2});
  const Tensor picked = gather(flags, 1, int_tensor({1, 1, 0, 1}, {2, 2}));
  REQUIRE(picked.dtype() == kBool);
  require_close(picked, {0, 0, 0, 1}, 0, 0);
}

TEST_CASE("gather rejects bad indices with their values") {
  const Tensor x = zeros({3, 4});
  REQUIRE_THROWS_WITH(gather(x, 1, int_tensor({0, 7}, {1, 2})),
                      Contains("index 7 is out of bounds for dim 1 with size 4"));
  REQUIRE_THROWS_WITH(gather(x, 0, int_tensor({-1, 0}, {1, 2})), Contains("index -1") && Contains("size 3"));
  REQUIRE_THROWS_WITH(gather(x, 1, tensor(std::vector<int32_t>{0, 1}, {1, 2})), Contains("int64") &&
                                                                                   Contains("int32"));
  REQUIRE_THROWS_WITH(gather(x, 1, tensor({0.0f, 1.0f}, {1, 2})), Contains("int64") && Contains("float32"));
  REQUIRE_THROWS_WITH(gather(x, 1, int_tensor({0, 1})), Contains("index has 1 dims") && Contains("input has 2"));
  REQUIRE_THROWS_WITH(gather(x, 1, int_tensor({0, 0, 0, 0}, {4, 1})),
                      Contains("index size 4 at dim 0") && Contains("input size 3"));
  REQUIRE_THROWS_WITH(gather(x, 2, int_tensor({0}, {1, 1})), Contains("dim 2 is out of range"));
}

TEST_CASE("scatter_add accumulates duplicates out of place") {
  const Tensor self = random_tensor({4, 5}, 17, kFloat64);
  const std::vector<double> self_before = values(self);
  for (int64_t dim : {0, 1, -1}) {
    const int d = dim < 0 ? int(dim + 2) : int(dim);
    Dims index_shape{3, 4};
    index_shape[d] = 7;  // more entries than self has along d: collisions guaranteed
    const Tensor index = random_index(index_shape, 18 + uint64_t(d), self.sizes()[d]);
    const Tensor src = random_tensor({index_shape[0] + 1, index_shape[1] + 2}, 19, kFloat64);  // larger than index
    const Tensor out = scatter_add(self, dim, index, src);
    REQUIRE(out.sizes() == self.sizes());
    INFO("dim " << dim);
    require_close(out, reference_scatter_add(self, d, index, src), 1e-12, 1e-12);
  }
  require_close(self, self_before, 0, 0);  // self untouched
}

TEST_CASE("scatter_add on integers and from strided operands") {
  const Tensor self = zeros({3, 4}, TensorOptions(kInt64));
  const Tensor index = int_tensor({0, 0, 2, 2, 1, 0}, {2, 3}).t();  // (3, 2), strided
  const Tensor src = int_tensor({1, 2, 3, 4, 5, 6}, {3, 2});
  const Tensor out = scatter_add(self, 1, index, src);
  REQUIRE(out.dtype() == kInt64);
  require_close(out, reference_scatter_add(self, 1, index, src), 0, 0);
}

TEST_CASE("scatter_add splits fibres across threads without losing updates") {
  // 50000 fibres along dim 1 is above the parallel grain; each fibre gets 3 colliding adds.
  const Tensor self = zeros({2, 50000}, TensorOptions(kFloat64));
  const Tensor index = random_index({3, 50000}, 20, 2);
  const Tensor src = random_tensor({3, 50000}, 21, kFloat64);
  require_close(scatter_add(self, 0, index, src), reference_scatter_add(self, 0, index, src), 1e-12, 1e-12);
  require_close(scatter_add(self.t(), 1, index.t(), src.t()),
                reference_scatter_add(self.t().contiguous(), 1, index.t().contiguous(), src.t().contiguous()), 1e-12,
                1e-12);
}

TEST_CASE("scatter_add rejects bad input") {
  const Tensor self = zeros({3, 4});
  const Tensor src = ones({3, 4});
  REQUIRE_THROWS_WITH(scatter_add(self, 1, int_tensor({0, 4}, {1, 2}), src),
                      Contains("index 4 is out of bounds for dim 1 with size 4"));
  REQUIRE_THROWS_WITH(scatter_add(self, 1, int_tensor({0, 1}, {1, 2}), ones({3, 4}, TensorOptions(kFloat64))),
                      Contains("float32") && Contains("float64"));
  REQUIRE_THROWS_WITH(scatter_add(self, 1, int_tensor({0, 1, 2, 3, 0}, {1, 5}), src),
                      Contains("index size 5 at dim 1") && Contains("src size 4"));
  REQUIRE_THROWS_WITH(scatter_add(self, 0, int_tensor({0, 1}), src), Contains("same number of dims"));
}

// ---------------------------------------------------------------- index_select / index_add

TEST_CASE("index_select picks slices with repeats along any dim") {
  const Tensor x = random_tensor({3, 4, 5}, 22);
  for (int64_t dim : {0, 1, 2, -2}) {
    const int d = dim < 0 ? int(dim + 3) : int(dim);
    const Tensor index = random_index({6}, 23 + uint64_t(d), x.sizes()[d]);
    const Tensor out = index_select(x, dim, index);
    Dims want_shape = x.sizes();
    want_shape[d] = 6;
    REQUIRE(out.sizes() == want_shape);
    INFO("dim " << dim);
    require_close(out, reference_index_select(x, d, index), 0, 0);
  }
  // Strided input and index, int32 index (accepted like PyTorch), empty index.
  const Tensor xt = x.transpose(0, 2);  // (5, 4, 3)
  const Tensor strided_index = int_tensor({4, 9, 0, 9, 2, 9}).slice(0, 0, 6, 2);  // {4, 0, 2}
  require_close(index_select(xt, 0, strided_index), reference_index_select(xt.contiguous(), 0, strided_index), 0, 0);
  require_close(index_select(x, 1, tensor(std::vector<int32_t>{3, 0})),
                reference_index_select(x, 1, int_tensor({3, 0})), 0, 0);
  REQUIRE(index_select(x, 1, int_tensor({}, {0})).sizes() == Dims{3, 0, 5});
}

TEST_CASE("gather and index_select accept 0-dim tensors like PyTorch") {
  const Tensor x = scalar_tensor(2.5);
  const Tensor zero_index = scalar_tensor(int64_t(0), TensorOptions(kInt64));
  REQUIRE(gather(x, 0, zero_index).dim() == 0);
  require_close(gather(x, 0, zero_index), {2.5}, 0, 0);
  require_close(index_select(x, 0, int_tensor({0})), {2.5}, 0, 0);
  REQUIRE_THROWS_WITH(index_select(x, 0, int_tensor({1})), Contains("index 1 is out of bounds"));
}

TEST_CASE("index_select on integer and bool tensors") {
  const Tensor ints = int_tensor({10, 11, 12, 13, 14, 15}, {3, 2});
  require_close(index_select(ints, 0, int_tensor({2, 2, 0})), {14, 15, 14, 15, 10, 11}, 0, 0);
  const Tensor flags = tensor(std::vector<bool>{true, false, false});
  const Tensor picked = index_select(flags, 0, int_tensor({1, 0}));
  REQUIRE(picked.dtype() == kBool);
  require_close(picked, {0, 1}, 0, 0);
}

TEST_CASE("index_select copies whole rows in parallel for a large table") {
  const Tensor table = random_tensor({100, 512}, 24);
  const Tensor index = random_index({300}, 25, 100);
  require_close(index_select(table, 0, index), reference_index_select(table, 0, index), 0, 0);
}

TEST_CASE("index_select rejects bad indices") {
  const Tensor x = zeros({3, 4});
  REQUIRE_THROWS_WITH(index_select(x, 0, int_tensor({0, 3})),
                      Contains("index 3 is out of bounds for dim 0 with size 3"));
  REQUIRE_THROWS_WITH(index_select(x, 1, int_tensor({-2})), Contains("index -2") && Contains("size 4"));
  REQUIRE_THROWS_WITH(index_select(x, 0, tensor({0.0f})), Contains("int64 or int32") && Contains("float32"));
  REQUIRE_THROWS_WITH(index_select(x, 0, int_tensor({0, 1}, {1, 2})), Contains("1-D") && Contains("[1,2]"));
}

TEST_CASE("index_add accumulates repeated slices") {
  const Tensor self = random_tensor({4, 3, 5}, 26, kFloat64);
  for (int64_t dim : {0, 1, 2, -1}) {
    const int d = dim < 0 ? int(dim + 3) : int(dim);
    Dims src_shape = self.sizes();
    src_shape[d] = 9;
    const Tensor index = random_index({9}, 27 + uint64_t(d), self.sizes()[d]);
    const Tensor src = random_tensor(src_shape, 28, kFloat64);
    INFO("dim " << dim);
    require_close(index_add(self, dim, index, src), reference_index_add(self, d, index, src), 1e-12, 1e-12);
  }
  // A wide row count takes the parallel path; a strided src the general one.
  const Tensor wide = zeros({3, 40000}, TensorOptions(kFloat64));
  const Tensor rows = random_index({5}, 29, 3);
  const Tensor wide_src = random_tensor({5, 40000}, 30, kFloat64);
  require_close(index_add(wide, 0, rows, wide_src), reference_index_add(wide, 0, rows, wide_src), 1e-12, 1e-12);
  const Tensor strided_src = random_tensor({3, 4}, 31, kFloat64).t();  // (4, 3)
  const Tensor small = zeros({2, 3}, TensorOptions(kFloat64));
  require_close(index_add(small, 0, int_tensor({1, 0, 1, 1}), strided_src),
                reference_index_add(small, 0, int_tensor({1, 0, 1, 1}), strided_src.contiguous()), 1e-12, 1e-12);
}

TEST_CASE("index_add rejects bad input") {
  const Tensor self = zeros({3, 4});
  REQUIRE_THROWS_WITH(index_add(self, 0, int_tensor({0, 5}), ones({2, 4})),
                      Contains("index 5 is out of bounds for dim 0 with size 3"));
  REQUIRE_THROWS_WITH(index_add(self, 0, int_tensor({0, 1, 2}), ones({2, 4})),
                      Contains("src has size 2") && Contains("index has 3"));
  REQUIRE_THROWS_WITH(index_add(self, 0, int_tensor({0}), ones({1, 5})), Contains("src size 5 at dim 1"));
}

// ---------------------------------------------------------------- one_hot

TEST_CASE("one_hot infers the class count or takes it") {
  const Tensor labels = int_tensor({2, 0, 3, 2, 1, 0}, {2, 3});
  const Tensor inferred = one_hot(labels);
  REQUIRE(inferred.dtype() == kInt64);
  REQUIRE(inferred.sizes() == Dims{2, 3, 4});
  std::vector<double> want(24, 0.0);
  const std::vector<double> lv = values(labels);
  for (size_t i = 0; i < 6; ++i) want[i * 4 + size_t(lv[i])] = 1;
  require_close(inferred, want, 0, 0);

  const Tensor wide = one_hot(labels, 6);
  REQUIRE(wide.sizes() == Dims{2, 3, 6});
  std::vector<double> want_wide(36, 0.0);
  for (size_t i = 0; i < 6; ++i) want_wide[i * 6 + size_t(lv[i])] = 1;
  require_close(wide, want_wide, 0, 0);

  REQUIRE(one_hot(scalar_tensor(int64_t(1), TensorOptions(kInt64)), 3).sizes() == Dims{3});
  require_close(one_hot(scalar_tensor(int64_t(1), TensorOptions(kInt64)), 3), {0, 1, 0}, 0, 0);
  REQUIRE(one_hot(int_tensor({}, {0}), 5).sizes() == Dims{0, 5});
}

TEST_CASE("one_hot rejects values outside the classes") {
  REQUIRE_THROWS_WITH(one_hot(int_tensor({0, 3}), 3), Contains("class value 3") && Contains("num_classes 3"));
  REQUIRE_THROWS_WITH(one_hot(int_tensor({0, -2})), Contains("non-negative, got -2"));
  REQUIRE_THROWS_WITH(one_hot(int_tensor({}, {0})), Contains("empty"));
  REQUIRE_THROWS_WITH(one_hot(tensor(std::vector<int32_t>{1})), Contains("int64") && Contains("int32"));
}

// ---------------------------------------------------------------- pad

TEST_CASE("pad fills with the value, crops with negative amounts") {
  const Tensor x = random_tensor({2, 3, 4}, 32);
  const std::vector<std::vector<int64_t>> cases = {
      {1, 2}, {0, 0, 2, 1}, {1, 1, 1, 1, 1, 1}, {-1, 2}, {-1, -2, 1, 0}, {2, -3, -3, 1}, {-4, 1}};
  for (const auto& pads : cases) {
    Dims want_shape;
    const std::vector<double> want = reference_pad(x, pads, 0.5, want_shape);
    const Tensor out = pad(x, pads, "constant", 0.5);
    INFO("pads of length " << pads.size() << " starting " << pads[0] << ", " << pads[1]);
    REQUIRE(out.sizes() == want_shape);
    require_close(out, want, 0, 0);
  }
  const Tensor strided = x.transpose(0, 2);  // (4, 3, 2)
  Dims want_shape;
  const std::vector<double> want = reference_pad(strided.contiguous(), {1, 0, 0, 2}, 0.0, want_shape);
  require_close(pad(strided, {1, 0, 0, 2}), want, 0, 0);
  const Tensor ints = pad(int_tensor({1, 2}), {1, 1}, "constant", 7);
  REQUIRE(ints.dtype() == kInt64);
  require_close(ints, {7, 1, 2, 7}, 0, 0);
}

TEST_CASE("pad rejects bad paddings") {
  const Tensor x = zeros({2, 3});
  REQUIRE_THROWS_WITH(pad(x, {1}), Contains("padding length 1 must be even"));
  REQUIRE_THROWS_WITH(pad(x, {1, 1, 1, 1, 1, 1}), Contains("3 dims") && Contains("only 2"));
  REQUIRE_THROWS_WITH(pad(x, {-2, -2}), Contains("dim 1 of size 3") && Contains("negative size -1"));
  REQUIRE_THROWS_WITH(pad(x, {1, 1}, "reflect"), Contains("'reflect' is not supported"));
}

// ---------------------------------------------------------------- embedding

TEST_CASE("embedding looks up rows and accumulates their gradient") {
  const Tensor weight = random_tensor({5, 3}, 33, kFloat64).requires_grad_(true);
  const Tensor indices = int_tensor({4, 0, 4, 2, 4, 1}, {2, 3});
  const Tensor out = embedding(indices, weight);
  REQUIRE(out.sizes() == Dims{2, 3, 3});
  const std::vector<double> wv = values(weight), iv = values(indices);
  std::vector<double> want;
  for (double row : iv)
    for (int c = 0; c < 3; ++c) want.push_back(wv[size_t(row) * 3 + size_t(c)]);
  require_close(out, want, 0, 0);

  // d(sum(out * k))/dweight[r] = k times the number of times row r was looked up.
  (out * 2.0).sum().backward();
  const std::vector<double> counts{1, 1, 1, 0, 3};
  std::vector<double> want_grad;
  for (double count : counts)
    for (int c = 0; c < 3; ++c) want_grad.push_back(2.0 * count);
  require_close(weight.grad(), want_grad, 0, 0);
}

TEST_CASE("embedding output can be modified in place") {
  const Tensor weight = random_tensor({3, 2}, 37, kFloat64).requires_grad_(true);
  const Tensor out = embedding(int_tensor({2, 2}), weight);
  out.mul_(scalar_tensor(3.0, TensorOptions(kFloat64)));
  out.sum().backward();
  require_close(weight.grad(), {0, 0, 0, 0, 6, 6}, 0, 0);
}

TEST_CASE("embedding gives the padding row no gradient") {
  const Tensor weight = random_tensor({4, 2}, 34, kFloat64).requires_grad_(true);
  const Tensor indices = int_tensor({0, 3, 3, 1});
  const Tensor out = embedding(indices, weight, /*padding_idx=*/3);
  require_close(out.select(0, 1), values(weight.select(0, 3)), 0, 0);  // still looked up
  out.sum().backward();
  require_close(weight.grad(), {1, 1, 1, 1, 0, 0, 0, 0}, 0, 0);
}

TEST_CASE("embedding rejects bad indices and weights") {
  const Tensor weight = zeros({5, 3});
  REQUIRE_THROWS_WITH(embedding(int_tensor({1, 10}), weight),
                      Contains("embedding") && Contains("index 10") && Contains("size 5"));
  REQUIRE_THROWS_WITH(embedding(int_tensor({-1}), weight), Contains("index -1"));
  REQUIRE_THROWS_WITH(embedding(tensor({1.0f}), weight), Contains("int64 or int32"));
  REQUIRE_THROWS_WITH(embedding(int_tensor({1}), zeros({5})), Contains("2-D"));
  REQUIRE_THROWS_WITH(embedding(int_tensor({1}), weight, 5), Contains("padding_idx 5"));
}

// ---------------------------------------------------------------- autograd wiring

TEST_CASE("cat routes each piece's gradient back in its own dtype") {
  const Tensor a = random_tensor({2, 2}, 35, kFloat32).requires_grad_(true);
  const Tensor b = random_tensor({2, 3}, 36, kFloat64).requires_grad_(true);
  const Tensor out = cat({a, b}, 1);
  REQUIRE(out.dtype() == kFloat64);
  REQUIRE(out.grad_fn()->name() == "CatBackward");
  const Tensor weights = arange(10, TensorOptions(kFloat64)).reshape({2, 5});
  (out * weights).sum().backward();
  REQUIRE(a.grad().dtype() == kFloat32);
  require_close(a.grad(), {0, 1, 5, 6}, 0, 0);
  require_close(b.grad(), {2, 3, 4, 7, 8, 9}, 0, 0);
}
