// Core types: dtype promotion and 16-bit conversions, shapes and broadcasting, the Philox
// generator (Random123 known-answer vectors, state save/restore), the caching allocator, threads,
// and tensor layout queries.
#include "test_util.h"

#include <cstring>
#include <limits>

#include <luna/backends/backend.h>

using namespace luna;
using luna::testing::values;

TEST_CASE("dtype promotion follows PyTorch", "[core]") {
  REQUIRE(promote_types(kFloat32, kFloat64) == kFloat64);
  REQUIRE(promote_types(kInt64, kFloat32) == kFloat32);
  REQUIRE(promote_types(kInt32, kInt64) == kInt64);
  REQUIRE(promote_types(kUInt8, kInt8) == kInt16);
  REQUIRE(promote_types(kBool, kUInt8) == kUInt8);
  REQUIRE(promote_types(kFloat16, kBFloat16) == kFloat32);
  REQUIRE(promote_types(kBFloat16, kFloat32) == kFloat32);
  REQUIRE(element_size(kBFloat16) == 2);
  REQUIRE(std::string(dtype_name(kInt64)) == "int64");
}

TEST_CASE("float16 and bfloat16 round to nearest even", "[core]") {
  for (float v : {0.0f, 1.0f, -2.5f, 65504.0f, 6.103515625e-05f, 5.960464477539063e-08f})
    REQUIRE(float(Half(v)) == v);
  REQUIRE(std::isinf(float(Half(70000.0f))));
  REQUIRE(std::isnan(float(Half(NAN))));
  REQUIRE(float(Half(1.0f + 1.0f / 2048)) == 1.0f);  // tie rounds to even
  for (float v : {0.0f, 1.0f, -3.0f, std::ldexp(1.5f, 126)}) REQUIRE(float(BFloat16(v)) == v);
  REQUIRE(float(BFloat16(1.0f + 1.0f / 256)) == 1.0f);  // tie rounds to even
  REQUIRE(float(BFloat16(1.0f + 3.0f / 256)) == 1.0f + 4.0f / 256);
  REQUIRE(std::isnan(float(BFloat16(NAN))));
}

TEST_CASE("broadcast_shapes and wrap_dim", "[core]") {
  REQUIRE(broadcast_shapes({4, 1, 3}, {5, 1}, "t") == Dims{4, 5, 3});
  REQUIRE(broadcast_shapes({}, {2, 3}, "t") == Dims{2, 3});
  REQUIRE_THROWS_WITH(broadcast_shapes({2, 3}, {4, 3}, "add"), Catch::Contains("add: shapes [2,3] and [4,3]"));
  REQUIRE(wrap_dim(-1, 3, "t") == 2);
  REQUIRE_THROWS_WITH(wrap_dim(3, 3, "sum"), Catch::Contains("dim 3 is out of range"));
  Dims d{1, 2};
  d.insert(0, 7);
  REQUIRE(d == Dims{7, 1, 2});
  d.erase(1);
  REQUIRE(d == Dims{7, 2});
  REQUIRE_THROWS_WITH(Dims({1, 2, 3, 4, 5, 6, 7, 8, 9}), Catch::Contains("at most 8 dims"));
}

TEST_CASE("Philox4x32-10 matches the Random123 known-answer vectors", "[core]") {
  const PhiloxBlock zero = philox4x32_10(0, 0, 0);
  REQUIRE(zero == PhiloxBlock{0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u});
  const PhiloxBlock ones = philox4x32_10(~0ull, ~0ull, ~0ull);
  REQUIRE(ones == PhiloxBlock{0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu});
  const PhiloxBlock pi = philox4x32_10(0x299f31d0a4093822ull, 0x85a308d3243f6a88ull, 0x0370734413198a2eull);
  REQUIRE(pi == PhiloxBlock{0xd16cfe09u, 0x94fdccebu, 0x5001e420u, 0x24126ea1u});
}

