// Tests for the zero-copy view ops (ops/views.cpp): shapes, strides and values against index
// arithmetic on the base, storage sharing (writes through a view reach the base), is_contiguous,
// reshape's copy fallback, and the argument errors.
#include "test_util.h"

#include <numeric>

using namespace luna;
using luna::testing::require_close;
using luna::testing::values;

namespace {

// 0, 1, 2, ... as float64 in the given shape: every value names its own row-major position.
Tensor iota(const Dims& shape) { return arange(shape.product()).to(kFloat64).view(shape); }

bool shares_storage(const Tensor& a, const Tensor& b) { return a.impl()->storage() == b.impl()->storage(); }

std::vector<double> range_values(int64_t begin, int64_t end, int64_t step = 1) {
  std::vector<double> r;
  for (int64_t i = begin; i < end; i += step) r.push_back(double(i));
  return r;
}

}  // namespace

TEST_CASE("view and reshape", "[views]") {
  const Tensor x = iota({2, 3, 4});
  SECTION("view keeps the row-major order and shares storage") {
    const Tensor v = x.view({4, 6});
    REQUIRE(v.sizes() == Dims{4, 6});
    REQUIRE(v.strides() == Dims{6, 1});
    REQUIRE(shares_storage(v, x));
    REQUIRE(v.is_contiguous());
    require_close(values(v), range_values(0, 24), 0, 0);
    REQUIRE(x.view({-1}).sizes() == Dims{24});
    REQUIRE(x.view({3, -1}).sizes() == Dims{3, 8});
    REQUIRE(x.view({-1, 2, 2}).sizes() == Dims{6, 2, 2});
    REQUIRE(x.view({1, 24, 1}).sizes() == Dims{1, 24, 1});
    REQUIRE(x.reshape({-1, 12}).sizes() == Dims{2, 12});
    REQUIRE(scalar_tensor(3.0).view({1, 1}).sizes() == Dims{1, 1});
  }
  SECTION("view of a strided tensor works where the layout allows it") {
    const Tensor t = x.transpose(1, 2);  // [2,4,3], strides [12,1,4]
    REQUIRE_FALSE(t.is_contiguous());
    // Splitting and merging within contiguous runs is fine.
    const Tensor split = t.view({2, 2, 2, 3});
    REQUIRE(shares_storage(split, x));
    REQUIRE(split.strides() == Dims{12, 2, 1, 4});
    require_close(values(split), values(t), 0, 0);
    const Tensor stepped = iota({4, 6}).slice(1, 0, 6, 2);  // [4,3] strides [6,2]
    REQUIRE(stepped.view({2, 2, 3}).strides() == Dims{12, 6, 2});
    require_close(values(stepped.view({2, 2, 3})), values(stepped), 0, 0);
  }
  SECTION("view of a non-viewable layout throws and reshape copies") {
    const Tensor t = x.transpose(1, 2);
    REQUIRE_THROWS_AS(t.view({24}), luna::Error);
    REQUIRE_THROWS_WITH(t.view({2, 12}), Catch::Contains("reshape") && Catch::Contains("[2,4,3]"));
    const Tensor r = t.reshape({2, 12});
    REQUIRE_FALSE(shares_storage(r, x));
    REQUIRE(r.is_contiguous());
    require_close(values(r), values(t), 0, 0);
    // reshape of a viewable layout does not copy.
    REQUIRE(shares_storage(x.reshape({6, 4}), x));
    REQUIRE(shares_storage(t.reshape({2, 2, 2, 3}), x));
  }
  SECTION("invalid shapes name the sizes") {
    REQUIRE_THROWS_WITH(x.view({5, 5}), Catch::Contains("[5,5]") && Catch::Contains("24"));
    REQUIRE_THROWS_WITH(x.view({-1, -1}), Catch::Contains("only one dimension can be inferred"));
    REQUIRE_THROWS_WITH(x.reshape({-1, 5}), Catch::Contains("[-1,5]") && Catch::Contains("24"));
    REQUIRE_THROWS_WITH(x.view({-2, -12}), Catch::Contains("-2"));
  }
}

