// Attention kinds side by side (issue 4, item 6): forward and forward+backward time and the peak
// memory of one forward+backward, for every kind of spec/LUNA.md on per-head inputs
// q, k, v (B, H, N, d). Only the attention itself is timed: feature maps and the attention op,
// not the q/k/v/out projections, which every kind shares.
//
//   bench_attention [--json] [--threads=N] [--reps=R] [--kinds=luna,performer,...] [--max-n=N]
//                   [--skip-scaling] [--skip-batch]
//
// Shapes: B=1, H=2, d=32 for N = 256 … 16384 (scaling), and B=32, H=2, N=2048, d=32 (batch).
// LUNA runs M=32, L=4, Hψ=64 (128 features, ReLU ψ: the exact piecewise-linear path; luna-gelu and
// luna-silu, on request, the same with that ψ activation through the direct ψ kernel); performer
// m=128; elu d=32 features; cosformer and hedgehog 2d=64; softmax is exact (features reported 0).
//
// Measured per shape and kind:
//   fwd_ms      forward with autograd recording, as in training; median over rounds
//   fwd_bwd_ms  forward + backward of the output with a fixed random gradient, down to q, k, v and
//               the feature-map parameters; median over rounds
//   fwd_bwd_cpu_ms  the same in process CPU time (all threads). On a shared machine wall time grows
//               with other tenants' load while CPU time barely does, so the scaling target (a ratio
//               across shapes measured minutes apart) is also reported on CPU time
//   peak_bytes  the caching allocator's peak of live bytes during one forward+backward, minus what
//               was live before it (inputs and parameters): the memory the call itself needed
// Within one shape the kinds are timed in interleaved rounds (the order rotates every round) so that
// load from other tenants hits all kinds alike; the ratios printed at the end are medians of
// per-round ratios.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <functional>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include <luna/luna.h>
#include <luna/ops/attention.h>

#include "bench_timing.h"

