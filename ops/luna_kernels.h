// Internal CPU kernels of the LUNA op (ops/luna.cpp): the scalar ψ MLP (exact piecewise-linear
// path for ReLU, fused direct path for any activation) and kernelized linear attention. Plain
// C++/OpenMP on contiguous float/double buffers; a CUDA backend would mirror these signatures.
#pragma once
#include <cstdint>
#include <memory>

namespace luna::cpu::luna_kernels {

enum class PsiActivation { Relu, Gelu, Silu };

// u is (B, H, N, M), viewed as rows = B·H·N rows of M contiguous scalars (see u_offset). The ψ parameters are
// (G, L, Hψ) per-channel tables (fc2_bias (G, L)), G = H when every head has its own φ, else 1.
// Output (B, H, N, M, L): out[row, i, ℓ] = scale · relu(e_ℓ + Σ_j g_ℓj act(a_ℓj u + c_ℓj)).
struct PsiShape {
  int64_t rows = 0;     // B·H·N
  int64_t heads = 1;    // H
  int64_t tokens = 1;   // N
  int64_t projections = 0;  // M
  int64_t channels = 0;     // L
  int64_t hidden = 0;       // Hψ
  bool per_head = false;    // G = H (else G = 1)
  // Where u's (and grad_u's) rows start: packed, row·M, unless u_token is set, for u a head split
  // (B, H, N, M) of (B, N, H, M) memory: row (b, h, n) at b·u_batch + h·u_head + n·u_token.
  int64_t u_batch = 0, u_head = 0, u_token = 0;
  int64_t groups() const { return per_head ? heads : 1; }
  // Which parameter group a row of u uses.
  int64_t group_of_row(int64_t row) const { return per_head ? (row / tokens) % heads : 0; }
  int64_t u_offset(int64_t row) const {
    if (u_token == 0) return row * projections;
    const int64_t n = row % tokens, h = (row / tokens) % heads, b = row / (tokens * heads);
    return b * u_batch + h * u_head + n * u_token;
  }
  // The row (b, h, n) that the t-th step of a loop over all rows visits: u's memory order, so a head
  // split is read (and its gradient written) in whole cache lines rather than half lines twice.
  int64_t row_at(int64_t t) const {
    if (u_token == 0) return t;
    const int64_t h = t % heads, n = (t / heads) % tokens, b = t / (heads * tokens);
    return (b * heads + h) * tokens + n;
  }
};

template <class T>
struct PsiParams {
  const T* fc1_weight;  // a (G, L, Hψ)
  const T* fc1_bias;    // c (G, L, Hψ)
  const T* fc2_weight;  // g (G, L, Hψ)
  const T* fc2_bias;    // e (G, L)
};

template <class T>
struct PsiGrads {
  T* fc1_weight;  // (G, L, Hψ), overwritten
  T* fc1_bias;    // (G, L, Hψ)
  T* fc2_weight;  // (G, L, Hψ)
  T* fc2_bias;    // (G, L)
};

// Exact ReLU path (ops/luna_psi_piecewise.cpp): each scalar finds its interval (bucket) among the
// sorted kinks, then costs one multiply-add. buckets_out (B, H, N, M, L), or null, receives the
// bucket of every output, or kMaxStoredBucket where ψ's final ReLU is off, so the backward neither
// searches nor re-evaluates; it is used only when 2·Hψ < kMaxStoredBucket.
constexpr int64_t kMaxStoredBucket = 255;
template <class T>
void psi_forward_piecewise(const T* u, const PsiParams<T>& params, const PsiShape& shape, T scale, T* out,
                           uint8_t* buckets_out = nullptr);
// The same by the plain loops whatever the ISA: the reference tests compare the vector path with.
template <class T>
void psi_forward_piecewise_plain(const T* u, const PsiParams<T>& params, const PsiShape& shape, T scale, T* out,
                                 uint8_t* buckets_out = nullptr);
// saved_buckets: the forward's buckets_out, or null to search again.
template <class T>
void psi_backward_piecewise(const T* grad_out, const T* u, const uint8_t* saved_buckets, const PsiParams<T>& params,
                            const PsiShape& shape, T scale, T* grad_u, const PsiGrads<T>& grads);

// The exact ReLU path row by row, for callers that run ψ inside a larger loop (the fused LUNA
// attention in ops/luna_linear_attention.cpp): the tables are built once, at construction, then any
// row of u may go through from any thread. `shape` needs projections, channels, hidden, heads and
// per_head; rows and strides are the caller's business. A row's `group` is its parameter group: the
// head with per_head, else 0. The backward needs the forward's buckets (2·Hψ < kMaxStoredBucket).
template <class T>
class PsiPiecewiseRows {
 public:
  struct State;  // tables and search structures (ops/luna_psi_piecewise.cpp)
  PsiPiecewiseRows(const PsiParams<T>& params, const PsiShape& shape);
  ~PsiPiecewiseRows();
  PsiPiecewiseRows(const PsiPiecewiseRows&) = delete;
  PsiPiecewiseRows& operator=(const PsiPiecewiseRows&) = delete;

