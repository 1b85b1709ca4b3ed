// Tests for copies and conversions (ops/copy.cpp, backends/cpu/memory.cpp) and the factories
// (ops/factories.cpp): dtype round trips read back through raw pointers, copy_ semantics,
// deterministic and statistically sane random factories, and the construction errors.
#include "test_util.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <set>

using namespace luna;
using luna::testing::require_close;
using luna::testing::values;

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();
const std::vector<DType> kAllDTypes = {kFloat32, kFloat64, kFloat16, kBFloat16, kInt64,
                                       kInt32,   kInt16,   kInt8,    kUInt8,    kBool};

// Element i of a contiguous CPU tensor as double, read straight from memory (no luna conversion,
// so conversions can be tested without trusting themselves).
double raw(const Tensor& t, int64_t i) {
  const void* p = t.data_ptr();
  switch (t.dtype()) {
    case kFloat32: return static_cast<const float*>(p)[i];
    case kFloat64: return static_cast<const double*>(p)[i];
    case kFloat16: return float(static_cast<const Half*>(p)[i]);
    case kBFloat16: return float(static_cast<const BFloat16*>(p)[i]);
    case kInt64: return double(static_cast<const int64_t*>(p)[i]);
    case kInt32: return static_cast<const int32_t*>(p)[i];
    case kInt16: return static_cast<const int16_t*>(p)[i];
    case kInt8: return static_cast<const int8_t*>(p)[i];
    case kUInt8: return static_cast<const uint8_t*>(p)[i];
    case kBool: return static_cast<const bool*>(p)[i];
  }
  return 0;
}

std::vector<double> raw_all(const Tensor& t) {
  REQUIRE(t.is_contiguous());
  std::vector<double> r;
  for (int64_t i = 0; i < t.numel(); ++i) r.push_back(raw(t, i));
  return r;
}

uint16_t bits(const Tensor& t, int64_t i) {
  REQUIRE(t.is_contiguous());
  uint16_t b;
  std::memcpy(&b, static_cast<const char*>(t.data_ptr()) + 2 * i, 2);
  return b;
}

}  // namespace

TEST_CASE("to(dtype) between every pair of dtypes keeps representable values", "[copy]") {
  // Values every dtype holds exactly (bool gets its own set).
  const std::vector<double> common = {0, 1, 2, 5, 100, 127};
  const std::vector<double> bools = {0, 1, 1, 0, 1, 0};
  for (DType from : kAllDTypes) {
    const std::vector<double>& v = from == kBool ? bools : common;
    const Tensor src = tensor(v).to(from);
    REQUIRE(src.dtype() == from);
    REQUIRE(raw_all(src) == v);
    for (DType to : kAllDTypes) {
      CAPTURE(dtype_name(from), dtype_name(to));
      const Tensor dst = src.to(to);
      REQUIRE(dst.dtype() == to);
      REQUIRE(dst.sizes() == src.sizes());
      std::vector<double> want = v;
      if (to == kBool)
        for (double& w : want) w = w != 0;
      REQUIRE(raw_all(dst) == want);
      // And back again.
      if (to != kBool || from == kBool) REQUIRE(raw_all(dst.to(from)) == v);
    }
  }
  // Negative values survive every signed type.
  for (DType d : {kFloat32, kFloat64, kFloat16, kBFloat16, kInt64, kInt32, kInt16, kInt8}) {
    CAPTURE(dtype_name(d));
    REQUIRE(raw_all(tensor(std::vector<double>{-1, -128, -3}).to(d)) == std::vector<double>{-1, -128, -3});
  }
}

