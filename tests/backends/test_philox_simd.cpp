// The 8-lane Philox of backends/cpu/philox_simd.h against the scalar generator (every word, many
// keys and counters, including counters whose low word carries into the high word), and the
// dropout kernels built on it: masks bit-identical to the scalar Philox layout for every size
// (vector body and tails, one and several threads), the float64 path, and the fused backward
// bit-identical to the composed (grad · mask) · scale, signed zeros and NaNs included.
#include "test_util.h"

#include <cmath>
#include <cstring>
#include <limits>

#include <luna/backends/backend.h>
#include <luna/backends/cpu/philox_simd.h>

using namespace luna;

namespace {

// Bits of a float32 tensor, for exact comparisons that also see signed zeros and NaN payloads.
std::vector<uint32_t> bits_of(const Tensor& t) {
  const Tensor c = t.contiguous();
  std::vector<uint32_t> out(size_t(c.numel()));
  std::memcpy(out.data(), c.data_ptr<float>(), out.size() * sizeof(float));
  return out;
}

// The documented layout: element i keeps its value iff uniform(word i % 4 of block offset + i / 4) >= p.
std::vector<float> reference_dropout(const std::vector<float>& x, double p, GeneratorState state) {
  std::vector<float> out(x.size());
  const float scale = float(1.0 / (1.0 - p));
  for (size_t i = 0; i < x.size(); ++i) {
    const PhiloxBlock block = philox4x32_10(state.seed, state.offset + uint64_t(i / 4));
    const bool keep = double(uniform_float(block[i % 4])) >= p;
    out[i] = keep ? x[i] * scale : 0.0f;
  }
  return out;
}

}  // namespace

#if defined(LUNA_HAVE_PHILOX_SIMD)
TEST_CASE("philox8_elements gives the scalar generator's words in element order", "[philox]") {
  const std::vector<uint64_t> keys = {0, 1, 42, 67280421310721ull, 0xFFFFFFFFull, 0xDEADBEEFCAFEF00Dull, ~0ull};
  std::vector<uint64_t> firsts = {0, 1, 7, 8, 1000, 0xFFFFFFF0ull, 0x1FFFFFFF0ull, ~0ull - 3};
  for (uint64_t carry = 0xFFFFFFF8ull; carry <= 0x100000001ull; ++carry) firsts.push_back(carry);  // low word wraps
  Generator draw(7);
  const Tensor extra = randint(0, 1 << 30, {20}, TensorOptions(kInt64), &draw);
  for (int64_t i = 0; i < extra.numel(); ++i) firsts.push_back(uint64_t(extra.data_ptr<int64_t>()[i]) * 977);
  for (uint64_t key : keys) {
    for (uint64_t first : firsts) {
      __m256i words[4];
      cpu::philox_simd::philox8_elements(key, first, words);
      uint32_t got[32];
      std::memcpy(got, words, sizeof(got));
      for (int e = 0; e < 32; ++e) {
        const PhiloxBlock block = philox4x32_10(key, first + uint64_t(e / 4));
        INFO("key " << key << " first block " << first << " element " << e);
        REQUIRE(got[e] == block[size_t(e % 4)]);
      }
    }
  }
}
#endif

TEST_CASE("dropout masks equal the scalar Philox layout for every size, offset and thread count", "[philox]") {
  const int saved_threads = get_num_threads();
  for (int threads : {1, 2}) {
    set_num_threads(threads);
    for (double p : {0.1, 0.5, 0.9, 3.0 / 16777216.0, 1.0 - 1.0 / 1024.0}) {
      for (int64_t n : {1, 3, 4, 5, 31, 32, 33, 63, 64, 65, 100, 1000, 4099, 70001}) {
        for (uint64_t offset : {uint64_t(0), uint64_t(3), uint64_t(0xFFFFFFFDull)}) {
          std::vector<float> x(static_cast<size_t>(n));
          for (int64_t i = 0; i < n; ++i) x[size_t(i)] = float(1 + i % 7) * (i % 2 ? -0.75f : 1.25f);
          Generator gen(99);
          gen.set_state({99, offset});
          const GeneratorState before = gen.get_state();
          const Tensor y = dropout(tensor(x, {n}), p, true, &gen);
          const std::vector<float> want = reference_dropout(x, p, before);
          INFO("threads " << threads << " p " << p << " n " << n << " offset " << offset);
          std::vector<uint32_t> want_bits(want.size());
          std::memcpy(want_bits.data(), want.data(), want.size() * sizeof(float));
          REQUIRE(bits_of(y) == want_bits);
          REQUIRE(gen.get_state().offset == offset + uint64_t((n + 3) / 4));
        }
      }
    }
  }
  set_num_threads(saved_threads);
}

TEST_CASE("float64 dropout follows the same layout", "[philox]") {
  const int64_t n = 4103;
  const double p = 0.3;
  Generator gen(5);
  const Tensor x = ones({n}, TensorOptions(kFloat64));
  const Tensor y = dropout(x, p, true, &gen);
  const double* got = y.data_ptr<double>();
  for (int64_t i = 0; i < n; ++i) {
    const PhiloxBlock block = philox4x32_10(5, uint64_t(i / 4));
    const bool keep = double(uniform_float(block[size_t(i % 4)])) >= p;
    REQUIRE(got[i] == (keep ? 1.0 / (1.0 - p) : 0.0));
  }
}

TEST_CASE("fused dropout backward equals (grad * mask) * scale bit for bit", "[philox]") {
  const double p = 0.25;
  for (int64_t n : {1, 7, 8, 9, 1000, 100003}) {
    Generator gen(11);
    const Tensor grad = randn({n}, TensorOptions(kFloat32), &gen);
    float* g = grad.data_ptr<float>();
    if (n > 3) {
      g[0] = -0.0f;
      g[1] = std::numeric_limits<float>::infinity();
      g[2] = std::numeric_limits<float>::quiet_NaN();
      g[3] = -2.5f;
    }
    const Tensor mask = randint(0, 2, {n}, TensorOptions(kUInt8), &gen);
    Tensor fused = empty({n});
    backend_for(grad).dropout_backward(grad, mask, 1.0 / (1.0 - p), fused);
    const Tensor composed = grad * mask.to(kFloat32) * (1.0 / (1.0 - p));
    INFO("n " << n);
    REQUIRE(bits_of(fused) == bits_of(composed));
  }
}
