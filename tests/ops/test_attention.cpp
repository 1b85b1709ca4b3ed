// Tests of the fused softmax attention op (ops/attention.h): forward and every input gradient
// against a reference composed from matmul / masked_fill / softmax / dropout ops, for masks,
// causal mode, fully masked rows, Nq != Nk, tile-crossing sizes, dropout streams, layouts, memory
// and input errors.
#include "test_util.h"

#include <cmath>
#include <limits>

#include <luna/ops/attention.h>

using namespace luna;
using Catch::Contains;
using luna::testing::require_close;
using luna::testing::values;

namespace {

Tensor random_input(const Dims& shape, uint64_t seed, DType dtype, double scale = 1.0) {
  NoGradGuard no_grad;
  Generator gen(seed);
  Tensor t = ((rand(shape, TensorOptions(kFloat64), &gen) * 2.0 - 1.0) * scale).to(dtype);
  t.requires_grad_(true);
  return t;
}

// softmax(q kᵀ/√d) v composed from differentiable ops; a row with every key blocked gets zero
// weights (the semantics the fused op must reproduce).
Tensor reference_attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& key_padding_mask,
                           bool causal, double dropout_p = 0.0, bool training = false, Generator* gen = nullptr) {
  const int64_t B = q.size(0), Nq = q.size(2), Nk = k.size(2), d = q.size(3);
  const Tensor scores = matmul(q, k.transpose(-2, -1)) * (1.0 / std::sqrt(double(d)));  // (B, H, Nq, Nk)
  Tensor blocked = zeros({B, 1, Nq, Nk}, TensorOptions(kBool));
  if (key_padding_mask.defined()) blocked = logical_or(blocked, key_padding_mask.view({B, 1, 1, Nk}));
  if (causal) {
    const Tensor future = arange(Nk, TensorOptions(kInt64)).view({1, Nk}).gt(arange(Nq, TensorOptions(kInt64)).view({Nq, 1}));
    blocked = logical_or(blocked, future);
  }
  const Tensor count = blocked.sum({-1}, true);
  const Tensor all_keys = full({}, Nk, TensorOptions(kInt64));
  const Tensor fully_blocked = count.eq(all_keys);
  const Tensor effective = logical_and(blocked, count.lt(all_keys));
  Tensor weights = softmax(scores.masked_fill(effective, -std::numeric_limits<double>::infinity()), -1);
  weights = weights.masked_fill(fully_blocked, 0.0);
  return matmul(dropout(weights, dropout_p, training, gen), v);
}

struct Case {
  int64_t B, H, Nq, Nk, d, dv;
  bool masked, causal;
};

// (B, Nk) mask: batch element b has its last (b·Nk/3 + b) keys padded; the last batch element is
// padded entirely when `fully_masked_batch`.
Tensor make_mask(int64_t B, int64_t Nk, bool fully_masked_batch) {
  std::vector<uint8_t> padded(size_t(B * Nk), 0);
  for (int64_t b = 0; b < B; ++b) {
    const int64_t pads = (b == B - 1 && fully_masked_batch) ? Nk : std::min(Nk - 1, b * Nk / 3 + b);
    for (int64_t j = Nk - pads; j < Nk; ++j) padded[size_t(b * Nk + j)] = 1;
  }
  return tensor(padded, {B, Nk}).to(kBool);
}