TEST_CASE("to(dtype) conversion rules", "[copy]") {
  SECTION("same dtype returns the same tensor") {
    const Tensor x = tensor({1.0f, 2.0f});
    REQUIRE(x.to(kFloat32).is_same(x));
  }
  SECTION("float to int truncates toward zero") {
    const Tensor x = tensor(std::vector<double>{2.7, -2.7, 0.5, -0.5, 1e9});
    REQUIRE(raw_all(x.to(kInt64)) == std::vector<double>{2, -2, 0, 0, 1e9});
    REQUIRE(raw_all(x.to(kInt32)) == std::vector<double>{2, -2, 0, 0, 1e9});
  }
  SECTION("to bool tests for non-zero in the source type") {
    const double nan = std::numeric_limits<double>::quiet_NaN();
    const Tensor x = tensor(std::vector<double>{0.0, -0.0, 1e-50, -1e-300, nan, kInf, 0.25});
    REQUIRE(raw_all(x.to(kBool)) == std::vector<double>{0, 0, 1, 1, 1, 1, 1});
    REQUIRE(raw_all(tensor({0.0f, 1e-40f, -3.0f}).to(kBool)) == std::vector<double>{0, 1, 1});
    REQUIRE(raw_all(tensor(std::vector<int64_t>{0, int64_t(1) << 40, -1}).to(kBool)) == std::vector<double>{0, 1, 1});
    REQUIRE(raw_all(tensor({0.0f, 1e-5f}).to(kFloat16).to(kBool)) == std::vector<double>{0, 1});
  }
  SECTION("large int64 values survive float64 where representable") {
    const int64_t big = int64_t(1) << 52;
    const Tensor x = tensor(std::vector<int64_t>{big, -big, big + 1});
    REQUIRE(raw_all(x.to(kFloat64)) == std::vector<double>{double(big), double(-big), double(big + 1)});
    REQUIRE(x.to(kFloat64).to(kInt64).select(0, 2).item<int64_t>() == big + 1);
  }
  SECTION("strided sources convert in logical order into a contiguous result") {
    const Tensor x = arange(12).view({3, 4}).t().slice(0, 0, 4, 2);  // [2,3]: columns 0 and 2
    for (DType d : {kFloat32, kFloat16, kInt8, kFloat64}) {
      const Tensor y = x.to(d);
      REQUIRE(y.is_contiguous());
      REQUIRE(y.sizes() == Dims{2, 3});
      REQUIRE(raw_all(y) == std::vector<double>{0, 4, 8, 2, 6, 10});
    }
  }
}

TEST_CASE("float16 and bfloat16 conversions round to nearest even", "[copy]") {
  SECTION("float16") {
    // Exactly representable: survive the round trip bit-exactly.
    const std::vector<float> exact = {0.5f, -2.25f, 1024.0f, 65504.0f, 1.0f / 1024, 0.0009765625f,
                                      std::ldexp(1.0f, -24), -std::ldexp(3.0f, -20), 2049.0f - 1.0f};
    const Tensor e = tensor(std::vector<float>(exact)).to(kFloat16);
    for (size_t i = 0; i < exact.size(); ++i) REQUIRE(float(raw(e, int64_t(i))) == exact[i]);
    REQUIRE(raw_all(e.to(kFloat32)) == raw_all(tensor(std::vector<float>(exact))));
    // Ties go to even: 1 + 2^-11 -> 1, 1 + 3*2^-11 -> 1 + 2^-9; 2049 -> 2048, 2051 -> 2052.
    const Tensor t = tensor({1.0f + std::ldexp(1.0f, -11), 1.0f + 3 * std::ldexp(1.0f, -11), 2049.0f, 2051.0f,
                             1.0f + std::ldexp(1.0f, -11) + std::ldexp(1.0f, -20)})
                         .to(kFloat16);
    REQUIRE(raw_all(t) == std::vector<double>{1.0, 1.0 + std::ldexp(1.0, -9), 2048, 2052, 1.0 + std::ldexp(1.0, -10)});
    // Overflow goes to inf, NaN stays NaN, 1 and -0 have their IEEE bit patterns.
    const Tensor s = tensor({70000.0f, -70000.0f, std::numeric_limits<float>::quiet_NaN(), 1.0f, -0.0f}).to(kFloat16);
    REQUIRE(raw(s, 0) == kInf);
    REQUIRE(raw(s, 1) == -kInf);
    REQUIRE(std::isnan(raw(s, 2)));
    REQUIRE(bits(s, 3) == 0x3c00);
    REQUIRE(bits(s, 4) == 0x8000);
  }
  SECTION("bfloat16") {
    const std::vector<float> exact = {0.5f, -2.25f, 1.0f + 1.0f / 128, std::ldexp(1.0f, 100), std::ldexp(-3.0f, -120), 256.0f};
    const Tensor e = tensor(std::vector<float>(exact)).to(kBFloat16);
    for (size_t i = 0; i < exact.size(); ++i) REQUIRE(float(raw(e, int64_t(i))) == exact[i]);
    // 8 significant bits: 257 is a tie between 256 and 258 and goes to 256; 259 goes to 260.
    REQUIRE(raw_all(tensor({257.0f, 259.0f, 1.0f + 1.0f / 256}).to(kBFloat16)) == std::vector<double>{256, 260, 1});
    const Tensor s = tensor({std::numeric_limits<float>::quiet_NaN(), 1.0f, -std::numeric_limits<float>::infinity()}).to(kBFloat16);
    REQUIRE(std::isnan(raw(s, 0)));
    REQUIRE(bits(s, 1) == 0x3f80);
    REQUIRE(raw(s, 2) == -kInf);
  }
  SECTION("between the two 16-bit types and to integers") {
    const Tensor h = tensor({0.5f, -3.0f, 96.0f}).to(kFloat16);
    REQUIRE(raw_all(h.to(kBFloat16)) == std::vector<double>{0.5, -3, 96});
    REQUIRE(raw_all(h.to(kInt16)) == std::vector<double>{0, -3, 96});
    REQUIRE(raw_all(h.to(kBFloat16).to(kFloat16)) == std::vector<double>{0.5, -3, 96});
  }
}