  // out_row (M, L) = scale·ψ(u_row (M)), bucket_row (M, L) its buckets, or null.
  void forward(const T* u_row, int64_t group, T scale, T* out_row, uint8_t* bucket_row) const;
  // The same out_row from the buckets forward stored: one multiply-add per output, no search, the
  // same bits (except where ψ's parameters are not finite: inactive outputs then rebuild as 0).
  void recompute(const T* u_row, const uint8_t* bucket_row, int64_t group, T scale, T* out_row) const;
  // grad_u_row (M) from grad_row (M, L), and the row's share of the parameter gradients added to
  // `sums` (bucket_sums_size() doubles per thread, zeroed before the first row).
  void backward(const T* u_row, const T* grad_row, const uint8_t* bucket_row, int64_t group, T scale, double* sums,
                T* grad_u_row) const;
  // forward for callers that will run rebuild_and_backward: the same out_row, and in saved_row
  // (saved_row_bytes()) what that needs: forward's bucket_row, or, where the four channels of a
  // group share one search (float32 on AVX2 or AVX-512, M a multiple of 8), each scalar's bucket in
  // the union of their kinks (2 bytes). Which form depends only on the parameters and the shape.
  void forward_for_rebuild(const T* u_row, int64_t group, T scale, T* out_row, uint8_t* saved_row) const;
  // The bytes forward_for_rebuild writes per row: 2·M for union buckets, else M·L.
  int64_t saved_row_bytes() const;
  // recompute and backward of one row in one pass from forward_for_rebuild's saved_row, for callers
  // that have grad_row before they need out_row: the same out_row and grad_u_row, and `sums` that
  // give the same parameter gradients (bit for bit from saved buckets; from union buckets, which
  // sum per union bucket first, to rounding).
  void rebuild_and_backward(const T* u_row, const T* grad_row, const uint8_t* saved_row, int64_t group, T scale,
                            double* sums, T* grad_u_row, T* out_row) const;
  int64_t bucket_sums_size() const;
  // The parameter gradients (overwritten) from the sums of every row, added over threads.
  void parameter_gradients(const double* sums, const PsiGrads<T>& grads) const;

  const State& state() const { return *state_; }
  const PsiShape& shape() const;

