// ψ's AVX2 code for four channels through one search (ops/luna_psi_piecewise.cpp, its only
// includer): instead of searching each channel's kinks, each scalar searches the union of the four
// channels' kinks once, and its bucket in the union names a record holding every channel's bucket,
// slope and intercept. The forward's outputs and stored buckets are the per-channel search's, bit
// for bit; the fused attention's backward rebuilds φ and runs ψ's backward from the union buckets
// the forward saved (rebuild_and_accumulate_union_avx2), with the per-channel path's bits too.
//
// Why it is exact: with U the sorted distinct union (each channel's kinks K_ℓ ⊂ U) and x having
// n = #{U < x} and e = [x ∈ U], the union bucket is 2n + e, and for every channel
//   #{K_ℓ < x} = #{K_ℓ < U[n]} (all of K_ℓ when n = |U|),   [x ∈ K_ℓ] = e·[U[n] ∈ K_ℓ],
// since no kink of any channel lies strictly between U[n−1] and U[n]. So the channel's bucket
// 2·#{K_ℓ < x} + [x ∈ K_ℓ] is a function of the union bucket alone, tabulated once per call.
#pragma once

#if defined(LUNA_PSI_AVX2)
#include <immintrin.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include <luna/ops/luna_kernels.h>

#include "luna_psi_lanes.h"
#include "luna_psi_search.h"