TEST_CASE("clone is an independent contiguous copy", "[copy]") {
  Tensor x = arange(6).to(kFloat32).view({2, 3});
  const Tensor c = x.clone();
  REQUIRE(c.dtype() == x.dtype());
  REQUIRE(c.data_ptr() != x.data_ptr());
  x.fill_(-1);
  REQUIRE(raw_all(c) == std::vector<double>{0, 1, 2, 3, 4, 5});
  c.fill_(9);
  REQUIRE(raw_all(x) == std::vector<double>(6, -1));
  // Of a strided view: contiguous, in logical order.
  const Tensor base = arange(6).view({2, 3});
  const Tensor ct = base.t().clone();
  REQUIRE(ct.is_contiguous());
  REQUIRE(ct.dtype() == kInt64);
  REQUIRE(raw_all(ct) == std::vector<double>{0, 3, 1, 4, 2, 5});
  // Gradient passes straight through.
  Tensor w = tensor(std::vector<double>{1, 2});
  w.requires_grad_(true);
  (w.clone() * 3.0).sum().backward();
  REQUIRE(raw_all(w.grad()) == std::vector<double>{3, 3});
}

TEST_CASE("copy_ broadcasts, converts dtype and writes through strides", "[copy]") {
  SECTION("broadcast source") {
    Tensor dst = zeros({2, 3});
    dst.copy_(tensor({1.0f, 2.0f, 3.0f}));
    REQUIRE(raw_all(dst) == std::vector<double>{1, 2, 3, 1, 2, 3});
    dst.copy_(scalar_tensor(7.0));
    REQUIRE(raw_all(dst) == std::vector<double>(6, 7));
    dst.copy_(tensor({4.0f, 5.0f}, {2, 1}));
    REQUIRE(raw_all(dst) == std::vector<double>{4, 4, 4, 5, 5, 5});
    REQUIRE_THROWS_WITH(dst.copy_(zeros({4})), Catch::Contains("4"));
    REQUIRE_THROWS_AS(zeros({3}).copy_(zeros({2, 3})), luna::Error);
    // An expanded destination has several elements per memory location.
    REQUIRE_THROWS_WITH(zeros({3, 1}).expand({3, 2}).copy_(ones({3, 2})), Catch::Contains("single memory location"));
  }
  SECTION("dtype conversion") {
    Tensor f = zeros({3});
    f.copy_(tensor(std::vector<int64_t>{-4, 5, 6}));
    REQUIRE(f.dtype() == kFloat32);
    REQUIRE(raw_all(f) == std::vector<double>{-4, 5, 6});
    Tensor i = zeros({3}, TensorOptions(kInt32));
    i.copy_(tensor(std::vector<double>{1.9, -1.9, 3}));
    REQUIRE(raw_all(i) == std::vector<double>{1, -1, 3});
    Tensor h = zeros({2}, TensorOptions(kFloat16));
    h.copy_(tensor(std::vector<double>{0.25, -8}));
    REQUIRE(raw_all(h) == std::vector<double>{0.25, -8});
    Tensor b = zeros({3}, TensorOptions(kBool));
    b.copy_(tensor({0.0f, 2.0f, -1.0f}));
    REQUIRE(raw_all(b) == std::vector<double>{0, 1, 1});
  }
  SECTION("into a strided destination") {
    Tensor m = zeros({3, 4}, TensorOptions(kInt64));
    m.slice(1, 1, 4, 2).copy_(tensor(std::vector<double>{1, 2, 3, 4, 5, 6}, {3, 2}));
    REQUIRE(raw_all(m) == std::vector<double>{0, 1, 0, 2, 0, 3, 0, 4, 0, 5, 0, 6});
    const void* data = m.data_ptr();
    const uint32_t version = m.version();
    m.t().copy_(arange(12).view({4, 3}));
    REQUIRE(m.data_ptr() == data);
    REQUIRE(m.version() > version);
    REQUIRE(raw_all(m) == std::vector<double>{0, 3, 6, 9, 1, 4, 7, 10, 2, 5, 8, 11});
  }
  SECTION("between overlapping views of the same storage") {
    // Shift right by one: every element reads the value from before the copy.
    Tensor x = arange(8).to(kFloat32);
    x.slice(0, 1, 8).copy_(x.slice(0, 0, 7));
    REQUIRE(raw_all(x) == std::vector<double>{0, 0, 1, 2, 3, 4, 5, 6});
    // Shift left by one.
    Tensor y = arange(8).to(kFloat32);
    y.slice(0, 0, 7).copy_(y.slice(0, 1, 8));
    REQUIRE(raw_all(y) == std::vector<double>{1, 2, 3, 4, 5, 6, 7, 7});
    // A square matrix copied from its own transpose becomes its transpose.
    Tensor m = arange(9).to(kFloat64).view({3, 3});
    m.copy_(m.t());
    REQUIRE(raw_all(m) == std::vector<double>{0, 3, 6, 1, 4, 7, 2, 5, 8});
    // Copying a broadcast of the first row over the whole matrix.
    Tensor r = arange(6).view({2, 3});
    r.copy_(r.select(0, 0));
    REQUIRE(raw_all(r) == std::vector<double>{0, 1, 2, 0, 1, 2});
    // Self-copy is a no-op.
    Tensor s = arange(4);
    s.copy_(s);
    REQUIRE(raw_all(s) == std::vector<double>{0, 1, 2, 3});
  }
  SECTION("copy_ into a leaf that requires grad is refused; from one, it carries the gradient") {
    Tensor w = zeros({3}, TensorOptions(kFloat64));
    w.requires_grad_(true);
    REQUIRE_THROWS_WITH(w.copy_(ones({3})), Catch::Contains("copy_") && Catch::Contains("leaf"));
    Tensor dst = zeros({2, 3}, TensorOptions(kFloat64));
    Tensor src = tensor(std::vector<double>{1, 2, 3});
    src.requires_grad_(true);
    dst.copy_(src);
    (dst * 2.0).sum().backward();
    REQUIRE(raw_all(src.grad()) == std::vector<double>{4, 4, 4});
  }
}