// Forward and the gradients of q, k, v (through a random projection of the output) of the fused op
// against the reference.
void compare_with_reference(const Case& c, DType dtype, double rtol, double atol, uint64_t seed) {
  const Tensor q = random_input({c.B, c.H, c.Nq, c.d}, seed, dtype, 2.0);
  const Tensor k = random_input({c.B, c.H, c.Nk, c.d}, seed + 1, dtype, 2.0);
  const Tensor v = random_input({c.B, c.H, c.Nk, c.dv}, seed + 2, dtype);
  const Tensor mask = c.masked ? make_mask(c.B, c.Nk, /*fully_masked_batch=*/c.B > 1) : Tensor();
  const Tensor projection = random_input({c.B, c.H, c.Nq, c.dv}, seed + 3, dtype).detach();

  const Tensor fused = scaled_dot_product_attention(q, k, v, mask, c.causal);
  (fused * projection).sum().backward();
  const Tensor fused_q = q.grad(), fused_k = k.grad(), fused_v = v.grad();
  q.set_grad(Tensor());
  k.set_grad(Tensor());
  v.set_grad(Tensor());
  const Tensor reference = reference_attention(q, k, v, mask, c.causal);
  (reference * projection).sum().backward();

  REQUIRE(fused.dtype() == dtype);
  REQUIRE(fused.sizes() == Dims({c.B, c.H, c.Nq, c.dv}));
  require_close(values(fused), values(reference), rtol, atol, "output");
  require_close(values(fused_q), values(q.grad()), rtol, atol, "grad q");
  require_close(values(fused_k), values(k.grad()), rtol, atol, "grad k");
  require_close(values(fused_v), values(v.grad()), rtol, atol, "grad v");
}

}  // namespace

TEST_CASE("scaled_dot_product_attention equals the composed reference, forward and backward", "[ops][attention]") {
  // Small shapes, and shapes crossing the 64-query blocks and 256-key tiles.
  const std::vector<Case> cases = {
      {2, 2, 5, 5, 4, 4, false, false},  {2, 2, 5, 5, 4, 3, true, false},   {2, 2, 6, 6, 4, 4, false, true},
      {3, 2, 7, 7, 3, 5, true, true},     {2, 1, 4, 9, 3, 2, true, false},   {1, 2, 9, 3, 5, 4, false, false},
      {2, 2, 70, 300, 8, 6, true, false}, {1, 2, 140, 140, 8, 8, true, true}, {1, 1, 300, 300, 4, 4, false, true},
      {1, 3, 65, 513, 16, 8, false, false}};
  uint64_t seed = 10;
  for (const Case& c : cases) {
    CAPTURE(c.B, c.H, c.Nq, c.Nk, c.d, c.dv, c.masked, c.causal);
    compare_with_reference(c, kFloat64, 1e-10, 1e-12, seed += 10);
    compare_with_reference(c, kFloat32, 2e-4, 2e-5, seed += 10);
  }
}

TEST_CASE("scaled_dot_product_attention: fully masked rows give zeros, not NaN", "[ops][attention]") {
  const int64_t B = 2, H = 2, N = 6, d = 4;
  const Tensor q = random_input({B, H, N, d}, 1, kFloat32);
  const Tensor k = random_input({B, H, N, d}, 2, kFloat32);
  const Tensor v = random_input({B, H, N, d}, 3, kFloat32);
  // Batch 0: keys 0-1 padded, so with causal the queries 0 and 1 see nothing; batch 1: all padded.
  std::vector<uint8_t> padded(B * N, 0);
  padded[0] = padded[1] = 1;
  for (int64_t j = 0; j < N; ++j) padded[size_t(N + j)] = 1;
  const Tensor mask = tensor(padded, {B, N}).to(kBool);
  const Tensor out = scaled_dot_product_attention(q, k, v, mask, /*causal=*/true);
  out.sum().backward();
  const std::vector<double> o = values(out);
  for (int64_t h = 0; h < H; ++h) {
    for (int64_t i = 0; i < N; ++i)
      for (int64_t c = 0; c < d; ++c) {
        const double value = o[size_t(((0 * H + h) * N + i) * d + c)];
        if (i < 2) REQUIRE(value == 0.0);
        else REQUIRE(value != 0.0);
        REQUIRE(o[size_t(((1 * H + h) * N + i) * d + c)] == 0.0);
      }
  }
  for (const Tensor& g : {q.grad(), k.grad(), v.grad()})
    for (double x : values(g)) REQUIRE(std::isfinite(x));
  // The fully padded batch element gets no gradient at all.
  const std::vector<double> gq = values(q.grad());
  for (size_t i = size_t(H * N * d); i < gq.size(); ++i) REQUIRE(gq[i] == 0.0);
}

