// The bucket search of ψ's exact float32 path on AVX2 (ops/luna_psi_piecewise.cpp, its only
// includer): which of a table's sorted kinks lie below each of 8 scalars, as the bucket
// 2·#{kinks < x} + [x is a kink], exactly as the plain loops count it.
#pragma once

#if defined(LUNA_PSI_AVX2)
#include <immintrin.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

namespace luna::cpu::luna_kernels {
namespace {

// Bucket search through a uniform grid. cell(x) = trunc(min(max((x − lo)·inv_width, 0), last)) is
// non-decreasing in x (each step is monotone; NaN lands in cell 0), and the kinks' own cells are
// computed by the very same instructions. So a kink in an earlier cell than x's is < x, one in a
// later cell is > x, and with first[c] = #{kinks in cells < c}:
//   #{kinks < x} = first[cell(x)] + #{p < probes : kinks[first[cell(x)] + p] < x}
// where probes is the most kinks any one cell holds (the probes past x's own cell meet larger
// kinks, and the NaN padding compares false). The bucket 2·#{kinks < x} + [x is a kink] is then
// the sum over the probes of [kink < x] + [kink ≤ x] (kinks are distinct, so at most one equals x).
// The grid's range is the kinks with the q most extreme on each side left out (they sit in the end
// cells), q chosen per table to make probes smallest: kinks −c/a of uniform a, c have heavy tails.

struct PsiGrid {
  float lo = 0, inv_width = 0, last_cell = 0;
  int probes = 0;
  std::vector<int32_t> first;       // (cells)
  std::vector<float> kinks_padded;  // (D + probes) the sorted kinks, then NaN
};

inline __m256i cell8(__m256 x, const PsiGrid& grid) {
  __m256 t = _mm256_mul_ps(_mm256_sub_ps(x, _mm256_set1_ps(grid.lo)), _mm256_set1_ps(grid.inv_width));
  t = _mm256_max_ps(t, _mm256_setzero_ps());  // maxps returns its second operand for NaN: cell 0
  t = _mm256_min_ps(t, _mm256_set1_ps(grid.last_cell));
  return _mm256_cvttps_epi32(t);
}

// The cells of `values` (any count) by cell8, so kinks and inputs share every rounding.
std::vector<int32_t> cells_of(const std::vector<float>& values, const PsiGrid& grid) {
  std::vector<int32_t> cells(values.size());
  for (size_t start = 0; start < values.size(); start += 8) {
    alignas(32) float block[8];
    alignas(32) int32_t cell[8];
    for (size_t s = 0; s < 8; ++s) block[s] = values[std::min(start + s, values.size() - 1)];
    _mm256_store_si256(reinterpret_cast<__m256i*>(cell), cell8(_mm256_load_ps(block), grid));
    for (size_t s = 0; s < 8 && start + s < values.size(); ++s) cells[start + s] = cell[s];
  }
  return cells;
}

PsiGrid build_grid(const std::vector<float>& kinks) {
  const int64_t D = int64_t(kinks.size());
  const int64_t cells = std::clamp<int64_t>(int64_t(std::bit_ceil(uint64_t(8 * std::max<int64_t>(D, 1)))), 16, 1024);
  PsiGrid best;
  best.probes = std::numeric_limits<int>::max();
  for (int64_t q : {0, 1, 2, 3, 4, 6, 8, 12, 16}) {
    if (q > 0 && 2 * q + 2 > D) break;
    PsiGrid grid;
    if (D >= 2) {
      const double lo = kinks[size_t(q)], hi = kinks[size_t(D - 1 - q)];
      grid.lo = float(lo);
      grid.inv_width = hi > lo ? float(double(cells) / (hi - lo)) : 0.0f;
      if (!std::isfinite(grid.inv_width)) grid.inv_width = 0.0f;
    }
    grid.last_cell = float(cells - 1);
    std::vector<int32_t> count(size_t(cells), 0);
    for (int32_t c : cells_of(kinks, grid)) ++count[size_t(c)];
    grid.probes = *std::max_element(count.begin(), count.end());
    if (grid.probes >= best.probes) continue;
    grid.first.assign(size_t(cells), 0);
    for (int64_t c = 1; c < cells; ++c) grid.first[size_t(c)] = grid.first[size_t(c - 1)] + count[size_t(c - 1)];
    best = std::move(grid);
    if (best.probes <= 1) break;
  }
  best.kinks_padded = kinks;
  best.kinks_padded.resize(size_t(D + best.probes), std::numeric_limits<float>::quiet_NaN());
  return best;
}

// Buckets of 8 scalars (int32 lanes), exactly as buckets_of_block would give them.
inline __m256i buckets8(__m256 x, const PsiGrid& grid) {
  const __m256i first = _mm256_i32gather_epi32(grid.first.data(), cell8(x, grid), 4);
  __m256i bucket = _mm256_add_epi32(first, first);
  for (int p = 0; p < grid.probes; ++p) {
    const __m256 kink = _mm256_i32gather_ps(grid.kinks_padded.data(), _mm256_add_epi32(first, _mm256_set1_epi32(p)), 4);
    // A true compare is all ones (−1): subtracting counts it.
    bucket = _mm256_sub_epi32(bucket, _mm256_castps_si256(_mm256_cmp_ps(kink, x, _CMP_LT_OQ)));
    bucket = _mm256_sub_epi32(bucket, _mm256_castps_si256(_mm256_cmp_ps(kink, x, _CMP_LE_OQ)));
  }
  return bucket;
}

// The search of tables with at most 64 kinks (Hψ ≤ 64, the default), without the grid's chain of
// dependent gathers (first cell, then its kinks), which is what bounds the grid search on CPUs with
// slow gathers. The sorted kinks, NaN-padded to 64, sit in eight blocks B_t[j] = kink[8j + t]. A
// branch-free binary search over B_7 (every eighth kink, first 7) gives pos = #{j < 7 : kink[8j+7] < x},
// so every kink below 8·pos is < x and, unless pos = 7, every kink past 8·pos + 7 is > x (kinks are
// distinct). The eight kinks 8·pos + t then settle the bucket as in the grid search:
// 16·pos + Σ_t ([kink < x] + [kink ≤ x]). Each step is one in-register permute of a block.
constexpr int64_t kMaxBlockKinks = 64;

struct PsiKinkBlocks {
  alignas(32) float block[8][8];  // B_t
};

// groups[t][j] = kink[G·j + t] for G groups of J lanes, NaN past the last kink.
template <int G, int J>
void interleave_kinks(const std::vector<float>& kinks, float (&groups)[G][J]) {
  for (int t = 0; t < G; ++t)
    for (int j = 0; j < J; ++j) {
      const size_t k = size_t(G * j + t);
      groups[t][j] = k < kinks.size() ? kinks[k] : std::numeric_limits<float>::quiet_NaN();
    }
}

PsiKinkBlocks kink_blocks_of(const std::vector<float>& kinks) {
  PsiKinkBlocks blocks;
  interleave_kinks(kinks, blocks.block);
  return blocks;
}

// #{j < 7 : splitters[j] < x} per lane for sorted splitters (NaN past the real ones, comparing false
// as if larger than every x): a branch-free binary search of 3 in-register permutes.
inline __m256i count_below7(__m256 splitters, __m256 x) {
  __m256i pos = _mm256_setzero_si256();
  for (int half = 4; half >= 1; half /= 2) {
    const __m256 kink = _mm256_permutevar8x32_ps(splitters, _mm256_add_epi32(pos, _mm256_set1_epi32(half - 1)));
    const __m256i below = _mm256_castps_si256(_mm256_cmp_ps(kink, x, _CMP_LT_OQ));
    pos = _mm256_add_epi32(pos, _mm256_and_si256(below, _mm256_set1_epi32(half)));
  }
  return pos;
}

inline __m256i buckets8(__m256 x, const PsiKinkBlocks& blocks) {
  const __m256i pos = count_below7(_mm256_load_ps(blocks.block[7]), x);  // every eighth kink, first 7
  __m256i bucket = _mm256_slli_epi32(pos, 4);
  for (int t = 0; t < 8; ++t) {
    const __m256 kink = _mm256_permutevar8x32_ps(_mm256_load_ps(blocks.block[t]), pos);
    // A true compare is all ones (−1): subtracting counts it.
    bucket = _mm256_sub_epi32(bucket, _mm256_castps_si256(_mm256_cmp_ps(kink, x, _CMP_LT_OQ)));
    bucket = _mm256_sub_epi32(bucket, _mm256_castps_si256(_mm256_cmp_ps(kink, x, _CMP_LE_OQ)));
  }
  return bucket;
}

}  // namespace
}  // namespace luna::cpu::luna_kernels

#endif  // LUNA_PSI_AVX2
