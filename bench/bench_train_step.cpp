// One LUNA training step of the LRA ListOps classifier at the skyformer shapes (issue 5, item 8):
// its time against its FLOP floor (the step's GEMM FLOPs over the cblas_sgemm rate measured in the
// same run), its CPU time, and its peak memory (allocator peak and resident-set growth).
//
//   bench_train_step [--json] [--threads=N] [--reps=R] [--batch=B] [--pause-ms=P] [--breakdown]
//
// The model is built exactly as `train_lra --task listops --protocol skyformer --attention luna`
// builds it (apps/train_lra/trainer.cpp build_model with the skyformer preset of config.cpp):
// vocab 18, 10 classes, max_len 2048, dim 64, depth 2, heads 2, ffn 128, head_hidden 128, pre-LN
// with a final norm, GELU, dropout 0.1, mean pooling, learned positions; LUNA M=32, L=4, Hψ=64,
// ReLU ψ, per_channel (128 features); AdamW lr 1e-4, betas (0.9, 0.999), eps 1e-6, weight decay 0.
// The batch is B (default 32) deterministic sequences of N = 2048 real tokens: no padding, so every
// position does work and the FLOP count below is exact for the GEMMs.
//
// One step = zero_grad, forward, cross_entropy, backward, AdamW step, as in train_lra's loop.
// Measured:
//   step_ms, step_cpu_ms   median wall and process CPU time (all threads) over --reps rounds
//   sgemm_gflops           cblas_sgemm on 2048³ square matrices, timed in the same rounds as the
//                          step (interleaved, order rotating: bench_timing.h) so load hits both alike
//   replay                 every GEMM of one step (forward and both backward products) issued as
//                          raw cblas_sgemm calls at the step's own shapes, also interleaved: the
//                          rate those shapes reach, for reference (thin GEMMs run slower than 2048³)
//   floor_ms = gemm_flops / sgemm rate; ratio = step_ms / floor_ms (target <= 2 at B = 32)
//   Each timed call follows an untimed pause of --pause-ms (default 300): OpenBLAS's pthreads
//   workers spin for about 100 ms of CPU after every call, and on a 2-core machine a step timed
//   right after the sgemm rounds would share its cores with them.
//   allocator_peak_bytes   the caching allocator's peak of live bytes during one step above what
//                          was live before it (parameters, optimizer state, the batch), as in
//                          bench_attention
//   rss_growth_bytes       peak resident set during the process's first step minus the resident
//                          set just before it: the same method bench/train_step_torch.py uses for
//                          PyTorch (which keeps no allocator statistics on CPU), so the two compare
// --breakdown then runs --reps more steps under autograd's op profile (autograd/profiler.h) and
// prints the time per step of every forward op, backward node and optimizer phase.
#include <cblas.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include <luna/autograd/profiler.h>
#include <luna/luna.h>

#include "bench_timing.h"

namespace {
using namespace luna;

// The skyformer ListOps model (spec/LRA.md; apps/train_lra/config.cpp skyformer_row).
constexpr int64_t kVocab = data::kListOpsVocabSize;  // 18
constexpr int64_t kClasses = 10;
constexpr int64_t kMaxLen = 2048;
constexpr int64_t kDim = 64, kDepth = 2, kHeads = 2, kFfn = 128, kHeadHidden = 128;

double cpu_ms() {
  timespec t;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return double(t.tv_sec) * 1e3 + double(t.tv_nsec) / 1e6;
}

int64_t resident_bytes() {
  std::ifstream statm("/proc/self/statm");
  int64_t size_pages = 0, resident_pages = 0;
  statm >> size_pages >> resident_pages;
  return resident_pages * int64_t(sysconf(_SC_PAGESIZE));
}

int64_t peak_resident_bytes() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return int64_t(usage.ru_maxrss) * 1024;
}