TEST_CASE("scaled_dot_product_attention: dropout draws luna::dropout's mask and backward reuses it",
          "[ops][attention]") {
  for (DType dtype : {kFloat64, kFloat32}) {
    for (bool causal : {false, true}) {
      CAPTURE(dtype, causal);
      const int64_t B = 2, H = 2, N = 70, d = 5;
      const Tensor q = random_input({B, H, N, d}, 21, dtype, 2.0);
      const Tensor k = random_input({B, H, N, d}, 22, dtype, 2.0);
      const Tensor v = random_input({B, H, N, d}, 23, dtype);
      const Tensor mask = make_mask(B, N, false);
      const Tensor projection = random_input({B, H, N, d}, 24, dtype).detach();
      Generator fused_gen(77), reference_gen(77);
      const Tensor fused = scaled_dot_product_attention(q, k, v, mask, causal, 0.3, /*training=*/true, &fused_gen);
      (fused * projection).sum().backward();
      const std::vector<double> gq = values(q.grad()), gk = values(k.grad()), gv = values(v.grad());
      q.set_grad(Tensor());
      k.set_grad(Tensor());
      v.set_grad(Tensor());
      const Tensor reference = reference_attention(q, k, v, mask, causal, 0.3, true, &reference_gen);
      (reference * projection).sum().backward();
      const double rtol = dtype == kFloat64 ? 1e-10 : 2e-4, atol = dtype == kFloat64 ? 1e-12 : 2e-5;
      require_close(values(fused), values(reference), rtol, atol, "output");
      require_close(gq, values(q.grad()), rtol, atol, "grad q");
      require_close(gk, values(k.grad()), rtol, atol, "grad k");
      require_close(gv, values(v.grad()), rtol, atol, "grad v");
      REQUIRE(fused_gen.get_state() == reference_gen.get_state());

      // Dropout really drops: without it the output differs; in eval it is the plain attention.
      NoGradGuard no_grad;
      const Tensor plain = scaled_dot_product_attention(q, k, v, mask, causal);
      REQUIRE(values(plain) != values(fused));
      Generator untouched(77);
      require_close(values(scaled_dot_product_attention(q, k, v, mask, causal, 0.3, false, &untouched)),
                    values(plain), 0, 0);
      REQUIRE(untouched.get_state() == Generator(77).get_state());
    }
  }
}

TEST_CASE("scaled_dot_product_attention: head-interleaved inputs are read in place and keep their layout",
          "[ops][attention]") {
  const int64_t B = 2, N = 9, H = 3, d = 4;
  // (B, N, H, d) buffers viewed as (B, H, N, d), as multi-head attention splits heads.
  const Tensor q_bnhd = random_input({B, N, H, d}, 31, kFloat32);
  const Tensor k_bnhd = random_input({B, N, H, d}, 32, kFloat32);
  const Tensor v_bnhd = random_input({B, N, H, d}, 33, kFloat32);
  const Tensor q = q_bnhd.transpose(1, 2), k = k_bnhd.transpose(1, 2), v = v_bnhd.transpose(1, 2);
  const Tensor out = scaled_dot_product_attention(q, k, v, Tensor(), true);
  REQUIRE(!out.is_contiguous());
  REQUIRE(out.transpose(1, 2).is_contiguous());
  const Tensor projection = random_input({B, H, N, d}, 34, kFloat32).detach();
  (out * projection).sum().backward();

  Tensor qc = q.detach().contiguous(), kc = k.detach().contiguous(), vc = v.detach().contiguous();
  for (Tensor* t : {&qc, &kc, &vc}) t->requires_grad_(true);
  const Tensor reference = scaled_dot_product_attention(qc, kc, vc, Tensor(), true);
  REQUIRE(reference.is_contiguous());
  (reference * projection).sum().backward();
  require_close(values(out), values(reference), 1e-6, 1e-7, "output");
  require_close(values(q_bnhd.grad().transpose(1, 2)), values(qc.grad()), 1e-5, 1e-6, "grad q");
  require_close(values(k_bnhd.grad().transpose(1, 2)), values(kc.grad()), 1e-5, 1e-6, "grad k");
  require_close(values(v_bnhd.grad().transpose(1, 2)), values(vc.grad()), 1e-5, 1e-6, "grad v");

  // A transposed last dim is not BLAS-readable: copied, same numbers.
  const Tensor k_transposed = k.detach().contiguous().transpose(2, 3).contiguous().transpose(2, 3);
  require_close(values(scaled_dot_product_attention(q.detach(), k_transposed, v.detach(), Tensor(), true)),
                values(out), 1e-6, 1e-7);
}