TEST_CASE("fill_", "[copy]") {
  for (DType d : kAllDTypes) {
    CAPTURE(dtype_name(d));
    Tensor t = empty({2, 3}, TensorOptions(d));
    t.fill_(1);
    REQUIRE(raw_all(t) == std::vector<double>(6, 1));
    t.zero_();
    REQUIRE(raw_all(t) == std::vector<double>(6, 0));
  }
  Tensor f = zeros({3, 4});
  f.t().select(0, 1).fill_(2.5);  // column 1
  REQUIRE(raw_all(f) == std::vector<double>{0, 2.5, 0, 0, 0, 2.5, 0, 0, 0, 2.5, 0, 0});
  Tensor i = zeros({2}, TensorOptions(kInt64));
  i.fill_(-3.7);
  REQUIRE(raw_all(i) == std::vector<double>{-3, -3});
  i.fill_(int64_t(1) << 40);
  REQUIRE(i.select(0, 0).item<int64_t>() == int64_t(1) << 40);
  Tensor b = zeros({2}, TensorOptions(kBool));
  b.fill_(true);
  REQUIRE(raw_all(b) == std::vector<double>{1, 1});
  Tensor h = zeros({1}, TensorOptions(kFloat16));
  h.fill_(-kInf);
  REQUIRE(raw(h, 0) == -kInf);
  Tensor w = zeros({2});
  w.requires_grad_(true);
  REQUIRE_THROWS_WITH(w.fill_(1), Catch::Contains("fill_") && Catch::Contains("leaf"));
}

