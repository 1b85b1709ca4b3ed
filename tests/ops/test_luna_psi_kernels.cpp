// The exact ReLU ψ kernels (ops/luna_psi_piecewise.cpp) called directly: the float32 vector paths
// (the kink search in registers for at most 64 kinks, for four such channels one search over the
// union of their kinks, else through a grid; 8 or 16 lanes, interleaved stores) against the plain
// loops bit for bit, outputs and stored buckets, over odd sizes (tails of M, every channel count,
// per-head groups), awkward inputs (exact kinks, ±0, ±inf, NaN, huge and denormal values) and
// awkward kink sets (none, one, duplicates, clusters, heavy tails, shared across channels,
// infinite); the backward from saved buckets against the backward that searches again, and ψ
// rebuilt from the buckets (or the union buckets) against the forward, also bit for bit.
#include "test_util.h"

#include <cmath>
#include <cstring>
#include <limits>
#include <random>

#include <luna/backends/cpu/cpu_features.h>
#include <luna/ops/luna_kernels.h>

using namespace luna::cpu::luna_kernels;

namespace {

enum class KinkSet { Uniform, NoKinks, OneKink, Duplicates, Cluster, HeavyTails, SharedAcrossChannels, InfiniteKinks };

struct PsiCase {
  int64_t rows, M, L, hidden, heads;
  bool per_head;
  KinkSet kinks;
};

struct PsiData {
  PsiShape shape;
  std::vector<float> a, c, g, e, u;
  PsiParams<float> params() const { return {a.data(), c.data(), g.data(), e.data()}; }
};

PsiData make_case(const PsiCase& k, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  std::normal_distribution<float> normal(0.0f, 1.5f);
  PsiData d;
  d.shape.rows = k.rows;
  d.shape.heads = k.heads;
  d.shape.tokens = k.rows / k.heads;
  d.shape.projections = k.M;
  d.shape.channels = k.L;
  d.shape.hidden = k.hidden;
  d.shape.per_head = k.per_head;
  const int64_t tables = d.shape.groups() * k.L, units = tables * k.hidden;
  d.a.resize(size_t(units));
  d.c.resize(size_t(units));
  d.g.resize(size_t(units));
  d.e.resize(size_t(tables));
  for (int64_t j = 0; j < units; ++j) {
    float a = uniform(rng), c = uniform(rng);
    switch (k.kinks) {
      case KinkSet::Uniform: break;
      case KinkSet::NoKinks: a = 0.0f; break;
      case KinkSet::OneKink: if (j % k.hidden != 0) a = 0.0f; break;
      case KinkSet::Duplicates: a = (j % 3 == 0) ? 0.5f : -0.25f, c = (j % 2 == 0) ? 0.125f : -0.5f; break;
      case KinkSet::Cluster: c = 1e-6f * uniform(rng); break;                 // kinks within ~1e-6 of 0
      case KinkSet::HeavyTails: a = a * a * a * 1e-3f; break;                  // kinks up to ~1e3 and beyond
      case KinkSet::SharedAcrossChannels:  // every other unit copies channel 0's: half the kinks in common
        if ((j / k.hidden) % k.L != 0 && j % 2 == 0) {
          const int64_t first = j - ((j / k.hidden) % k.L) * k.hidden;
          a = d.a[size_t(first)], c = d.c[size_t(first)];
        }
        break;
      case KinkSet::InfiniteKinks:  // a denormal slope puts the kink −c/a past float's range: ±∞
        if (j % 7 == 3) a = (j % 2 == 0 ? 1e-45f : -1e-45f), c = (j % 4 < 2 ? 1.0f : -1.0f);
        break;
    }
    if (j % 11 == 5) a = 0.0f;  // constant units in every set
    d.a[size_t(j)] = a;
    d.c[size_t(j)] = c;
    d.g[size_t(j)] = uniform(rng) / 4.0f;
  }
  for (auto& v : d.e) v = uniform(rng) / 4.0f;
  // Inputs: mostly normal, some exactly on a kink of some channel, and the special values.
  d.u.resize(size_t(k.rows * k.M));
  const float specials[] = {0.0f, -0.0f, std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity(),
                            std::numeric_limits<float>::quiet_NaN(), 1e30f, -1e30f, 1e-40f, -1e-40f};
  for (size_t i = 0; i < d.u.size(); ++i) {
    const uint32_t pick = rng() % 16;
    if (pick == 0) {
      d.u[i] = specials[rng() % std::size(specials)];
    } else if (pick <= 3) {
      const size_t j = rng() % size_t(units);
      d.u[i] = d.a[j] != 0.0f ? float(-double(d.c[j]) / double(d.a[j])) : normal(rng);  // the kernel's own kink
    } else {
      d.u[i] = normal(rng);
    }
  }
  return d;
}

std::vector<uint32_t> bits(const std::vector<float>& v) {
  std::vector<uint32_t> out(v.size());
  std::memcpy(out.data(), v.data(), v.size() * sizeof(float));
  return out;
}

std::vector<PsiCase> cases() {
  std::vector<PsiCase> out;
  for (int64_t M : {1, 3, 7, 8, 9, 16, 17, 32, 33})
    for (int64_t L : {1, 3, 4, 5}) out.push_back({6, M, L, 64, 2, L == 3, KinkSet::Uniform});
  for (KinkSet kinks : {KinkSet::NoKinks, KinkSet::OneKink, KinkSet::Duplicates, KinkSet::Cluster, KinkSet::HeavyTails,
                        KinkSet::SharedAcrossChannels, KinkSet::InfiniteKinks})
    for (int64_t L : {1, 4}) out.push_back({40, 32, L, 64, 2, false, kinks});
  out.push_back({40, 32, 4, 64, 2, true, KinkSet::Uniform});
  out.push_back({40, 24, 4, 5, 2, false, KinkSet::Uniform});
  out.push_back({40, 32, 4, 127, 2, false, KinkSet::HeavyTails});  // the most units whose buckets fit a byte,
                                                                    // and > 64 kinks: the grid search
  out.push_back({3000, 32, 4, 64, 2, false, KinkSet::Uniform});    // enough work for several threads
  return out;
}

// Runs check(avx512) on the AVX-512 path where the CPU has it, then on the AVX2 path.
void on_each_vector_path(void (*check)(bool avx512)) {
  const bool has_avx512 = luna::cpu::cpu_has_avx512();
  if (has_avx512) check(true);
  else WARN("this CPU has no AVX-512 (or it is disabled): only the AVX2 path of ψ is tested");
  luna::cpu::allow_avx512(false);
  check(false);
  luna::cpu::allow_avx512(has_avx512);
}

}  // namespace

