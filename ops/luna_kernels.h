// Internal CPU kernels of the LUNA op (ops/luna.cpp): the scalar ψ MLP (exact piecewise-linear
// path for ReLU, fused direct path for any activation) and kernelized linear attention. Plain
// C++/OpenMP on contiguous float/double buffers; a CUDA backend would mirror these signatures.
#pragma once
#include <cstdint>

namespace luna::cpu::luna_kernels {

enum class PsiActivation { Relu, Gelu, Silu };

// u is (B, H, N, M) contiguous, viewed as rows = B·H·N rows of M scalars. The ψ parameters are
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
  int64_t groups() const { return per_head ? heads : 1; }
  // Which parameter group a row of u uses.
  int64_t group_of_row(int64_t row) const { return per_head ? (row / tokens) % heads : 0; }
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

// Exact ReLU path: one binary search per scalar and channel over the sorted kinks.
template <class T>
void psi_forward_piecewise(const T* u, const PsiParams<T>& params, const PsiShape& shape, T scale, T* out);
template <class T>
void psi_backward_piecewise(const T* grad_out, const T* u, const PsiParams<T>& params, const PsiShape& shape,
                            T scale, T* grad_u, const PsiGrads<T>& grads);

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
// key_padding_mask (B, Nk), nonzero = padded, or null. Running sums are float64 whatever T is.
struct AttentionShape {
  int64_t batch = 0, heads = 0, queries = 0, keys = 0, features = 0, value_dim = 0;
};

// Non-causal: fills out (B, H, Nq, dv), denominator (B, H, Nq) and the sums S (B, H, F, dv), z (B, H, F).
template <class T>
void linear_attention_forward(const T* phi_q, const T* phi_k, const T* v, const uint8_t* key_padding_mask,
                              const AttentionShape& shape, double eps, T* out, T* denominator, double* S,
                              double* z);
template <class T>
void linear_attention_backward(const T* grad_out, const T* phi_q, const T* phi_k, const T* v,
                               const uint8_t* key_padding_mask, const T* out, const T* denominator,
                               const double* S, const double* z, const AttentionShape& shape, T* grad_phi_q,
                               T* grad_phi_k, T* grad_v);

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