TEST_CASE("scaled_dot_product_attention: memory stays O(N·block), never the N×N weights", "[ops][attention]") {
  const int64_t N = 4096, d = 16;
  const Tensor q = random_input({1, 1, N, d}, 41, kFloat32);
  const Tensor k = random_input({1, 1, N, d}, 42, kFloat32);
  const Tensor v = random_input({1, 1, N, d}, 43, kFloat32);
  reset_peak_memory_stats();
  const uint64_t before = memory_stats().bytes_in_use;
  const Tensor out = scaled_dot_product_attention(q, k, v, Tensor(), true);
  out.sum().backward();
  const uint64_t peak = memory_stats().peak_bytes_in_use - before;
  const uint64_t weights_bytes = uint64_t(N) * N * sizeof(float);  // 64 MiB
  CAPTURE(peak, weights_bytes);
  // Output, logsumexp, gradients and a few (N, d) temporaries: well under 1/16 of the weights.
  REQUIRE(peak < weights_bytes / 16);
  for (double x : values(q.grad())) REQUIRE(std::isfinite(x));
}

TEST_CASE("scaled_dot_product_attention is deterministic run to run", "[ops][attention]") {
  const Tensor q = random_input({1, 2, 200, 8}, 51, kFloat32);
  const Tensor k = random_input({1, 2, 200, 8}, 52, kFloat32);
  const Tensor v = random_input({1, 2, 200, 8}, 53, kFloat32);
  std::vector<std::vector<double>> runs;
  for (int run = 0; run < 3; ++run) {
    const Tensor out = scaled_dot_product_attention(q, k, v, Tensor(), run % 2 == 0);
    out.square().sum().backward();
    if (run != 1) runs.push_back(values(k.grad()));
    q.set_grad(Tensor());
    k.set_grad(Tensor());
    v.set_grad(Tensor());
  }
  REQUIRE(runs[0] == runs[1]);
}

TEST_CASE("scaled_dot_product_attention: bad inputs name the problem and the values", "[ops][attention]") {
  const Tensor q = zeros({2, 2, 5, 4}), k = zeros({2, 2, 6, 4}), v = zeros({2, 2, 6, 3});
  REQUIRE_THROWS_WITH(scaled_dot_product_attention(zeros({2, 5, 4}), k, v),
                      Contains("scaled_dot_product_attention") && Contains("query") && Contains("[2,5,4]"));
  REQUIRE_THROWS_WITH(scaled_dot_product_attention(q, zeros({2, 2, 6, 5}), v),
                      Contains("key of shape [2,2,6,5]") && Contains("query of shape [2,2,5,4]"));
  REQUIRE_THROWS_WITH(scaled_dot_product_attention(q, k, zeros({2, 2, 7, 3})),
                      Contains("value of shape [2,2,7,3]") && Contains("[2,2,6,dv]"));
  REQUIRE_THROWS_WITH(scaled_dot_product_attention(q, k.to(kFloat64), v),
                      Contains("dtypes differ") && Contains("float64"));
  REQUIRE_THROWS_WITH(scaled_dot_product_attention(q.to(kInt64), k, v), Contains("float32 or float64") &&
                                                                            Contains("int64"));
  REQUIRE_THROWS_WITH(scaled_dot_product_attention(q, k, v, zeros({2, 6})),
                      Contains("key_padding_mask") && Contains("bool") && Contains("float32"));
  REQUIRE_THROWS_WITH(scaled_dot_product_attention(q, k, v, zeros({2, 5}, TensorOptions(kBool))),
                      Contains("key_padding_mask") && Contains("[2,6]") && Contains("[2,5]"));
  REQUIRE_THROWS_WITH(scaled_dot_product_attention(q, k, v, Tensor(), true),
                      Contains("causal") && Contains("Nq = 5") && Contains("Nk = 6"));
  REQUIRE_THROWS_WITH(scaled_dot_product_attention(q, k, v, Tensor(), false, 1.5, true),
                      Contains("dropout_p") && Contains("1.5"));
}