// Every case through psi_forward_piecewise (whichever vector path is on) and the plain loops.
void check_forward_cases(bool avx512) {
  uint32_t seed = 1;
  for (const PsiCase& k : cases()) {
    const PsiData d = make_case(k, seed++);
    const size_t outputs = size_t(k.rows * k.M * k.L);
    std::vector<float> fast(outputs), plain(outputs);
    std::vector<uint8_t> fast_buckets(outputs), plain_buckets(outputs);
    psi_forward_piecewise<float>(d.u.data(), d.params(), d.shape, 0.25f, fast.data(), fast_buckets.data());
    psi_forward_piecewise_plain<float>(d.u.data(), d.params(), d.shape, 0.25f, plain.data(), plain_buckets.data());
    INFO("avx512 " << avx512 << " rows " << k.rows << " M " << k.M << " L " << k.L << " hidden " << k.hidden
                    << " per_head " << k.per_head << " kink set " << int(k.kinks));
    REQUIRE(bits(fast) == bits(plain));
    REQUIRE(fast_buckets == plain_buckets);
    // Without a bucket buffer the outputs are the same.
    std::vector<float> unbucketed(outputs);
    psi_forward_piecewise<float>(d.u.data(), d.params(), d.shape, 0.25f, unbucketed.data(), nullptr);
    REQUIRE(bits(unbucketed) == bits(plain));
  }
}