namespace luna::cpu::luna_kernels {
namespace {

constexpr int kUnionChannels = 4;
// The union holds at most 256 kinks (four channels of Hψ ≤ 64): 8 blocks of 32, each of 4 sub-blocks of 8.
constexpr int64_t kMaxUnionKinks = 256;

// What a scalar needs from its union bucket: every channel's slope and intercept (32 bytes, so one
// aligned load serves four outputs).
struct alignas(32) PsiUnionRecord {
  float slope[kUnionChannels], intercept[kUnionChannels];
};

struct PsiChannelUnion {
  alignas(32) float block_last[8];       // U[32j + 31] for j < 7, then NaN: the blocks' splitters
  alignas(32) float sub_block_last[3][8];  // [m][j] = U[32j + 8m + 7]: the splitters inside block j
  alignas(32) float kinks[kMaxUnionKinks];  // U, NaN-padded (NaN compares false, as a kink past every x)
  std::vector<PsiUnionRecord> records;   // (2|U| + 1) by union bucket
  std::vector<int32_t> channel_buckets;  // (2|U| + 1) channel ℓ's bucket in byte ℓ
};

// The union of four channels' sorted distinct kinks, with `pairs[ℓ]` channel ℓ's (slope, intercept)
// per bucket. False (and nothing built) when a kink is NaN, which has no place in a sorted order.
bool build_channel_union(const std::vector<float>* const kinks[kUnionChannels],
                         const float* const pairs[kUnionChannels], PsiChannelUnion& out) {
  std::vector<float> all;
  for (int l = 0; l < kUnionChannels; ++l) {
    if (std::any_of(kinks[l]->begin(), kinks[l]->end(), [](float k) { return std::isnan(k); })) return false;
    all.insert(all.end(), kinks[l]->begin(), kinks[l]->end());
  }
  std::sort(all.begin(), all.end());
  all.erase(std::unique(all.begin(), all.end()), all.end());  // by ==, as the channels' own lists
  const int64_t D = int64_t(all.size());
  if (D > kMaxUnionKinks) return false;
  const float nan = std::numeric_limits<float>::quiet_NaN();
  std::fill(std::begin(out.kinks), std::end(out.kinks), nan);
  std::copy(all.begin(), all.end(), out.kinks);
  for (int j = 0; j < 8; ++j) {
    out.block_last[j] = j < 7 ? out.kinks[32 * j + 31] : nan;
    for (int m = 0; m < 3; ++m) out.sub_block_last[m][j] = out.kinks[32 * j + 8 * m + 7];
  }
  out.records.assign(size_t(2 * D + 1), PsiUnionRecord{});
  out.channel_buckets.assign(size_t(2 * D + 1), 0);
  for (int64_t union_bucket = 0; union_bucket <= 2 * D; ++union_bucket) {
    const int64_t n = union_bucket / 2;
    const bool on_kink = union_bucket % 2 == 1;  // then n < D
    for (int l = 0; l < kUnionChannels; ++l) {
      const std::vector<float>& own = *kinks[l];
      const int64_t below = n < D ? std::lower_bound(own.begin(), own.end(), all[size_t(n)]) - own.begin()
                                  : int64_t(own.size());
      const bool own_kink = on_kink && std::binary_search(own.begin(), own.end(), all[size_t(n)]);
      const int64_t bucket = 2 * below + (own_kink ? 1 : 0);
      out.records[size_t(union_bucket)].slope[l] = pairs[l][2 * bucket];
      out.records[size_t(union_bucket)].intercept[l] = pairs[l][2 * bucket + 1];
      out.channel_buckets[size_t(union_bucket)] |= int32_t(uint32_t(bucket) << (8 * l));
    }
  }
  return true;
}

// ψ of one row's scalars [start, M) in groups of 8, all four channels; returns where the caller's
// code takes over (the last M % 8). Per 8 scalars: the sub-block of 8 kinks that settles each one
// (a binary search over the blocks' splitters, then a count over its block's three, all permutes
// in registers), then per scalar one load of its sub-block and two compares against it, and per
// output pair of scalars two record loads. bucket_row (M, L) receives the channels' buckets and
// union_row (M, 2 bytes) the union buckets as uint16, each when not null.
int64_t row_union_avx2(const PsiChannelUnion& u, const float* u_row, int64_t M, int64_t start, float scale,
                       float* out_row, uint8_t* bucket_row, uint8_t* union_row = nullptr) {
  const __m256 scale8 = _mm256_set1_ps(scale);
  const __m256 block_last = _mm256_load_ps(u.block_last);
  const __m256i byte_order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
  // Up to kUnionPass groups of 8 scalars go through each phase before the next phase starts: each
  // group's splitter search is a chain of dependent permutes and compares, and chains of different
  // groups then overlap instead of waiting behind a whole group's work.
  constexpr int kUnionPass = 4;
  alignas(32) int32_t sub_block[8 * kUnionPass], union_bucket[8 * kUnionPass], channel_bucket[8];
  while (start + 8 <= M) {
    const int groups = int(std::min<int64_t>(kUnionPass, (M - start) / 8));
    for (int group = 0; group < groups; ++group) {
      const __m256 x = _mm256_loadu_ps(u_row + start + 8 * group);
      // block = #{j < 7 : U[32j + 31] < x}: every kink of earlier blocks is < x.
      const __m256i block = count_below7(block_last, x);
      // sub-block = 4·block + #{m < 3 : U[32·block + 8m + 7] < x}; a true compare is −1.
      __m256i sub = _mm256_slli_epi32(block, 2);
      for (int m = 0; m < 3; ++m) {
        const __m256 kink = _mm256_permutevar8x32_ps(_mm256_load_ps(u.sub_block_last[m]), block);
        sub = _mm256_sub_epi32(sub, _mm256_castps_si256(_mm256_cmp_ps(kink, x, _CMP_LT_OQ)));
      }
      _mm256_store_si256(reinterpret_cast<__m256i*>(sub_block + 8 * group), sub);
    }
    // Every kink before the sub-block is < x and, unless it is the last, every one after it is ≥ x:
    // its 8 kinks settle the bucket 2·#{U < x} + [x ∈ U] = 16·sub-block + Σ [kink < x] + [kink ≤ x].
    for (int s = 0; s < 8 * groups; ++s) {
      const __m256 kinks = _mm256_load_ps(u.kinks + 8 * sub_block[s]);
      const __m256 xs = _mm256_set1_ps(u_row[start + s]);
      const int below = _mm256_movemask_ps(_mm256_cmp_ps(kinks, xs, _CMP_LT_OQ));
      const int at_or_below = _mm256_movemask_ps(_mm256_cmp_ps(kinks, xs, _CMP_LE_OQ));
      union_bucket[s] = 16 * sub_block[s] + std::popcount(unsigned(below)) + std::popcount(unsigned(at_or_below));
      if (union_row != nullptr) {
        const uint16_t saved = uint16_t(union_bucket[s]);  // < 2·256 + 1
        std::memcpy(union_row + 2 * (start + s), &saved, sizeof saved);
      }
    }
    for (int group = 0; group < groups; ++group, start += 8) {
      const __m256 x = _mm256_loadu_ps(u_row + start);
      const int32_t* group_bucket = union_bucket + 8 * group;
      // Outputs 8p .. 8p + 7 are scalars 2p and 2p + 1, four channels each: the two records' slopes
      // side by side against the two scalars, each broadcast over its four lanes.
      __m256i active[4];
      for (int p = 0; p < 4; ++p) {
        const __m256 first = _mm256_load_ps(u.records[size_t(group_bucket[2 * p])].slope);
        const __m256 second = _mm256_load_ps(u.records[size_t(group_bucket[2 * p + 1])].slope);
        const __m256 slope = _mm256_permute2f128_ps(first, second, 0x20);
        const __m256 intercept = _mm256_permute2f128_ps(first, second, 0x31);
        const __m256 xx = _mm256_permutevar8x32_ps(
            x, _mm256_setr_epi32(2 * p, 2 * p, 2 * p, 2 * p, 2 * p + 1, 2 * p + 1, 2 * p + 1, 2 * p + 1));
        const __m256 sum = _mm256_fmadd_ps(slope, xx, intercept);
        // relu as max(0, s) keeps NaN (maxps returns its second operand) and −0, as the other paths do.
        active[p] = _mm256_castps_si256(_mm256_cmp_ps(sum, _mm256_setzero_ps(), _CMP_GT_OQ));
        _mm256_storeu_ps(out_row + start * 4 + 8 * p,
                         _mm256_mul_ps(scale8, _mm256_max_ps(_mm256_setzero_ps(), sum)));
      }
      if (bucket_row == nullptr) continue;
      // The active masks as 32 bytes in output order, then each output's channel bucket or the marker.
      const __m256i words = _mm256_packs_epi32(active[0], active[1]);
      const __m256i words2 = _mm256_packs_epi32(active[2], active[3]);
      const __m256i mask = _mm256_permutevar8x32_epi32(_mm256_packs_epi16(words, words2), byte_order);
      for (int s = 0; s < 8; ++s) channel_bucket[s] = u.channel_buckets[size_t(group_bucket[s])];
      const __m256i buckets = _mm256_load_si256(reinterpret_cast<const __m256i*>(channel_bucket));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(bucket_row + start * 4),
                          _mm256_blendv_epi8(_mm256_set1_epi8(char(kMaxStoredBucket)), buckets, mask));
    }
  }
  return start;
}

// The fused backward's float64 bucket sums per union bucket: record ub of a group holds channel ℓ's
// Σδ at [8·ub + ℓ] and Σδ·x at [8·ub + 4 + ℓ] (one cache line), so a scalar adds its four channels'
// shares with two vector updates instead of a scalar walk over its active outputs.
// fold_union_sums adds them into the per-channel bucket sums for parameter_gradients.
constexpr int64_t kUnionSumsPerGroup = 2 * kUnionChannels * (2 * kMaxUnionKinks + 1);

// The one-pass rebuild and backward of a row (as rebuild_and_accumulate_row_avx2 in
// ops/luna_psi_piecewise.cpp) from the union buckets row_union_avx2 saved, M a multiple of 8: each
// pair of scalars' slopes and intercepts come by two record loads instead of gathers, and each
// output is recomputed as the forward made it (so also whether it is active, which the forward
// decided on the same sum). φ and grad_u have the per-channel path's bits; the bucket sums go to
// union_sums (kUnionSumsPerGroup doubles of the row's group), each slot adding its active outputs in
// the same order, but grouped by union bucket before fold_union_sums adds the groups up.
void rebuild_and_accumulate_union_avx2(const PsiChannelUnion& u, const float* u_row, const float* grad_row,
                                       const uint8_t* union_row, int64_t M, float scale, double* union_sums,
                                       float* grad_u_row, float* out_row) {
  const __m256 scale8 = _mm256_set1_ps(scale);
  for (int64_t start = 0; start + 8 <= M; start += 8) {
    const __m256 x8 = _mm256_loadu_ps(u_row + start);
    uint16_t union_bucket[8];
    std::memcpy(union_bucket, union_row + 2 * start, sizeof union_bucket);
    __m256 delta[4], slope[4], active[4];
    for (int p = 0; p < 4; ++p) {  // outputs 8p .. 8p+7: scalars 2p and 2p+1, four channels each
      const __m256 first = _mm256_load_ps(u.records[union_bucket[2 * p]].slope);
      const __m256 second = _mm256_load_ps(u.records[union_bucket[2 * p + 1]].slope);
      slope[p] = _mm256_permute2f128_ps(first, second, 0x20);
      const __m256 intercept = _mm256_permute2f128_ps(first, second, 0x31);
      const __m256 x = _mm256_permutevar8x32_ps(
          x8, _mm256_setr_epi32(2 * p, 2 * p, 2 * p, 2 * p, 2 * p + 1, 2 * p + 1, 2 * p + 1, 2 * p + 1));
      const __m256 sum = _mm256_fmadd_ps(slope[p], x, intercept);
      active[p] = _mm256_cmp_ps(sum, _mm256_setzero_ps(), _CMP_GT_OQ);
      _mm256_storeu_ps(out_row + start * 4 + 8 * p, _mm256_mul_ps(scale8, _mm256_max_ps(_mm256_setzero_ps(), sum)));
      delta[p] = _mm256_mul_ps(_mm256_loadu_ps(grad_row + start * 4 + 8 * p), scale8);
    }
    store_grad_u8(delta, slope, active, grad_u_row + start);
    // Each scalar's four channels into its union bucket's record, where active: the sums take the
    // per-channel path's operations (+δ, and fma(δ, x, ·) in float64); blends, not masked δ, keep
    // an inactive output out even where x is infinite (0·∞ would be NaN).
    for (int p = 0; p < 4; ++p)
      for (int half = 0; half < 2; ++half) {
        const int s = 2 * p + half;
        const __m128 delta4 = half == 0 ? _mm256_castps256_ps128(delta[p]) : _mm256_extractf128_ps(delta[p], 1);
        const __m128 active4 = half == 0 ? _mm256_castps256_ps128(active[p]) : _mm256_extractf128_ps(active[p], 1);
        const __m256d d = _mm256_cvtps_pd(delta4);
        const __m256d on = _mm256_castsi256_pd(_mm256_cvtepi32_epi64(_mm_castps_si128(active4)));
        const __m256d x = _mm256_set1_pd(double(u_row[start + s]));
        double* record = union_sums + 2 * kUnionChannels * union_bucket[s];
        const __m256d P0 = _mm256_loadu_pd(record), P1 = _mm256_loadu_pd(record + kUnionChannels);
        _mm256_storeu_pd(record, _mm256_blendv_pd(P0, _mm256_add_pd(P0, d), on));
        _mm256_storeu_pd(record + kUnionChannels, _mm256_blendv_pd(P1, _mm256_fmadd_pd(d, x, P1), on));
      }
  }
}

// The per-channel sums P0 then P1 (channel_sums doubles each, by group, channel and bucket) with every
// group's union sums (kUnionSumsPerGroup doubles each, after them) added, union bucket by union
// bucket, into `folded`; returns its data.
const double* fold_union_sums(const std::vector<PsiChannelUnion>& unions, const double* sums, int64_t channel_sums,
                              int64_t max_buckets, std::vector<double>& folded) {
  folded.assign(sums, sums + 2 * channel_sums);
  for (size_t group = 0; group < unions.size(); ++group) {
    const double* union_sums = sums + 2 * channel_sums + int64_t(group) * kUnionSumsPerGroup;
    double* P0_group = folded.data() + int64_t(group) * kUnionChannels * max_buckets;
    for (size_t union_bucket = 0; union_bucket < unions[group].channel_buckets.size(); ++union_bucket) {
      const double* record = union_sums + 2 * kUnionChannels * union_bucket;
      const uint32_t buckets = uint32_t(unions[group].channel_buckets[union_bucket]);
      for (int l = 0; l < kUnionChannels; ++l) {
        const int64_t slot = l * max_buckets + ((buckets >> (8 * l)) & 0xFF);
        P0_group[slot] += record[l];
        P0_group[channel_sums + slot] += record[kUnionChannels + l];
      }
    }
  }
  return folded.data();
}

}  // namespace
}  // namespace luna::cpu::luna_kernels

#endif  // LUNA_PSI_AVX2