TEST_CASE("zeros, ones, full, eye", "[factories]") {
  REQUIRE(zeros({2, 3}).dtype() == kFloat32);
  REQUIRE(zeros({2, 3}).is_contiguous());
  REQUIRE(raw_all(zeros({2, 3})) == std::vector<double>(6, 0));
  REQUIRE(raw_all(ones({4}, TensorOptions(kInt32))) == std::vector<double>(4, 1));
  REQUIRE(ones({2}).dtype() == kFloat32);
  REQUIRE(raw_all(full({2, 2}, 3.5, TensorOptions(kFloat64))) == std::vector<double>(4, 3.5));
  REQUIRE(raw_all(full({3}, 7, TensorOptions(kInt8))) == std::vector<double>(3, 7));
  REQUIRE(zeros({}).dim() == 0);
  REQUIRE(zeros({}).numel() == 1);
  REQUIRE(zeros({0, 5}).numel() == 0);
  REQUIRE(zeros({2}, TensorOptions(kFloat64).requires_grad()).requires_grad());
  REQUIRE_THROWS_WITH(zeros({2, -1}), Catch::Contains("-1"));
  REQUIRE(raw_all(eye(3)) == std::vector<double>{1, 0, 0, 0, 1, 0, 0, 0, 1});
  REQUIRE(raw_all(eye(2, 3, TensorOptions(kInt64))) == std::vector<double>{1, 0, 0, 0, 1, 0});
  REQUIRE(raw_all(eye(3, 2)) == std::vector<double>{1, 0, 0, 1, 0, 0});
  REQUIRE(eye(0).numel() == 0);
  REQUIRE_THROWS_WITH(eye(-1), Catch::Contains("-1"));
  const Tensor like = zeros({2, 3}, TensorOptions(kInt16));
  REQUIRE(zeros_like(like).dtype() == kInt16);
  REQUIRE(ones_like(like).sizes() == like.sizes());
  REQUIRE(raw_all(full_like(like, 4)) == std::vector<double>(6, 4));
  REQUIRE(scalar_tensor(2.5).dim() == 0);
  REQUIRE(scalar_tensor(2.5).item<float>() == 2.5f);
}

TEST_CASE("arange infers int64 or float32 and handles negative steps", "[factories]") {
  const Tensor a = arange(5);
  REQUIRE(a.dtype() == kInt64);
  REQUIRE(raw_all(a) == std::vector<double>{0, 1, 2, 3, 4});
  REQUIRE(arange(2, 11, 3).dtype() == kInt64);
  REQUIRE(raw_all(arange(2, 11, 3)) == std::vector<double>{2, 5, 8});
  REQUIRE(raw_all(arange(10, 0, -3)) == std::vector<double>{10, 7, 4, 1});
  REQUIRE(raw_all(arange(-2, 2)) == std::vector<double>{-2, -1, 0, 1});
  // Any float bound or step makes it float32.
  REQUIRE(arange(5.0).dtype() == kFloat32);
  REQUIRE(arange(0, 1, 0.25).dtype() == kFloat32);
  REQUIRE(raw_all(arange(0, 1, 0.25)) == std::vector<double>{0, 0.25, 0.5, 0.75});
  REQUIRE(raw_all(arange(5, 0, -1.5)) == std::vector<double>{5, 3.5, 2, 0.5});
  REQUIRE(arange(0.0, 1.0, 0.1).numel() == 10);
  require_close(values(arange(0.0, 1.0, 0.1, TensorOptions(kFloat64))), {0, .1, .2, .3, .4, .5, .6, .7, .8, .9}, 1e-15, 1e-15);
  // An explicit dtype wins.
  REQUIRE(arange(4, TensorOptions(kFloat64)).dtype() == kFloat64);
  REQUIRE(arange(0, 4, 1, TensorOptions(kInt32)).dtype() == kInt32);
  // Empty ranges.
  REQUIRE(arange(0).numel() == 0);
  REQUIRE(arange(3, 3).numel() == 0);
  // Bounds inconsistent with the step's sign, and a zero step.
  REQUIRE_THROWS_WITH(arange(0, 5, -1), Catch::Contains("upper bound 5") && Catch::Contains("lower bound 0") &&
                                           Catch::Contains("-1"));
  REQUIRE_THROWS_WITH(arange(5, 0), Catch::Contains("inconsistent"));
  REQUIRE_THROWS_WITH(arange(0, 5, 0), Catch::Contains("step must be nonzero"));
}

