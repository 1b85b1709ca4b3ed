// luna's own float32 GEMM for thin shapes: one of m, k large and the other dimensions at most a few
// hundred, as in every product of a small-width model over many tokens ((T, 64) · (64, 128), the
// weight gradients (64, T) · (T, 128), the per-head linear attention). OpenBLAS reaches a third to a
// half of its square-matrix rate there: it packs both operands and sizes its blocks for large
// matrices. This path streams A straight from memory (broadcasts from any layout, so transposed
// views cost nothing), packs only the small B (or reads its rows in place), writes C once (no zero
// fill for beta = 0) and splits the work over batches, rows or k. Internal to the CPU backend
// (gemm.cpp) and the LUNA kernels; tests call it directly.
#pragma once
#include <luna/backends/backend.h>

#include <vector>

namespace luna::cpu {

// Whether luna's thin GEMM is used at all (default yes). LUNA_DISABLE_THIN_GEMM=1 in the
// environment, or allow_sgemm_thin(false), hands every product (and linear's backward) back to
// OpenBLAS: to compare, or on a CPU where OpenBLAS turns out faster.
bool sgemm_thin_allowed();
void allow_sgemm_thin(bool allowed);

// Whether sgemm_thin takes this product (float32 and a thin shape, where it was measured faster
// than OpenBLAS, and allowed); if not, the caller uses OpenBLAS.
bool sgemm_thin_applies(const GemmArgs& g);

// C = alpha·op(A)·op(B) + beta·C for float32 with GemmArgs' row-major conventions, any sizes (k = 0
// included). Accumulates in float32 with fused multiply-adds, so it agrees with any other float32
// GEMM to rounding, not bit for bit.
void sgemm_thin(const GemmArgs& g);

// One product on the calling thread, for kernels that run their own parallel loop (one attention
// head per thread): C (m×n, row stride ldc) = alpha·A·B + beta·C with element (i, p) of A at
// a[i·rs_a + p·cs_a] and (p, j) of B at b[p·rs_b + j·cs_b], so any transposed or strided view goes
// in as it is. Runs whether or not sgemm_thin_allowed(); callers check that.
void sgemm_thin_serial(const float* a, int64_t rs_a, int64_t cs_a, const float* b, int64_t rs_b, int64_t cs_b,
                       float* c, int64_t ldc, int64_t m, int64_t n, int64_t k, float alpha, float beta);

// B packed once for many products that share it (the fused attention's S_augᵀ and ∂S_augᵀ, the same
// for every tile of a head): sgemm_thin_pack_b writes (k, n) B, element (p, j) at b[p·rs_b + j·cs_b],
// as panels of 32 columns starting at a 64-byte boundary (so no 32-byte load of it splits a cache
// line). sgemm_thin_row_packed makes one row of the product, c[j] = Σ_p a[p·cs_a]·B[p, j] for j < n,
// with the same multiply-adds in the same order as a row of sgemm_thin_serial, so the same bits: for
// short k (the attention's ∂φ = ∂aug·S_augᵀ, k = 33), where a register tile's set-up and stores cost
// a fifth of its time, rows of 8 accumulators over two panels are faster (`bench_sgemm_thin`).
class PackedB {
 public:
  PackedB() = default;
  PackedB(const PackedB&) = delete;  // data_ points into storage_
  PackedB& operator=(const PackedB&) = delete;
  bool empty() const { return data_ == nullptr; }
  void clear() { data_ = nullptr; }  // keeps the storage for the next packing
  int64_t k() const { return k_; }
  int64_t n() const { return n_; }

 private:
  friend void sgemm_thin_pack_b(const float*, int64_t, int64_t, int64_t, int64_t, PackedB&);
  friend void sgemm_thin_row_packed(const float*, int64_t, const PackedB&, float*);
  std::vector<float> storage_;
  const float* data_ = nullptr;
  int64_t k_ = 0, n_ = 0;
};
void sgemm_thin_pack_b(const float* b, int64_t rs_b, int64_t cs_b, int64_t k, int64_t n, PackedB& packed);
void sgemm_thin_row_packed(const float* a, int64_t cs_a, const PackedB& packed, float* c);

// The three gradients of a linear layer y = x·Wᵀ + b (Backend::linear_backward) in one pass over dy:
// each block of dy's rows gives its rows of grad_input (dy·W) and then, while it is still in cache,
// adds to grad_weight (dyᵀ·x) and grad_bias (Σ dy, in double). Blocks are split over threads, each
// summing into its own grad_weight and grad_bias, added in thread order. Any output may be null.
// sgemm_linear_backward_applies says which shapes it takes (and whether the thin GEMM is allowed).
bool sgemm_linear_backward_applies(int64_t rows, int64_t in, int64_t out);
void sgemm_linear_backward(const float* grad_out, const float* input, const float* weight, int64_t rows, int64_t in,
                           int64_t out, float* grad_input, float* grad_weight, float* grad_bias);

}  // namespace luna::cpu
