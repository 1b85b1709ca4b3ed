// luna's thin-shape GEMM (backends/cpu/sgemm_thin.*) against raw cblas_sgemm (OpenBLAS) on the
// products of the LUNA ListOps training step at B = 32, N = 2048 (T = 65,536 tokens, width 64):
// the linear layers' forward and input gradients (tall: (T, k)·(k, n)), their weight gradients
// (long k: (n_out, T)·(T, n_in) with A a transposed view of dy) and the attention's ∂φ product
// (k = 33). Both sides get the same operands in the same layout and run interleaved. Then the fused
// attention's products on one tile of a head, in their variants (B in place or packed per call, ∂φ as
// one product or by rows), timed against each other.
//
//   bench_sgemm_thin [--json] [--threads=N] [--reps=R]
//
// Prints, per shape, the median milliseconds of each side, GFLOP/s and luna / OpenBLAS.
#include <cblas.h>

#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include <luna/backends/cpu/sgemm_thin.h>
#include <luna/luna.h>

#include "bench_timing.h"

using namespace luna;

namespace {

struct Shape {
  const char* family;
  int64_t m, n, k;
  bool trans_a;  // A given as the transpose of a (k, m) row-major matrix (a weight gradient's dyᵀ)
};

struct Row {
  Shape shape;
  double luna_ms, blas_ms;
};

Row run(const Shape& s, int reps) {
  std::mt19937 rng(7);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> a(size_t(s.m * s.k)), b(size_t(s.k * s.n)), c_luna(size_t(s.m * s.n)),
      c_blas(size_t(s.m * s.n));
  for (float& x : a) x = normal(rng);
  for (float& x : b) x = normal(rng);
  GemmArgs g;
  g.trans_a = s.trans_a;
  g.m = s.m, g.n = s.n, g.k = s.k;
  g.a = a.data(), g.lda = s.trans_a ? s.m : s.k;
  g.b = b.data(), g.ldb = s.n;
  g.c = c_luna.data(), g.ldc = s.n;
  const auto luna_call = [&] { cpu::sgemm_thin(g); };
  const auto blas_call = [&] {
    cblas_sgemm(CblasRowMajor, s.trans_a ? CblasTrans : CblasNoTrans, CblasNoTrans, int(s.m), int(s.n), int(s.k),
                1.0f, a.data(), int(g.lda), b.data(), int(s.n), 0.0f, c_blas.data(), int(s.n));
  };
  const std::vector<double> medians = bench::interleaved_medians({luna_call, blas_call}, 1, reps);
  return {s, medians[0], medians[1]};
}

// The fused attention's products on one tile of 128 tokens of a head (F = 128 features, dv = 32,
// rows of [v, 1] and of ∂aug 33 wide), operands in cache, each timed over kTileCalls calls:
// microseconds per call. B read in place against B packed per call, and ∂φ = ∂aug·S_augᵀ as one
// product (its transposed B packed per call) against rows from S_augᵀ packed once.
struct TileRow {
  const char* name;
  double micros;
};

std::vector<TileRow> attention_tile_products(int reps) {
  constexpr int64_t kTokens = 128, F = 128, dv = 32, dv1 = 33, kTileCalls = 200;
  std::mt19937 rng(11);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> phi(size_t(kTokens * F)), aug(size_t(kTokens * dv1)), S(size_t(F * dv1)), out(size_t(kTokens * 64));
  std::vector<float> grad_phi(size_t(kTokens * F)), S_acc(size_t(F * dv1)), aug_t(size_t(dv * kTokens));
  for (float& x : phi) x = normal(rng);
  for (float& x : aug) x = normal(rng);
  for (float& x : S) x = normal(rng);
  for (int64_t t = 0; t < kTokens; ++t)
    for (int64_t e = 0; e < dv; ++e) aug_t[size_t(e * kTokens + t)] = aug[size_t(t * dv1 + e)];
  cpu::PackedB packed;
  cpu::sgemm_thin_pack_b(S.data(), 1, dv1, dv1, F, packed);  // S_augᵀ, once
  const auto repeat = [](auto call) {
    return std::function<void()>([call] {
      for (int64_t i = 0; i < kTileCalls; ++i) call();
    });
  };
  const std::vector<std::pair<const char*, std::function<void()>>> calls = {
      {"S += phi^T [v] (128x32, k 128), B in place", repeat([&] {
         cpu::sgemm_thin_serial(phi.data(), 1, F, aug.data(), dv1, 1, S_acc.data(), dv1, F, dv, kTokens, 1.0f, 1.0f);
       })},
      {"S += phi^T [v], B packed per call", repeat([&] {
         cpu::sgemm_thin_serial(phi.data(), 1, F, aug_t.data(), 1, kTokens, S_acc.data(), dv1, F, dv, kTokens, 1.0f,
                                1.0f);
       })},
      {"out = phi S (128x32, k 128), B in place", repeat([&] {
         cpu::sgemm_thin_serial(phi.data(), F, 1, S.data(), dv1, 1, out.data(), 64, kTokens, dv, F, 1.0f, 0.0f);
       })},
      {"dphi = daug S_aug^T (128x128, k 33), product", repeat([&] {
         cpu::sgemm_thin_serial(aug.data(), dv1, 1, S.data(), 1, dv1, grad_phi.data(), F, kTokens, F, dv1, 1.0f, 0.0f);
       })},
      {"dphi by rows from S_aug^T packed once", repeat([&] {
         for (int64_t r = 0; r < kTokens; ++r)
           cpu::sgemm_thin_row_packed(aug.data() + r * dv1, 1, packed, grad_phi.data() + r * F);
       })},
  };
  std::vector<std::function<void()>> fns;
  for (const auto& [name, fn] : calls) fns.push_back(fn);
  const std::vector<double> medians = bench::interleaved_medians(fns, 1, reps);
  std::vector<TileRow> rows;
  for (size_t i = 0; i < calls.size(); ++i) rows.push_back({calls[i].first, medians[i] * 1e3 / double(kTileCalls)});
  return rows;
}

}  // namespace