 private:
  std::unique_ptr<State> state_;
};

// Direct path: loops over the Hψ hidden units per scalar; backward recomputes them. `out` (the
// forward output) gates the final ReLU in backward.
template <class T>
void psi_forward_direct(const T* u, const PsiParams<T>& params, const PsiShape& shape, PsiActivation activation,
                        T scale, T* out);
template <class T>
void psi_backward_direct(const T* grad_out, const T* u, const T* out, const PsiParams<T>& params,
                         const PsiShape& shape, PsiActivation activation, T scale, T* grad_u,
                         const PsiGrads<T>& grads);

// Linear attention per (batch, head). phi_q (B, H, Nq, F), phi_k (B, H, Nk, F), v (B, H, Nk, dv);
// key_padding_mask (B, Nk), nonzero = padded, or null. The causal prefix sums run in float64 whatever
// T is; the non-causal sums are GEMMs in T (float32 accumulation, as PyTorch's matmul).
struct AttentionShape {
  int64_t batch = 0, heads = 0, queries = 0, keys = 0, features = 0, value_dim = 0;
};

// A (B, H, N, width) operand whose rows may be strided (e.g. a head split (B, N, H, d) seen as
// (B, H, N, d)): element (b, h, n, e) at data[b·batch + h·head + n·row + e].
template <class T>
struct HeadRows {
  T* data;
  int64_t batch, head, row;
  T* at(int64_t b, int64_t h, int64_t n) const { return data + b * batch + h * head + n * row; }
};

// Non-causal attention (ops/luna_linear_attention.cpp), one (batch, head) per thread, as GEMMs in T
// (float32 accumulation, as PyTorch's matmul). Appending a column of ones to v (zeros for a padded
// key) makes S and z one matrix, S_aug = φ(k)ᵀ[v, 1] (F, dv+1); out = φ(q)S / (φ(q)ᵀz + ε).
// S_aug (B, H, F, dv+1) and denominator (B, H, Nq) are written for the backward; out and v may
// have strided rows.
template <class T>
void linear_attention_forward(const T* phi_q, const T* phi_k, HeadRows<const T> v, const uint8_t* key_padding_mask,
                              const AttentionShape& shape, double eps, HeadRows<T> out, T* denominator, T* S_aug);
// grad_phi_q (B, H, Nq, F), grad_phi_k (B, H, Nk, F) contiguous; grad_v may have strided rows (zero
// for a padded key).
template <class T>
void linear_attention_backward(HeadRows<const T> grad_out, const T* phi_q, const T* phi_k, HeadRows<const T> v,
                               const uint8_t* key_padding_mask, HeadRows<const T> out, const T* denominator,
                               const T* S_aug, const AttentionShape& shape, T* grad_phi_q, T* grad_phi_k,
                               HeadRows<T> grad_v);

// LUNA attention with ψ (exact ReLU path) fused into the non-causal attention above
// (ops/luna_linear_attention.cpp): φ(q) and φ(k) are made tile by tile from u_q (B, H, Nq, M) and
// u_k (B, H, Nk, M), rows possibly strided, inside the per-head loop and never written; what ψ saves
// to rebuild them (PsiPiecewiseRows::forward_for_rebuild, saved_row_bytes() per row) goes to
// buckets_q (B, H, Nq, saved_row_bytes()) and buckets_k (B, H, Nk, saved_row_bytes()), for the
// backward. shape.features is F = M·L. The result equals linear_attention_forward on the φ that
// psi_forward_piecewise makes, up to the rounding of the tiled sums.
// Tokens per tile. A tile of φ and one of its gradient (kFusedTile × F each, 64 KB apiece at F = 128)
// stay in L2; on the benchmark step 128 beat 32, 64 and 256.
constexpr int64_t kFusedTile = 128;
template <class T>
struct FusedPsi {
  const PsiPiecewiseRows<T>* rows;
  bool per_head;  // row (b, h, n) uses parameter group h, else 0
  T scale;        // 1/√M
};
template <class T>
void luna_attention_forward(HeadRows<const T> u_q, HeadRows<const T> u_k, HeadRows<const T> v,
                            const uint8_t* key_padding_mask, const FusedPsi<T>& psi, const AttentionShape& shape,
                            double eps, HeadRows<T> out, T* denominator, T* S_aug, uint8_t* buckets_q,
                            uint8_t* buckets_k);
// Gradients for u_q, u_k and v (strided rows; v's zero for a padded key) and ψ's parameters
// (overwritten), rebuilding every tile of φ from what the forward saved.
template <class T>
void luna_attention_backward(HeadRows<const T> grad_out, HeadRows<const T> u_q, HeadRows<const T> u_k,
                             HeadRows<const T> v, const uint8_t* key_padding_mask, HeadRows<const T> out,
                             const T* denominator, const T* S_aug, const uint8_t* buckets_q, const uint8_t* buckets_k,
                             const FusedPsi<T>& psi, const AttentionShape& shape, HeadRows<T> grad_u_q,
                             HeadRows<T> grad_u_k, HeadRows<T> grad_v, const PsiGrads<T>& psi_grads);

// Causal (Nq = Nk): prefix sums. S_state (B, H, F, dv) and z_state (B, H, F) hold the sums before
// the first token on entry and after the last one on exit, so chunks can be streamed.
template <class T>
void causal_linear_attention_forward(const T* phi_q, const T* phi_k, const T* v, const uint8_t* key_padding_mask,
                                     const AttentionShape& shape, double eps, T* out, T* denominator,
                                     double* S_state, double* z_state);
// Recomputes the prefix sums forward, then accumulates suffix sums of the output gradient backward.
template <class T>
void causal_linear_attention_backward(const T* grad_out, const T* phi_q, const T* phi_k, const T* v,
                                      const uint8_t* key_padding_mask, const T* out, const T* denominator,
                                      const AttentionShape& shape, T* grad_phi_q, T* grad_phi_k, T* grad_v);

}  // namespace luna::cpu::luna_kernels