TEST_CASE("linspace", "[factories]") {
  const Tensor l = linspace(-1, 0.3, 11, TensorOptions(kFloat64));
  REQUIRE(l.numel() == 11);
  const std::vector<double> v = raw_all(l);
  // Both endpoints are exact and the spacing is uniform.
  REQUIRE(v.front() == -1);
  REQUIRE(v.back() == 0.3);
  for (int i = 0; i < 11; ++i) REQUIRE(v[size_t(i)] == Approx(-1 + 0.13 * i).margin(1e-15));
  REQUIRE(raw_all(linspace(0, 1, 5)) == std::vector<double>{0, 0.25, 0.5, 0.75, 1});
  REQUIRE(raw_all(linspace(3, -3, 4)) == std::vector<double>{3, 1, -1, -3});
  REQUIRE(raw_all(linspace(0, 1, 7, TensorOptions(kFloat64))).back() == 1.0);
  REQUIRE(raw_all(linspace(2, 5, 1)) == std::vector<double>{2});
  REQUIRE(linspace(2, 5, 0).numel() == 0);
  REQUIRE(linspace(0, 1, 3).dtype() == kFloat32);
  REQUIRE(raw_all(linspace(0, 10, 6, TensorOptions(kInt64))) == std::vector<double>{0, 2, 4, 6, 8, 10});
  REQUIRE_THROWS_WITH(linspace(0, 1, -2), Catch::Contains("-2"));
}

TEST_CASE("random factories are reproducible from a seed", "[factories][random]") {
  SECTION("explicit generators") {
    Generator g1(1234), g2(1234), g3(99);
    const std::vector<double> a = raw_all(rand({100}, {}, &g1));
    REQUIRE(a == raw_all(rand({100}, {}, &g2)));
    REQUIRE(a != raw_all(rand({100}, {}, &g3)));
    // The generator advances: the next draw differs from the first.
    const std::vector<double> next = raw_all(rand({100}, {}, &g1));
    REQUIRE(next != a);
    REQUIRE(next == raw_all(rand({100}, {}, &g2)));
    // Rewinding the seed replays the stream.
    g1.manual_seed(1234);
    REQUIRE(raw_all(rand({100}, {}, &g1)) == a);
    // Saving and restoring the state replays from there.
    const GeneratorState state = g1.get_state();
    const std::vector<double> n1 = raw_all(randn({33}, TensorOptions(kFloat64), &g1));
    const std::vector<double> i1 = raw_all(randint(0, 1000, {17}, TensorOptions(kInt64), &g1));
    const std::vector<double> p1 = raw_all(randperm(20, &g1));
    g1.set_state(state);
    REQUIRE(raw_all(randn({33}, TensorOptions(kFloat64), &g1)) == n1);
    REQUIRE(raw_all(randint(0, 1000, {17}, TensorOptions(kInt64), &g1)) == i1);
    REQUIRE(raw_all(randperm(20, &g1)) == p1);
  }
  SECTION("the default generator and manual_seed") {
    manual_seed(42);
    const std::vector<double> a = raw_all(randn({50}));
    const std::vector<double> b = raw_all(rand({50}, TensorOptions(kFloat64)));
    const std::vector<double> c = raw_all(randperm(10));
    REQUIRE(a != raw_all(randn({50})));
    manual_seed(42);
    REQUIRE(raw_all(randn({50})) == a);
    REQUIRE(raw_all(rand({50}, TensorOptions(kFloat64))) == b);
    REQUIRE(raw_all(randperm(10)) == c);
    Generator explicit_gen(42);
    REQUIRE(raw_all(randn({50}, {}, &explicit_gen)) == a);
  }
  SECTION("a strided destination draws the same numbers as a contiguous one") {
    Generator g1(7), g2(7);
    Tensor strided = zeros({4, 3}).t();
    uniform_(strided, 0, 1, &g1);
    const Tensor flat = rand({3, 4}, {}, &g2);
    REQUIRE(raw_all(strided.contiguous()) == raw_all(flat));
  }
}