TEST_CASE("vector ψ equals the plain loops bit for bit, outputs and buckets", "[luna][psi]") {
  // Both vector paths: AVX-512 where the CPU has it (16 lanes, the search in registers), then AVX2.
  on_each_vector_path(check_forward_cases);
}

// Every case: the backward from saved buckets (whichever vector path is on) against the one that searches.
void check_backward_cases(bool avx512) {
  uint32_t seed = 100;
  for (const PsiCase& k : cases()) {
    PsiData d = make_case(k, seed++);
    for (float& x : d.u)
      if (!std::isfinite(x)) x = 0.5f;  // keep the gradients finite so they can be compared
    const size_t outputs = size_t(k.rows * k.M * k.L), tables = size_t(d.shape.groups() * k.L);
    std::vector<float> out(outputs), grad(outputs);
    std::vector<uint8_t> buckets(outputs);
    std::mt19937 rng(seed);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    for (float& v : grad) v = normal(rng);
    psi_forward_piecewise<float>(d.u.data(), d.params(), d.shape, 0.25f, out.data(), buckets.data());
    struct Result {
      std::vector<float> grad_u, a, c, g, e;
    };
    auto run = [&](const uint8_t* saved) {
      Result r{std::vector<float>(size_t(k.rows * k.M)), std::vector<float>(d.a.size()),
               std::vector<float>(d.c.size()), std::vector<float>(d.g.size()), std::vector<float>(tables)};
      psi_backward_piecewise<float>(grad.data(), d.u.data(), saved, d.params(), d.shape, 0.25f, r.grad_u.data(),
                                    {r.a.data(), r.c.data(), r.g.data(), r.e.data()});
      return r;
    };
    const Result saved = run(buckets.data()), searched = run(nullptr);
    INFO("avx512 " << avx512 << " rows " << k.rows << " M " << k.M << " L " << k.L << " hidden " << k.hidden
                    << " kink set " << int(k.kinks));
    REQUIRE(bits(saved.grad_u) == bits(searched.grad_u));
    REQUIRE(bits(saved.a) == bits(searched.a));
    REQUIRE(bits(saved.c) == bits(searched.c));
    REQUIRE(bits(saved.g) == bits(searched.g));
    REQUIRE(bits(saved.e) == bits(searched.e));
  }
}

TEST_CASE("ψ backward from saved buckets equals the backward that searches again", "[luna][psi]") {
  on_each_vector_path(check_backward_cases);
}

// A case's data and its forward with stored buckets, as the fused attention's backward gets them.
struct StoredForward {
  PsiData d;
  int64_t ML;                    // outputs per row
  std::vector<float> out;        // (rows, M, L)
  std::vector<uint8_t> buckets;  // (rows, M, L)
};

StoredForward stored_forward(const PsiCase& k, uint32_t seed) {
  StoredForward f{make_case(k, seed), k.M * k.L, {}, {}};
  f.out.resize(size_t(k.rows * f.ML));
  f.buckets.resize(f.out.size());
  psi_forward_piecewise<float>(f.d.u.data(), f.d.params(), f.d.shape, 0.25f, f.out.data(), f.buckets.data());
  return f;
}

std::vector<uint64_t> bits(const std::vector<double>& v) {
  std::vector<uint64_t> out(v.size());
  std::memcpy(out.data(), v.data(), v.size() * sizeof(double));
  return out;
}