// ---- the feature maps of the linear baselines ---------------------------------------------------

TEST_CASE("orthogonal_random_features: orthogonal blocks with χ_d row norms", "[ops][attention][performer]") {
  const int64_t d = 16, m = 40;  // blocks of rows [0, 16), [16, 32) and a cut block [32, 40)
  Generator gen(5);
  const Tensor omega = orthogonal_random_features(m, d, &gen, TensorOptions(kFloat64));
  REQUIRE(omega.sizes() == Dims({m, d}));
  REQUIRE(omega.dtype() == kFloat64);
  REQUIRE(!omega.requires_grad());
  const std::vector<double> w = values(omega);
  auto dot = [&](int64_t i, int64_t j) {
    double s = 0;
    for (int64_t c = 0; c < d; ++c) s += w[size_t(i * d + c)] * w[size_t(j * d + c)];
    return s;
  };
  double max_within = 0, max_across = 0;
  std::vector<double> norms;
  for (int64_t i = 0; i < m; ++i) {
    norms.push_back(std::sqrt(dot(i, i)));
    for (int64_t j = 0; j < i; ++j) {
      const double cosine = std::abs(dot(i, j)) / std::sqrt(dot(i, i) * dot(j, j));
      double& worst = i / d == j / d ? max_within : max_across;
      worst = std::max(worst, cosine);
    }
  }
  REQUIRE(max_within < 1e-12);  // rows of one block are orthogonal
  REQUIRE(max_across > 0.2);    // independent blocks are not
  // Norms are χ_16 draws, not all equal (the rescaling happened).
  const double spread = *std::max_element(norms.begin(), norms.end()) - *std::min_element(norms.begin(), norms.end());
  REQUIRE(spread > 0.5);

  // Same seed, same features; another seed, others; float32 is the float64 draw rounded.
  Generator again(5), other(6), as_float(5);
  REQUIRE(values(orthogonal_random_features(m, d, &again, TensorOptions(kFloat64))) == w);
  REQUIRE(values(orthogonal_random_features(m, d, &other, TensorOptions(kFloat64))) != w);
  const Tensor single = orthogonal_random_features(m, d, &as_float);
  REQUIRE(single.dtype() == kFloat32);
  require_close(values(single), w, 1e-6, 1e-6);
  REQUIRE_THROWS_WITH(orthogonal_random_features(0, d), Contains("m = 0"));
  REQUIRE_THROWS_WITH(orthogonal_random_features(4, -1), Contains("d = -1"));
}

TEST_CASE("orthogonal_random_features: squared norms follow χ²_d", "[ops][attention][performer]") {
  const int64_t d = 16, m = 4096;
  Generator gen(8);
  const std::vector<double> w = values(orthogonal_random_features(m, d, &gen, TensorOptions(kFloat64)));
  double mean = 0, mean_square = 0, mean_norm = 0;
  for (int64_t i = 0; i < m; ++i) {
    double s = 0;
    for (int64_t c = 0; c < d; ++c) s += w[size_t(i * d + c)] * w[size_t(i * d + c)];
    mean += s / m;
    mean_square += s * s / m;
    mean_norm += std::sqrt(s) / m;
  }
  const double variance = mean_square - mean * mean;
  // χ²_16: mean 16 (standard error 0.09 here), variance 32; E[χ_16] = √2 Γ(8.5)/Γ(8) = 3.9399.
  CAPTURE(mean, variance, mean_norm);
  REQUIRE(std::abs(mean - 16.0) < 0.4);
  REQUIRE(std::abs(variance - 32.0) < 4.0);
  REQUIRE(std::abs(mean_norm - std::sqrt(2.0) * std::tgamma(8.5) / std::tgamma(8.0)) < 0.03);
}