TEST_CASE("generator state saves and restores exactly", "[core]") {
  Generator gen(42);
  (void)randn({10}, {}, &gen);
  const GeneratorState saved = gen.get_state();
  const std::vector<double> first = values(randn({7}, {}, &gen));
  gen.set_state(saved);
  REQUIRE(values(randn({7}, {}, &gen)) == first);
  manual_seed(5);
  const std::vector<double> a = values(rand({5}));
  manual_seed(5);
  REQUIRE(values(rand({5})) == a);
  // A fill consumes exactly the blocks it reserves, so consecutive fills do not overlap.
  Generator g1(9), g2(9);
  const std::vector<double> two = values(rand({8}, {}, &g1));
  const std::vector<double> first4 = values(rand({4}, {}, &g2));
  const std::vector<double> next4 = values(rand({4}, {}, &g2));
  REQUIRE(std::equal(first4.begin(), first4.end(), two.begin()));
  REQUIRE(std::equal(next4.begin(), next4.end(), two.begin() + 4));
}

TEST_CASE("caching allocator reuses freed blocks", "[core]") {
  { Tensor warm = empty({1000, 10}); }
  const AllocatorStats before = memory_stats();
  for (int i = 0; i < 50; ++i) {
    Tensor t = empty({1000, 10});
    REQUIRE(t.numel() == 10000);
  }
  const AllocatorStats after = memory_stats();
  REQUIRE(after.system_allocations == before.system_allocations);
  REQUIRE(after.cache_hits >= before.cache_hits + 50);
  Tensor held = empty({123457});
  REQUIRE(memory_stats().bytes_in_use >= 123457 * 4);
  REQUIRE(memory_stats().peak_bytes_in_use >= memory_stats().bytes_in_use);
}

TEST_CASE("thread count is one knob", "[core]") {
  const int original = get_num_threads();
  set_num_threads(1);
  REQUIRE(get_num_threads() == 1);
  set_num_threads(original);
  REQUIRE(get_num_threads() == original);
  REQUIRE_THROWS_WITH(set_num_threads(0), Catch::Contains("must be >= 1, got 0"));
}

TEST_CASE("tensor layout queries", "[core]") {
  Tensor t = zeros({2, 3, 4});
  REQUIRE(t.dim() == 3);
  REQUIRE(t.numel() == 24);
  REQUIRE(t.strides() == Dims{12, 4, 1});
  REQUIRE(t.size(-1) == 4);
  REQUIRE(t.is_contiguous());
  REQUIRE_FALSE(t.transpose(0, 2).is_contiguous());
  REQUIRE(t.nbytes() == 96);
  REQUIRE(t.dtype() == kFloat32);
  REQUIRE(t.device() == kCPU);
  REQUIRE_THROWS_WITH(t.size(3), Catch::Contains("dim 3 is out of range"));
  REQUIRE_THROWS_WITH(t.data_ptr<double>(), Catch::Contains("tensor has dtype float32, requested float64"));
  REQUIRE_THROWS_WITH(empty({2, -1}), Catch::Contains("negative dimension -1"));
  REQUIRE_THROWS_WITH(zeros({2}, kInt64).requires_grad_(), Catch::Contains("only floating-point tensors"));
}

TEST_CASE("printing shows values, dtype and grad_fn", "[core]") {
  std::ostringstream os;
  os << tensor({1.0f, 2.5f});
  REQUIRE(os.str().find("2.5000") != std::string::npos);
  std::ostringstream os2;
  os2 << arange(3);
  REQUIRE(os2.str() == "tensor([0, 1, 2])");
  Tensor x = ones({2}, TensorOptions().requires_grad());
  std::ostringstream os3;
  os3 << (x * 2.0);
  REQUIRE(os3.str().find("grad_fn=<MulBackward>") != std::string::npos);
  // NaN prints as PyTorch prints it, without the sign bit that 0/0 leaves set.
  std::ostringstream os4, os5;
  os4 << zeros({0, 3}).mean();
  REQUIRE(os4.str() == "tensor(nan)");
  os5 << tensor({-std::numeric_limits<float>::quiet_NaN(), 1.0f});
  REQUIRE(os5.str().find("-nan") == std::string::npos);
  REQUIRE(os5.str().find("nan") != std::string::npos);
}

TEST_CASE("a device without a backend is reported, not faked", "[core]") {
  if (is_backend_available(DeviceType::CUDA)) return;
  REQUIRE_THROWS_WITH(zeros({2}, TensorOptions().device(Device::cuda())), Catch::Contains("cuda:0 is not available"));
}