// ---- the FLOP count
//
// One matrix product of the forward, C (m, n) = A (m, k) · B (k, n), `batch` times. Its backward
// runs two products of the same size, dA = dC · Bᵀ and dB = Aᵀ · dC, so each costs 3 · 2mnk per step.
// (Every A here needs its gradient: the first layer's input comes from the trainable embeddings.)
struct Product {
  std::string component;
  int64_t batch, m, n, k;
  bool trans_a, trans_b;  // the forward layout luna uses (row-major storage)
  double forward_flops() const { return 2.0 * double(batch) * double(m) * double(n) * double(k); }
};

// Every matrix product of one forward of the classifier, per layer (T = B·N tokens, D = 64,
// H = 2 heads of d = 32, M = 32 projections, F = M·L = 128 features):
//   q, k, v, out projections  4 × (T, D) · (D, D)             Linear: x Wᵀ, W stored (out, in)
//   FFN                       (T, D) · (D, ffn), (T, ffn) · (ffn, D)
//   LUNA projections u = Wx+b on q and on k: 2 × (T·H, d) · (d, M)
//   S = φ(k)ᵀ v               B·H × (F, N) · (N, d)
//   φ(q)ᵀ S                   B·H × (N, F) · (F, d)
//   φ(q)ᵀ z (denominator)     B·H × (N, F) · (F, 1)
// and once: the head MLP (B, D) · (D, 128), (B, 128) · (128, classes).
// At B=32, N=2048 that is 14.03 GFLOP forward, 42.08 GFLOP per step. luna's linear_attention runs
// S with z, and φ(q)ᵀS with φ(q)ᵀz, as one product each on [v, 1] (d+1 columns), so it does
// 2·B·H·N·F more per S product than counted here (0.2 GFLOP per step): the count is the spec's.
// Left out (not matrix products; memory-bound, listed by element count in the output): ψ (a table
// lookup and one multiply-add per scalar on the ReLU fast path), z = Σ φ(k) (B·H·N·F adds), bias
// adds, layer norms, GELU, dropout, residual adds, mean pooling, cross-entropy and AdamW.
std::vector<Product> step_products(int64_t B, int64_t N, const LunaFeatureMapOptions& luna) {
  const int64_t T = B * N, D = kDim, H = kHeads, d = kDim / kHeads, M = luna.num_projections;
  const int64_t F = luna.num_projections * luna.channels;
  std::vector<Product> products;
  for (int64_t layer = 0; layer < kDepth; ++layer) {
    for (int i = 0; i < 4; ++i) products.push_back({"q/k/v/out projections", 1, T, D, D, false, true});
    products.push_back({"FFN", 1, T, kFfn, D, false, true});
    products.push_back({"FFN", 1, T, D, kFfn, false, true});
    for (int i = 0; i < 2; ++i) products.push_back({"LUNA projections u = Wx+b", 1, T * H, M, d, false, true});
    products.push_back({"linear attention S = phi(k)^T v", B * H, F, d, N, true, false});
    products.push_back({"linear attention phi(q)^T S", B * H, N, d, F, false, false});
    products.push_back({"linear attention phi(q)^T z", B * H, N, 1, F, false, false});
  }
  products.push_back({"head MLP", 1, B, kHeadHidden, kDim, false, true});
  products.push_back({"head MLP", 1, B, kClasses, kHeadHidden, false, true});
  return products;
}

// ---- raw GEMMs

// One cblas_sgemm call, row-major: C (m, n) = op(A) · op(B), `batch` times over consecutive blocks.
struct RawGemm {
  int64_t batch, m, n, k;
  bool trans_a, trans_b;
  void run(const float* a, const float* b, float* c) const {
    const blasint lda = blasint(trans_a ? m : k), ldb = blasint(trans_b ? k : n), ldc = blasint(n);
    for (int64_t i = 0; i < batch; ++i)
      cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, blasint(m),
                  blasint(n), blasint(k), 1.0f, a + i * m * k, lda, b + i * k * n, ldb, 0.0f, c + i * m * n, ldc);
  }
  double flops() const { return 2.0 * double(batch) * double(m) * double(n) * double(k); }
};