TEST_CASE("permute, transpose and t", "[views]") {
  const Tensor x = iota({2, 3, 4});
  const Tensor p = x.permute({2, 0, 1});
  REQUIRE(p.sizes() == Dims{4, 2, 3});
  REQUIRE(p.strides() == Dims{1, 12, 4});
  REQUIRE(shares_storage(p, x));
  REQUIRE_FALSE(p.is_contiguous());
  std::vector<double> want;
  for (int k = 0; k < 4; ++k)
    for (int i = 0; i < 2; ++i)
      for (int j = 0; j < 3; ++j) want.push_back(i * 12 + j * 4 + k);
  require_close(values(p), want, 0, 0);
  require_close(values(x.permute({-1, -3, -2})), want, 0, 0);
  REQUIRE(x.permute({0, 1, 2}).is_contiguous());

  const Tensor tr = x.transpose(0, 2);
  REQUIRE(tr.sizes() == Dims{4, 3, 2});
  want.clear();
  for (int k = 0; k < 4; ++k)
    for (int j = 0; j < 3; ++j)
      for (int i = 0; i < 2; ++i) want.push_back(i * 12 + j * 4 + k);
  require_close(values(tr), want, 0, 0);
  require_close(values(x.transpose(-1, 0)), want, 0, 0);
  REQUIRE(x.transpose(1, 1).is_contiguous());

  const Tensor m = iota({2, 3});
  REQUIRE(m.t().sizes() == Dims{3, 2});
  require_close(values(m.t()), {0, 3, 1, 4, 2, 5}, 0, 0);
  REQUIRE(m.t().t().is_contiguous());
  REQUIRE(iota({5}).t().sizes() == Dims{5});
  REQUIRE(scalar_tensor(1.0).t().dim() == 0);

  REQUIRE_THROWS_WITH(x.t(), Catch::Contains("<= 2 dims, got 3") && Catch::Contains("transpose"));
  REQUIRE_THROWS_WITH(x.permute({0, 1}), Catch::Contains("[0,1]") && Catch::Contains("3 dims"));
  REQUIRE_THROWS_WITH(x.permute({0, 1, 1}), Catch::Contains("repeats"));
  REQUIRE_THROWS_WITH(x.permute({0, 1, 3}), Catch::Contains("dim 3"));
  REQUIRE_THROWS_WITH(x.transpose(0, 3), Catch::Contains("dim 3") && Catch::Contains("[-3, 2]"));
}

