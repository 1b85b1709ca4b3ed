// luna's thin-shape float32 GEMM (backends/cpu/sgemm_thin.h) against a plain double-precision loop,
// with the AVX2 tile and, where the CPU has it, the AVX-512 one (and the two against each other, bit
// for bit): every transpose combination, odd sizes (row tiles of 6 and 8 and column panels of 32 with
// their tails),
// strided leading dimensions, alpha/beta (including beta = 0 over a C full of NaN, which must not
// leak), batches (one product per thread), long k (split over threads, summed in thread order: the
// same bits every run), k = 0, and the serial entry point on strided operands; B read in place, packed
// per call, and packed once for rows made one at a time (sgemm_thin_row_packed), giving the same bits. Also which shapes the backend
// hands to it.
#include "test_util.h"

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <sstream>
#include <string>
#include <tuple>

#include <luna/backends/cpu/cpu_features.h>
#include <luna/backends/cpu/sgemm_thin.h>

using namespace luna;

namespace {

struct Case {
  int64_t batch, m, n, k;
  bool trans_a, trans_b;
  int64_t pad_a = 0, pad_b = 0, pad_c = 0;  // extra leading-dimension elements
  float alpha = 1.0f, beta = 0.0f;
};

// Runs sgemm_thin on random operands and returns max |C − reference| / max(1, max |reference|).
double relative_error(const Case& c, uint32_t seed, std::vector<float>* result = nullptr) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  const int64_t a_rows = c.trans_a ? c.k : c.m, a_cols = c.trans_a ? c.m : c.k;
  const int64_t b_rows = c.trans_b ? c.n : c.k, b_cols = c.trans_b ? c.k : c.n;
  const int64_t lda = a_cols + c.pad_a, ldb = b_cols + c.pad_b, ldc = c.n + c.pad_c;
  const int64_t stride_a = a_rows * lda + 3, stride_b = b_rows * ldb + 5, stride_c = c.m * ldc + 7;
  std::vector<float> a(size_t(c.batch * stride_a)), b(size_t(c.batch * stride_b)), out(size_t(c.batch * stride_c));
  for (float& x : a) x = uniform(rng);
  for (float& x : b) x = uniform(rng);
  for (float& x : out) x = c.beta == 0.0f ? std::numeric_limits<float>::quiet_NaN() : uniform(rng);
  const std::vector<float> before = out;
  GemmArgs g;
  g.dtype = kFloat32;
  g.trans_a = c.trans_a;
  g.trans_b = c.trans_b;
  g.m = c.m;
  g.n = c.n;
  g.k = c.k;
  g.alpha = c.alpha;
  g.beta = c.beta;
  g.a = a.data();
  g.lda = lda;
  g.stride_a = stride_a;
  g.b = b.data();
  g.ldb = ldb;
  g.stride_b = stride_b;
  g.c = out.data();
  g.ldc = ldc;
  g.stride_c = stride_c;
  g.batch = c.batch;
  cpu::sgemm_thin(g);
  double worst = 0, scale = 1;
  for (int64_t p = 0; p < c.batch; ++p)
    for (int64_t i = 0; i < c.m; ++i)
      for (int64_t j = 0; j < c.n; ++j) {
        double sum = 0;
        for (int64_t q = 0; q < c.k; ++q) {
          const double av = c.trans_a ? a[size_t(p * stride_a + q * lda + i)] : a[size_t(p * stride_a + i * lda + q)];
          const double bv = c.trans_b ? b[size_t(p * stride_b + j * ldb + q)] : b[size_t(p * stride_b + q * ldb + j)];
          sum += av * bv;
        }
        const size_t at = size_t(p * stride_c + i * ldc + j);
        const double want = c.alpha * sum + (c.beta == 0.0f ? 0.0 : c.beta * double(before[at]));
        scale = std::max(scale, std::fabs(want));
        const double got = out[at];
        worst = std::isfinite(got) ? std::max(worst, std::fabs(got - want)) : std::numeric_limits<double>::infinity();
      }
  // Nothing outside C's rows and columns was touched.
  for (int64_t p = 0; p < c.batch; ++p)
    for (int64_t i = 0; i < stride_c; ++i) {
      const bool inside = i < c.m * ldc && i % ldc < c.n;
      const size_t at = size_t(p * stride_c + i);
      if (!inside && std::memcmp(&out[at], &before[at], sizeof(float)) != 0) return std::numeric_limits<double>::infinity();
    }
  if (result != nullptr) *result = out;
  return worst / scale;
}