// The three GEMMs a product costs in a training step: the forward, dA = dC·Bᵀ (m, k) and
// dB = Aᵀ·dC (k, n), each in the layout a row-major backward hands to BLAS.
std::vector<RawGemm> training_gemms(const Product& p) {
  return {{p.batch, p.m, p.n, p.k, p.trans_a, p.trans_b},
          {p.batch, p.m, p.k, p.n, false, !p.trans_b},
          {p.batch, p.k, p.n, p.m, !p.trans_a, false}};
}

// Buffers big enough for any operand of the replay, filled with small values (no denormals).
struct GemmBuffers {
  std::vector<float> a, b, c;
  explicit GemmBuffers(int64_t elements)
      : a(size_t(elements), 0.01f), b(size_t(elements), 0.02f), c(size_t(elements), 0.0f) {}
};

int64_t largest_operand(const std::vector<Product>& products) {
  int64_t largest = 0;
  for (const Product& p : products)
    largest = std::max({largest, p.batch * p.m * p.k, p.batch * p.k * p.n, p.batch * p.m * p.n});
  return largest;
}

// ---- the step

struct StepFigures {
  double step_ms = 0, step_cpu_ms = 0, sgemm_gflops = 0, replay_ms = 0, replay_gflops = 0;
  double paired_ratio = 0;  // median over rounds of step / (gemm_flops / that round's sgemm rate)
  int64_t allocator_peak_bytes = 0, allocator_peak_total_bytes = 0, rss_before_bytes = 0, rss_growth_bytes = 0;
  int64_t peak_rss_bytes = 0;
  double loss = 0;
  std::vector<std::pair<std::string, double>> replay_component_ms;  // median per component
};