TEST_CASE("performer_feature_map matches the FAVOR+ formula with its stabilisers", "[ops][attention][performer]") {
  const int64_t B = 2, H = 2, N = 5, d = 4, m = 7;
  Generator gen(3);
  const Tensor omega = orthogonal_random_features(m, d, &gen, TensorOptions(kFloat64));
  const Tensor x = random_input({B, H, N, d}, 61, kFloat64, 1.5).detach();
  const Tensor mask = make_mask(B, N, false);  // batch 1 has its last 2 keys padded
  const std::vector<double> xs = values(x), w = values(omega), padded = values(mask);
  const double scale = std::pow(double(d), -0.25);
  auto logit = [&](int64_t row, int64_t f) {
    double projection = 0, square = 0;
    for (int64_t c = 0; c < d; ++c) {
      const double xc = xs[size_t(row * d + c)] * scale;
      projection += w[size_t(f * d + c)] * xc;
      square += xc * xc;
    }
    return projection - square / 2;
  };
  std::vector<double> want_query(size_t(B * H * N * m)), want_key(want_query.size());
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h) {
      double key_max = -INFINITY;
      for (int64_t n = 0; n < N; ++n)
        for (int64_t f = 0; f < m; ++f)
          if (padded[size_t(b * N + n)] == 0) key_max = std::max(key_max, logit((b * H + h) * N + n, f));
      for (int64_t n = 0; n < N; ++n) {
        const int64_t row = (b * H + h) * N + n;
        double row_max = -INFINITY;
        for (int64_t f = 0; f < m; ++f) row_max = std::max(row_max, logit(row, f));
        for (int64_t f = 0; f < m; ++f) {
          want_query[size_t(row * m + f)] = std::exp(logit(row, f) - row_max) / std::sqrt(double(m));
          want_key[size_t(row * m + f)] = std::exp(logit(row, f) - key_max) / std::sqrt(double(m));
        }
      }
    }
  require_close(values(performer_feature_map(x, omega, true)), want_query, 1e-12, 1e-14, "queries");
  require_close(values(performer_feature_map(x, omega, false, mask)), want_key, 1e-12, 1e-14, "keys");
  // In float32 too.
  require_close(values(performer_feature_map(x.to(kFloat32), omega.to(kFloat32), false, mask)), want_key, 1e-5,
                1e-7, "keys f32");

  REQUIRE_THROWS_WITH(performer_feature_map(x, omega.narrow(1, 0, 3), true),
                      Contains("performer_feature_map") && Contains("[7,3]") && Contains("d = 4"));
  REQUIRE_THROWS_WITH(performer_feature_map(x, omega.to(kFloat32), true), Contains("float32") && Contains("float64"));
  REQUIRE_THROWS_WITH(performer_feature_map(x, omega, false, zeros({B, N})), Contains("key_padding_mask") &&
                                                                                 Contains("bool"));
}

// Mean absolute difference between performer and exact softmax attention, over a few inputs.
double performer_error(int64_t m, uint64_t seed) {
  const int64_t B = 1, H = 2, N = 48, d = 16;
  double total = 0;
  const int trials = 4;
  for (int trial = 0; trial < trials; ++trial) {
    const uint64_t s = seed + uint64_t(trial) * 7;
    const Tensor q = random_input({B, H, N, d}, s, kFloat64, 0.4).detach();  // small norms
    const Tensor k = random_input({B, H, N, d}, s + 1, kFloat64, 0.4).detach();
    const Tensor v = random_input({B, H, N, d}, s + 2, kFloat64).detach();
    Generator gen(s + 3);
    const Tensor omega = orthogonal_random_features(m, d, &gen, TensorOptions(kFloat64));
    const std::vector<double> approx = values(performer_attention(q, k, v, omega));
    const std::vector<double> exact = values(scaled_dot_product_attention(q, k, v));
    for (size_t i = 0; i < exact.size(); ++i) total += std::abs(approx[i] - exact[i]) / double(exact.size() * trials);
  }
  return total;
}

TEST_CASE("performer approximates softmax attention, better with more features", "[ops][attention][performer]") {
  const double few = performer_error(8, 100), many = performer_error(512, 100);
  CAPTURE(few, many);
  // Monte Carlo: the error shrinks like 1/√m, so 64x the features should give well under half.
  REQUIRE(many < 0.4 * few);
  // And it is an approximation of the right thing: outputs are O(0.1-0.5) here.
  REQUIRE(many < 0.01);
}

