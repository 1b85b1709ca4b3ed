// Non-causal kernelized linear attention (spec/LUNA.md §1) on the CPU, one (batch, head) per thread:
//   S_aug = φ(k)ᵀ[v, 1] (F, dv+1),   out = φ(q)S / (φ(q)ᵀz + ε)
// and its backward, as GEMMs in T around short passes over rows that are still in cache. A head's
// operands (φ(q), φ(k): N·F values each) fit in L2, so each product reads them from there; v, out and
// their gradients are read and written through their row strides, so a head split never gets copied.
// float32 runs luna's thin GEMM (backends/cpu/sgemm_thin.h), which takes every operand in place;
// float64 (or the thin GEMM turned off) OpenBLAS, single-threaded inside the head loop. Declared in
// ops/luna_kernels.h.
//
// The products keep every matrix 32 columns wide where it can (dv = 32 by default): S = φ(k)ᵀv and
// ∂S = φ(q)ᵀ∂num are GEMMs, while their extra column, z = φ(k)ᵀ1 and ∂z = φ(q)ᵀ∂den, is a separate
// pass, because a 33rd column would cost a GEMM kernel a whole extra 16- or 32-wide panel.
#include <luna/ops/luna_kernels.h>

#include <cblas.h>
#include <omp.h>

#if defined(__AVX2__)
#include <immintrin.h>
#endif

#include <algorithm>
#include <vector>

#include <luna/backends/cpu/blas_threads.h>
#include <luna/backends/cpu/sgemm_thin.h>
#include <luna/ops/luna_kernel_common.h>

