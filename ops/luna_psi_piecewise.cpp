// The exact ReLU path of ψ (spec/LUNA.md §3): per call the kinks of every channel's piecewise-linear
// s_ℓ(u) are sorted and tabulated, then each scalar finds its bucket and costs one multiply-add;
// backward sums δ and δu per bucket and turns them into parameter gradients with prefix sums.
// float32 (training) runs 8-lane AVX2 code: for four channels of at most 64 kinks each one search
// per scalar over the union of their kinks (ops/luna_psi_union.h), for other tables of at most 64
// kinks a search in registers (permutes, no dependent gathers), otherwise a uniform grid that
// narrows each search to a few gathered compares; float64 (the gradchecks) runs the plain loops.
// All give the same bits as each other's algorithm would: the searches only skip compares whose
// outcome they already know.
#include <luna/backends/cpu/cpu_features.h>
#include <luna/ops/luna_kernel_common.h>
#include <luna/ops/luna_kernels.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include <omp.h>

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define LUNA_PSI_AVX2 1
#endif

#include "luna_psi_lanes.h"
#include "luna_psi_search.h"
#include "luna_psi_union.h"

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wpsabi"
// GCC 12's AVX-512 intrinsic headers trip this warning on their own internals (setzero and friends).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

namespace luna::cpu::luna_kernels {
namespace {
using detail::kParallelWork;
using detail::outer_relu;
using detail::ThreadPartials;

// Stored instead of a bucket when ψ's final ReLU is off (s ≤ 0 or NaN), so the backward skips the
// output without recomputing s. Real buckets are ≤ 2·Hψ ≤ 254 whenever buckets are stored.
constexpr uint8_t kInactiveBucket = 255;
static_assert(kMaxStoredBucket == kInactiveBucket, "buckets 0..254 stored, 255 marks an inactive output");

// ---------------------------------------------------------------------------------------------
// Piecewise-linear tables for s_ℓ(u) = e_ℓ + Σ_j g_j relu(a_j u + c_j).
//
// The D distinct kinks v_0 < … < v_{D−1} (u = −c_j/a_j for a_j ≠ 0) split the line into 2D+1
// buckets: bucket 2k is the open interval (v_{k−1}, v_k), bucket 2k+1 the point v_k. At a kink
// point the unit of that kink is inactive (its pre-activation is 0 and relu'(0) = 0), so tables
// stay exact on kinks too. Unit j with kink bucket κ_j is active in buckets b > κ_j when a_j > 0
// and b < κ_j when a_j < 0; units with a_j = 0 add the constant g_j relu(c_j).

template <class T>
struct PiecewiseTable {
  std::vector<T> kinks;               // (D) distinct, sorted, rounded to T like the inputs they meet
  std::vector<T> kinks_and_nan;       // (D + 1) the kinks then a NaN, so kinks_and_nan[k] is valid for
                                      // every count k ≤ D and equals no input
  std::vector<int64_t> kink_bucket;   // (Hψ) κ_j, or −1 for a_j = 0
  std::vector<T> slope, intercept;    // (2D+1) per bucket, intercept including e_ℓ
  std::vector<T> slope_intercept;     // (2D+1, 2) the two interleaved: one 8-byte gather fetches both
};

// Scalars looked up together against one table by the plain path; the count vectorises across them.
constexpr int kLookupBlock = 16;

// bucket[s] = 2·#{kinks < x[s]} + [x[s] is a kink] for n ≤ kLookupBlock scalars, by a branch-free
// compare against all D kinks (fixed trip counts over the whole block; inputs past n are copies of
// x[0]). NaN counts 0 kinks and stays NaN through the table.
template <class T>
inline void buckets_of_block(const PiecewiseTable<T>& table, const T* x, int n, int32_t* bucket) {
  T values[kLookupBlock];
  int32_t below[kLookupBlock] = {};
  for (int s = 0; s < kLookupBlock; ++s) values[s] = x[s < n ? s : 0];
  for (const T kink : table.kinks)
    for (int s = 0; s < kLookupBlock; ++s) below[s] += kink < values[s] ? 1 : 0;
  const T* kinks = table.kinks_and_nan.data();
  for (int s = 0; s < kLookupBlock; ++s) bucket[s] = 2 * below[s] + (kinks[below[s]] == values[s] ? 1 : 0);
}

inline bool unit_active(double a, int64_t kink_bucket, int64_t bucket) {
  return a > 0 ? bucket > kink_bucket : bucket < kink_bucket;
}

// The kink of a unit in T, so lookups compare like with like.
template <class T>
inline T kink_of(T a, T c) { return T(-double(c) / double(a)); }

// One table per (group, channel), (G·L) in all.
template <class T>
std::vector<PiecewiseTable<T>> build_piecewise_tables(const PsiParams<T>& params, const PsiShape& shape) {
  const int64_t hidden = shape.hidden;
  std::vector<PiecewiseTable<T>> tables(shape.groups() * shape.channels);
  for (int64_t table_index = 0; table_index < int64_t(tables.size()); ++table_index) {
    PiecewiseTable<T>& table = tables[table_index];
    const T* a = params.fc1_weight + table_index * hidden;
    const T* c = params.fc1_bias + table_index * hidden;
    const T* g = params.fc2_weight + table_index * hidden;
    for (int64_t j = 0; j < hidden; ++j)
      if (a[j] != T(0)) table.kinks.push_back(kink_of(a[j], c[j]));
    std::sort(table.kinks.begin(), table.kinks.end());
    table.kinks.erase(std::unique(table.kinks.begin(), table.kinks.end()), table.kinks.end());
    table.kinks_and_nan = table.kinks;
    table.kinks_and_nan.push_back(std::numeric_limits<T>::quiet_NaN());

    double constant = double(params.fc2_bias[table_index]);
    table.kink_bucket.assign(hidden, -1);
    for (int64_t j = 0; j < hidden; ++j) {
      if (a[j] == T(0)) {
        constant += double(g[j]) * std::max(double(c[j]), 0.0);
        continue;
      }
      const T kink = kink_of(a[j], c[j]);
      const int64_t k = std::lower_bound(table.kinks.begin(), table.kinks.end(), kink) - table.kinks.begin();
      table.kink_bucket[j] = 2 * k + 1;
    }
    // Summed per bucket from scratch (O(buckets·Hψ), tiny) so no rounding accumulates across buckets.
    const int64_t buckets = 2 * int64_t(table.kinks.size()) + 1;
    table.slope.resize(buckets);
    table.intercept.resize(buckets);
    for (int64_t b = 0; b < buckets; ++b) {
      double slope = 0, intercept = constant;
      for (int64_t j = 0; j < hidden; ++j) {
        if (table.kink_bucket[j] < 0 || !unit_active(a[j], table.kink_bucket[j], b)) continue;
        slope += double(g[j]) * double(a[j]);
        intercept += double(g[j]) * double(c[j]);
      }
      table.slope[b] = T(slope);
      table.intercept[b] = T(intercept);
    }
    table.slope_intercept.resize(2 * size_t(buckets));
    for (int64_t b = 0; b < buckets; ++b) {
      table.slope_intercept[2 * b] = table.slope[b];
      table.slope_intercept[2 * b + 1] = table.intercept[b];
    }
  }
  return tables;
}

// ψ of one scalar from its bucket: scale · relu(slope·x + intercept), the multiply-add fused (one
// rounding) on every path so the float32 vector code and this give the same bits.
template <class T>
inline T table_value(const PiecewiseTable<T>& table, int32_t bucket, T x) {
  return std::fma(table.slope[bucket], x, table.intercept[bucket]);
}

// What the forward left in an output its bucket marks inactive (s ≤ 0 or NaN): 0 for a finite input,
// the input for a NaN one, and for ±∞ whatever the table gives (0·∞ is NaN), so that one searches
// again. (Not rebuilt: NaN from NaN parameters and the −0 of an intercept of exactly −0; both give 0.)
template <class T>
inline T inactive_value(const PiecewiseTable<T>& table, T x, T scale) {
  if (x != x) return x;
  if (!std::isinf(x)) return T(0);
  int32_t bucket[kLookupBlock];
  buckets_of_block(table, &x, 1, bucket);
  return scale * outer_relu(table_value(table, bucket[0], x));
}

// ---------------------------------------------------------------------------------------------
// The plain loops (float64, and float32 where AVX2 is missing).

// ψ of one row u_row (M) through its group's L tables into out_row (M, L) and, if not null,
// bucket_row (M, L).
template <class T>
void row_plain(const PiecewiseTable<T>* group_tables, const T* u_row, int64_t M, int64_t L, T scale, T* out_row,
               uint8_t* bucket_row) {
  int32_t bucket[kLookupBlock];
  for (int64_t l = 0; l < L; ++l) {
    const PiecewiseTable<T>& table = group_tables[l];
    for (int64_t start = 0; start < M; start += kLookupBlock) {
      const int n = int(std::min<int64_t>(kLookupBlock, M - start));
      buckets_of_block(table, u_row + start, n, bucket);
      for (int s = 0; s < n; ++s) {
        const T sum = table_value(table, bucket[s], u_row[start + s]);
        const int64_t flat = (start + s) * L + l;
        out_row[flat] = scale * outer_relu(sum);
        if (bucket_row != nullptr) bucket_row[flat] = sum > T(0) ? uint8_t(bucket[s]) : kInactiveBucket;
      }
    }
  }
}

template <class T>
void forward_plain(const std::vector<PiecewiseTable<T>>& tables, const T* u, const PsiShape& shape, T scale, T* out,
                   uint8_t* buckets_out) {
  const int64_t M = shape.projections, L = shape.channels;
#pragma omp parallel for schedule(static) if (shape.rows * M * L > kParallelWork)
  for (int64_t step = 0; step < shape.rows; ++step) {
    const int64_t row = shape.row_at(step);
    row_plain(tables.data() + shape.group_of_row(row) * L, u + shape.u_offset(row), M, L, scale, out + row * M * L,
              buckets_out != nullptr ? buckets_out + row * M * L : nullptr);
  }
}

// ---------------------------------------------------------------------------------------------
// float32 on AVX2 (the bucket search: ops/luna_psi_search.h).

#if defined(LUNA_PSI_AVX2)

// ψ of 8 scalars of one table: the scaled output, and the stored bucket (kInactiveBucket where
// the final ReLU is off). relu as max(0, s) keeps NaN (maxps returns its second operand) and −0.
// Search is a PsiGrid or PsiKinkBlocks.
struct Psi8 {
  __m256 value;
  __m256i stored_bucket;
};
inline Psi8 psi8_of_bucket(__m256 x, __m256i bucket, const PiecewiseTable<float>& table, __m256 scale) {
  // Two 4-lane gathers of (slope, intercept) pairs instead of two 8-lane gathers of floats: half the
  // gathered elements, which bound this loop where gathers are slow (AMD Zen 2/3).
  const double* pairs = reinterpret_cast<const double*>(table.slope_intercept.data());
  const __m256 low = _mm256_castpd_ps(_mm256_i32gather_pd(pairs, _mm256_castsi256_si128(bucket), 8));
  const __m256 high = _mm256_castpd_ps(_mm256_i32gather_pd(pairs, _mm256_extracti128_si256(bucket, 1), 8));
  // low = (s0 c0 s1 c1 | s2 c2 s3 c3), high the same for lanes 4..7; even floats then odd ones give
  // (s0 s1 s4 s5 | s2 s3 s6 s7), and the 64-bit permute restores lane order.
  const __m256 slope =
      _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(low, high, 0x88)), 0xD8));
  const __m256 intercept =
      _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(low, high, 0xDD)), 0xD8));
  const __m256 sum = _mm256_fmadd_ps(slope, x, intercept);
  const __m256 active = _mm256_cmp_ps(sum, _mm256_setzero_ps(), _CMP_GT_OQ);
  const __m256i stored = _mm256_blendv_epi8(_mm256_set1_epi32(kInactiveBucket), bucket, _mm256_castps_si256(active));
  return {_mm256_mul_ps(scale, _mm256_max_ps(_mm256_setzero_ps(), sum)), stored};
}