TEST_CASE("performer_attention: causal outputs ignore later tokens, ε included", "[ops][attention][performer]") {
  const int64_t B = 1, H = 2, N = 12, d = 8, m = 16;
  Generator gen(4);
  const Tensor omega = orthogonal_random_features(m, d, &gen, TensorOptions(kFloat64));
  const Tensor q = random_input({B, H, N, d}, 71, kFloat64).detach();
  const Tensor k = random_input({B, H, N, d}, 72, kFloat64).detach();
  const Tensor v = random_input({B, H, N, d}, 73, kFloat64).detach();
  LinearAttentionOptions causal;
  causal.causal = true;
  causal.eps = 1e-2;  // a large ε would expose any dependence of the products on the key stabiliser
  // The last key is moved to the maximiser of the longest feature's logit (x̂ = ω_f, logit ‖ω_f‖²/2,
  // the largest any input can reach), so the head's key stabiliser rises.
  const std::vector<double> w = values(omega);
  int64_t longest = 0;
  double longest_norm = 0;
  for (int64_t f = 0; f < m; ++f) {
    double norm = 0;
    for (int64_t c = 0; c < d; ++c) norm += w[size_t(f * d + c)] * w[size_t(f * d + c)];
    if (norm > longest_norm) longest_norm = norm, longest = f;
  }
  const Tensor k_changed = k.clone();
  k_changed.narrow(2, N - 1, 1).copy_(omega.narrow(0, longest, 1).view({1, 1, 1, d}).expand({B, H, 1, d}) *
                                      std::pow(double(d), 0.25));
  auto earlier_change = [&](const Tensor& before, const Tensor& after) {
    const std::vector<double> a = values(before), b = values(after);
    double worst = 0;
    for (int64_t h = 0; h < H; ++h)
      for (int64_t i = 0; i < N - 1; ++i)
        for (int64_t c = 0; c < d; ++c) {
          const size_t at = size_t((h * N + i) * d + c);
          worst = std::max(worst, std::abs(a[at] - b[at]) / (1 + std::abs(a[at])));
        }
    return worst;
  };
  const Tensor before = performer_attention(q, k, v, omega, causal);
  const Tensor after = performer_attention(q, k_changed, v, omega, causal);
  REQUIRE(earlier_change(before, after) <= 1e-12);
  // The last position did change.
  REQUIRE(std::abs(values(after)[size_t(N * d - 1)] - values(before)[size_t(N * d - 1)]) > 1e-6);
  // The plain composition, the key stabiliser left on the keys, leaks the later key through ε.
  auto plain = [&](const Tensor& keys) {
    return linear_attention(performer_feature_map(q, omega, true), performer_feature_map(keys, omega, false), v, causal);
  };
  REQUIRE(earlier_change(plain(k), plain(k_changed)) > 1e-6);
}

