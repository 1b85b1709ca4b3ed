// The attention ops besides LUNA (spec/LUNA.md §4): fused softmax attention with its own backward,
// and the feature maps of the linear baselines — performer (FAVOR+), cosformer and hedgehog — that
// run on linear_attention (ops/luna.h), so they get key padding masks and causal mode from it.
#pragma once
#include <cstdint>

#include <luna/core/generator.h>
#include <luna/core/tensor.h>
#include <luna/ops/luna.h>

namespace luna {

// ---- softmax ---------------------------------------------------------------------------------

// softmax(q kᵀ/√d) v, fused. query (B, H, Nq, d), key (B, H, Nk, d), value (B, H, Nk, dv)
// -> (B, H, Nq, dv); float32 or float64, CPU.
//   key_padding_mask: bool (B, Nk), true = padded key (ignored), or undefined.
//   causal: query i sees keys j <= i (needs Nq == Nk).
//   dropout_p: dropout on the attention weights, applied only when `training`. The mask is drawn
//     from `generator` (default: the default generator) in the layout luna::dropout uses on the
//     contiguous (B, H, Nq, Nk) weights, so the fused op and a composed matmul/softmax/dropout
//     reference draw the same mask; backward regenerates it from the (seed, offset) it claimed.
// A query row whose keys are all masked outputs zeros (PyTorch would give NaN) and gets zero
// gradients.
//
// Memory: the (B, H, Nq, Nk) weights are never formed. Forward and backward walk query blocks of
// 64 rows against key tiles of 256 columns (flash-attention style: an online softmax forward, the
// probabilities recomputed in backward), so the extra memory is a few 64×256 tiles per thread
// plus, in backward with fewer (batch, head) pairs than 2 × threads, per-chunk partial sums of
// dK and dV ((chunks − 1) × B·H·Nk·(d + dv) elements).
// Saved for backward: the inputs themselves (aliases: no copy when each has a unit-stride last
// dim and rows at least d apart, e.g. contiguous or head-interleaved (B, N, H, d) views), the
// output (B, H, Nq, dv), the per-row logsumexp (B, H, Nq) in the input dtype, the mask, and the
// dropout stream's (seed, offset) — i.e. B·H·Nq·(dv + 1) elements beyond what the inputs hold.
// The output and the gradients take the layout of query / of each input when that is the
// head-interleaved (B, N, H, d) one, so multi-head attention transposes them back for free.
Tensor scaled_dot_product_attention(const Tensor& query, const Tensor& key, const Tensor& value,
                                    const Tensor& key_padding_mask = Tensor(), bool causal = false,
                                    double dropout_p = 0.0, bool training = false, Generator* generator = nullptr);

// ---- performer (FAVOR+, Choromanski et al. 2021) ---------------------------------------------

// (m, d) random features ω: ⌈m/d⌉ independent blocks, each the Q of the QR decomposition of a
// d×d standard Gaussian matrix (Gram–Schmidt in float64, R with a positive diagonal, so Q is
// Haar-distributed); the rows of Qᵀ are orthonormal, and the last block is cut to m mod d rows.
// Row i is then scaled by the norm of an independent d-dim standard Gaussian vector (a χ_d
// sample), so every row is marginally N(0, I_d) while rows within a block stay orthogonal.
// Draws, in order: the Gaussian blocks (d·d numbers each), then an (m, d) Gaussian for the norms.
// The result has options' dtype and device and does not require grad.
Tensor orthogonal_random_features(int64_t m, int64_t d, Generator* generator = nullptr,
                                  TensorOptions options = {});

// Positive random features of the softmax kernel, x (B, H, N, d), omega (m, d) -> (B, H, N, m):
//   x̂ = x·d^(-1/4),  φ(x)ᵢ = m^(-1/2)·exp(ωᵢᵀx̂ − ‖x̂‖²/2 − stabiliser),
// so that E[φ(q)ᵀφ(k)] ∝ exp(qᵀk/√d). The stabiliser is detached (no gradient flows through it):
// for queries the max over the row's m logits, for keys the max over all keys and features of
// each (b, h), excluding keys marked in key_padding_mask (bool (B, N), true = padded; used only
// for this max). Both are constants of a row / of a head, so they cancel in the row normalisation
// of linear attention (up to the ε of its denominator). No epsilon is added to the features.
Tensor performer_feature_map(const Tensor& x, const Tensor& omega, bool is_query,
                             const Tensor& key_padding_mask = Tensor());

// Performer attention: linear_attention(φ(q), φ(k), v) with the feature map above.
// With options.causal the key stabiliser t (which depends on every key, later ones included) is
// moved onto the queries — φ(k)·e^(−t) and φ(q)·e^(+t) — so every product φ(qᵢ)ᵀφ(kⱼ), and hence
// the output at i, is independent of later tokens, ε included. φ(q) is then bounded by
// m^(-1/2)·exp(maxᵢ‖ωᵢ‖²/2) (since ωᵀx̂ − ‖x̂‖²/2 ≤ ‖ω‖²/2), which float32 holds for d <= 64.
Tensor performer_attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& omega,
                           const LinearAttentionOptions& options = {});

// ---- cosformer (Qin et al. 2022) -------------------------------------------------------------

// x (B, H, N, d) -> (B, H, N, 2d): [relu(x)·cos(π i/(2M)) ‖ relu(x)·sin(π i/(2M))] for the token at
// position i = 0..N−1, so φ(qᵢ)ᵀφ(kⱼ) = relu(qᵢ)ᵀrelu(kⱼ)·cos(π/2·(i−j)/M). Needs N <= max_len = M
// (then |i − j| < M and the re-weighting stays positive).
Tensor cosformer_feature_map(const Tensor& x, int64_t max_len);

// cosformer attention: linear_attention(φ(q), φ(k), v) with the map above, M = max_len, or
// max(Nq, Nk) of the call when max_len is 0. With max_len = 0 the outputs depend on the padded
// length of a batch; set max_len for outputs that do not.
Tensor cosformer_attention(const Tensor& q, const Tensor& k, const Tensor& v, int64_t max_len = 0,
                           const LinearAttentionOptions& options = {});

// ---- hedgehog (Zhang et al. 2024) ------------------------------------------------------------

// Learnable per-head map, x (B, H, N, d), weight (H, d, F), bias (H, F) -> (B, H, N, 2F):
//   u = x·W_h + b_h,  φ(x) = [softmax(u) ‖ softmax(−u)] over the feature dim.
// Hedgehog initialises W to the identity (F = d) and b to zero.
Tensor hedgehog_feature_map(const Tensor& x, const Tensor& weight, const Tensor& bias);

}  // namespace luna