TEST_CASE("random factories have the right distributions", "[factories][random]") {
  Generator gen(2024);
  for (DType d : {kFloat32, kFloat64}) {
    CAPTURE(dtype_name(d));
    const std::vector<double> n = raw_all(randn({100000}, TensorOptions(d), &gen));
    double mean = 0, sq = 0;
    for (double v : n) mean += v;
    mean /= double(n.size());
    for (double v : n) sq += (v - mean) * (v - mean);
    const double sd = std::sqrt(sq / double(n.size() - 1));
    // Standard errors are ~0.003 for both; 0.02 is far outside chance but catches a wrong scale.
    REQUIRE(std::abs(mean) < 0.02);
    REQUIRE(std::abs(sd - 1) < 0.02);
    // Roughly 68% within one sigma.
    const auto within = std::count_if(n.begin(), n.end(), [](double v) { return std::abs(v) < 1; });
    REQUIRE(std::abs(double(within) / double(n.size()) - 0.6827) < 0.01);

    const std::vector<double> u = raw_all(rand({100000}, TensorOptions(d), &gen));
    REQUIRE(*std::min_element(u.begin(), u.end()) >= 0);
    REQUIRE(*std::max_element(u.begin(), u.end()) < 1);
    double um = 0;
    for (double v : u) um += v;
    REQUIRE(std::abs(um / double(u.size()) - 0.5) < 0.01);
    // Each tenth of [0, 1) gets about a tenth of the samples.
    std::vector<int> bins(10);
    for (double v : u) ++bins[size_t(v * 10)];
    for (int b : bins) REQUIRE(std::abs(b - 10000) < 600);
  }
  // 16-bit floats: rounding must not produce 1.0 (a float32 uniform just below 1 would round up).
  for (DType d : {kFloat16, kBFloat16}) {
    CAPTURE(dtype_name(d));
    const std::vector<double> u = raw_all(rand({50000}, TensorOptions(d), &gen));
    REQUIRE(*std::min_element(u.begin(), u.end()) >= 0);
    REQUIRE(*std::max_element(u.begin(), u.end()) < 1);
    double um = 0;
    for (double v : u) um += v;
    REQUIRE(std::abs(um / double(u.size()) - 0.5) < 0.01);
  }
  // normal_ / uniform_ with parameters.
  Tensor t = empty({50000}, TensorOptions(kFloat64));
  normal_(t, 3.0, 0.5, &gen);
  const std::vector<double> nv = raw_all(t);
  double m = 0;
  for (double v : nv) m += v;
  REQUIRE(std::abs(m / double(nv.size()) - 3.0) < 0.02);
  uniform_(t, -2, -1, &gen);
  const std::vector<double> uv = raw_all(t);
  REQUIRE(*std::min_element(uv.begin(), uv.end()) >= -2);
  REQUIRE(*std::max_element(uv.begin(), uv.end()) < -1);
  REQUIRE_THROWS_WITH(rand({2}, TensorOptions(kInt64)), Catch::Contains("floating point"));
  REQUIRE_THROWS_WITH(randn({2}, TensorOptions(kInt32)), Catch::Contains("int32"));
}

TEST_CASE("randint and randperm", "[factories][random]") {
  Generator gen(5);
  const Tensor r = randint(-3, 4, {5000}, TensorOptions(kInt64), &gen);
  REQUIRE(r.dtype() == kInt64);
  std::vector<int> counts(7);
  const std::vector<double> rv = raw_all(r);
  REQUIRE(*std::min_element(rv.begin(), rv.end()) == -3);
  REQUIRE(*std::max_element(rv.begin(), rv.end()) == 3);
  for (double v : rv) ++counts[size_t(v + 3)];
  for (int c : counts) REQUIRE(std::abs(c - 5000 / 7) < 120);  // every value, about equally often
  REQUIRE(randint(0, 10, {3}, TensorOptions(kInt32), &gen).dtype() == kInt32);
  const std::vector<double> f = raw_all(randint(0, 2, {100}, TensorOptions(kFloat32), &gen));
  REQUIRE(std::all_of(f.begin(), f.end(), [](double v) { return v == 0 || v == 1; }));
  const std::vector<double> big = raw_all(randint(0, int64_t(1) << 32, {1000}, TensorOptions(kInt64), &gen));
  REQUIRE(*std::max_element(big.begin(), big.end()) > double(int64_t(1) << 31));
  REQUIRE_THROWS_WITH(randint(5, 5, {2}), Catch::Contains("high (5)") && Catch::Contains("low (5)"));

  for (int64_t n : {0, 1, 2, 10, 1000}) {
    CAPTURE(n);
    const Tensor p = randperm(n, &gen);
    REQUIRE(p.dtype() == kInt64);
    REQUIRE(p.numel() == n);
    std::vector<double> v = raw_all(p);
    std::sort(v.begin(), v.end());
    for (int64_t i = 0; i < n; ++i) REQUIRE(v[size_t(i)] == double(i));
  }
  // Not the identity, and different draws differ.
  const std::vector<double> p1 = raw_all(randperm(50, &gen)), p2 = raw_all(randperm(50, &gen));
  REQUIRE(p1 != p2);
  int fixed = 0;
  for (int i = 0; i < 50; ++i) fixed += p1[size_t(i)] == i;
  REQUIRE(fixed < 10);
  REQUIRE_THROWS_WITH(randperm(-1), Catch::Contains("-1"));
}

