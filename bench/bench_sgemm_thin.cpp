// luna's thin-shape GEMM (backends/cpu/sgemm_thin.*) against raw cblas_sgemm (OpenBLAS) on the
// products of the LUNA ListOps training step at B = 32, N = 2048 (T = 65,536 tokens, width 64):
// the linear layers' forward and input gradients (tall: (T, k)·(k, n)), their weight gradients
// (long k: (n_out, T)·(T, n_in) with A a transposed view of dy) and the attention's ∂φ product
// (k = 33). Both sides get the same operands in the same layout and run interleaved.
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

}  // namespace

int main(int argc, char** argv) {
  if (bench::has_flag(argc, argv, "--help")) {
    std::printf("usage: bench_sgemm_thin [--json] [--threads=N] [--reps=R]\n");
    return 0;
  }
  const bool json = bench::has_flag(argc, argv, "--json");
  const int threads = std::stoi(bench::flag_value(argc, argv, "--threads", "1"));
  const int reps = std::stoi(bench::flag_value(argc, argv, "--reps", "9"));
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
  return 0;
}