TEST_CASE("narrow, slice and select", "[views]") {
  const Tensor x = iota({4, 10});
  SECTION("narrow") {
    const Tensor n = x.narrow(1, 2, 3);
    REQUIRE(n.sizes() == Dims{4, 3});
    REQUIRE(n.storage_offset() == 2);
    REQUIRE(shares_storage(n, x));
    REQUIRE_FALSE(n.is_contiguous());
    require_close(values(n), {2, 3, 4, 12, 13, 14, 22, 23, 24, 32, 33, 34}, 0, 0);
    require_close(values(x.narrow(0, -2, 2)), range_values(20, 40), 0, 0);
    REQUIRE(x.narrow(0, 1, 2).is_contiguous());
    REQUIRE(x.narrow(1, 10, 0).numel() == 0);
    REQUIRE_THROWS_WITH(x.narrow(1, 8, 3), Catch::Contains("8") && Catch::Contains("3") && Catch::Contains("10"));
    REQUIRE_THROWS_AS(x.narrow(0, 0, -1), luna::Error);
  }
  SECTION("slice with step and negative bounds") {
    const Tensor s = x.slice(1, 1, 8, 3);  // columns 1, 4, 7
    REQUIRE(s.sizes() == Dims{4, 3});
    REQUIRE(s.strides() == Dims{10, 3});
    require_close(values(s.select(0, 0)), {1, 4, 7}, 0, 0);
    require_close(values(x.slice(1, -3, -1).select(0, 1)), {17, 18}, 0, 0);
    require_close(values(x.slice(1, -4, 10, 2).select(0, 2)), {26, 28}, 0, 0);
    // Bounds beyond the size clamp, like Python slicing; an empty range gives size 0.
    require_close(values(x.slice(1, 7, 100).select(0, 0)), {7, 8, 9}, 0, 0);
    require_close(values(x.slice(1, -100, 2).select(0, 3)), {30, 31}, 0, 0);
    REQUIRE(x.slice(1, 6, 3).size(1) == 0);
    REQUIRE(x.slice(0, 0, 4, 3).sizes() == Dims{2, 10});
    require_close(values(x.slice(0, 0, 4, 3).select(1, 0)), {0, 30}, 0, 0);
    REQUIRE(x.slice(-1, 0, 10, 20).size(1) == 1);
    // A slice of a slice composes offsets and strides.
    const Tensor ss = x.slice(1, 1, 10, 2).slice(1, 1, 5, 2);  // columns 3, 7
    require_close(values(ss.select(0, 1)), {13, 17}, 0, 0);
    REQUIRE_THROWS_WITH(x.slice(1, 0, 5, 0), Catch::Contains("step must be positive, got 0"));
    REQUIRE_THROWS_WITH(x.slice(1, 0, 5, -1), Catch::Contains("got -1"));
    REQUIRE_THROWS_WITH(x.slice(2, 0, 1), Catch::Contains("dim 2"));
  }
  SECTION("select with negative index") {
    const Tensor row = x.select(0, -1);
    REQUIRE(row.sizes() == Dims{10});
    require_close(values(row), range_values(30, 40), 0, 0);
    const Tensor col = x.select(1, -3);
    REQUIRE(col.sizes() == Dims{4});
    REQUIRE(col.strides() == Dims{10});
    require_close(values(col), {7, 17, 27, 37}, 0, 0);
    REQUIRE(x.select(0, 2).select(0, 5).dim() == 0);
    REQUIRE(x.select(0, 2).select(0, 5).item<double>() == 25);
    REQUIRE_THROWS_WITH(x.select(0, 4), Catch::Contains("index 4") && Catch::Contains("size 4"));
    REQUIRE_THROWS_WITH(x.select(1, -11), Catch::Contains("index -11") && Catch::Contains("size 10"));
    REQUIRE_THROWS_AS(scalar_tensor(1.0).select(0, 0), luna::Error);
  }
}

TEST_CASE("expand", "[views]") {
  const Tensor x = iota({3, 1});
  const Tensor e = x.expand({2, 3, 4});
  REQUIRE(e.sizes() == Dims{2, 3, 4});
  REQUIRE(e.strides() == Dims{0, 1, 0});
  REQUIRE(shares_storage(e, x));
  REQUIRE_FALSE(e.is_contiguous());
  std::vector<double> want;
  for (int b = 0; b < 2; ++b)
    for (int i = 0; i < 3; ++i)
      for (int j = 0; j < 4; ++j) want.push_back(i);
  require_close(values(e), want, 0, 0);
  REQUIRE(x.expand({-1, 5}).sizes() == Dims{3, 5});
  REQUIRE(x.expand_as(zeros({3, 7})).sizes() == Dims{3, 7});
  REQUIRE(scalar_tensor(2.0).expand({2, 2}).strides() == Dims{0, 0});
  REQUIRE(x.expand({3, 1}).strides() == x.strides());
  REQUIRE_THROWS_WITH(x.expand({4, 4}), Catch::Contains("expanded size 4") && Catch::Contains("existing size 3"));
  REQUIRE_THROWS_WITH(x.expand({5}), Catch::Contains("fewer dims"));
  REQUIRE_THROWS_WITH(x.expand({-1, 3, 1}), Catch::Contains("-1"));
  REQUIRE_THROWS_WITH(x.expand({3, -2}), Catch::Contains("invalid size -2"));
  REQUIRE(x.expand({3, 0}).numel() == 0);
  // An expanded dim cannot be merged by view, but it can be split.
  REQUIRE_THROWS_AS(x.expand({3, 4}).view({12}), luna::Error);
  REQUIRE(x.expand({3, 4}).view({3, 2, 2}).strides() == Dims{1, 0, 0});
  require_close(values(x.expand({3, 4}).reshape({12})), {0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2}, 0, 0);
}