// Runs `check` with the AVX2 tile, then with the AVX-512 one where the CPU has it.
template <class Check>
void for_each_tile(Check check) {
  const bool has_avx512 = cpu::cpu_has_avx512();
  cpu::allow_avx512(false);
  {
    INFO("AVX2 tile");
    check();
  }
  cpu::allow_avx512(has_avx512);
  if (has_avx512) {
    INFO("AVX-512 tile");
    check();
  }
}

std::vector<Case> kernel_cases() {
  std::vector<Case> cases;
  for (bool ta : {false, true})
    for (bool tb : {false, true}) {
      for (int64_t m : {1, 5, 6, 7, 8, 9, 13, 23, 100})
        for (int64_t n : {1, 15, 16, 17, 32, 33, 64, 100})
          for (int64_t k : {1, 3, 33, 128}) cases.push_back({1, m, n, k, ta, tb});
      cases.push_back({1, 333, 65, 31, ta, tb, 3, 5, 7, 0.5f, 0.0f});      // padded leading dims
      cases.push_back({1, 70, 40, 20, ta, tb, 0, 0, 2, -1.5f, 0.75f});     // alpha, beta
      cases.push_back({1, 17, 48, 29, ta, tb, 1, 0, 0, 1.0f, 1.0f});       // beta = 1 (bias prefilled)
      cases.push_back({5, 61, 33, 129, ta, tb, 0, 2, 1});                  // a batch, one product per thread
      cases.push_back({1, 40, 70, 3000, ta, tb});                          // long k, blocks of 256
      cases.push_back({1, 9, 17, 1301, ta, tb, 2, 1, 3, 2.0f, 0.5f});      // long k with a ragged last block
      cases.push_back({1, 40, 64, 3000, ta, tb});                          // long k, B's rows read in place
      cases.push_back({1, 9, 96, 1301, ta, tb, 2, 1, 3, 2.0f, 0.5f});      //   (when not transposed), padded
      cases.push_back({1, 1000, 64, 64, ta, tb});                          // tall: rows split over threads
    }
  return cases;
}

std::string describe(const Case& c) {
  std::ostringstream out;
  out << "batch " << c.batch << " m " << c.m << " n " << c.n << " k " << c.k << " trans " << c.trans_a << c.trans_b
      << " pads " << c.pad_a << "," << c.pad_b << "," << c.pad_c << " alpha " << c.alpha << " beta " << c.beta;
  return out.str();
}

}  // namespace

TEST_CASE("sgemm_thin matches a double-precision loop over shapes, layouts, tails and alpha/beta", "[gemm]") {
  const std::vector<Case> cases = kernel_cases();
  for_each_tile([&] {
    uint32_t seed = 1;
    for (const Case& c : cases) {
      INFO(describe(c));
      REQUIRE(relative_error(c, seed++) < 2e-6);
    }
    INFO("k = 0 scales C by beta (0 overwrites, NaN included)");
    REQUIRE(relative_error({1, 13, 21, 0, false, false, 0, 0, 0, 1.0f, 0.0f}, 7) == 0.0);
    REQUIRE(relative_error({1, 13, 21, 0, true, true, 0, 0, 2, 1.0f, 0.5f}, 8) == 0.0);
  });
}

TEST_CASE("the AVX2 and AVX-512 tiles give the same bits", "[gemm]") {
  if (!cpu::cpu_has_avx512()) {
    WARN("this CPU has no AVX-512: only the AVX2 tile runs here");
    return;
  }
  uint32_t seed = 1;
  for (const Case& c : kernel_cases()) {
    INFO(describe(c));
    std::vector<float> avx2, avx512;
    cpu::allow_avx512(false);
    relative_error(c, seed, &avx2);
    cpu::allow_avx512(true);
    relative_error(c, seed++, &avx512);
    REQUIRE(avx2.size() == avx512.size());
    REQUIRE(std::memcmp(avx2.data(), avx512.data(), avx2.size() * sizeof(float)) == 0);
  }
}

TEST_CASE("sgemm_thin gives the same bits on every run, threads included", "[gemm]") {
  const int saved = get_num_threads();
  for_each_tile([&] {
    for (int threads : {1, 2}) {
      set_num_threads(threads);
      std::vector<float> first, second;
      const Case c{1, 64, 96, 6000, true, false};  // a weight gradient: k split over the threads
      REQUIRE(relative_error(c, 3, &first) < 1e-5);
      REQUIRE(relative_error(c, 3, &second) < 1e-5);
      REQUIRE(std::memcmp(first.data(), second.data(), first.size() * sizeof(float)) == 0);
    }
  });
  set_num_threads(saved);
}