namespace luna::cpu::luna_kernels {
namespace {

// Below this much work a head loop stays on one thread.
constexpr int64_t kParallelWork = 1 << 16;

// Element (i, p) of a matrix operand is data[i·rs + p·cs]; one of the strides is 1.
template <class T>
struct Matrix {
  const T* data;
  int64_t rs, cs;
};

// B of a product that every tile of a head repeats (S_augᵀ, ∂S_augᵀ), packed once per head for the
// thin GEMM (float32); empty otherwise, and then the tiles use `product` with B as it lies.
template <class T>
void pack_for_tiles(bool thin, Matrix<T> b, int64_t k, int64_t n, PackedB& packed) {
  packed.clear();
  if constexpr (std::is_same_v<T, float>) {
    if (thin && k > 0) sgemm_thin_pack_b(b.data, b.rs, b.cs, k, n, packed);
  }
}

// C (m×n, row stride ldc) = A·B + beta·C, beta 0 or 1, on the calling thread.
template <class T>
void product(bool thin, Matrix<T> a, Matrix<T> b, T* c, int64_t ldc, int64_t m, int64_t n, int64_t k, T beta = 0) {
  if (m <= 0 || n <= 0) return;
  if (k <= 0) {
    if (beta == T(0))
      for (int64_t i = 0; i < m; ++i) std::fill(c + i * ldc, c + i * ldc + n, T(0));
    return;
  }
  if constexpr (std::is_same_v<T, float>) {
    if (thin) return sgemm_thin_serial(a.data, a.rs, a.cs, b.data, b.rs, b.cs, c, ldc, m, n, k, 1.0f, beta);
  }
  // BLAS: a unit column stride is a plain row-major matrix, a unit row stride its transpose.
  const bool trans_a = a.cs != 1, trans_b = b.cs != 1;
  const blasint lda = blasint(trans_a ? a.cs : a.rs), ldb = blasint(trans_b ? b.cs : b.rs);
  const CBLAS_TRANSPOSE ta = trans_a ? CblasTrans : CblasNoTrans, tb = trans_b ? CblasTrans : CblasNoTrans;
  if constexpr (std::is_same_v<T, float>)
    cblas_sgemm(CblasRowMajor, ta, tb, blasint(m), blasint(n), blasint(k), 1.0f, a.data, lda, b.data, ldb, beta, c,
                blasint(ldc));
  else
    cblas_dgemm(CblasRowMajor, ta, tb, blasint(m), blasint(n), blasint(k), 1.0, a.data, lda, b.data, ldb, beta, c,
                blasint(ldc));
}

// ∂φ = ∂aug·B_aug for a tile: `count` rows of ∂aug (count, dv+1) into grad_phi (count, F). With
// B_aug packed (the float32 thin path) one row at a time: at k = dv+1 = 33 that skips the register
// tiles' set-up and stores, about a fifth of the product's time. Otherwise the product, B_aug taken
// as it lies, element (p, j) at b_aug[p + j·(dv+1)]. Both give the same bits.
template <class T>
void tile_grad_phi(bool thin, const PackedB& packed_b, const T* aug, const T* b_aug, int64_t count, int64_t F,
                   int64_t dv1, T* grad_phi) {
  if constexpr (std::is_same_v<T, float>) {
    if (!packed_b.empty()) {
      for (int64_t r = 0; r < count; ++r) sgemm_thin_row_packed(aug + r * dv1, 1, packed_b, grad_phi + r * F);
      return;
    }
  }
  product<T>(thin, {aug, dv1, 1}, {b_aug, 1, dv1}, grad_phi, F, count, F, dv1);
}

inline bool is_padded(const uint8_t* mask, int64_t batch, int64_t keys, int64_t j) {
  return mask != nullptr && mask[batch * keys + j] != 0;
}

// [v, 1] of one head's keys [first, first + count) (count, dv+1), all zeros for a padded key (so it
// adds nothing to S and z).
template <class T>
void values_with_ones(HeadRows<const T> v, const uint8_t* mask, int64_t b, int64_t h, int64_t Nk, int64_t dv,
                      T* v_aug, int64_t first = 0, int64_t count = -1) {
  if (count < 0) count = Nk;
  for (int64_t j = first; j < first + count; ++j) {
    T* row = v_aug + (j - first) * (dv + 1);
    if (is_padded(mask, b, Nk, j)) {
      std::fill(row, row + dv + 1, T(0));
      continue;
    }
    const T* src = v.at(b, h, j);
    std::copy(src, src + dv, row);
    row[dv] = T(1);
  }
}

#if defined(__AVX2__)
// 8 floats of each of 8 rows, transposed: out[e] holds element e of every row (lane r = row r).
inline void transpose8(__m256 rows[8]) {
  const __m256 t0 = _mm256_unpacklo_ps(rows[0], rows[1]), t1 = _mm256_unpackhi_ps(rows[0], rows[1]);
  const __m256 t2 = _mm256_unpacklo_ps(rows[2], rows[3]), t3 = _mm256_unpackhi_ps(rows[2], rows[3]);
  const __m256 t4 = _mm256_unpacklo_ps(rows[4], rows[5]), t5 = _mm256_unpackhi_ps(rows[4], rows[5]);
  const __m256 t6 = _mm256_unpacklo_ps(rows[6], rows[7]), t7 = _mm256_unpackhi_ps(rows[6], rows[7]);
  const __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
  const __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
  const __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
  const __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
  rows[0] = _mm256_permute2f128_ps(u0, u4, 0x20), rows[4] = _mm256_permute2f128_ps(u0, u4, 0x31);
  rows[1] = _mm256_permute2f128_ps(u1, u5, 0x20), rows[5] = _mm256_permute2f128_ps(u1, u5, 0x31);
  rows[2] = _mm256_permute2f128_ps(u2, u6, 0x20), rows[6] = _mm256_permute2f128_ps(u2, u6, 0x31);
  rows[3] = _mm256_permute2f128_ps(u3, u7, 0x20), rows[7] = _mm256_permute2f128_ps(u3, u7, 0x31);
}

// numerator_gradients below for 8 float rows at once (dv a multiple of 8), one row per lane for G·out,
// so each row's sum is still the products added one by one in element order: the same bits as the
// scalar loop, without its chain of dependent adds. Returns the rows done.
int64_t numerator_gradients_avx2(HeadRows<const float> grad_out, HeadRows<const float> out, const float* den_row,
                                 int64_t b, int64_t h, int64_t dv, int64_t first, int64_t count, float* grad_aug) {
  if (dv % 8 != 0) return 0;
  const int64_t dv1 = dv + 1;
  int64_t done = 0;
  alignas(32) float dot_lanes[8], inverse_lanes[8];
  for (; done + 8 <= count; done += 8) {
    const int64_t i0 = first + done;
    const __m256 inverse = _mm256_div_ps(_mm256_set1_ps(1.0f), _mm256_loadu_ps(den_row + i0));
    _mm256_store_ps(inverse_lanes, inverse);
    __m256 dot = _mm256_setzero_ps();
    for (int64_t e0 = 0; e0 < dv; e0 += 8) {
      __m256 products[8];
      for (int r = 0; r < 8; ++r) {
        const __m256 g = _mm256_loadu_ps(grad_out.at(b, h, i0 + r) + e0);
        _mm256_storeu_ps(grad_aug + (done + r) * dv1 + e0, _mm256_mul_ps(g, _mm256_set1_ps(inverse_lanes[r])));
        products[r] = _mm256_mul_ps(g, _mm256_loadu_ps(out.at(b, h, i0 + r) + e0));
      }
      transpose8(products);
      for (int e = 0; e < 8; ++e) dot = _mm256_add_ps(dot, products[e]);
    }
    // −dot by its sign bit, as the scalar negation (0 − dot would turn −0 into +0).
    _mm256_store_ps(dot_lanes, _mm256_mul_ps(_mm256_xor_ps(dot, _mm256_set1_ps(-0.0f)), inverse));
    for (int r = 0; r < 8; ++r) grad_aug[(done + r) * dv1 + dv] = dot_lanes[r];
  }
  return done;
}
#endif

// ∂[numerator, φ(q)ᵀz] = [G / den, −(G·out) / den] for one head's queries [first, first + count):
// (count, dv+1).
template <class T>
void numerator_gradients(HeadRows<const T> grad_out, HeadRows<const T> out, const T* denominator, int64_t b,
                         int64_t h, int64_t H, int64_t Nq, int64_t dv, int64_t first, int64_t count, T* grad_aug) {
  const int64_t dv1 = dv + 1;
  int64_t done = 0;
#if defined(__AVX2__)
  if constexpr (std::is_same_v<T, float>)
    done = numerator_gradients_avx2(grad_out, out, denominator + (b * H + h) * Nq, b, h, dv, first, count, grad_aug);
#endif
  for (int64_t i = first + done; i < first + count; ++i) {
    const T* g = grad_out.at(b, h, i);
    const T* o = out.at(b, h, i);
    T* aug = grad_aug + (i - first) * dv1;
    const T inverse = T(1) / denominator[(b * H + h) * Nq + i];
    T dot_go = 0;
    for (int64_t e = 0; e < dv; ++e) {
      aug[e] = g[e] * inverse;
      dot_go += g[e] * o[e];
    }
    aug[dv] = -dot_go * inverse;
  }
}

// out[f·stride] = Σ_i weight[i·weight_stride] · rows[i·F + f]: z = φ(k)ᵀ[mask] and ∂z = φ(q)ᵀ∂den,
// summed in row order (the inner loop over f vectorises).
template <class T>
void weighted_row_sum(const T* rows, int64_t count, int64_t F, const T* weight, int64_t weight_stride, T* out,
                      int64_t out_stride, std::vector<T>& scratch) {
  scratch.assign(size_t(F), T(0));
  T* sum = scratch.data();
  for (int64_t i = 0; i < count; ++i) {
    const T w = weight[i * weight_stride];
    if (w == T(0)) continue;  // a padded key
    const T* row = rows + i * F;
    for (int64_t f = 0; f < F; ++f) sum[f] += w * row[f];
  }
  for (int64_t f = 0; f < F; ++f) out[f * out_stride] = sum[f];
}

// φ(q_i)ᵀz with eight partial sums (a fixed order that vectorises).
template <class T>
inline T dot(const T* a, const T* b, int64_t n) {
  T partial[8] = {};
  int64_t f = 0;
  for (; f + 8 <= n; f += 8)
    for (int s = 0; s < 8; ++s) partial[s] += a[f + s] * b[f + s];
  T total = 0;
  for (int s = 0; s < 8; ++s) total += partial[s];
  for (; f < n; ++f) total += a[f] * b[f];
  return total;
}

bool use_thin(bool is_float) { return is_float && sgemm_thin_allowed(); }

// The head loops run one (batch, head) per thread when there is more than one and enough work.
bool parallel_heads(const AttentionShape& shape) {
  return shape.batch * shape.heads > 1 &&
         (shape.queries + shape.keys) * shape.features * shape.value_dim >= kParallelWork;
}

// out_i /= den_i for `count` query rows, den_i = φ(q_i)ᵀz + ε, also written to denominator[i].
template <class T>
void divide_by_denominator(const T* phi_q, int64_t count, int64_t F, const T* z, double eps, T* out,
                           int64_t out_row, int64_t dv, T* denominator) {
  for (int64_t i = 0; i < count; ++i) {
    const T den = dot(phi_q + i * F, z, F) + T(eps);
    denominator[i] = den;
    const T inverse = T(1) / den;
    T* row = out + i * out_row;
    for (int64_t e = 0; e < dv; ++e) row[e] *= inverse;
  }
}

}  // namespace

template <class T>
void linear_attention_forward(const T* phi_q, const T* phi_k, HeadRows<const T> v, const uint8_t* key_padding_mask,
                              const AttentionShape& shape, double eps, HeadRows<T> out, T* denominator, T* S_aug) {
  const int64_t B = shape.batch, H = shape.heads, Nq = shape.queries, Nk = shape.keys, F = shape.features;
  const int64_t dv = shape.value_dim, dv1 = dv + 1, BH = B * H;
  const bool thin = use_thin(std::is_same_v<T, float>);
  const bool parallel = parallel_heads(shape);
  SingleThreadedBlas single_threaded_blas(parallel && !thin);
#pragma omp parallel if (parallel)
  {
    std::vector<T> v_aug(size_t(Nk * dv1)), sums;  // (Nk, dv+1), (F)
#pragma omp for schedule(static)
    for (int64_t bh = 0; bh < BH; ++bh) {
      const int64_t b = bh / H, h = bh % H;
      const T* q = phi_q + bh * Nq * F;  // (Nq, F)
      const T* k = phi_k + bh * Nk * F;  // (Nk, F)
      T* S = S_aug + bh * F * dv1;        // (F, dv+1): [S, z]
      values_with_ones(v, key_padding_mask, b, h, Nk, dv, v_aug.data());
      product<T>(thin, {k, 1, F}, {v_aug.data(), dv1, 1}, S, dv1, F, dv, Nk);  // S = φ(k)ᵀv
      weighted_row_sum(k, Nk, F, v_aug.data() + dv, dv1, S + dv, dv1, sums);  // z
      T* o = out.at(b, h, 0);
      product<T>(thin, {q, F, 1}, {S, dv1, 1}, o, out.row, Nq, dv, F);  // numerator, in place in out
      sums.resize(size_t(F));
      for (int64_t f = 0; f < F; ++f) sums[size_t(f)] = S[f * dv1 + dv];
      divide_by_denominator(q, Nq, F, sums.data(), eps, o, out.row, dv, denominator + bh * Nq);
    }
  }
}

template <class T>
void linear_attention_backward(HeadRows<const T> grad_out, const T* phi_q, const T* phi_k, HeadRows<const T> v,
                               const uint8_t* key_padding_mask, HeadRows<const T> out, const T* denominator,
                               const T* S_aug, const AttentionShape& shape, T* grad_phi_q, T* grad_phi_k,
                               HeadRows<T> grad_v) {
  const int64_t B = shape.batch, H = shape.heads, Nq = shape.queries, Nk = shape.keys, F = shape.features;
  const int64_t dv = shape.value_dim, dv1 = dv + 1, BH = B * H;
  const bool thin = use_thin(std::is_same_v<T, float>);
  const bool parallel = parallel_heads(shape);
  SingleThreadedBlas single_threaded_blas(parallel && !thin);
#pragma omp parallel if (parallel)
  {
    std::vector<T> grad_aug(size_t(Nq * dv1)), v_aug(size_t(Nk * dv1)), grad_S(size_t(F * dv1)), sums;
#pragma omp for schedule(static)
    for (int64_t bh = 0; bh < BH; ++bh) {
      const int64_t b = bh / H, h = bh % H;
      const T* q = phi_q + bh * Nq * F;    // (Nq, F)
      const T* k = phi_k + bh * Nk * F;    // (Nk, F)
      const T* S = S_aug + bh * F * dv1;   // (F, dv+1)
      numerator_gradients(grad_out, out, denominator, b, h, H, Nq, dv, 0, Nq, grad_aug.data());
      // ∂φ(q) = ∂aug S_augᵀ; ∂S = φ(q)ᵀ∂num and ∂z = φ(q)ᵀ∂den; ∂φ(k) = [v, 1] ∂S_augᵀ (0 where padded,
      // since [v, 1] is); ∂v = φ(k) ∂S, padded rows zeroed.
      product<T>(thin, {grad_aug.data(), dv1, 1}, {S, 1, dv1}, grad_phi_q + bh * Nq * F, F, Nq, F, dv1);
      product<T>(thin, {q, 1, F}, {grad_aug.data(), dv1, 1}, grad_S.data(), dv1, F, dv, Nq);
      weighted_row_sum(q, Nq, F, grad_aug.data() + dv, dv1, grad_S.data() + dv, dv1, sums);
      values_with_ones(v, key_padding_mask, b, h, Nk, dv, v_aug.data());
      product<T>(thin, {v_aug.data(), dv1, 1}, {grad_S.data(), 1, dv1}, grad_phi_k + bh * Nk * F, F, Nk, F, dv1);
      T* gv = grad_v.at(b, h, 0);
      product<T>(thin, {k, F, 1}, {grad_S.data(), dv1, 1}, gv, grad_v.row, Nk, dv, F);
      for (int64_t j = 0; j < Nk; ++j)
        if (is_padded(key_padding_mask, b, Nk, j)) std::fill(gv + j * grad_v.row, gv + j * grad_v.row + dv, T(0));
    }
  }
}

// ---------------------------------------------------------------------------------------------
// LUNA attention with ψ inside: the same products, over tiles of kTile tokens whose φ rows are made
// by ψ right before they are used and never leave the cache. Only what ψ needs to rebuild them is
// stored (each feature's bucket, 1 byte, or each scalar's bucket in the union of its four channels'
// kinks, 2 bytes: saved_row_bytes() per token), so the backward rebuilds each tile with one
// multiply-add per feature.

constexpr int64_t kTile = kFusedTile;

// Asks for the L2 lines of one head's token rows [first, first + count) of `rows` (width elements
// each) ahead of ψ reading them. In the model a head's rows are strided (the heads interleave
// in the projection's output) and ψ reads only a few lines per row, a pattern the hardware
// prefetchers caught too late: the loads of u were the hottest spot of ψ's backward.
template <class T>
void prefetch_tile(const HeadRows<T>& rows, int64_t b, int64_t h, int64_t first, int64_t count, int64_t width) {
#if defined(__AVX2__)
  for (int64_t r = first; r < first + count; ++r) {
    const char* row = reinterpret_cast<const char*>(rows.at(b, h, r));
    for (int64_t byte = 0; byte < width * int64_t(sizeof(T)); byte += 64) _mm_prefetch(row + byte, _MM_HINT_T1);
  }
#endif
}

template <class T>
void luna_attention_forward(HeadRows<const T> u_q, HeadRows<const T> u_k, HeadRows<const T> v,
                            const uint8_t* key_padding_mask, const FusedPsi<T>& psi, const AttentionShape& shape,
                            double eps, HeadRows<T> out, T* denominator, T* S_aug, uint8_t* buckets_q,
                            uint8_t* buckets_k) {
  const int64_t B = shape.batch, H = shape.heads, Nq = shape.queries, Nk = shape.keys, F = shape.features;
  const int64_t dv = shape.value_dim, dv1 = dv + 1, BH = B * H;
  const int64_t saved = psi.rows->saved_row_bytes();  // per token row of buckets_q and buckets_k
  const int64_t M = psi.rows->shape().projections;    // per token row of u_q and u_k
  const bool thin = use_thin(std::is_same_v<T, float>);
  const bool parallel = parallel_heads(shape);
  SingleThreadedBlas single_threaded_blas(parallel && !thin);
#pragma omp parallel if (parallel)
  {
    // (tile, F), (tile, dv+1), (F)
    std::vector<T> phi(size_t(kTile * F)), v_aug(size_t(kTile * dv1)), z(static_cast<size_t>(F));
#pragma omp for schedule(static)
    for (int64_t bh = 0; bh < BH; ++bh) {
      const int64_t b = bh / H, h = bh % H, group = psi.per_head ? h : 0;
      T* S = S_aug + bh * F * dv1;  // (F, dv+1): [S, z]
      // S = Σ_tiles φ(k)ᵀv and z = Σ φ(k) over unpadded keys, summed in key order.
      std::fill(z.begin(), z.end(), T(0));
      if (Nk == 0)
        for (int64_t f = 0; f < F; ++f) std::fill(S + f * dv1, S + f * dv1 + dv, T(0));
      for (int64_t first = 0; first < Nk; first += kTile) {
        const int64_t count = std::min(kTile, Nk - first);
        prefetch_tile(u_k, b, h, first + count, std::min(kTile, Nk - first - count), M);
        prefetch_tile(v, b, h, first + count, std::min(kTile, Nk - first - count), dv);
        for (int64_t r = 0; r < count; ++r)
          psi.rows->forward_for_rebuild(u_k.at(b, h, first + r), group, psi.scale, phi.data() + r * F,
                            buckets_k + (bh * Nk + first + r) * saved);
        values_with_ones(v, key_padding_mask, b, h, Nk, dv, v_aug.data(), first, count);
        product<T>(thin, {phi.data(), 1, F}, {v_aug.data(), dv1, 1}, S, dv1, F, dv, count, first > 0 ? T(1) : T(0));
        for (int64_t r = 0; r < count; ++r) {
          if (v_aug[size_t(r * dv1 + dv)] == T(0)) continue;  // a padded key
          const T* row = phi.data() + r * F;
          for (int64_t f = 0; f < F; ++f) z[size_t(f)] += row[f];
        }
      }
      for (int64_t f = 0; f < F; ++f) S[f * dv1 + dv] = z[size_t(f)];
      // out = φ(q)S / (φ(q)ᵀz + ε), tile by tile, the numerator in place in out.
      for (int64_t first = 0; first < Nq; first += kTile) {
        const int64_t count = std::min(kTile, Nq - first);
        prefetch_tile(u_q, b, h, first + count, std::min(kTile, Nq - first - count), M);
        for (int64_t r = 0; r < count; ++r)
          psi.rows->forward_for_rebuild(u_q.at(b, h, first + r), group, psi.scale, phi.data() + r * F,
                            buckets_q + (bh * Nq + first + r) * saved);
        T* o = out.at(b, h, first);
        product<T>(thin, {phi.data(), F, 1}, {S, dv1, 1}, o, out.row, count, dv, F);
        divide_by_denominator(phi.data(), count, F, z.data(), eps, o, out.row, dv, denominator + bh * Nq + first);
      }
    }
  }
}

template <class T>
void luna_attention_backward(HeadRows<const T> grad_out, HeadRows<const T> u_q, HeadRows<const T> u_k,
                             HeadRows<const T> v, const uint8_t* key_padding_mask, HeadRows<const T> out,
                             const T* denominator, const T* S_aug, const uint8_t* buckets_q, const uint8_t* buckets_k,
                             const FusedPsi<T>& psi, const AttentionShape& shape, HeadRows<T> grad_u_q,
                             HeadRows<T> grad_u_k, HeadRows<T> grad_v, const PsiGrads<T>& psi_grads) {
  const int64_t B = shape.batch, H = shape.heads, Nq = shape.queries, Nk = shape.keys, F = shape.features;
  const int64_t dv = shape.value_dim, dv1 = dv + 1, BH = B * H;
  const int64_t saved = psi.rows->saved_row_bytes();  // per token row of buckets_q and buckets_k
  const int64_t M = psi.rows->shape().projections;    // per token row of u_q and u_k
  const bool thin = use_thin(std::is_same_v<T, float>);
  const bool parallel = parallel_heads(shape);
  const int threads = parallel ? omp_get_max_threads() : 1;
  detail::ThreadPartials partials(psi.rows->bucket_sums_size(), threads);
  SingleThreadedBlas single_threaded_blas(parallel && !thin);
#pragma omp parallel num_threads(threads) if (parallel)
  {
    double* sums = partials.slot(omp_get_thread_num());
    std::vector<T> phi(size_t(kTile * F)), grad_phi(size_t(kTile * F));        // (tile, F)
    // (tile, dv+1), (F, dv+1), (F)
    std::vector<T> aug(size_t(kTile * dv1)), grad_S(size_t(F * dv1)), dz(static_cast<size_t>(F));
    PackedB packed_b;  // S_augᵀ, then ∂S_augᵀ, packed for the tiles' ∂φ
#pragma omp for schedule(static)
    for (int64_t bh = 0; bh < BH; ++bh) {
      const int64_t b = bh / H, h = bh % H, group = psi.per_head ? h : 0;
      const T* S = S_aug + bh * F * dv1;  // (F, dv+1)
      // Queries: ∂φ(q) = ∂aug S_augᵀ (which needs no φ), then ψ's backward and the rebuild of φ(q) in
      // one pass; ∂S = Σ φ(q)ᵀ∂num and ∂z = Σ φ(q)ᵀ∂den.
      std::fill(dz.begin(), dz.end(), T(0));
      if (Nq == 0) std::fill(grad_S.begin(), grad_S.end(), T(0));
      pack_for_tiles<T>(thin, {S, 1, dv1}, dv1, F, packed_b);
      for (int64_t first = 0; first < Nq; first += kTile) {
        const int64_t count = std::min(kTile, Nq - first);
        prefetch_tile(u_q, b, h, first, count, M);
        prefetch_tile(grad_out, b, h, first + count, std::min(kTile, Nq - first - count), dv);
        prefetch_tile(out, b, h, first + count, std::min(kTile, Nq - first - count), dv);
        numerator_gradients(grad_out, out, denominator, b, h, H, Nq, dv, first, count, aug.data());
        tile_grad_phi<T>(thin, packed_b, aug.data(), S, count, F, dv1, grad_phi.data());
        for (int64_t r = 0; r < count; ++r)
          psi.rows->rebuild_and_backward(u_q.at(b, h, first + r), grad_phi.data() + r * F,
                                         buckets_q + (bh * Nq + first + r) * saved, group, psi.scale, sums,
                                         grad_u_q.at(b, h, first + r), phi.data() + r * F);
        product<T>(thin, {phi.data(), 1, F}, {aug.data(), dv1, 1}, grad_S.data(), dv1, F, dv, count,
                   first > 0 ? T(1) : T(0));
        for (int64_t r = 0; r < count; ++r) {
          const T w = aug[size_t(r * dv1 + dv)];
          if (w == T(0)) continue;
          const T* row = phi.data() + r * F;
          for (int64_t f = 0; f < F; ++f) dz[size_t(f)] += w * row[f];
        }
      }
      for (int64_t f = 0; f < F; ++f) grad_S[size_t(f * dv1 + dv)] = dz[size_t(f)];
      pack_for_tiles<T>(thin, {grad_S.data(), 1, dv1}, dv1, F, packed_b);
      // Keys: ∂φ(k) = [v, 1] ∂S_augᵀ (0 where padded), then ψ's backward and the rebuild of φ(k);
      // ∂v = φ(k) ∂S, 0 where padded.
      for (int64_t first = 0; first < Nk; first += kTile) {
        const int64_t count = std::min(kTile, Nk - first);
        prefetch_tile(u_k, b, h, first, count, M);
        prefetch_tile(v, b, h, first + count, std::min(kTile, Nk - first - count), dv);
        values_with_ones(v, key_padding_mask, b, h, Nk, dv, aug.data(), first, count);
        tile_grad_phi<T>(thin, packed_b, aug.data(), grad_S.data(), count, F, dv1, grad_phi.data());
        for (int64_t r = 0; r < count; ++r)
          psi.rows->rebuild_and_backward(u_k.at(b, h, first + r), grad_phi.data() + r * F,
                                         buckets_k + (bh * Nk + first + r) * saved, group, psi.scale, sums,
                                         grad_u_k.at(b, h, first + r), phi.data() + r * F);
        T* gv = grad_v.at(b, h, first);
        product<T>(thin, {phi.data(), F, 1}, {grad_S.data(), dv1, 1}, gv, grad_v.row, count, dv, F);
        for (int64_t r = 0; r < count; ++r) {
          T* gv_row = gv + r * grad_v.row;
          if (is_padded(key_padding_mask, b, Nk, first + r)) std::fill(gv_row, gv_row + dv, T(0));
        }
      }
    }
  }
  psi.rows->parameter_gradients(partials.reduce(threads), psi_grads);
}

#define LUNA_INSTANTIATE_LINEAR_ATTENTION(T)                                                                        \
  template void linear_attention_forward<T>(const T*, const T*, HeadRows<const T>, const uint8_t*,                \
                                            const AttentionShape&, double, HeadRows<T>, T*, T*);                  \
  template void linear_attention_backward<T>(HeadRows<const T>, const T*, const T*, HeadRows<const T>,            \
                                             const uint8_t*, HeadRows<const T>, const T*, const T*,               \
                                             const AttentionShape&, T*, T*, HeadRows<T>);                         \
  template void luna_attention_forward<T>(HeadRows<const T>, HeadRows<const T>, HeadRows<const T>, const uint8_t*, \
                                          const FusedPsi<T>&, const AttentionShape&, double, HeadRows<T>, T*, T*, \
                                          uint8_t*, uint8_t*);                                                    \
  template void luna_attention_backward<T>(HeadRows<const T>, HeadRows<const T>, HeadRows<const T>,               \
                                           HeadRows<const T>, const uint8_t*, HeadRows<const T>, const T*,        \
                                           const T*, const uint8_t*, const uint8_t*, const FusedPsi<T>&,          \
                                           const AttentionShape&, HeadRows<T>, HeadRows<T>, HeadRows<T>,          \
                                           const PsiGrads<T>&);

LUNA_INSTANTIATE_LINEAR_ATTENTION(float)
LUNA_INSTANTIATE_LINEAR_ATTENTION(double)
#undef LUNA_INSTANTIATE_LINEAR_ATTENTION

}  // namespace luna::cpu::luna_kernels