template <class Search>
inline Psi8 psi8(__m256 x, const Search& search, const PiecewiseTable<float>& table, __m256 scale) {
  return psi8_of_bucket(x, buckets8(x, search), table, scale);
}

// ψ of one row's scalars [start, M), all channels, 8 at a time; searches (L) are the row's
// tables' PsiGrid or PsiKinkBlocks.
template <class Search>
void row_avx2(const PiecewiseTable<float>* tables, const Search* searches, const float* u_row, int64_t M, int64_t L,
              int64_t start, float scale, float* out_row, uint8_t* bucket_row) {
  const __m256 scale8 = _mm256_set1_ps(scale);
  if (L == 4) {  // the default: 8 scalars × 4 channels = 32 contiguous outputs per step
    const __m256i scalar_order = _mm256_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7);
    for (; start + 8 <= M; start += 8) {
      const __m256 x = _mm256_permutevar8x32_ps(_mm256_loadu_ps(u_row + start), scalar_order);
      __m256 values[4], ordered[4];
      __m256i stored[4], ordered_buckets[4];
      // All four searches first, then the four tables' gathers: their latencies overlap.
      __m256i buckets[4];
      for (int l = 0; l < 4; ++l) buckets[l] = buckets8(x, searches[l]);
      for (int l = 0; l < 4; ++l) {
        const Psi8 psi = psi8_of_bucket(x, buckets[l], tables[l], scale8);
        values[l] = psi.value;
        stored[l] = psi.stored_bucket;
      }
      interleave4(values, ordered);
      for (int v = 0; v < 4; ++v) _mm256_storeu_ps(out_row + start * 4 + 8 * v, ordered[v]);
      if (bucket_row != nullptr) {
        __m256 as_float[4], ordered_float[4];
        for (int l = 0; l < 4; ++l) as_float[l] = _mm256_castsi256_ps(stored[l]);
        interleave4(as_float, ordered_float);
        for (int v = 0; v < 4; ++v) ordered_buckets[v] = _mm256_castps_si256(ordered_float[v]);
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(bucket_row + start * 4), pack_bytes(ordered_buckets));
      }
    }
  }
  // Any other channel count, and the last M % 8 scalars: lanes through memory. Lanes past the
  // row's end repeat its last scalar and are not stored.
  for (; start < M; start += 8) {
    const int n = int(std::min<int64_t>(8, M - start));
    alignas(32) float x_lanes[8], value_lanes[8];
    alignas(32) int32_t bucket_lanes[8];
    for (int s = 0; s < 8; ++s) x_lanes[s] = u_row[start + std::min(s, n - 1)];
    const __m256 x = _mm256_load_ps(x_lanes);
    for (int64_t l = 0; l < L; ++l) {
      const Psi8 psi = psi8(x, searches[l], tables[l], scale8);
      _mm256_store_ps(value_lanes, psi.value);
      _mm256_store_si256(reinterpret_cast<__m256i*>(bucket_lanes), psi.stored_bucket);
      for (int s = 0; s < n; ++s) {
        out_row[(start + s) * L + l] = value_lanes[s];
        if (bucket_row != nullptr) bucket_row[(start + s) * L + l] = uint8_t(bucket_lanes[s]);
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// float32 on AVX-512 (runtime-checked), for tables of at most 64 kinks (Hψ ≤ 64, the default) and
// 4 channels: 16 scalars per vector and the whole search in registers, no gathers. The sorted kinks,
// NaN-padded to 64, sit in four 16-lane registers G_t[j] = kink[4j + t]. A branch-free binary search
// over G_3 (every fourth kink, first 15) gives pos = #{j < 15 : kink[4j+3] < x}, so every kink below
// 4·pos is < x and, unless pos = 15, kink[4·pos + 3] ≥ x; the four kinks 4·pos + t then settle the
// bucket as in the grid search: 8·pos + Σ_t ([kink < x] + [kink ≤ x]). NaN padding and NaN inputs
// compare false, as before. Slope and intercept come by gather.

struct PsiRegisters {
  alignas(64) float group[4][16];  // G_t
};

PsiRegisters registers_of(const std::vector<float>& kinks) {
  PsiRegisters r;
  interleave_kinks(kinks, r.group);
  return r;
}

LUNA_TARGET_AVX512 inline __m512i buckets16(__m512 x, const __m512 group[4]) {
  __m512i pos = _mm512_setzero_si512();
  for (int half = 8; half >= 1; half /= 2) {
    const __m512 kink = _mm512_permutexvar_ps(_mm512_add_epi32(pos, _mm512_set1_epi32(half - 1)), group[3]);
    pos = _mm512_mask_add_epi32(pos, _mm512_cmp_ps_mask(kink, x, _CMP_LT_OQ), pos, _mm512_set1_epi32(half));
  }
  __m512i bucket = _mm512_slli_epi32(pos, 3);
  const __m512i one = _mm512_set1_epi32(1);
  for (int t = 0; t < 4; ++t) {
    const __m512 kink = _mm512_permutexvar_ps(pos, group[t]);
    bucket = _mm512_mask_add_epi32(bucket, _mm512_cmp_ps_mask(kink, x, _CMP_LT_OQ), bucket, one);
    bucket = _mm512_mask_add_epi32(bucket, _mm512_cmp_ps_mask(kink, x, _CMP_LE_OQ), bucket, one);
  }
  return bucket;
}

// One row's scalars in steps of 16 (4 channels); returns where the AVX2 code takes over.
LUNA_TARGET_AVX512 int64_t row_avx512(const PiecewiseTable<float>* tables, const PsiRegisters* registers,
                                      const float* u_row, int64_t M, float scale, float* out_row,
                                      uint8_t* bucket_row) {
  __m512 group[4][4];
  for (int l = 0; l < 4; ++l)
    for (int t = 0; t < 4; ++t) group[l][t] = _mm512_load_ps(registers[l].group[t]);
  const __m512 scale16 = _mm512_set1_ps(scale), zero = _mm512_setzero_ps();
  const __m512i scalar_order = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
  int64_t start = 0;
  for (; start + 16 <= M; start += 16) {
    const __m512 x = _mm512_permutexvar_ps(scalar_order, _mm512_loadu_ps(u_row + start));
    __m512 values[4], stored[4];
    for (int l = 0; l < 4; ++l) {
      const __m512i bucket = buckets16(x, group[l]);
      const __m512 slope = _mm512_i32gather_ps(bucket, tables[l].slope.data(), 4);
      const __m512 intercept = _mm512_i32gather_ps(bucket, tables[l].intercept.data(), 4);
      const __m512 sum = _mm512_fmadd_ps(slope, x, intercept);
      values[l] = _mm512_mul_ps(scale16, _mm512_max_ps(zero, sum));  // max(0, s): NaN and −0 pass
      const __mmask16 active = _mm512_cmp_ps_mask(sum, zero, _CMP_GT_OQ);
      stored[l] = _mm512_castsi512_ps(_mm512_mask_blend_epi32(active, _mm512_set1_epi32(kInactiveBucket), bucket));
    }
    __m512 ordered[4];
    interleave4x16(values, ordered);
    for (int v = 0; v < 4; ++v) _mm512_storeu_ps(out_row + start * 4 + 16 * v, ordered[v]);
    if (bucket_row != nullptr) {
      interleave4x16(stored, ordered);
      for (int v = 0; v < 4; ++v)
        _mm_storeu_si128(reinterpret_cast<__m128i*>(bucket_row + start * 4 + 16 * v),
                         _mm512_cvtepi32_epi8(_mm512_castps_si512(ordered[v])));
    }
  }
  return start;
}

#endif  // LUNA_PSI_AVX2

// ---------------------------------------------------------------------------------------------
// Backward.

// Per-bucket sums of one row's scalars [start, M): P0 += δ and P1 += δ·u over its active outputs, and
// grad_u = Σ_ℓ δ·slope, with δ the upstream gradient times the scale. Walked scalar by scalar,
// channels inner: each bucket's sums then accumulate in (row, scalar) order whatever the loop nest,
// and grad_u in channel order, the multiply-adds fused.
template <class T>
inline void accumulate_row(const PiecewiseTable<T>* row_tables, const T* u_row, const T* grad_row,
                           const uint8_t* bucket_row, int64_t M, int64_t L, int64_t start, int64_t max_buckets,
                           T scale, double* P0_group, double* P1_group, T* grad_u_row) {
  for (int64_t i = start; i < M; ++i) {
    const T x = u_row[i];
    T grad_x = 0;
    for (int64_t l = 0; l < L; ++l) {
      const uint8_t b = bucket_row[i * L + l];
      if (b == kInactiveBucket) continue;
      const T delta = grad_row[i * L + l] * scale;
      grad_x = std::fma(delta, row_tables[l].slope[b], grad_x);
      P0_group[l * max_buckets + b] += double(delta);
      P1_group[l * max_buckets + b] = std::fma(double(delta), double(x), P1_group[l * max_buckets + b]);
    }
    grad_u_row[i] = grad_x;
  }
}

#if defined(LUNA_PSI_AVX2)

// The AVX-512 backward of one row (4 channels), 16 scalars at a time; returns where the scalar code
// takes over. Vector part: de-interleave 16 scalars × 4 channels of gradients and buckets, gather
// the slopes, grad_u by masked multiply-adds in channel order. The bucket sums stay scalar (many
// scalars share a bucket), but only over the active outputs, which the vector part lists channel by
// channel in scalar order, so every bucket still accumulates in (row, scalar) order.
LUNA_TARGET_AVX512 int64_t accumulate_row_avx512(const PiecewiseTable<float>* row_tables, const float* u_row,
                                                  const float* grad_row, const uint8_t* bucket_row, int64_t M,
                                                  int64_t max_buckets, float scale, double* P0_group,
                                                  double* P1_group, float* grad_u_row) {
  const __m512i scalar_order = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
  const __m512 scale16 = _mm512_set1_ps(scale);
  const __m512i inactive = _mm512_set1_epi32(kInactiveBucket);
  alignas(64) int32_t slots[16];
  alignas(64) float deltas[16], xs[16];
  int64_t start = 0;
  for (; start + 16 <= M; start += 16) {
    const __m512 x_natural = _mm512_loadu_ps(u_row + start);
    __m512 grad[4], bucket_f[4], grad_l[4], bucket_l[4];
    for (int v = 0; v < 4; ++v) {
      grad[v] = _mm512_loadu_ps(grad_row + start * 4 + 16 * v);
      const __m128i bytes = _mm_loadu_si128(reinterpret_cast<const __m128i*>(bucket_row + start * 4 + 16 * v));
      bucket_f[v] = _mm512_castsi512_ps(_mm512_cvtepu8_epi32(bytes));
    }
    interleave4x16(grad, grad_l);  // its own inverse: lane 4L + v of channel vector ℓ = scalar 4v + L
    interleave4x16(bucket_f, bucket_l);
    __m512 grad_x = _mm512_setzero_ps();
    for (int l = 0; l < 4; ++l) {
      const __m512i bucket = _mm512_castps_si512(bucket_l[l]);
      const __mmask16 active = _mm512_cmpneq_epi32_mask(bucket, inactive);
      const __m512 delta = _mm512_mul_ps(grad_l[l], scale16);
      const __m512 slope =
          _mm512_mask_i32gather_ps(_mm512_setzero_ps(), active, bucket, row_tables[l].slope.data(), 4);
      grad_x = _mm512_mask_mov_ps(grad_x, active, _mm512_fmadd_ps(delta, slope, grad_x));
      // The active outputs of channel ℓ in scalar order: undo the lane order (a 4x4 transpose, so its
      // own inverse), then compress.
      const __m512i slot = _mm512_add_epi32(bucket, _mm512_set1_epi32(int(l * max_buckets)));
      const __m512 delta_n = _mm512_permutexvar_ps(scalar_order, delta);
      const __m512i slot_n = _mm512_permutexvar_epi32(scalar_order, slot);
      const __mmask16 active_n = _mm512_cmpneq_epi32_mask(_mm512_permutexvar_epi32(scalar_order, bucket), inactive);
      _mm512_store_si512(slots, _mm512_maskz_compress_epi32(active_n, slot_n));
      _mm512_store_ps(deltas, _mm512_maskz_compress_ps(active_n, delta_n));
      _mm512_store_ps(xs, _mm512_maskz_compress_ps(active_n, x_natural));
      const int count = __builtin_popcount(unsigned(active_n));
      for (int e = 0; e < count; ++e) {
        const double d = deltas[e];
        P0_group[slots[e]] += d;
        P1_group[slots[e]] = std::fma(d, double(xs[e]), P1_group[slots[e]]);
      }
    }
    _mm512_storeu_ps(grad_u_row + start, _mm512_permutexvar_ps(scalar_order, grad_x));
  }
  return start;
}

// ψ of one row (4 channels) rebuilt from its stored buckets, 16 outputs (4 scalars × 4 channels) at a
// time; returns where the scalar code takes over. slope and intercept are the group's four tables
// packed at a stride of max_buckets, so one gather serves all four channels.
LUNA_TARGET_AVX512 int64_t recompute_row_avx512(const float* slope, const float* intercept, int64_t max_buckets,
                                                const float* u_row, const uint8_t* bucket_row, int64_t M, float scale,
                                                float* out_row) {
  const __m512i channel_offset = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3),
                                                    _mm512_set1_epi32(int(max_buckets)));
  const __m512i scalar_of_lane = _mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3);
  const __m512i inactive = _mm512_set1_epi32(kInactiveBucket);
  const __m512 scale16 = _mm512_set1_ps(scale);
  int64_t start = 0;
  for (; start + 4 <= M; start += 4) {
    const __m512 x = _mm512_permutexvar_ps(scalar_of_lane, _mm512_castps128_ps512(_mm_loadu_ps(u_row + start)));
    const __m512i bucket =
        _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(bucket_row + start * 4)));
    const __mmask16 active = _mm512_cmpneq_epi32_mask(bucket, inactive);
    const __m512i index = _mm512_add_epi32(bucket, channel_offset);
    const __m512 s = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), active, index, slope, 4);
    const __m512 c = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), active, index, intercept, 4);
    // Inactive: 0, or x itself where x is NaN (as the forward's max(0, s) left it).
    const __m512 off = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q), x);
    _mm512_storeu_ps(out_row + start * 4,
                     _mm512_mask_mul_ps(off, active, scale16, _mm512_fmadd_ps(s, x, c)));
  }
  return start;
}