// A strided A, a transposed B and a strided C through the serial entry point.
void check_serial_strided() {
  // A: every other row of a (2m, k+1) buffer; B: the transpose of an (n, k) block with row stride k + 2;
  // C: rows of stride n + 4.
  const int64_t m = 37, n = 41, k = 19;
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  std::vector<float> a(size_t(2 * m * (k + 1))), b(size_t(n * (k + 2))), c(size_t(m * (n + 4)), -7.0f);
  for (float& x : a) x = uniform(rng);
  for (float& x : b) x = uniform(rng);
  cpu::sgemm_thin_serial(a.data(), 2 * (k + 1), 1, b.data(), 1, k + 2, c.data(), n + 4, m, n, k, 1.0f, 0.0f);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n + 4; ++j) {
      if (j >= n) {
        REQUIRE(c[size_t(i * (n + 4) + j)] == -7.0f);
        continue;
      }
      double want = 0;
      for (int64_t p = 0; p < k; ++p) want += double(a[size_t(2 * i * (k + 1) + p)]) * double(b[size_t(j * (k + 2) + p)]);
      REQUIRE(std::fabs(c[size_t(i * (n + 4) + j)] - want) < 1e-5);
    }
}

TEST_CASE("sgemm_thin_serial takes strided and transposed operands in place", "[gemm]") {
  for_each_tile([] { check_serial_strided(); });
}

// The same product with B three ways: its rows read where they lie (row stride n + 3: the in-place path
// when n fills whole panels), a transposed copy (always packed per call), and packed once by
// sgemm_thin_pack_b, each row then made by sgemm_thin_row_packed. Every element is the same chain of
// multiply-adds each way, so the three agree bit for bit, and with a double loop to rounding.
void check_b_in_place_and_packed(int64_t m, int64_t n, int64_t k, float beta) {
  INFO("m " << m << " n " << n << " k " << k << " beta " << beta);
  std::mt19937 rng(uint32_t(m * 1000 + n * 10 + k));
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  const int64_t ldb = n + 3, ldc = n + 2;
  std::vector<float> a(size_t(m * k)), b(size_t(k * ldb)), b_t(size_t(n * k)), c0(size_t(m * ldc));
  for (float& x : a) x = uniform(rng);
  for (float& x : b) x = uniform(rng);
  for (float& x : c0) x = uniform(rng);
  for (int64_t p = 0; p < k; ++p)
    for (int64_t j = 0; j < n; ++j) b_t[size_t(j * k + p)] = b[size_t(p * ldb + j)];
  std::vector<float> in_place = c0, transposed = c0, packed_once = c0;
  cpu::PackedB packed;
  cpu::sgemm_thin_serial(a.data(), k, 1, b.data(), ldb, 1, in_place.data(), ldc, m, n, k, 1.0f, beta);
  cpu::sgemm_thin_serial(a.data(), k, 1, b_t.data(), 1, k, transposed.data(), ldc, m, n, k, 1.0f, beta);
  cpu::sgemm_thin_pack_b(b.data(), ldb, 1, k, n, packed);
  for (int64_t i = 0; i < m; ++i) {
    std::vector<float> row(size_t(n) + 1, -3.0f);  // one past n: must stay as it was
    cpu::sgemm_thin_row_packed(a.data() + i * k, 1, packed, row.data());
    REQUIRE(row[size_t(n)] == -3.0f);
    for (int64_t j = 0; j < n; ++j) packed_once[size_t(i * ldc + j)] = beta * c0[size_t(i * ldc + j)] + row[size_t(j)];
  }
  REQUIRE(std::memcmp(in_place.data(), transposed.data(), in_place.size() * sizeof(float)) == 0);
  if (beta == 0.0f) REQUIRE(std::memcmp(in_place.data(), packed_once.data(), in_place.size() * sizeof(float)) == 0);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < ldc; ++j) {
      const size_t at = size_t(i * ldc + j);
      if (j >= n) {
        REQUIRE(in_place[at] == c0[at]);
        continue;
      }
      double want = beta * double(c0[at]);
      for (int64_t p = 0; p < k; ++p) want += double(a[size_t(i * k + p)]) * double(b[size_t(p * ldb + j)]);
      REQUIRE(std::fabs(in_place[at] - want) < 1e-4);
      REQUIRE(std::fabs(packed_once[at] - want) < 1e-4);
    }
}

