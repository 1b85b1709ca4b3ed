// Lane orders of ψ's AVX2 (and AVX-512) code for four channels (ops/luna_psi_piecewise.cpp and
// ops/luna_psi_union.h): outputs lie in (scalar, channel) order, 8 to a vector (scalars 2v and 2v + 1,
// four channels each), while per-channel work wants one channel per vector.
#pragma once

#if defined(LUNA_PSI_AVX2)
#include <immintrin.h>

#include <luna/backends/cpu/cpu_features.h>

namespace luna::cpu::luna_kernels {
namespace {

// Four channel vectors whose lanes hold scalars (0, 2, 4, 6 | 1, 3, 5, 7) to (scalar, channel)
// order: out[v] = scalars 2v and 2v+1, four channels each. The lane order on input turns the usual
// 4x8 transpose into in-lane shuffles only, and the map is its own inverse.
inline void interleave4(const __m256 c[4], __m256 out[4]) {
  const __m256 a = _mm256_unpacklo_ps(c[0], c[1]), b = _mm256_unpackhi_ps(c[0], c[1]);
  const __m256 d = _mm256_unpacklo_ps(c[2], c[3]), e = _mm256_unpackhi_ps(c[2], c[3]);
  out[0] = _mm256_shuffle_ps(a, d, 0x44);
  out[1] = _mm256_shuffle_ps(a, d, 0xEE);
  out[2] = _mm256_shuffle_ps(b, e, 0x44);
  out[3] = _mm256_shuffle_ps(b, e, 0xEE);
}

// 32 int32 lanes in element order (values 0..255) to 32 bytes.
inline __m256i pack_bytes(const __m256i v[4]) {
  const __m256i words = _mm256_packs_epi32(v[0], v[1]), words2 = _mm256_packs_epi32(v[2], v[3]);
  const __m256i bytes = _mm256_packus_epi16(words, words2);  // per 128-bit half: dwords 0, 2, 4, 6 | 1, 3, 5, 7
  return _mm256_permutevar8x32_epi32(bytes, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

// Four channel vectors to (scalar, channel) order, 16 scalars: out[v] holds scalars 4v .. 4v+3 when
// lane 4L + v of the inputs holds scalar 4v + L (the load permutes them so).
LUNA_TARGET_AVX512 inline void interleave4x16(const __m512 c[4], __m512 out[4]) {
  const __m512 a = _mm512_unpacklo_ps(c[0], c[1]), b = _mm512_unpackhi_ps(c[0], c[1]);
  const __m512 d = _mm512_unpacklo_ps(c[2], c[3]), e = _mm512_unpackhi_ps(c[2], c[3]);
  out[0] = _mm512_shuffle_ps(a, d, 0x44);
  out[1] = _mm512_shuffle_ps(a, d, 0xEE);
  out[2] = _mm512_shuffle_ps(b, e, 0x44);
  out[3] = _mm512_shuffle_ps(b, e, 0xEE);
}

// grad_u of 8 scalars from their 32 outputs' δ, slopes and activity (4 vectors each, in (scalar,
// channel) order): masked multiply-adds in channel order on channel vectors, stored in scalar order.
inline void store_grad_u8(const __m256 delta[4], const __m256 slope[4], const __m256 active[4], float* grad_u) {
  const __m256i natural_order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);  // undoes lanes (0, 2, 4, 6 | 1, 3, 5, 7)
  __m256 delta_l[4], slope_l[4], active_l[4];
  interleave4(delta, delta_l);
  interleave4(slope, slope_l);
  interleave4(active, active_l);
  __m256 grad_x = _mm256_setzero_ps();
  for (int l = 0; l < 4; ++l)
    grad_x = _mm256_blendv_ps(grad_x, _mm256_fmadd_ps(delta_l[l], slope_l[l], grad_x), active_l[l]);
  _mm256_storeu_ps(grad_u, _mm256_permutevar8x32_ps(grad_x, natural_order));
}

}  // namespace
}  // namespace luna::cpu::luna_kernels

#endif  // LUNA_PSI_AVX2