TEST_CASE("tensor(values, shape), from_blob and item", "[factories]") {
  SECTION("tensor") {
    const Tensor t = tensor(std::vector<double>{1, 2, 3, 4, 5, 6}, {2, 3});
    REQUIRE(t.dtype() == kFloat64);
    REQUIRE(t.sizes() == Dims{2, 3});
    REQUIRE(raw_all(t) == std::vector<double>{1, 2, 3, 4, 5, 6});
    REQUIRE(tensor({1.0f, 2.0f}).dtype() == kFloat32);
    REQUIRE(tensor({1.0f, 2.0f}).sizes() == Dims{2});
    REQUIRE(tensor(std::vector<int64_t>{7}).dtype() == kInt64);
    REQUIRE(tensor(std::vector<int32_t>{7}).dtype() == kInt32);
    REQUIRE(tensor(std::vector<uint8_t>{7}).dtype() == kUInt8);
    REQUIRE(raw_all(tensor(std::vector<bool>{true, false, true})) == std::vector<double>{1, 0, 1});
    REQUIRE(tensor(std::vector<float>{}).numel() == 0);
    REQUIRE(tensor(std::vector<double>{4}, {}).numel() == 1);
    // A requested dtype converts.
    const Tensor c = tensor(std::vector<int64_t>{1, 2}, {2}, TensorOptions(kFloat64).requires_grad());
    REQUIRE(c.dtype() == kFloat64);
    REQUIRE(c.requires_grad());
    REQUIRE(c.is_leaf());
    REQUIRE_THROWS_WITH(tensor(std::vector<double>{1, 2, 3}, {2, 2}),
                        Catch::Contains("3 values") && Catch::Contains("[2,2]") && Catch::Contains("4 elements"));
    REQUIRE_THROWS_AS(tensor(std::vector<float>{1, 2}, {3}), luna::Error);
  }
  SECTION("from_blob shares memory and runs the deleter") {
    std::vector<float> data = {1, 2, 3, 4, 5, 6};
    int deleted = 0;
    {
      const Tensor t = from_blob(data.data(), {2, 3}, {}, [&](void* p) {
        REQUIRE(p == data.data());
        ++deleted;
      });
      REQUIRE(t.data_ptr() == data.data());
      REQUIRE(t.dtype() == kFloat32);
      data[4] = 50;
      REQUIRE(raw(t, 4) == 50);
      t.select(0, 0).fill_(-1);
      REQUIRE(data[0] == -1);
      REQUIRE(data[2] == -1);
      REQUIRE(data[3] == 4);
      const Tensor view = t.t();
      REQUIRE(deleted == 0);
    }
    REQUIRE(deleted == 1);
    std::vector<int64_t> ints = {3, 4};
    const Tensor ti = from_blob(ints.data(), {2}, TensorOptions(kInt64));
    REQUIRE(ti.sum().item<int64_t>() == 7);
    REQUIRE_THROWS_WITH(from_blob(nullptr, {2}), Catch::Contains("null"));
  }
  SECTION("item") {
    REQUIRE(scalar_tensor(2.5).item<float>() == 2.5f);
    REQUIRE(scalar_tensor(2.5).item<double>() == 2.5);
    REQUIRE(tensor(std::vector<int64_t>{9}).item<int64_t>() == 9);
    REQUIRE(tensor(std::vector<double>{3.9}).item<int64_t>() == 3);
    REQUIRE(tensor(std::vector<bool>{true}).item<bool>());
    REQUIRE(ones({1, 1, 1}).item<float>() == 1);
    REQUIRE(tensor({0.5f}).to(kFloat16).item<float>() == 0.5f);
    REQUIRE(arange(10).select(0, 7).item<int64_t>() == 7);
    REQUIRE_THROWS_AS(zeros({2}).item<float>(), luna::Error);
    REQUIRE_THROWS_WITH(zeros({2, 3}).item<float>(), Catch::Contains("6 elements") && Catch::Contains("[2,3]"));
    REQUIRE_THROWS_WITH(zeros({0}).item<float>(), Catch::Contains("0 elements"));
  }
}