// Every case: rebuilding ψ from the stored buckets (PsiPiecewiseRows::recompute, as the fused
// attention's backward does; 4 channels take a vector path) gives the forward's bits, NaN included.
void check_recompute_cases(bool avx512) {
  uint32_t seed = 200;
  for (const PsiCase& k : cases()) {
    if (k.hidden > 127) continue;  // buckets are stored only when they fit a byte
    const StoredForward f = stored_forward(k, seed++);
    std::vector<float> rebuilt(f.out.size(), -1.0f);
    const PsiPiecewiseRows<float> rows(f.d.params(), f.d.shape);
    for (int64_t row = 0; row < k.rows; ++row)
      rows.recompute(f.d.u.data() + f.d.shape.u_offset(row), f.buckets.data() + row * f.ML,
                     f.d.shape.group_of_row(row), 0.25f, rebuilt.data() + row * f.ML);
    INFO("avx512 " << avx512 << " rows " << k.rows << " M " << k.M << " L " << k.L << " hidden " << k.hidden
                    << " kink set " << int(k.kinks));
    REQUIRE(bits(rebuilt) == bits(f.out));
  }
}

TEST_CASE("ψ rebuilt from its stored buckets equals the forward bit for bit", "[luna][psi]") {
  on_each_vector_path(check_recompute_cases);
}

// ψ's parameter gradients from the bucket sums of every row.
struct PsiParamGrads {
  std::vector<float> fc1_weight, fc1_bias, fc2_weight, fc2_bias;
};

PsiParamGrads parameter_gradients(const PsiPiecewiseRows<float>& rows, const PsiShape& shape,
                                  const std::vector<double>& sums) {
  const size_t units = size_t(shape.groups() * shape.channels * shape.hidden);
  PsiParamGrads g{std::vector<float>(units, -1.0f), std::vector<float>(units, -1.0f), std::vector<float>(units, -1.0f),
                  std::vector<float>(size_t(shape.groups() * shape.channels), -1.0f)};
  rows.parameter_gradients(sums.data(), {g.fc1_weight.data(), g.fc1_bias.data(), g.fc2_weight.data(),
                                         g.fc2_bias.data()});
  return g;
}

// Equal within float32 rounding of float64 sums added in another order (2 ulp of the larger, or 1e-30
// absolute), NaN where the other is NaN; a wrong slot or a dropped term is far outside.
void require_close(const std::vector<float>& got, const std::vector<float>& want, const char* what) {
  REQUIRE(got.size() == want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    INFO(what << "[" << i << "] " << got[i] << " against " << want[i]);
    if (std::isnan(want[i]) || std::isnan(got[i])) {
      REQUIRE((std::isnan(want[i]) && std::isnan(got[i])));
      continue;
    }
    if (std::isinf(want[i]) || std::isinf(got[i])) {
      REQUIRE(got[i] == want[i]);
      continue;
    }
    const float bound = 2.0f * std::numeric_limits<float>::epsilon() * std::max(std::fabs(got[i]), std::fabs(want[i]));
    REQUIRE(std::fabs(got[i] - want[i]) <= std::max(bound, 1e-30f));
  }
}