TEST_CASE("squeeze and unsqueeze", "[views]") {
  const Tensor x = iota({1, 3, 1, 2});
  REQUIRE(x.squeeze().sizes() == Dims{3, 2});
  REQUIRE(x.squeeze(0).sizes() == Dims{3, 1, 2});
  REQUIRE(x.squeeze(-2).sizes() == Dims{1, 3, 2});
  REQUIRE(x.squeeze(1).sizes() == x.sizes());  // not size 1: unchanged, like PyTorch
  REQUIRE(shares_storage(x.squeeze(), x));
  require_close(values(x.squeeze()), range_values(0, 6), 0, 0);
  REQUIRE(scalar_tensor(1.0).squeeze().dim() == 0);
  REQUIRE(iota({1, 1}).squeeze().dim() == 0);

  const Tensor m = iota({3, 2});
  REQUIRE(m.unsqueeze(0).sizes() == Dims{1, 3, 2});
  REQUIRE(m.unsqueeze(1).sizes() == Dims{3, 1, 2});
  REQUIRE(m.unsqueeze(2).sizes() == Dims{3, 2, 1});
  REQUIRE(m.unsqueeze(-1).sizes() == Dims{3, 2, 1});
  REQUIRE(m.unsqueeze(-3).sizes() == Dims{1, 3, 2});
  REQUIRE(m.unsqueeze(1).is_contiguous());
  REQUIRE(m.t().unsqueeze(1).sizes() == Dims{2, 1, 3});
  require_close(values(m.t().unsqueeze(1)), values(m.t()), 0, 0);
  REQUIRE(scalar_tensor(1.0).unsqueeze(0).sizes() == Dims{1});
  REQUIRE_THROWS_WITH(m.unsqueeze(3), Catch::Contains("dim 3"));
  REQUIRE_THROWS_WITH(m.squeeze(2), Catch::Contains("dim 2"));
}

TEST_CASE("flatten and unflatten", "[views]") {
  const Tensor x = iota({2, 3, 4, 5});
  REQUIRE(x.flatten().sizes() == Dims{120});
  REQUIRE(x.flatten(1).sizes() == Dims{2, 60});
  REQUIRE(x.flatten(1, 2).sizes() == Dims{2, 12, 5});
  REQUIRE(x.flatten(-2, -1).sizes() == Dims{2, 3, 20});
  REQUIRE(x.flatten(2, 2).sizes() == x.sizes());
  REQUIRE(shares_storage(x.flatten(1, 2), x));
  require_close(values(x.flatten(0, 1)), range_values(0, 120), 0, 0);
  REQUIRE(scalar_tensor(1.0).flatten().sizes() == Dims{1});
  // Flattening a permuted tensor must copy, and keep the permuted order.
  const Tensor p = x.permute({0, 2, 1, 3});
  REQUIRE(p.flatten(1, 2).sizes() == Dims{2, 12, 5});
  require_close(values(p.flatten()), values(p), 0, 0);
  REQUIRE_THROWS_WITH(x.flatten(2, 1), Catch::Contains("start_dim 2") && Catch::Contains("end_dim 1"));

  const Tensor y = iota({2, 12});
  REQUIRE(y.unflatten(1, {3, 4}).sizes() == Dims{2, 3, 4});
  REQUIRE(y.unflatten(-1, {2, -1, 2}).sizes() == Dims{2, 2, 3, 2});
  REQUIRE(y.unflatten(0, {1, 2}).sizes() == Dims{1, 2, 12});
  REQUIRE(shares_storage(y.unflatten(1, {3, 4}), y));
  require_close(values(y.unflatten(1, {3, 4})), range_values(0, 24), 0, 0);
  REQUIRE_THROWS_AS(y.unflatten(1, {5, 3}), luna::Error);
}

