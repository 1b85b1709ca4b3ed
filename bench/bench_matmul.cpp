// Matmul through the op (luna::matmul, which allocates its output from the caching allocator) vs a
// raw cblas_sgemm on the same input buffers writing into a preallocated output. Covers square
// sizes and transformer projection shapes, each in its forward layout and the two backward ones.
//
//   bench_matmul [--json] [--quick] [--threads=N] [--op=matmul|mm]
#include <cblas.h>

#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include <luna/luna.h>

#include "bench_timing.h"

extern "C" char* openblas_get_config(void);

namespace {
using namespace luna;

// C[m,n] = op(A) @ op(B), where op(A) is [m,k]: A is stored contiguous as [m,k], or as [k,m] and
// passed transposed (a .t() view) when trans_a. Same for B ([k,n] or stored [n,k]).
struct Case {
  std::string shape;   // the forward problem this layout comes from
  std::string layout;  // "fwd A@B", "gA g@Bt", "gB At@g"
  int64_t m, n, k;
  bool trans_a, trans_b;
};

// The forward GEMM of x[M,K] @ w[K,N] and the two GEMMs its backward runs: gA = g[M,N] @ wᵀ and
// gB = xᵀ @ g, both handed to the op as transposed views.
void add_with_backward(std::vector<Case>& cases, int64_t M, int64_t K, int64_t N) {
  const std::string shape = "[" + std::to_string(M) + "," + std::to_string(K) + "]x[" + std::to_string(K) + "," +
                            std::to_string(N) + "]";
  cases.push_back({shape, "fwd A@B", M, N, K, false, false});
  cases.push_back({shape, "gA g@Bt", M, K, N, false, true});
  cases.push_back({shape, "gB At@g", K, N, M, true, false});
}

struct Result {
  double op_ms, raw_ms;  // medians
  double paired_ratio;   // median of op/raw over rounds (robust to load changing between rounds)
  double max_abs_diff;
  uint64_t allocs_per_op;  // allocator requests by one op call: 1 = the output only, no hidden copy
};

Result run_case(const Case& c, bool use_mm, bool quick) {
  Generator gen(1234);
  // Stored operands: A (m,k) or (k,m); B (k,n) or (n,k).
  const Tensor A = c.trans_a ? randn({c.k, c.m}, {}, &gen) : randn({c.m, c.k}, {}, &gen);
  const Tensor B = c.trans_b ? randn({c.n, c.k}, {}, &gen) : randn({c.k, c.n}, {}, &gen);
  const Tensor a = c.trans_a ? A.t() : A;  // (m, k) view
  const Tensor b = c.trans_b ? B.t() : B;  // (k, n) view
  Tensor C = zeros({c.m, c.n});            // (m, n) preallocated output of the raw call
  const float* pa = A.data_ptr<float>();
  const float* pb = B.data_ptr<float>();
  float* pc = C.data_ptr<float>();
  const blasint lda = blasint(c.trans_a ? c.m : c.k), ldb = blasint(c.trans_b ? c.k : c.n), ldc = blasint(c.n);

  Tensor out;
  auto op = [&] { out = use_mm ? mm(a, b) : matmul(a, b); };
  auto raw = [&] {
    cblas_sgemm(CblasRowMajor, c.trans_a ? CblasTrans : CblasNoTrans, c.trans_b ? CblasTrans : CblasNoTrans,
                blasint(c.m), blasint(c.n), blasint(c.k), 1.0f, pa, lda, pb, ldb, 0.0f, pc, ldc);
  };

  // Repetitions for ~2 s of measurement per side (0.2 s with --quick), at least 15 (5): on a shared
  // machine single runs of the large cases swing by 20% or more.
  op();
  raw();
  const double one = bench::time_ms(raw);
  const int reps = quick ? std::max(5, std::min(51, int(200.0 / std::max(one, 1e-3))))
                         : std::max(15, std::min(201, int(2000.0 / std::max(one, 1e-3))));
  const std::vector<std::vector<double>> times = bench::interleaved_times({op, raw}, 2, reps);
  out = Tensor();
  const uint64_t requests_before = memory_stats().requests;
  op();
  const uint64_t allocs = memory_stats().requests - requests_before;

  // The op must compute the same thing as the raw call (BLAS is deterministic for equal calls).
  const float* po = out.data_ptr<float>();
  double diff = 0;
  for (int64_t i = 0; i < c.m * c.n; ++i) diff = std::max(diff, double(std::abs(po[i] - pc[i])));
  return {bench::median(times[0]), bench::median(times[1]), bench::median_paired_ratio(times[0], times[1]), diff,
          allocs};
}

}  // namespace