TEST_CASE("B in place, packed per call and packed once give the same bits", "[gemm]") {
  for_each_tile([] {
    for (int64_t n : {32, 64, 96, 41})
      for (int64_t k : {1, 33, 128})
        for (float beta : {0.0f, 1.0f}) check_b_in_place_and_packed(23, n, k, beta);
    check_b_in_place_and_packed(100, 128, 33, 0.0f);  // the fused attention's ∂φ = ∂aug·S_augᵀ
  });
  cpu::PackedB packed;
  std::vector<float> a(33, 1.0f), c(128);
  REQUIRE_THROWS_WITH(cpu::sgemm_thin_row_packed(a.data(), 1, packed, c.data()), Catch::Contains("not been packed"));
  cpu::sgemm_thin_pack_b(std::vector<float>(33 * 128, 1.0f).data(), 1, 33, 33, 128, packed);
  REQUIRE((!packed.empty() && packed.k() == 33 && packed.n() == 128));
  cpu::sgemm_thin_row_packed(a.data(), 1, packed, c.data());
  REQUIRE(c == std::vector<float>(128, 33.0f));
  packed.clear();
  REQUIRE(packed.empty());
  REQUIRE_THROWS_WITH(cpu::sgemm_thin_pack_b(a.data(), 1, 1, -1, 4, packed), Catch::Contains("must not be negative"));
}

TEST_CASE("the CPU backend hands thin float32 products to sgemm_thin and the rest to OpenBLAS", "[gemm]") {
  GemmArgs g;
  g.dtype = kFloat32;
  auto applies = [&](int64_t m, int64_t n, int64_t k) {
    g.m = m;
    g.n = n;
    g.k = k;
    return cpu::sgemm_thin_applies(g);
  };
  REQUIRE(applies(65536, 64, 64));             // a linear layer over many tokens
  REQUIRE(applies(64, 128, 65536));            // its weight gradient
  REQUIRE_FALSE(applies(2048, 2048, 2048));    // square: OpenBLAS
  REQUIRE_FALSE(applies(4096, 1024, 64));      // wide
  REQUIRE(cpu::sgemm_linear_backward_applies(65536, 64, 64));
  cpu::allow_sgemm_thin(false);                // turned off: everything to OpenBLAS
  REQUIRE_FALSE(applies(65536, 64, 64));
  REQUIRE_FALSE(cpu::sgemm_linear_backward_applies(65536, 64, 64));
  REQUIRE_FALSE(backend_for(Device::cpu()).has_linear_backward(kFloat32));
  cpu::allow_sgemm_thin(true);
  REQUIRE(backend_for(Device::cpu()).has_linear_backward(kFloat32));
  g.dtype = kFloat64;
  REQUIRE_FALSE(applies(65536, 64, 64));       // float64: OpenBLAS
}

TEST_CASE("GEMM bias: every row of C gets it, on the thin path and on OpenBLAS's", "[gemm]") {
  REQUIRE(backend_for(Device::cpu()).gemm_bias());
  // (m, n, k): tall (the thin path's epilogue), long k (bias put into C first), k = 0, and one shape
  // the thin path does not take; float32 and float64 (always OpenBLAS); beta 0 and 0.5.
  for (DType dtype : {kFloat32, kFloat64})
    for (const auto& [m, n, k] : std::vector<std::tuple<int64_t, int64_t, int64_t>>{
             {300, 40, 17}, {20, 33, 1500}, {9, 7, 0}, {600, 600, 40}})
      for (double beta : {0.0, 0.5}) {
        CAPTURE(dtype_name(dtype), m, n, k, beta);
        Generator gen(11);
        const Tensor a = randn({m, k}, TensorOptions(dtype), &gen), b = randn({k, n}, TensorOptions(dtype), &gen);
        const Tensor bias = randn({n}, TensorOptions(dtype), &gen), c0 = randn({m, n}, TensorOptions(dtype), &gen);
        const Tensor c = c0.clone();
        GemmArgs g;
        g.dtype = dtype;
        g.m = m;
        g.n = n;
        g.k = k;
        g.beta = beta;
        g.a = a.data_ptr();
        g.lda = std::max<int64_t>(k, 1);
        g.b = b.data_ptr();
        g.ldb = n;
        g.c = c.data_ptr();
        g.ldc = n;
        g.bias = bias.data_ptr();
        backend_for(Device::cpu()).gemm(g);
        const std::vector<double> av = luna::testing::values(a), bv = luna::testing::values(b);
        const std::vector<double> biasv = luna::testing::values(bias), c0v = luna::testing::values(c0);
        const std::vector<double> got = luna::testing::values(c);
        double worst = 0;  // relative to 1 + |want|
        for (int64_t i = 0; i < m; ++i)
          for (int64_t j = 0; j < n; ++j) {
            double want = beta * c0v[size_t(i * n + j)] + biasv[size_t(j)];
            for (int64_t p = 0; p < k; ++p) want += av[size_t(i * k + p)] * bv[size_t(p * n + j)];
            worst = std::max(worst, std::fabs(got[size_t(i * n + j)] - want) / (1 + std::fabs(want)));
          }
        REQUIRE(worst < (dtype == kFloat32 ? 5e-5 : 1e-11));
      }
}