int main(int argc, char** argv) {
  if (bench::has_flag(argc, argv, "--help")) {
    std::printf("usage: bench_sgemm_thin [--json] [--threads=N] [--reps=R]\n");
    return 0;
  }
  const bool json = bench::has_flag(argc, argv, "--json");
  const int threads = bench::number_flag<int>(argc, argv, "--threads", 1);
  const int reps = bench::number_flag<int>(argc, argv, "--reps", 9);
  LUNA_CHECK(threads > 0 && reps > 0, "bench_sgemm_thin: --threads (", threads, ") and --reps (", reps,
             ") must be positive");
  set_num_threads(threads);
  init_threads();
  const int64_t T = 65536;
  const std::vector<Shape> shapes = {
      {"linear forward / input grad", T, 64, 64, false},
      {"linear forward / input grad", T, 128, 64, false},
      {"linear forward / input grad", T, 64, 128, false},
      {"attention dphi (k = dv + 1)", T, 128, 33, false},
      {"weight gradient (long k)", 64, 64, T, true},
      {"weight gradient (long k)", 128, 64, T, true},
      {"weight gradient (long k)", 64, 128, T, true},
  };
  if (!json)
    std::printf("# threads=%d reps=%d\n%-30s %6s %4s %6s %9s %9s %8s %8s %7s\n", threads, reps, "family", "m", "n",
                "k", "luna_ms", "blas_ms", "luna_GF", "blas_GF", "ratio");
  for (const Shape& s : shapes) {
    const Row r = run(s, reps);
    const double gflop = 2.0 * double(s.m) * double(s.n) * double(s.k) / 1e9;
    if (json)
      std::printf("{\"family\": \"%s\", \"m\": %lld, \"n\": %lld, \"k\": %lld, \"threads\": %d, \"luna_ms\": %.4f, "
                  "\"blas_ms\": %.4f}\n",
                  s.family, (long long)s.m, (long long)s.n, (long long)s.k, threads, r.luna_ms, r.blas_ms);
    else
      std::printf("%-30s %6lld %4lld %6lld %9.3f %9.3f %8.1f %8.1f %7.3f\n", s.family, (long long)s.m,
                  (long long)s.n, (long long)s.k, r.luna_ms, r.blas_ms, gflop / r.luna_ms * 1e3,
                  gflop / r.blas_ms * 1e3, r.luna_ms / r.blas_ms);
  }
  if (!json) std::printf("# the fused attention's products on one tile (128 tokens, F = 128, dv = 32)\n%-46s %9s\n",
                          "product", "us/call");
  for (const TileRow& r : attention_tile_products(reps)) {
    if (json)
      std::printf("{\"family\": \"attention tile\", \"product\": \"%s\", \"threads\": %d, \"us\": %.3f}\n", r.name,
                  threads, r.micros);
    else
      std::printf("%-46s %9.2f\n", r.name, r.micros);
  }
  return 0;
}