int main(int argc, char** argv) {
  const bool json = bench::has_flag(argc, argv, "--json");
  const bool quick = bench::has_flag(argc, argv, "--quick");
  const bool use_mm = bench::flag_value(argc, argv, "--op", "matmul") == "mm";
  const int threads = bench::number_flag<int>(argc, argv, "--threads", 0);
  if (threads > 0) set_num_threads(threads);
  init_threads();

  std::vector<Case> cases;
  for (int64_t s : {512, 1024, 2048}) add_with_backward(cases, s, s, s);
  add_with_backward(cases, 65536, 64, 192);
  add_with_backward(cases, 65536, 128, 64);

  if (!json) {
    std::printf("# luna %s vs raw cblas_sgemm (preallocated output); threads=%d; %s\n", use_mm ? "mm" : "matmul",
                get_num_threads(), openblas_get_config());
    std::printf("# ratio = median op / median raw; paired = median of per-round op/raw; allocs = allocator\n"
                "# requests of one op call (1 = its output only: no hidden copy); maxdiff = max |op - raw|\n");
    std::printf("%-24s %-9s %6s %6s %6s %10s %10s %7s %7s %9s %7s %8s\n", "shape", "layout", "m", "n", "k", "op_ms",
                "raw_ms", "ratio", "paired", "op_GF/s", "allocs", "maxdiff");
  }
  for (const Case& c : cases) {
    const Result r = run_case(c, use_mm, quick);
    const double gflops = 2.0 * double(c.m) * double(c.n) * double(c.k) / (r.op_ms * 1e6);
    const double ratio = r.op_ms / r.raw_ms;
    if (json) {
      std::printf(
          "{\"bench\":\"matmul\",\"op\":\"%s\",\"shape\":\"%s\",\"layout\":\"%s\",\"m\":%lld,\"n\":%lld,\"k\":%lld,"
          "\"trans_a\":%s,\"trans_b\":%s,\"threads\":%d,\"op_ms\":%.4f,\"raw_ms\":%.4f,\"ratio\":%.4f,"
          "\"paired_ratio\":%.4f,"
          "\"op_gflops\":%.2f,\"allocs_per_op\":%llu,\"max_abs_diff\":%.3g}\n",
          use_mm ? "mm" : "matmul", c.shape.c_str(), c.layout.c_str(), (long long)c.m, (long long)c.n,
          (long long)c.k, c.trans_a ? "true" : "false", c.trans_b ? "true" : "false", get_num_threads(), r.op_ms,
          r.raw_ms, ratio, r.paired_ratio, gflops, (unsigned long long)r.allocs_per_op, r.max_abs_diff);
    } else {
      std::printf("%-24s %-9s %6lld %6lld %6lld %10.3f %10.3f %7.3f %7.3f %9.1f %7llu %8.2g\n", c.shape.c_str(),
                  c.layout.c_str(), (long long)c.m, (long long)c.n, (long long)c.k, r.op_ms, r.raw_ms, ratio,
                  r.paired_ratio, gflops, (unsigned long long)r.allocs_per_op, r.max_abs_diff);
    }
    std::fflush(stdout);
  }
  return 0;
}