TEST_CASE("cosformer attention matches its cos-reweighted loop reference", "[ops][attention][cosformer]") {
  const int64_t B = 2, H = 2, Nq = 5, Nk = 7, d = 3, dv = 2;
  const Tensor q = random_input({B, H, Nq, d}, 81, kFloat64).detach();
  const Tensor k = random_input({B, H, Nk, d}, 82, kFloat64).detach();
  const Tensor v = random_input({B, H, Nk, dv}, 83, kFloat64).detach();
  const Tensor mask = make_mask(B, Nk, false);
  const std::vector<double> qs = values(q), ks = values(k), vs = values(v), padded = values(mask);
  const double eps = 1e-6;
  for (int64_t max_len : {0, 20}) {
    for (bool causal : {false, true}) {
      const int64_t N = causal ? Nq : Nk;  // causal needs Nq = Nk: use the first Nq keys
      const int64_t M = max_len > 0 ? max_len : std::max(Nq, N);
      std::vector<double> want(size_t(B * H * Nq * dv), 0.0);
      for (int64_t b = 0; b < B; ++b)
        for (int64_t h = 0; h < H; ++h)
          for (int64_t i = 0; i < Nq; ++i) {
            double denominator = eps;
            std::vector<double> numerator(size_t(dv), 0.0);
            for (int64_t j = 0; j < N; ++j) {
              if (padded[size_t(b * Nk + j)] != 0 || (causal && j > i)) continue;
              double similarity = 0;
              for (int64_t c = 0; c < d; ++c)
                similarity += std::max(qs[size_t(((b * H + h) * Nq + i) * d + c)], 0.0) *
                              std::max(ks[size_t(((b * H + h) * Nk + j) * d + c)], 0.0);
              const double weight = similarity * std::cos(M_PI / 2 * double(i - j) / double(M));
              denominator += weight;
              for (int64_t c = 0; c < dv; ++c) numerator[size_t(c)] += weight * vs[size_t(((b * H + h) * Nk + j) * dv + c)];
            }
            for (int64_t c = 0; c < dv; ++c)
              want[size_t(((b * H + h) * Nq + i) * dv + c)] = numerator[size_t(c)] / denominator;
          }
      LinearAttentionOptions options;
      options.causal = causal;
      options.key_padding_mask = causal ? mask.narrow(1, 0, N).contiguous() : mask;
      const Tensor keys = causal ? k.narrow(2, 0, N) : k, vals = causal ? v.narrow(2, 0, N) : v;
      CAPTURE(max_len, causal);
      require_close(values(cosformer_attention(q, keys, vals, max_len, options)), want, 1e-10, 1e-12);
    }
  }
  REQUIRE_THROWS_WITH(cosformer_feature_map(q, 4), Contains("cosformer_feature_map") && Contains("sequence length 5") &&
                                                       Contains("max_len 4"));
  REQUIRE_THROWS_WITH(cosformer_attention(q, k, v, 6), Contains("sequence length 7") && Contains("max_len 6"));
  REQUIRE_THROWS_WITH(cosformer_attention(q, k, v, -1), Contains("max_len") && Contains("-1"));
}

TEST_CASE("hedgehog_feature_map: [softmax(xW+b) ‖ softmax(−(xW+b))] per head", "[ops][attention][hedgehog]") {
  const int64_t B = 2, H = 3, N = 4, d = 3, F = 5;
  const Tensor x = random_input({B, H, N, d}, 91, kFloat64).detach();
  const Tensor weight = random_input({H, d, F}, 92, kFloat64).detach();
  const Tensor bias = random_input({H, F}, 93, kFloat64).detach();
  const std::vector<double> xs = values(x), w = values(weight), bs = values(bias);
  std::vector<double> want;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t n = 0; n < N; ++n) {
        std::vector<double> u(static_cast<size_t>(F));
        for (int64_t f = 0; f < F; ++f) {
          u[size_t(f)] = bs[size_t(h * F + f)];
          for (int64_t c = 0; c < d; ++c)
            u[size_t(f)] += xs[size_t(((b * H + h) * N + n) * d + c)] * w[size_t((h * d + c) * F + f)];
        }
        for (double sign : {1.0, -1.0}) {
          double total = 0;
          for (double value : u) total += std::exp(sign * value);
          for (double value : u) want.push_back(std::exp(sign * value) / total);
        }
      }
  const Tensor phi = hedgehog_feature_map(x, weight, bias);
  REQUIRE(phi.sizes() == Dims({B, H, N, 2 * F}));
  require_close(values(phi), want, 1e-12, 1e-14);
  REQUIRE_THROWS_WITH(hedgehog_feature_map(x, zeros({H, d + 1, F}, TensorOptions(kFloat64)), bias),
                      Contains("hedgehog_feature_map") && Contains("weight") && Contains("[3,4,5]"));
  REQUIRE_THROWS_WITH(hedgehog_feature_map(x, weight, zeros({H, F + 1}, TensorOptions(kFloat64))),
                      Contains("bias") && Contains("[3,6]"));
  REQUIRE_THROWS_WITH(hedgehog_feature_map(x, weight.to(kFloat32), bias), Contains("float32"));
}