// Every case: the one-pass rebuild and backward (PsiPiecewiseRows::rebuild_and_backward, as the fused
// attention's backward calls it, on what forward_for_rebuild saved: union buckets for 4 channels of
// at most 64 kinks with M a multiple of 8 on AVX2, else the buckets) against recompute then backward
// on forward's buckets: the same φ and grad_u, bit for bit, infinities and NaN included, and the same
// parameter gradients: bit for bit from the same bucket sums where the buckets are saved, within
// rounding where union buckets are (their float64 sums are added per union bucket first); and
// forward_for_rebuild's outputs are forward's.
void check_rebuild_and_backward_cases(bool avx512) {
  uint32_t seed = 300;
  for (const PsiCase& k : cases()) {
    if (k.hidden > 127) continue;  // buckets are stored only when they fit a byte
    const StoredForward f = stored_forward(k, seed++);
    const PsiData& d = f.d;
    const int64_t ML = f.ML;
    const size_t outputs = f.out.size(), scalars = size_t(k.rows * k.M);
    std::vector<float> grad(outputs);
    std::mt19937 rng(seed);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    for (float& v : grad) v = normal(rng);
    const PsiPiecewiseRows<float> rows(d.params(), d.shape);
    const size_t sums_size = size_t(rows.bucket_sums_size());
    std::vector<float> rebuilt_apart(outputs, -1.0f), rebuilt_fused(outputs, -2.0f);
    std::vector<float> grad_u_apart(scalars, -1.0f), grad_u_fused(scalars, -2.0f);
    std::vector<double> sums_apart(sums_size, 0.0), sums_fused(sums_size, 0.0);
    std::vector<float> forward_for_rebuild(outputs, -3.0f);
    // Saved rows packed at their own size and written last row first, so a row written past its
    // size would spoil the next (and the last one would leave the buffer).
    const int64_t saved_bytes = rows.saved_row_bytes();
    const bool union_form = k.L == 4 && k.hidden <= 64 && k.M % 8 == 0;
    REQUIRE(saved_bytes == (union_form ? 2 * k.M : ML));
    std::vector<uint8_t> saved(size_t(k.rows * saved_bytes));
    for (int64_t row = 0; row < k.rows; ++row) {
      const float* u_row = d.u.data() + d.shape.u_offset(row);
      const int64_t group = d.shape.group_of_row(row);
      const uint8_t* bucket_row = f.buckets.data() + row * ML;
      rows.recompute(u_row, bucket_row, group, 0.25f, rebuilt_apart.data() + row * ML);
      rows.backward(u_row, grad.data() + row * ML, bucket_row, group, 0.25f, sums_apart.data(),
                    grad_u_apart.data() + d.shape.u_offset(row));
    }
    for (int64_t row = k.rows - 1; row >= 0; --row)
      rows.forward_for_rebuild(d.u.data() + d.shape.u_offset(row), d.shape.group_of_row(row), 0.25f,
                               forward_for_rebuild.data() + row * ML, saved.data() + row * saved_bytes);
    for (int64_t row = 0; row < k.rows; ++row) {
      const float* u_row = d.u.data() + d.shape.u_offset(row);
      const int64_t group = d.shape.group_of_row(row);
      rows.rebuild_and_backward(u_row, grad.data() + row * ML, saved.data() + row * saved_bytes, group, 0.25f,
                                sums_fused.data(), grad_u_fused.data() + d.shape.u_offset(row),
                                rebuilt_fused.data() + row * ML);
    }
    INFO("avx512 " << avx512 << " rows " << k.rows << " M " << k.M << " L " << k.L << " hidden " << k.hidden
                    << " kink set " << int(k.kinks));
    REQUIRE(bits(forward_for_rebuild) == bits(f.out));
    REQUIRE(bits(rebuilt_fused) == bits(rebuilt_apart));
    REQUIRE(bits(rebuilt_fused) == bits(f.out));
    REQUIRE(bits(grad_u_fused) == bits(grad_u_apart));
    const PsiParamGrads apart = parameter_gradients(rows, d.shape, sums_apart);
    const PsiParamGrads fused = parameter_gradients(rows, d.shape, sums_fused);
    if (!union_form) {
      REQUIRE(bits(sums_fused) == bits(sums_apart));
      REQUIRE(bits(fused.fc1_weight) == bits(apart.fc1_weight));
    }
    require_close(fused.fc1_weight, apart.fc1_weight, "fc1_weight");
    require_close(fused.fc1_bias, apart.fc1_bias, "fc1_bias");
    require_close(fused.fc2_weight, apart.fc2_weight, "fc2_weight");
    require_close(fused.fc2_bias, apart.fc2_bias, "fc2_bias");
  }
}

TEST_CASE("ψ rebuilt and differentiated in one pass equals recompute then backward bit for bit", "[luna][psi]") {
  on_each_vector_path(check_rebuild_and_backward_cases);
}