// The AVX2 counterparts for 4 channels, 8 outputs (2 scalars × 4 channels) per vector.

// recompute_row_avx512 on 8 lanes; returns where the scalar code takes over.
int64_t recompute_row_avx2(const float* slope, const float* intercept, int64_t max_buckets, const float* u_row,
                           const uint8_t* bucket_row, int64_t M, float scale, float* out_row) {
  const __m256i channel_offset =
      _mm256_mullo_epi32(_mm256_setr_epi32(0, 1, 2, 3, 0, 1, 2, 3), _mm256_set1_epi32(int(max_buckets)));
  const __m256i inactive = _mm256_set1_epi32(kInactiveBucket);
  const __m256 scale8 = _mm256_set1_ps(scale);
  int64_t start = 0;
  for (; start + 2 <= M; start += 2) {
    const __m256 x = _mm256_set_m128(_mm_set1_ps(u_row[start + 1]), _mm_set1_ps(u_row[start]));
    const __m256i bucket =
        _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(bucket_row + start * 4)));
    const __m256 active = _mm256_castsi256_ps(_mm256_xor_si256(_mm256_cmpeq_epi32(bucket, inactive),
                                                               _mm256_set1_epi32(-1)));
    const __m256i index = _mm256_add_epi32(bucket, channel_offset);
    const __m256 s = _mm256_mask_i32gather_ps(_mm256_setzero_ps(), slope, index, active, 4);
    const __m256 c = _mm256_mask_i32gather_ps(_mm256_setzero_ps(), intercept, index, active, 4);
    // Inactive: 0, or x itself where x is NaN (as the forward's max(0, s) left it).
    const __m256 off = _mm256_and_ps(_mm256_cmp_ps(x, x, _CMP_UNORD_Q), x);
    _mm256_storeu_ps(out_row + start * 4,
                     _mm256_blendv_ps(off, _mm256_mul_ps(scale8, _mm256_fmadd_ps(s, x, c)), active));
  }
  return start;
}