namespace {
using namespace luna;

const std::vector<std::string> kAllKinds = {"softmax", "luna", "elu", "performer", "cosformer", "hedgehog"};
// LUNA with a smooth ψ activation (the direct ψ kernel, no exact table path): on request only.
const std::vector<std::string> kExtraKinds = {"luna-gelu", "luna-silu"};

struct Shape {
  int64_t B, H, N, d;
};

// One attention kind bound to its inputs and parameters, ready to run.
struct Problem {
  std::string kind;
  int64_t features = 0;
  std::function<Tensor()> forward;  // the attention output (B, H, N, d)
  std::vector<Tensor> leaves;        // everything whose gradient the backward computes
};

Problem make_problem(const std::string& kind, const Shape& s, const Tensor& q, const Tensor& k, const Tensor& v,
                     Generator& gen) {
  Problem p;
  p.kind = kind;
  p.leaves = {q, k, v};
  if (kind == "softmax") {
    p.forward = [=] { return scaled_dot_product_attention(q, k, v); };
  } else if (kind == "luna" || kind == "luna-gelu" || kind == "luna-silu") {
    LunaFeatureMapOptions options;  // spec defaults: M=32, L=4, Hψ=64, relu, per_channel
    if (kind != "luna") options.activation = kind.substr(5);
    const LunaFeatureMapParams params = luna_feature_map_init(s.d, s.H, options, {}, &gen);
    p.features = options.num_projections * options.channels;
    p.forward = [=] { return luna_attention(q, k, v, params, options); };
    for (const Tensor& t : {params.proj_weight, params.proj_bias, params.fc1_weight, params.fc1_bias,
                            params.fc2_weight, params.fc2_bias})
      p.leaves.push_back(t);
  } else if (kind == "elu") {
    p.features = s.d;
    p.forward = [=] { return linear_attention(elu(q) + 1.0, elu(k) + 1.0, v); };
  } else if (kind == "performer") {
    const Tensor omega = orthogonal_random_features(128, s.d, &gen);  // (m, d), fixed: no gradient
    p.features = 128;
    p.forward = [=] { return performer_attention(q, k, v, omega); };
  } else if (kind == "cosformer") {
    p.features = 2 * s.d;
    p.forward = [=] { return cosformer_attention(q, k, v); };
  } else if (kind == "hedgehog") {
    // Hedgehog's initialisation: W the identity per head, b zero.
    const Tensor weight = eye(s.d).unsqueeze(0).expand({s.H, s.d, s.d}).contiguous().requires_grad_(true);
    const Tensor bias = zeros({s.H, s.d}).requires_grad_(true);
    p.features = 2 * s.d;
    p.forward = [=] {
      return linear_attention(hedgehog_feature_map(q, weight, bias), hedgehog_feature_map(k, weight, bias), v);
    };
    p.leaves.push_back(weight);
    p.leaves.push_back(bias);
  } else {
    LUNA_FAIL("bench_attention: unknown kind '", kind, "'");
  }
  return p;
}

struct Row {
  std::string kind;
  Shape shape;
  int64_t features;
  double fwd_ms, fwd_bwd_ms;
  int64_t peak_bytes;
  double fwd_bwd_cpu_ms = 0;
  std::vector<double> fwd_bwd_rounds;  // per-round times, for paired ratios
};

double cpu_ms() {
  timespec t;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return double(t.tv_sec) * 1e3 + double(t.tv_nsec) / 1e6;
}

void clear_grads(const std::vector<Tensor>& leaves) {
  for (const Tensor& t : leaves) t.set_grad(Tensor());
}

// Peak live bytes of one forward+backward above what was live before it.
int64_t measure_peak(const Problem& p, const Tensor& grad_out) {
  clear_grads(p.leaves);
  const int64_t before = int64_t(memory_stats().bytes_in_use);
  reset_peak_memory_stats();
  {
    Tensor out = p.forward();
    out.backward(grad_out);
  }
  const int64_t peak = int64_t(memory_stats().peak_bytes_in_use);
  clear_grads(p.leaves);
  return peak - before;
}

std::vector<Row> run_shape(const Shape& s, const std::vector<std::string>& kinds, int reps) {
  Generator gen(2024);
  const Tensor q = randn({s.B, s.H, s.N, s.d}, {}, &gen).requires_grad_(true);
  const Tensor k = randn({s.B, s.H, s.N, s.d}, {}, &gen).requires_grad_(true);
  const Tensor v = randn({s.B, s.H, s.N, s.d}, {}, &gen).requires_grad_(true);
  const Tensor grad_out = randn({s.B, s.H, s.N, s.d}, {}, &gen);

  std::vector<Problem> problems;
  for (const std::string& kind : kinds) problems.push_back(make_problem(kind, s, q, k, v, gen));

  std::vector<Row> rows;
  for (const Problem& p : problems) rows.push_back({p.kind, s, p.features, 0, 0, measure_peak(p, grad_out), {}});

  std::vector<std::function<void()>> forward_fns, training_fns;
  for (const Problem& p : problems) {
    forward_fns.push_back([&p] { Tensor out = p.forward(); });
    training_fns.push_back([&p, &grad_out] {
      clear_grads(p.leaves);
      Tensor out = p.forward();
      out.backward(grad_out);
    });
  }
  const auto forward_times = bench::interleaved_times(forward_fns, 1, reps);
  // Training rounds record CPU time next to wall time.
  std::vector<std::vector<double>> training_cpu(training_fns.size());
  std::vector<std::function<void()>> training_with_cpu;
  for (size_t i = 0; i < training_fns.size(); ++i)
    training_with_cpu.push_back([&, i] {
      const double start = cpu_ms();
      training_fns[i]();
      training_cpu[i].push_back(cpu_ms() - start);
    });
  const auto training_times = bench::interleaved_times(training_with_cpu, 1, reps);
  for (size_t i = 0; i < rows.size(); ++i) {
    rows[i].fwd_ms = bench::median(forward_times[i]);
    rows[i].fwd_bwd_ms = bench::median(training_times[i]);
    rows[i].fwd_bwd_rounds = training_times[i];
    // The warm-up round is the first CPU sample.
    rows[i].fwd_bwd_cpu_ms =
        bench::median(std::vector<double>(training_cpu[i].begin() + 1, training_cpu[i].end()));
    clear_grads(problems[i].leaves);
  }
  return rows;
}

void print_row(const Row& r, bool json) {
  if (json) {
    std::printf("{\"kind\": \"%s\", \"B\": %lld, \"H\": %lld, \"N\": %lld, \"d\": %lld, \"features\": %lld, "
                "\"fwd_ms\": %.3f, \"fwd_bwd_ms\": %.3f, \"fwd_bwd_cpu_ms\": %.3f, \"peak_bytes\": %lld}\n",
                r.kind.c_str(), (long long)r.shape.B, (long long)r.shape.H, (long long)r.shape.N,
                (long long)r.shape.d, (long long)r.features, r.fwd_ms, r.fwd_bwd_ms, r.fwd_bwd_cpu_ms,
                (long long)r.peak_bytes);
  } else {
    std::printf("%-10s %4lld %3lld %6lld %4lld %8lld %11.2f %11.2f %11.2f %12.1f\n", r.kind.c_str(),
                (long long)r.shape.B, (long long)r.shape.H, (long long)r.shape.N, (long long)r.shape.d,
                (long long)r.features, r.fwd_ms, r.fwd_bwd_ms, r.fwd_bwd_cpu_ms, double(r.peak_bytes) / (1 << 20));
  }
  std::fflush(stdout);
}

const Row* find(const std::vector<Row>& rows, const std::string& kind, int64_t B, int64_t N) {
  for (const Row& r : rows)
    if (r.kind == kind && r.shape.B == B && r.shape.N == N) return &r;
  return nullptr;
}

std::vector<std::string> split(const std::string& list) {
  std::vector<std::string> out;
  std::stringstream in(list);
  for (std::string item; std::getline(in, item, ',');)
    if (!item.empty()) out.push_back(item);
  return out;
}

// The target figures of issue 4, from the rows of this run. `prefix` starts each line ("# " in
// JSON mode, so a JSON reader can skip them).
void print_summary(const std::vector<Row>& rows, const char* prefix) {
  const Row* small = find(rows, "luna", 1, 1024);
  const Row* large = find(rows, "luna", 1, 16384);
  if (small && large)
    std::printf("%sLUNA B=1 N=16384 vs N=1024 (16x the tokens): fwd+bwd wall time x%.2f, CPU time x%.2f (target "
                "<= 18), peak memory x%.2f (target <= 18)\n",
                prefix, large->fwd_bwd_ms / small->fwd_bwd_ms, large->fwd_bwd_cpu_ms / small->fwd_bwd_cpu_ms,
                double(large->peak_bytes) / double(small->peak_bytes));
  const Row* luna = find(rows, "luna", 32, 2048);
  for (const char* other : {"performer", "elu", "softmax", "cosformer", "hedgehog"}) {
    const Row* o = find(rows, other, 32, 2048);
    if (luna && o)
      std::printf("%sB=32 N=2048: LUNA fwd+bwd / %s = %.2f (median of per-round ratios; of medians %.2f)%s\n", prefix,
                  other, bench::median_paired_ratio(luna->fwd_bwd_rounds, o->fwd_bwd_rounds),
                  luna->fwd_bwd_ms / o->fwd_bwd_ms,
                  std::string(other) == "performer" ? " (target <= 1.25)" : "");
  }
  // Crossover: the shortest measured N at B=1 from which softmax stays slower than LUNA.
  int64_t crossover = -1;
  for (auto it = rows.rbegin(); it != rows.rend(); ++it) {
    if (it->kind != "softmax" || it->shape.B != 1) continue;
    const Row* l = find(rows, "luna", 1, it->shape.N);
    if (!l) continue;
    if (it->fwd_bwd_ms > l->fwd_bwd_ms) crossover = it->shape.N;
    else break;
  }
  if (find(rows, "softmax", 1, 256) && find(rows, "luna", 1, 256)) {
    if (crossover > 0)
      std::printf("%sSoftmax/LUNA crossover (B=1, H=2, d=32, fwd+bwd): LUNA is faster from N = %lld on\n", prefix,
                  (long long)crossover);
    else
      std::printf("%sSoftmax/LUNA crossover: softmax was faster at every measured N\n", prefix);
  }
}

}  // namespace

