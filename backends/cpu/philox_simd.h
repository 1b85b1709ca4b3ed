// Philox 4x32-10 on 8 counter blocks at once (AVX2), bit-identical to core/generator.h's scalar
// philox4x32_10: dropout draws one word per element, and the scalar generator cost more than the
// rest of the dropout kernel together (a quarter of a block's 10 rounds per element, each round
// two 32x32->64 multiplies that AVX2 does four at a time).
//
// philox8_elements(key, first, out) returns the 32 words of blocks first .. first+7 in element order
// (element e reads word e % 4 of block first + e / 4, the layout of every luna random fill), as four
// 8-word vectors: out[v] holds elements 8v .. 8v+7.
#pragma once
#include <cstdint>

#include <luna/core/generator.h>

#if defined(__AVX2__)
#include <immintrin.h>
#define LUNA_HAVE_PHILOX_SIMD 1
#endif

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpsabi"
#endif

namespace luna::cpu::philox_simd {
namespace {

#if defined(LUNA_HAVE_PHILOX_SIMD)

// One Philox round on 8 lanes: (c0, c1, c2, c3) <- (hi(M1·c2) ^ c1 ^ k0, lo(M1·c2), hi(M0·c0) ^ c3 ^ k1,
// lo(M0·c0)). _mm256_mul_epu32 multiplies the even 32-bit lanes only, so the odd lanes are shifted
// down for a second multiply and the halves are blended back.
inline void round8(__m256i& c0, __m256i& c1, __m256i& c2, __m256i& c3, __m256i k0, __m256i k1) {
  const __m256i m0 = _mm256_set1_epi64x(0xD2511F53u), m1 = _mm256_set1_epi64x(0xCD9E8D57u);
  const __m256i p0_even = _mm256_mul_epu32(c0, m0);
  const __m256i p0_odd = _mm256_mul_epu32(_mm256_srli_epi64(c0, 32), m0);
  const __m256i p1_even = _mm256_mul_epu32(c2, m1);
  const __m256i p1_odd = _mm256_mul_epu32(_mm256_srli_epi64(c2, 32), m1);
  const __m256i hi0 = _mm256_blend_epi32(_mm256_srli_epi64(p0_even, 32), p0_odd, 0xAA);
  const __m256i lo0 = _mm256_blend_epi32(p0_even, _mm256_slli_epi64(p0_odd, 32), 0xAA);
  const __m256i hi1 = _mm256_blend_epi32(_mm256_srli_epi64(p1_even, 32), p1_odd, 0xAA);
  const __m256i lo1 = _mm256_blend_epi32(p1_even, _mm256_slli_epi64(p1_odd, 32), 0xAA);
  c0 = _mm256_xor_si256(_mm256_xor_si256(hi1, c1), k0);
  c1 = lo1;
  c2 = _mm256_xor_si256(_mm256_xor_si256(hi0, c3), k1);
  c3 = lo0;
}

// Lane l computes block first + kLaneBlock[l]. With this order the 4x8 -> 8x4 word transpose below
// needs only in-lane unpacks: the two 128-bit halves of each output vector are already the right
// pair of consecutive blocks.
inline constexpr uint32_t kLaneBlock[8] = {0, 2, 4, 6, 1, 3, 5, 7};

inline void philox8_elements(uint64_t key, uint64_t first, __m256i out[4]) {
  const uint32_t first_lo = uint32_t(first), first_hi = uint32_t(first >> 32);
  __m256i c0, c1;
  if (first_lo <= 0xFFFFFFFFu - 7u) {  // no carry into the high word within these 8 blocks
    c0 = _mm256_add_epi32(_mm256_set1_epi32(int(first_lo)),
                          _mm256_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7));
    c1 = _mm256_set1_epi32(int(first_hi));
  } else {
    alignas(32) uint32_t lo[8], hi[8];
    for (int l = 0; l < 8; ++l) {
      const uint64_t counter = first + kLaneBlock[l];
      lo[l] = uint32_t(counter);
      hi[l] = uint32_t(counter >> 32);
    }
    c0 = _mm256_load_si256(reinterpret_cast<const __m256i*>(lo));
    c1 = _mm256_load_si256(reinterpret_cast<const __m256i*>(hi));
  }
  __m256i c2 = _mm256_setzero_si256(), c3 = _mm256_setzero_si256();  // the counter's high 64 bits are 0
  uint32_t k0 = uint32_t(key), k1 = uint32_t(key >> 32);
  for (int round = 0; round < 10; ++round) {
    round8(c0, c1, c2, c3, _mm256_set1_epi32(int(k0)), _mm256_set1_epi32(int(k1)));
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  // Lanes (0..3 | 4..7) hold blocks (0, 2, 4, 6 | 1, 3, 5, 7); unpacking words pairwise gives
  // (block 0 | block 1), (2 | 3), (4 | 5), (6 | 7), each as words 0..3.
  const __m256i w01_lo = _mm256_unpacklo_epi32(c0, c1), w01_hi = _mm256_unpackhi_epi32(c0, c1);
  const __m256i w23_lo = _mm256_unpacklo_epi32(c2, c3), w23_hi = _mm256_unpackhi_epi32(c2, c3);
  out[0] = _mm256_unpacklo_epi64(w01_lo, w23_lo);
  out[1] = _mm256_unpackhi_epi64(w01_lo, w23_lo);
  out[2] = _mm256_unpacklo_epi64(w01_hi, w23_hi);
  out[3] = _mm256_unpackhi_epi64(w01_hi, w23_hi);
}

#endif  // LUNA_HAVE_PHILOX_SIMD

}  // namespace
}  // namespace luna::cpu::philox_simd

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