// accumulate_row for 4 channels, 8 scalars at a time; returns where the scalar code takes over.
// grad_u by masked multiply-adds in channel order on channel vectors (interleave4 is its own
// inverse); the bucket sums stay scalar, over the active outputs only, found by a byte compare and
// walked in (scalar, channel) order, so every bucket still accumulates in (row, scalar) order.
int64_t accumulate_row_avx2(const PiecewiseTable<float>* row_tables, const float* u_row, const float* grad_row,
                            const uint8_t* bucket_row, int64_t M, int64_t max_buckets, float scale,
                            double* P0_group, double* P1_group, float* grad_u_row) {
  const __m256i natural_order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);  // undoes lanes (0, 2, 4, 6 | 1, 3, 5, 7)
  const __m256 scale8 = _mm256_set1_ps(scale);
  const __m256i inactive = _mm256_set1_epi32(kInactiveBucket);
  alignas(32) float deltas[32];  // (8 scalars, 4 channels)
  int64_t start = 0;
  for (; start + 8 <= M; start += 8) {
    const __m256i bytes = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(bucket_row + start * 4));
    __m256 grad[4], bucket_f[4], grad_l[4], bucket_l[4];
    for (int v = 0; v < 4; ++v) {
      grad[v] = _mm256_loadu_ps(grad_row + start * 4 + 8 * v);
      _mm256_store_ps(deltas + 8 * v, _mm256_mul_ps(grad[v], scale8));
      bucket_f[v] = _mm256_castsi256_ps(
          _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(bucket_row + start * 4 + 8 * v))));
    }
    interleave4(grad, grad_l);
    interleave4(bucket_f, bucket_l);
    __m256 grad_x = _mm256_setzero_ps();
    for (int l = 0; l < 4; ++l) {
      const __m256i bucket = _mm256_castps_si256(bucket_l[l]);
      const __m256 active =
          _mm256_castsi256_ps(_mm256_xor_si256(_mm256_cmpeq_epi32(bucket, inactive), _mm256_set1_epi32(-1)));
      const __m256 delta = _mm256_mul_ps(grad_l[l], scale8);
      const __m256 slope = _mm256_mask_i32gather_ps(_mm256_setzero_ps(), row_tables[l].slope.data(), bucket, active, 4);
      grad_x = _mm256_blendv_ps(grad_x, _mm256_fmadd_ps(delta, slope, grad_x), active);
    }
    _mm256_storeu_ps(grad_u_row + start, _mm256_permutevar8x32_ps(grad_x, natural_order));
    // Bit e of `active_outputs` is output e = 4·scalar + channel of this block.
    uint32_t active_outputs =
        ~uint32_t(_mm256_movemask_epi8(_mm256_cmpeq_epi8(bytes, _mm256_set1_epi8(char(kInactiveBucket)))));
    for (; active_outputs != 0; active_outputs &= active_outputs - 1) {
      const int e = std::countr_zero(active_outputs);
      const int64_t slot = (e & 3) * max_buckets + bucket_row[start * 4 + e];
      const double d = deltas[e];
      P0_group[slot] += d;
      P1_group[slot] = std::fma(d, double(u_row[start + (e >> 2)]), P1_group[slot]);
    }
  }
  return start;
}