std::vector<int64_t> deterministic_tokens(int64_t B, int64_t N) {
  // Ids 3..17: digits and operators, never padding (0), unk (1) or CLS (2).
  std::vector<int64_t> tokens(size_t(B * N));
  for (int64_t b = 0; b < B; ++b)
    for (int64_t i = 0; i < N; ++i) tokens[size_t(b * N + i)] = 3 + (7 * b + 3 * i + i * i) % (kVocab - 3);
  return tokens;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace luna;
  if (bench::has_flag(argc, argv, "--help")) {
    std::printf("usage: bench_train_step [--json] [--threads=N] [--reps=R] [--batch=B] [--pause-ms=P] [--breakdown]\n");
    return 0;
  }
  const bool json = bench::has_flag(argc, argv, "--json");
  try {
    const int threads = bench::number_flag<int>(argc, argv, "--threads", 2);
    const int reps = bench::number_flag<int>(argc, argv, "--reps", 7);
    const int64_t B = bench::number_flag<int64_t>(argc, argv, "--batch", 32);
    const double pause_ms = bench::number_flag<double>(argc, argv, "--pause-ms", 300);
    const int64_t N = kMaxLen;
    LUNA_CHECK(threads > 0 && reps > 0 && B > 0, "--threads (", threads, "), --reps (", reps,
               ") and --batch (", B, ") must be positive");
    LUNA_CHECK(pause_ms >= 0, "--pause-ms must not be negative, got ", pause_ms);
    set_num_threads(threads);
    init_threads();

    // ---- the model and optimizer, as train_lra builds them (seed 0)
    manual_seed(0);
    const LunaFeatureMapOptions luna_options;  // M=32, L=4, Hψ=64, relu, per_channel: train_lra's defaults
    auto options = models::LraClassifierOptions(kVocab, kClasses, kMaxLen)
                       .dim(kDim)
                       .depth(kDepth)
                       .heads(kHeads)
                       .ffn_dim(kFfn)
                       .head_hidden(kHeadHidden)
                       .dropout(0.1)
                       .attention("luna")
                       .luna(luna_options)
                       .performer_features(128)
                       .performer_redraw_interval(1000)
                       .pooling("mean")
                       .positions("learned")
                       .padding_idx(data::kPadId)
                       .dual(false)
                       .interaction("concat4");
    models::LraClassifier model(options);
    model->train();
    const std::vector<Tensor> params = model->parameters();
    optim::AdamW optimizer(params, optim::AdamWOptions(1e-4).betas({0.9, 0.999}).eps(1e-6).weight_decay(0.0));

    const Tensor tokens = tensor(deterministic_tokens(B, N), {B, N});  // (B, N) int64, no padding
    std::vector<int64_t> label_values;
    for (int64_t b = 0; b < B; ++b) label_values.push_back(b % kClasses);
    const Tensor labels = tensor(label_values, {B});  // (B) int64

    StepFigures fig;
    // The marks charge the phases that are not ops when --breakdown profiles (no-ops otherwise).
    auto train_step_on = [&](const Tensor& step_tokens, const Tensor& step_labels) {
      optimizer.zero_grad();
      autograd::op_profile_mark("step", "zero_grad");
      const Tensor logits = model->forward(step_tokens);  // (B, classes)
      const Tensor loss = cross_entropy(logits, step_labels);
      loss.backward();
      optimizer.step();
      fig.loss = loss.item<double>();
      autograd::op_profile_mark("step", "AdamW");
    };
    auto train_step = [&] { train_step_on(tokens, labels); };

    // ---- the FLOP count
    const std::vector<Product> products = step_products(B, N, luna_options);
    std::vector<std::pair<std::string, double>> component_flops;  // training-step FLOPs per component
    double gemm_flops = 0;
    for (const Product& p : products) {
      const double step_flops = 3.0 * p.forward_flops();
      gemm_flops += step_flops;
      auto it = std::find_if(component_flops.begin(), component_flops.end(),
                             [&](const auto& c) { return c.first == p.component; });
      if (it == component_flops.end()) component_flops.push_back({p.component, step_flops});
      else it->second += step_flops;
    }

    // ---- peak memory of the first step: resident-set growth (comparable with PyTorch's), taken
    // before the GEMM buffers below exist so nothing else raises the high-water mark
    // As on the PyTorch side, one tiny step first (B = 1, N = 16), so thread pools, BLAS buffers and
    // the optimizer state exist before the resident set is read.
    train_step_on(tensor(deterministic_tokens(1, 16), {1, 16}), tensor(std::vector<int64_t>{0}, {1}));
    fig.rss_before_bytes = resident_bytes();
    train_step();
    fig.rss_growth_bytes = peak_resident_bytes() - fig.rss_before_bytes;
    // The allocator's peak during a step in steady state (optimizer state exists from step 1 on).
    train_step();
    optimizer.zero_grad();
    const int64_t live_before = int64_t(memory_stats().bytes_in_use);
    reset_peak_memory_stats();
    train_step();
    fig.allocator_peak_total_bytes = int64_t(memory_stats().peak_bytes_in_use);
    fig.allocator_peak_bytes = fig.allocator_peak_total_bytes - live_before;

    // ---- timing: step, 2048³ sgemm and the GEMM replay in interleaved rounds
    constexpr int64_t kSquare = 2048;
    constexpr int kSquareCalls = 3;  // per round, so the sgemm side is not one short sample
    GemmBuffers square(kSquare * kSquare);
    const RawGemm square_gemm{1, kSquare, kSquare, kSquare, false, false};
    GemmBuffers replay_buffers(largest_operand(products));

    std::vector<std::pair<std::string, std::vector<RawGemm>>> replay;  // GEMMs per component, in order
    for (const Product& p : products) {
      auto it = std::find_if(replay.begin(), replay.end(), [&](const auto& c) { return c.first == p.component; });
      if (it == replay.end()) {
        replay.push_back({p.component, {}});
        it = replay.end() - 1;
      }
      for (const RawGemm& g : training_gemms(p)) it->second.push_back(g);
    }
    std::vector<std::vector<double>> replay_component_times(replay.size());
    std::vector<double> step_cpu;
    const std::vector<std::function<void()>> rounds = {
        [&] {
          const double start = cpu_ms();
          train_step();
          step_cpu.push_back(cpu_ms() - start);
        },
        [&] {
          for (int i = 0; i < kSquareCalls; ++i) square_gemm.run(square.a.data(), square.b.data(), square.c.data());
        },
        [&] {
          for (size_t c = 0; c < replay.size(); ++c) {
            const double start = bench::now_ms();
            for (const RawGemm& g : replay[c].second)
              g.run(replay_buffers.a.data(), replay_buffers.b.data(), replay_buffers.c.data());
            replay_component_times[c].push_back(bench::now_ms() - start);
          }
        }};
    const int warmup = 1;
    const auto times = bench::interleaved_times(rounds, warmup, reps, pause_ms);
    const std::vector<double>& step_times = times[0];
    std::vector<double> sgemm_rates, round_floors;  // per round: GFLOP/s and the floor in ms
    for (double t : times[1]) {
      sgemm_rates.push_back(kSquareCalls * square_gemm.flops() / (t * 1e6));
      round_floors.push_back(gemm_flops / (sgemm_rates.back() * 1e6));
    }
    fig.step_ms = bench::median(step_times);
    fig.step_cpu_ms = bench::median(std::vector<double>(step_cpu.begin() + warmup, step_cpu.end()));
    fig.sgemm_gflops = bench::median(sgemm_rates);
    fig.replay_ms = bench::median(times[2]);
    fig.replay_gflops = gemm_flops / (fig.replay_ms * 1e6);
    fig.paired_ratio = bench::median_paired_ratio(step_times, round_floors);
    for (size_t c = 0; c < replay.size(); ++c)
      fig.replay_component_ms.push_back({replay[c].first, bench::median(std::vector<double>(
                                                              replay_component_times[c].begin() + warmup,
                                                              replay_component_times[c].end()))});
    fig.peak_rss_bytes = peak_resident_bytes();

    const double floor_ms = gemm_flops / (fig.sgemm_gflops * 1e6);
    const double ratio = fig.step_ms / floor_ms;
    // Element counts of the work outside the count (per step, forward; backward touches each again).
    const int64_t T = B * N, F = luna_options.num_projections * luna_options.channels;
    const double psi_outputs = double(kDepth) * 2.0 * double(T * kHeads * F);  // ψ_ℓ(u_i) for q and k
    double load[1] = {0};
    getloadavg(load, 1);

    if (json) {
      std::printf("{\"bench\": \"train_step\", \"model\": \"lra listops skyformer luna\", \"B\": %lld, \"N\": %lld, "
                  "\"threads\": %d, \"reps\": %d, \"gemm_flops\": %.0f, \"step_ms\": %.3f, \"step_cpu_ms\": %.3f, "
                  "\"sgemm_gflops\": %.2f, \"floor_ms\": %.3f, \"ratio\": %.3f, \"paired_ratio\": %.3f, "
                  "\"replay_ms\": %.3f, \"replay_gflops\": %.2f, \"allocator_peak_bytes\": %lld, "
                  "\"allocator_peak_total_bytes\": %lld, \"rss_growth_bytes\": %lld, \"peak_rss_bytes\": %lld, "
                  "\"loss\": %.6f, \"loadavg\": %.2f, \"components\": {",
                  (long long)B, (long long)N, threads, reps, gemm_flops, fig.step_ms, fig.step_cpu_ms,
                  fig.sgemm_gflops, floor_ms, ratio, fig.paired_ratio, fig.replay_ms, fig.replay_gflops,
                  (long long)fig.allocator_peak_bytes, (long long)fig.allocator_peak_total_bytes,
                  (long long)fig.rss_growth_bytes, (long long)fig.peak_rss_bytes, fig.loss, load[0]);
      for (size_t c = 0; c < component_flops.size(); ++c)
        std::printf("%s\"%s\": {\"flops\": %.0f, \"replay_ms\": %.3f}", c ? ", " : "", component_flops[c].first.c_str(),
                    component_flops[c].second, fig.replay_component_ms[c].second);
      std::printf("}}\n");
      return 0;
    }

    std::printf("# one training step of the LRA ListOps classifier (skyformer: dim %lld, depth %lld, heads %lld, "
                "ffn %lld), LUNA M=%lld L=%lld Hpsi=%lld %s %s\n",
                (long long)kDim, (long long)kDepth, (long long)kHeads, (long long)kFfn,
                (long long)luna_options.num_projections, (long long)luna_options.channels,
                (long long)luna_options.hidden, luna_options.activation.c_str(), luna_options.layout.c_str());
    std::printf("# B=%lld N=%lld (all real tokens, no padding), threads=%d, %d rounds after %d warm-up, load "
                "average %.2f\n",
                (long long)B, (long long)N, threads, reps, warmup, load[0]);
    std::printf("\nGEMM FLOPs of one step (forward + both backward products = 3x forward):\n");
    std::printf("  %-34s %14s %10s %12s %9s\n", "component", "FLOPs", "GFLOP", "replay ms", "GFLOP/s");
    for (size_t c = 0; c < component_flops.size(); ++c) {
      const double ms = fig.replay_component_ms[c].second;
      std::printf("  %-34s %14.0f %10.3f %12.2f %9.1f\n", component_flops[c].first.c_str(), component_flops[c].second,
                  component_flops[c].second / 1e9, ms, component_flops[c].second / (ms * 1e6));
    }
    std::printf("  %-34s %14.0f %10.3f %12.2f %9.1f\n", "total", gemm_flops, gemm_flops / 1e9, fig.replay_ms,
                fig.replay_gflops);
    std::printf("  not counted (memory-bound, per step forward): %.1fM psi outputs, z = sum phi(k) over %.1fM "
                "elements, elementwise ops on (T, D) = %.1fM-element tensors\n",
                psi_outputs / 1e6, psi_outputs / 2e6, double(T * kDim) / 1e6);
    std::printf("\nstep (zero_grad, forward, cross_entropy, backward, AdamW): %.1f ms median wall, %.1f ms CPU "
                "(loss %.4f)\n",
                fig.step_ms, fig.step_cpu_ms, fig.loss);
    std::printf("sgemm 2048^3: %.1f GFLOP/s (median of the interleaved rounds)\n", fig.sgemm_gflops);
    std::printf("step's GEMMs replayed as raw cblas_sgemm at their own shapes: %.1f ms, %.1f GFLOP/s\n", fig.replay_ms,
                fig.replay_gflops);
    std::printf("floor = %.3f GFLOP / %.1f GFLOP/s = %.1f ms; step / floor = %.2f (median of per-round ratios %.2f)"
                "%s\n",
                gemm_flops / 1e9, fig.sgemm_gflops, floor_ms, ratio, fig.paired_ratio,
                B == 32 ? " (target <= 2)" : "");
    std::printf("memory: allocator peak %.1f MiB during a step above the %.1f MiB live before it; resident-set "
                "growth of the first step %.1f MiB (from %.1f MiB); process peak RSS %.1f MiB (incl. the sgemm "
                "buffers)\n",
                double(fig.allocator_peak_bytes) / (1 << 20), double(live_before) / (1 << 20),
                double(fig.rss_growth_bytes) / (1 << 20), double(fig.rss_before_bytes) / (1 << 20),
                double(fig.peak_rss_bytes) / (1 << 20));
    if (bench::has_flag(argc, argv, "--breakdown")) {
      // Per-op time of `reps` more steps (1 thread gives the plainest attribution: with more, the
      // process CPU time of each op includes its helper threads' time).
      autograd::start_op_profile();
      for (int r = 0; r < reps; ++r) train_step();
      const std::vector<autograd::OpTime> ops = autograd::stop_op_profile();
      double cpu_total = 0, wall_total = 0;
      for (const autograd::OpTime& t : ops) cpu_total += t.cpu_ms, wall_total += t.wall_ms;
      std::printf("\nbreakdown over %d steps (per step; forward ops include unrecorded work since the previous "
                  "op):\n  %-44s %10s %10s %7s %6s\n",
                  reps, "op", "CPU ms", "wall ms", "share", "calls");
      for (const autograd::OpTime& t : ops)
        std::printf("  %-44s %10.1f %10.1f %6.1f%% %6.1f\n", t.name.c_str(), t.cpu_ms / reps, t.wall_ms / reps,
                    100.0 * t.cpu_ms / cpu_total, double(t.calls) / reps);
      std::printf("  %-44s %10.1f %10.1f\n", "total", cpu_total / reps, wall_total / reps);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_train_step: %s\n", e.what());
    return 1;
  }
  return 0;
}
