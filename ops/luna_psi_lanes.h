// Lane orders of ψ's AVX2 code for four channels (ops/luna_psi_piecewise.cpp and
// ops/luna_psi_union.h): outputs lie in (scalar, channel) order, 8 to a vector (scalars 2v and 2v + 1,
// four channels each), while per-channel work wants one channel per vector.
#pragma once

#if defined(LUNA_PSI_AVX2)
#include <immintrin.h>

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