// recompute_row_avx2 and accumulate_row_avx2 in one pass, for a caller that has the row's gradients
// before it needs φ (the fused attention's backward): each output's slope and intercept come by one
// 8-byte gather of its pair instead of three 4-byte gathers over two passes. Every output, grad_u and
// bucket sum is computed by the same operations in the same order as the two passes. `pairs` is the
// group's four tables packed as (L, max_buckets, 2); returns where the scalar code takes over.
int64_t rebuild_and_accumulate_row_avx2(const double* pairs, int64_t max_buckets, const float* u_row,
                                        const float* grad_row, const uint8_t* bucket_row, int64_t M, float scale,
                                        double* P0_group, double* P1_group, float* grad_u_row, float* out_row) {
  const __m256i channel_offset =
      _mm256_mullo_epi32(_mm256_setr_epi32(0, 1, 2, 3, 0, 1, 2, 3), _mm256_set1_epi32(int(max_buckets)));
  const __m256 scale8 = _mm256_set1_ps(scale);
  const __m256i inactive = _mm256_set1_epi32(kInactiveBucket), all_ones = _mm256_set1_epi32(-1);
  // (8 scalars, 4 channels) for the bucket sums: each output's slot, δ in float64, and x in float64
  alignas(32) int32_t slots[32];
  alignas(32) double deltas[32], xs[8];
  int64_t start = 0;
  for (; start + 8 <= M; start += 8) {
    const __m256 x8 = _mm256_loadu_ps(u_row + start);
    _mm256_store_pd(xs, _mm256_cvtps_pd(_mm256_castps256_ps128(x8)));
    _mm256_store_pd(xs + 4, _mm256_cvtps_pd(_mm256_extractf128_ps(x8, 1)));
    __m256 delta[4], slope[4], active[4];
    for (int v = 0; v < 4; ++v) {  // outputs 8v .. 8v+7: scalars 2v and 2v+1, four channels each
      const __m256i bucket =
          _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(bucket_row + start * 4 + 8 * v)));
      const __m256i is_inactive = _mm256_cmpeq_epi32(bucket, inactive);
      active[v] = _mm256_castsi256_ps(_mm256_xor_si256(is_inactive, all_ones));
      // An inactive output reads pair 0 of its table (any valid pair: the blends below drop it).
      const __m256i index = _mm256_add_epi32(_mm256_andnot_si256(is_inactive, bucket), channel_offset);
      _mm256_store_si256(reinterpret_cast<__m256i*>(slots + 8 * v), index);
      const __m256 low = _mm256_castpd_ps(_mm256_i32gather_pd(pairs, _mm256_castsi256_si128(index), 8));
      const __m256 high = _mm256_castpd_ps(_mm256_i32gather_pd(pairs, _mm256_extracti128_si256(index, 1), 8));
      slope[v] = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(low, high, 0x88)), 0xD8));
      const __m256 intercept =
          _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(low, high, 0xDD)), 0xD8));
      const __m256 x = _mm256_permutevar8x32_ps(x8, _mm256_setr_epi32(2 * v, 2 * v, 2 * v, 2 * v, 2 * v + 1, 2 * v + 1,
                                                                      2 * v + 1, 2 * v + 1));
      // Inactive: 0, or x itself where x is NaN (as the forward's max(0, s) left it).
      const __m256 off = _mm256_and_ps(_mm256_cmp_ps(x, x, _CMP_UNORD_Q), x);
      _mm256_storeu_ps(out_row + start * 4 + 8 * v,
                       _mm256_blendv_ps(off, _mm256_mul_ps(scale8, _mm256_fmadd_ps(slope[v], x, intercept)), active[v]));
      delta[v] = _mm256_mul_ps(_mm256_loadu_ps(grad_row + start * 4 + 8 * v), scale8);
      _mm256_store_pd(deltas + 8 * v, _mm256_cvtps_pd(_mm256_castps256_ps128(delta[v])));
      _mm256_store_pd(deltas + 8 * v + 4, _mm256_cvtps_pd(_mm256_extractf128_ps(delta[v], 1)));
    }
    store_grad_u8(delta, slope, active, grad_u_row + start);
    // The bucket sums, as accumulate_row_avx2 walks them.
    const __m256i bytes = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(bucket_row + start * 4));
    uint32_t active_outputs =
        ~uint32_t(_mm256_movemask_epi8(_mm256_cmpeq_epi8(bytes, _mm256_set1_epi8(char(kInactiveBucket)))));
    for (; active_outputs != 0; active_outputs &= active_outputs - 1) {
      const int e = std::countr_zero(active_outputs);
      const int32_t slot = slots[e];
      const double d = deltas[e];
      P0_group[slot] += d;
      P1_group[slot] = std::fma(d, xs[e >> 2], P1_group[slot]);
    }
  }
  return start;
}