int main(int argc, char** argv) {
  using namespace luna;
  if (bench::has_flag(argc, argv, "--help")) {
    std::printf("usage: bench_attention [--json] [--threads=N] [--reps=R] [--kinds=a,b,...] [--max-n=N]\n"
                "                       [--skip-scaling] [--skip-batch]\n"
                "kinds: softmax, luna, elu, performer, cosformer, hedgehog (default: all of these);\n"
                "       luna-gelu, luna-silu (LUNA with that psi activation) on request\n");
    return 0;
  }
  const bool json = bench::has_flag(argc, argv, "--json");
  try {
    const int threads = bench::number_flag<int>(argc, argv, "--threads", 2);
    const int reps = bench::number_flag<int>(argc, argv, "--reps", 5);
    const int64_t max_n = bench::number_flag<int64_t>(argc, argv, "--max-n", 16384);
    std::vector<std::string> kinds = split(bench::flag_value(argc, argv, "--kinds", ""));
    if (kinds.empty()) kinds = kAllKinds;
    for (const std::string& kind : kinds)
      LUNA_CHECK(std::find(kAllKinds.begin(), kAllKinds.end(), kind) != kAllKinds.end() ||
                     std::find(kExtraKinds.begin(), kExtraKinds.end(), kind) != kExtraKinds.end(),
                 "bench_attention: unknown kind '", kind, "' in --kinds");
    LUNA_CHECK(threads > 0 && reps > 0, "bench_attention: --threads and --reps must be positive");
    set_num_threads(threads);

    if (!json)
      std::printf("# threads=%d reps=%d\n%-10s %4s %3s %6s %4s %8s %11s %11s %11s %12s\n", threads, reps, "kind", "B",
                  "H", "N", "d", "features", "fwd_ms", "fwd_bwd_ms", "f+b_cpu_ms", "peak_MiB");
    std::vector<Row> all;
    if (!bench::has_flag(argc, argv, "--skip-scaling")) {
      for (int64_t N = 256; N <= max_n; N *= 2) {
        for (Row& r : run_shape({1, 2, N, 32}, kinds, reps)) {
          print_row(r, json);
          all.push_back(std::move(r));
        }
      }
    }
    if (!bench::has_flag(argc, argv, "--skip-batch")) {
      for (Row& r : run_shape({32, 2, 2048, 32}, kinds, reps)) {
        print_row(r, json);
        all.push_back(std::move(r));
      }
    }
    print_summary(all, json ? "# " : "");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_attention: %s\n", e.what());
    return 1;
  }
  return 0;
}