TEST_CASE("contiguous", "[views]") {
  const Tensor x = iota({3, 4});
  REQUIRE(x.contiguous().is_same(x));
  const Tensor t = x.t();
  const Tensor c = t.contiguous();
  REQUIRE(c.is_contiguous());
  REQUIRE_FALSE(shares_storage(c, x));
  REQUIRE(c.strides() == Dims{3, 1});
  require_close(values(c), values(t), 0, 0);
  // Size-1 dims may carry any stride and still count as contiguous; size-0 tensors too.
  REQUIRE(iota({3, 1}).t().is_contiguous());
  REQUIRE(x.select(1, 0).unsqueeze(1).is_contiguous() == false);
  REQUIRE(x.expand({2, 3, 4}).is_contiguous() == false);
  REQUIRE(x.unsqueeze(0).expand({1, 3, 4}).is_contiguous());
}

TEST_CASE("writes through views reach the base", "[views]") {
  Tensor base = zeros({4, 6});
  base.select(0, 1).fill_(1);                 // row 1
  base.t().select(0, 5).fill_(2);             // column 5
  base.slice(1, 0, 6, 2).select(0, 3).fill_(3);  // row 3, even columns
  base.view({24}).narrow(0, 0, 2).fill_(4);   // first two elements
  base.permute({1, 0}).narrow(0, 2, 1).narrow(1, 2, 1).fill_(5);  // element (2, 2)
  base.unsqueeze(0).squeeze(0).flatten().select(0, 23).fill_(6);  // last element
  const std::vector<double> want = {4, 4, 0, 0, 0, 2,  //
                                    1, 1, 1, 1, 1, 2,  //
                                    0, 0, 5, 0, 0, 2,  //
                                    3, 0, 3, 0, 3, 6};
  require_close(values(base), want, 0, 0);
  // copy_ into a strided view writes only its elements.
  Tensor m = zeros({3, 3});
  m.t().slice(0, 0, 3, 2).copy_(tensor({1.0f, 2.0f, 3.0f, 4.0f, 5.0f, 6.0f}, {2, 3}));
  require_close(values(m), {1, 0, 4, 2, 0, 5, 3, 0, 6}, 0, 0);
  // And views see writes into the base.
  const Tensor view = base.select(1, 5);
  base.fill_(7);
  require_close(values(view), {7, 7, 7, 7}, 0, 0);
  // In-place ops on views (no autograd) land in the base too.
  base.narrow(0, 0, 2).mul_(2);
  require_close(values(base.select(1, 0)), {14, 14, 7, 7}, 0, 0);
}

TEST_CASE("views of tensors with history", "[views]") {
  Tensor x = iota({2, 3});
  x.requires_grad_(true);
  const Tensor v = x.t();
  REQUIRE(v.requires_grad());
  REQUIRE_FALSE(v.is_leaf());
  REQUIRE(shares_storage(v, x));
  // In-place on a view of a leaf that requires grad is refused, as in PyTorch.
  REQUIRE_THROWS_WITH(v.mul_(2), Catch::Contains("view"));
  // as_strided is for detached data only.
  REQUIRE_THROWS_WITH(x.as_strided({2}, {1}, 0), Catch::Contains("detach"));
  const Tensor a = x.detach().as_strided({2, 2}, {1, 1}, 1);
  require_close(values(a), {1, 2, 2, 3}, 0, 0);
  REQUIRE_THROWS_WITH(x.detach().as_strided({3}, {3}, 0), Catch::Contains("beyond the storage"));
}