#endif

// The part of a rebuild the vector paths leave to scalar code: the scalars [start, M) of the row, and,
// before start, the inactive outputs of infinite inputs (the vector paths give an inactive output 0,
// or its input where that is NaN; an infinite input needs inactive_value).
template <class T>
void rebuild_rest(const PiecewiseTable<T>* row_tables, const T* u_row, const uint8_t* bucket_row, int64_t M,
                  int64_t L, int64_t start, T scale, T* out_row) {
  // Infinite inputs are rare: one branch-free pass over the bits (it vectorises) finds whether the
  // row has any.
  using Bits = std::conditional_t<sizeof(T) == 4, uint32_t, uint64_t>;
  const Bits magnitude = std::numeric_limits<Bits>::max() >> 1;
  const Bits infinity = std::bit_cast<Bits>(std::numeric_limits<T>::infinity());
  Bits any_infinite = 0;
  for (int64_t i = 0; i < start; ++i) any_infinite |= Bits((std::bit_cast<Bits>(u_row[i]) & magnitude) == infinity);
  for (int64_t i = 0; any_infinite != 0 && i < start; ++i) {
    if (!std::isinf(u_row[i])) continue;
    for (int64_t l = 0; l < L; ++l)
      if (bucket_row[i * L + l] == kInactiveBucket) out_row[i * L + l] = inactive_value(row_tables[l], u_row[i], scale);
  }
  for (int64_t i = start; i < M; ++i) {
    const T x = u_row[i];
    for (int64_t l = 0; l < L; ++l) {
      const uint8_t b = bucket_row[i * L + l];
      out_row[i * L + l] =
          b == kInactiveBucket ? inactive_value(row_tables[l], x, scale) : scale * table_value(row_tables[l], b, x);
    }
  }
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Row by row (ops/luna_kernels.h): what a call builds once, then any row from any thread.

template <class T>
struct PsiPiecewiseRows<T>::State {
  PsiShape shape;
  PsiParams<T> params;
  std::vector<PiecewiseTable<T>> tables;  // (G·L)
  int64_t max_buckets = 0;                 // 2·Hψ + 1, the stride of the bucket sums
  int64_t channel_sums = 0;                // G·L·max_buckets: Σδ, then as many of Σδ·x (bucket_sums_size)
#if defined(LUNA_PSI_AVX2)
  // float32 only. The AVX2 forward searches every table through blocks when all tables have at most
  // kMaxBlockKinks kinks, else through grids.
  std::vector<PsiKinkBlocks> blocks;      // (G·L) or empty
  std::vector<PsiGrid> grids;             // (G·L) when blocks is empty
  std::vector<PsiRegisters> registers;    // (G·L) when avx512_forward
  // (G) four channels of at most kMaxBlockKinks kinks each: the forward's one search per scalar over
  // the union of a group's kinks. Empty otherwise (or when a kink is NaN).
  std::vector<PsiChannelUnion> unions;
  // forward_for_rebuild saves union buckets (unions, M a multiple of 8). It does on AVX-512 machines
  // too, so the form of the saved rows does not depend on which vector paths are allowed.
  bool saves_union_buckets = false;
  bool avx512_forward = false, avx512_backward = false;
  bool four_channels = false;             // the vector backward and recompute (AVX-512 or AVX2)
  // (G, L, max_buckets): every table's slope and intercept at one stride, for the vector recompute.
  std::vector<float> packed_slope, packed_intercept;
  // (G, L, max_buckets, 2): the same as pairs, for the AVX2 rebuild_and_backward.
  std::vector<float> packed_pairs;
#endif
};

template <class T>
PsiPiecewiseRows<T>::PsiPiecewiseRows(const PsiParams<T>& params, const PsiShape& shape) : state_(new State) {
  State& s = *state_;
  s.shape = shape;
  s.params = params;
  s.tables = build_piecewise_tables(params, shape);
  s.max_buckets = 2 * shape.hidden + 1;
  s.channel_sums = shape.groups() * shape.channels * s.max_buckets;
#if defined(LUNA_PSI_AVX2)
  if constexpr (std::is_same_v<T, float>) {
    const bool few_kinks = std::all_of(s.tables.begin(), s.tables.end(), [](const PiecewiseTable<float>& table) {
      return int64_t(table.kinks.size()) <= kMaxBlockKinks;
    });
    for (const PiecewiseTable<float>& table : s.tables) {
      if (few_kinks) s.blocks.push_back(kink_blocks_of(table.kinks));
      else s.grids.push_back(build_grid(table.kinks));
    }
    s.four_channels = shape.channels == 4;
    const bool avx512 = s.four_channels && cpu_has_avx512();
    s.avx512_backward = avx512;
    s.avx512_forward = avx512 && shape.projections >= 16 && few_kinks;
    if (s.avx512_forward)
      for (const PiecewiseTable<float>& table : s.tables) s.registers.push_back(registers_of(table.kinks));
    if (s.four_channels && few_kinks) {
      s.unions.resize(size_t(shape.groups()));
      for (int64_t group = 0; group < shape.groups(); ++group) {
        const std::vector<float>* kinks[kUnionChannels];
        const float* pairs[kUnionChannels];
        for (int l = 0; l < kUnionChannels; ++l) {
          const PiecewiseTable<float>& table = s.tables[size_t(group * kUnionChannels + l)];
          kinks[l] = &table.kinks;
          pairs[l] = table.slope_intercept.data();
        }
        if (!build_channel_union(kinks, pairs, s.unions[size_t(group)])) {
          s.unions.clear();
          break;
        }
      }
      s.saves_union_buckets = !s.unions.empty() && shape.projections % 8 == 0;
    }
    if (s.four_channels) {
      s.packed_slope.assign(s.tables.size() * size_t(s.max_buckets), 0.0f);
      s.packed_intercept.assign(s.tables.size() * size_t(s.max_buckets), 0.0f);
      s.packed_pairs.assign(2 * s.tables.size() * size_t(s.max_buckets), 0.0f);
      for (size_t t = 0; t < s.tables.size(); ++t) {
        std::copy(s.tables[t].slope.begin(), s.tables[t].slope.end(), s.packed_slope.begin() + t * s.max_buckets);
        std::copy(s.tables[t].intercept.begin(), s.tables[t].intercept.end(),
                  s.packed_intercept.begin() + t * s.max_buckets);
        std::copy(s.tables[t].slope_intercept.begin(), s.tables[t].slope_intercept.end(),
                  s.packed_pairs.begin() + 2 * t * s.max_buckets);
      }
    }
  }
#endif
}

template <class T>
PsiPiecewiseRows<T>::~PsiPiecewiseRows() = default;

template <class T>
const PsiShape& PsiPiecewiseRows<T>::shape() const { return state_->shape; }

template <class T>
int64_t PsiPiecewiseRows<T>::bucket_sums_size() const {
  const State& s = *state_;
#if defined(LUNA_PSI_AVX2)
  // then (G, kUnionSumsPerGroup) per union bucket, for rebuild_and_backward on union buckets
  if (s.saves_union_buckets) return 2 * s.channel_sums + s.shape.groups() * kUnionSumsPerGroup;
#endif
  return 2 * s.channel_sums;
}

template <class T>
void PsiPiecewiseRows<T>::forward(const T* u_row, int64_t group, T scale, T* out_row, uint8_t* bucket_row) const {
  const State& s = *state_;
  const int64_t M = s.shape.projections, L = s.shape.channels;
#if defined(LUNA_PSI_AVX2)
  if constexpr (std::is_same_v<T, float>) {
    const PiecewiseTable<float>* tables = s.tables.data() + group * L;
    int64_t start =
        s.avx512_forward ? row_avx512(tables, s.registers.data() + group * L, u_row, M, scale, out_row, bucket_row) : 0;
    if (!s.unions.empty()) start = row_union_avx2(s.unions[size_t(group)], u_row, M, start, scale, out_row, bucket_row);
    if (!s.blocks.empty())
      row_avx2(tables, s.blocks.data() + group * L, u_row, M, L, start, scale, out_row, bucket_row);
    else
      row_avx2(tables, s.grids.data() + group * L, u_row, M, L, start, scale, out_row, bucket_row);
    return;
  }
#endif
  row_plain(s.tables.data() + group * L, u_row, M, L, scale, out_row, bucket_row);
}

template <class T>
void PsiPiecewiseRows<T>::forward_for_rebuild(const T* u_row, int64_t group, T scale, T* out_row,
                                              uint8_t* saved_row) const {
#if defined(LUNA_PSI_AVX2)
  if constexpr (std::is_same_v<T, float>)
    if (state_->saves_union_buckets) {
      row_union_avx2(state_->unions[size_t(group)], u_row, state_->shape.projections, 0, scale, out_row, nullptr,
                     saved_row);
      return;
    }
#endif
  forward(u_row, group, scale, out_row, saved_row);
}

template <class T>
int64_t PsiPiecewiseRows<T>::saved_row_bytes() const {
  const PsiShape& shape = state_->shape;
#if defined(LUNA_PSI_AVX2)
  if (state_->saves_union_buckets) return 2 * shape.projections;
#endif
  return shape.projections * shape.channels;
}

template <class T>
void PsiPiecewiseRows<T>::recompute(const T* u_row, const uint8_t* bucket_row, int64_t group, T scale,
                                    T* out_row) const {
  const State& s = *state_;
  const int64_t M = s.shape.projections, L = s.shape.channels;
  const PiecewiseTable<T>* row_tables = s.tables.data() + group * L;
  int64_t start = 0;
#if defined(LUNA_PSI_AVX2)
  if constexpr (std::is_same_v<T, float>)
    if (s.four_channels) {
      const float* slope = s.packed_slope.data() + group * L * s.max_buckets;
      const float* intercept = s.packed_intercept.data() + group * L * s.max_buckets;
      start = s.avx512_backward
                  ? recompute_row_avx512(slope, intercept, s.max_buckets, u_row, bucket_row, M, scale, out_row)
                  : recompute_row_avx2(slope, intercept, s.max_buckets, u_row, bucket_row, M, scale, out_row);
    }
#endif
  rebuild_rest(row_tables, u_row, bucket_row, M, L, start, scale, out_row);
}

template <class T>
void PsiPiecewiseRows<T>::rebuild_and_backward(const T* u_row, const T* grad_row, const uint8_t* saved_row,
                                               int64_t group, T scale, double* sums, T* grad_u_row,
                                               T* out_row) const {
  const State& s = *state_;
  const int64_t M = s.shape.projections, L = s.shape.channels;
  int64_t start = 0;
#if defined(LUNA_PSI_AVX2)
  if constexpr (std::is_same_v<T, float>) {
    if (s.saves_union_buckets) {  // saved_row holds union buckets
      rebuild_and_accumulate_union_avx2(s.unions[size_t(group)], u_row, grad_row, saved_row, M, scale,
                                        sums + 2 * s.channel_sums + group * kUnionSumsPerGroup, grad_u_row, out_row);
      return;
    }
    double* P0_group = sums + group * L * s.max_buckets;
    double* P1_group = P0_group + s.channel_sums;
    if (s.four_channels && !s.avx512_backward) {
      const double* pairs = reinterpret_cast<const double*>(s.packed_pairs.data()) + group * L * s.max_buckets;
      start = rebuild_and_accumulate_row_avx2(pairs, s.max_buckets, u_row, grad_row, saved_row, M, scale, P0_group,
                                              P1_group, grad_u_row, out_row);
      rebuild_rest(s.tables.data() + group * L, u_row, saved_row, M, L, start, scale, out_row);
      accumulate_row(s.tables.data() + group * L, u_row, grad_row, saved_row, M, L, start, s.max_buckets, scale,
                     P0_group, P1_group, grad_u_row);
      return;
    }
  }
#endif
  recompute(u_row, saved_row, group, scale, out_row);
  backward(u_row, grad_row, saved_row, group, scale, sums, grad_u_row);
}

template <class T>
void PsiPiecewiseRows<T>::backward(const T* u_row, const T* grad_row, const uint8_t* bucket_row, int64_t group,
                                   T scale, double* sums, T* grad_u_row) const {
  const State& s = *state_;
  const int64_t M = s.shape.projections, L = s.shape.channels;
  double* P0_group = sums + group * L * s.max_buckets;
  double* P1_group = P0_group + s.channel_sums;
  int64_t start = 0;
#if defined(LUNA_PSI_AVX2)
  if constexpr (std::is_same_v<T, float>)
    if (s.four_channels)
      start = (s.avx512_backward ? accumulate_row_avx512 : accumulate_row_avx2)(
          s.tables.data() + group * L, u_row, grad_row, bucket_row, M, s.max_buckets, scale, P0_group, P1_group,
          grad_u_row);
#endif
  accumulate_row(s.tables.data() + group * L, u_row, grad_row, bucket_row, M, L, start, s.max_buckets, scale,
                 P0_group, P1_group, grad_u_row);
}

template <class T>
void PsiPiecewiseRows<T>::parameter_gradients(const double* sums, const PsiGrads<T>& grads) const {
  const State& s = *state_;
  const int64_t hidden = s.shape.hidden, G = s.shape.groups(), L = s.shape.channels;
#if defined(LUNA_PSI_AVX2)
  std::vector<double> folded;  // the channel sums with the union sums added
  if (s.saves_union_buckets) sums = fold_union_sums(s.unions, sums, s.channel_sums, s.max_buckets, folded);
#endif
  const double* P0 = sums;
  const double* P1 = sums + s.channel_sums;
  std::vector<double> prefix0, prefix1, suffix0, suffix1;  // (buckets + 1): sums over b < k, and b ≥ k
  for (int64_t table_index = 0; table_index < G * L; ++table_index) {
    const PiecewiseTable<T>& table = s.tables[table_index];
    const int64_t buckets = int64_t(table.slope.size());
    const double* p0 = P0 + table_index * s.max_buckets;
    const double* p1 = P1 + table_index * s.max_buckets;
    prefix0.assign(buckets + 1, 0.0);
    prefix1.assign(buckets + 1, 0.0);
    suffix0.assign(buckets + 1, 0.0);
    suffix1.assign(buckets + 1, 0.0);
    for (int64_t b = 0; b < buckets; ++b) {
      prefix0[b + 1] = prefix0[b] + p0[b];
      prefix1[b + 1] = prefix1[b] + p1[b];
    }
    for (int64_t b = buckets - 1; b >= 0; --b) {
      suffix0[b] = suffix0[b + 1] + p0[b];
      suffix1[b] = suffix1[b + 1] + p1[b];
    }
    const double total0 = suffix0[0], total1 = suffix1[0];
    const int64_t offset = table_index * hidden;
    for (int64_t j = 0; j < hidden; ++j) {
      const double a = s.params.fc1_weight[offset + j], c = s.params.fc1_bias[offset + j];
      const double g = s.params.fc2_weight[offset + j];
      const int64_t kink = table.kink_bucket[j];
      double sum0, sum1;  // P0, P1 over the scalars where unit j is active
      if (kink < 0) {
        const bool active = c > 0;  // a = 0: the unit is the constant relu(c)
        sum0 = active ? total0 : 0.0;
        sum1 = active ? total1 : 0.0;
      } else if (a > 0) {
        sum0 = suffix0[kink + 1];
        sum1 = suffix1[kink + 1];
      } else {
        sum0 = prefix0[kink];
        sum1 = prefix1[kink];
      }
      grads.fc2_weight[offset + j] = T(a * sum1 + c * sum0);
      grads.fc1_weight[offset + j] = T(g * sum1);
      grads.fc1_bias[offset + j] = T(g * sum0);
    }
    grads.fc2_bias[table_index] = T(total0);
  }
}

// ---------------------------------------------------------------------------------------------
// Whole-tensor entry points (ops/luna_kernels.h)

template <class T>
void psi_forward_piecewise(const T* u, const PsiParams<T>& params, const PsiShape& shape, T scale, T* out,
                           uint8_t* buckets_out) {
  const PsiPiecewiseRows<T> rows(params, shape);
  const int64_t ML = shape.projections * shape.channels;
#pragma omp parallel for schedule(static) if (shape.rows * ML > kParallelWork)
  for (int64_t step = 0; step < shape.rows; ++step) {
    const int64_t row = shape.row_at(step);
    rows.forward(u + shape.u_offset(row), shape.group_of_row(row), scale, out + row * ML,
                 buckets_out != nullptr ? buckets_out + row * ML : nullptr);
  }
}

template <class T>
void psi_forward_piecewise_plain(const T* u, const PsiParams<T>& params, const PsiShape& shape, T scale, T* out,
                                 uint8_t* buckets_out) {
  forward_plain(build_piecewise_tables(params, shape), u, shape, scale, out, buckets_out);
}

template <class T>
void psi_backward_piecewise(const T* grad_out, const T* u, const uint8_t* saved_buckets, const PsiParams<T>& params,
                            const PsiShape& shape, T scale, T* grad_u, const PsiGrads<T>& grads) {
  const PsiPiecewiseRows<T> rows(params, shape);
  const std::vector<PiecewiseTable<T>>& tables = rows.state().tables;
  const int64_t M = shape.projections, L = shape.channels, hidden = shape.hidden;
  const int64_t max_buckets = 2 * hidden + 1;
  // Per thread and (group, channel, bucket): P0 = Σδ and P1 = Σδu, δ the gated upstream gradient.
  const int64_t sums = rows.state().channel_sums;
  const bool parallel = shape.rows * M * L > kParallelWork;
  const int threads = parallel ? omp_get_max_threads() : 1;
  ThreadPartials partials(rows.bucket_sums_size(), threads);
#pragma omp parallel num_threads(threads) if (parallel)
  {
    double* P0 = partials.slot(omp_get_thread_num());  // (G, L, max_buckets)
    double* P1 = P0 + sums;                            // (G, L, max_buckets)
#pragma omp for schedule(static)
    for (int64_t step = 0; step < shape.rows; ++step) {
      const int64_t row = shape.row_at(step);
      const int64_t group = shape.group_of_row(row);
      const T* u_row = u + shape.u_offset(row);    // (M)
      const T* grad_row = grad_out + row * M * L;  // (M, L)
      if (saved_buckets != nullptr) {
        rows.backward(u_row, grad_row, saved_buckets + row * M * L, group, scale, P0, grad_u + shape.u_offset(row));
        continue;
      }
      // Hψ > 127: buckets do not fit a byte, so each active output searches again.
      T* grad_u_row = grad_u + shape.u_offset(row);
      int32_t bucket[kLookupBlock];
      std::fill(grad_u_row, grad_u_row + M, T(0));
      for (int64_t start = 0; start < M; start += kLookupBlock) {
        const int n = int(std::min<int64_t>(kLookupBlock, M - start));
        for (int64_t l = 0; l < L; ++l) {
          const PiecewiseTable<T>& table = tables[size_t(group * L + l)];
          buckets_of_block(table, u_row + start, n, bucket);
          double* P0_table = P0 + (group * L + l) * max_buckets;
          double* P1_table = P1 + (group * L + l) * max_buckets;
          for (int s = 0; s < n; ++s) {
            const T x = u_row[start + s];
            const int32_t b = bucket[s];
            if (!(table_value(table, b, x) > T(0))) continue;  // the final ReLU is off
            const T delta = grad_row[(start + s) * L + l] * scale;
            grad_u_row[start + s] = std::fma(delta, table.slope[b], grad_u_row[start + s]);
            P0_table[b] += double(delta);
            P1_table[b] = std::fma(double(delta), double(x), P1_table[b]);
          }
        }
      }
    }
  }
  rows.parameter_gradients(partials.reduce(threads), grads);
}

template class PsiPiecewiseRows<float>;
template class PsiPiecewiseRows<double>;
template void psi_forward_piecewise<float>(const float*, const PsiParams<float>&, const PsiShape&, float, float*,
                                           uint8_t*);
template void psi_forward_piecewise<double>(const double*, const PsiParams<double>&, const PsiShape&, double, double*,
                                            uint8_t*);
template void psi_forward_piecewise_plain<float>(const float*, const PsiParams<float>&, const PsiShape&, float,
                                                 float*, uint8_t*);
template void psi_forward_piecewise_plain<double>(const double*, const PsiParams<double>&, const PsiShape&, double,
                                                  double*, uint8_t*);
template void psi_backward_piecewise<float>(const float*, const float*, const uint8_t*, const PsiParams<float>&,
                                            const PsiShape&, float, float*, const PsiGrads<float>&);
template void psi_backward_piecewise<double>(const double*, const double*, const uint8_t*, const PsiParams<double>&,
                                             const PsiShape&, double, double*, const PsiGrads<double>&);

}  // namespace luna::cpu::luna_kernels
