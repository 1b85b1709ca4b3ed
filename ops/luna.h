// LUNA attention (spec/LUNA.md): a learned positive feature map φ (projections u = Wx + b, then a
// tiny scalar MLP ψ per channel) fused as one op with its own backward, and the generic kernelized
// linear attention out_i = φ(q_i)ᵀS / (φ(q_i)ᵀz + ε) it runs on, with masks, causal and streaming.
#pragma once
#include <cstdint>
#include <string>

#include <luna/core/generator.h>
#include <luna/core/tensor.h>

namespace luna {

struct LunaFeatureMapOptions {
  int64_t num_projections = 32;  // M
  int64_t channels = 4;          // L, so F = M·L features
  int64_t hidden = 64;           // Hψ, the hidden width of ψ
  std::string activation = "relu";    // "relu" | "gelu" | "silu" (the hidden activation of ψ)
  std::string layout = "per_channel";  // "per_channel": L MLPs 1→Hψ→1 | "shared": one MLP 1→Hψ→L
  bool envelope = false;   // multiply φ by h(x) = exp(β‖x‖²/(2√d)), β learnable
  bool per_head = false;   // a separate φ for each head (parameters get a leading H dim)
  // Scales each channel ℓ down to an RMS of at most 0.1 using statistics of the whole call (every
  // batch element, head, token and projection; padded tokens excluded). Outputs then depend on the
  // other sequences of the batch, and gradients flow through the statistics.
  bool channel_rms_limit = false;
  // Runs act = relu through the direct kernel instead of the exact piecewise-linear tables (for
  // tests and benchmarks; both give the same numbers up to rounding).
  bool force_direct = false;
};

// The learnable tensors of one feature map. Shapes without per_head (per_head adds a leading H dim
// to every tensor but envelope_beta):
//   proj_weight (M, d), proj_bias (M)
//   per_channel: fc1_weight (L, Hψ)  fc1_bias (L, Hψ)  fc2_weight (L, Hψ)  fc2_bias (L)
//   shared:      fc1_weight (Hψ)     fc1_bias (Hψ)     fc2_weight (L, Hψ)  fc2_bias (L)
//   envelope_beta (1), defined only when options.envelope.
// Checkpoint names (a PyTorch port) map onto them as:
//   feature_map.proj.weight [M,d] / .bias [M]          -> proj_weight / proj_bias
//   per_channel: feature_map.psi.{ℓ}.fc1.weight [Hψ,1] -> fc1_weight[ℓ, :]
//                feature_map.psi.{ℓ}.fc1.bias [Hψ]     -> fc1_bias[ℓ, :]
//                feature_map.psi.{ℓ}.fc2.weight [1,Hψ] -> fc2_weight[ℓ, :]
//                feature_map.psi.{ℓ}.fc2.bias [1]      -> fc2_bias[ℓ]
//   shared:      feature_map.psi.0.fc1.weight [Hψ,1] -> fc1_weight, .fc1.bias [Hψ] -> fc1_bias,
//                feature_map.psi.0.fc2.weight [L,Hψ] -> fc2_weight, .fc2.bias [L] -> fc2_bias
//   feature_map.envelope.beta [1] -> envelope_beta
struct LunaFeatureMapParams {
  Tensor proj_weight, proj_bias;
  Tensor fc1_weight, fc1_bias, fc2_weight, fc2_bias;
  Tensor envelope_beta;
};

// Fresh parameters initialised as in the paper's code: W ~ N(0, 1/d), b = 0, ψ layers as PyTorch
// nn.Linear defaults (fc1 U(−1, 1), fc2 U(−1/√Hψ, 1/√Hψ)), β = 0. `heads` is used only with per_head.
// The tensors are leaves that require grad.
LunaFeatureMapParams luna_feature_map_init(int64_t head_dim, int64_t heads, const LunaFeatureMapOptions& options,
                                           TensorOptions tensor_options = {}, Generator* generator = nullptr);

// φ(x) = h(x)/√M · [ψ_ℓ(u_i(x))] for x (B, H, N, d) -> (B, H, N, F), feature index i·L + ℓ.
// padding_mask (B, N) bool, true = padded, only excludes tokens from the channel_rms_limit statistics.
// ψ is one fused op: for act = relu an exact piecewise-linear table lookup, otherwise a direct loop
// over Hψ; neither materialises the (tokens × M × Hψ) hidden activations, forward or backward.
Tensor luna_feature_map(const Tensor& x, const LunaFeatureMapParams& params, const LunaFeatureMapOptions& options,
                        const Tensor& padding_mask = Tensor());

struct LinearAttentionOptions {
  Tensor key_padding_mask;  // (B, Nk) bool, true = padded: that key is left out of S and z
  bool causal = false;      // query i sees keys j ≤ i (prefix sums; needs Nq = Nk)
  double eps = 1e-6;        // added to the denominator, since φ may be exactly 0
};

// out_i = φ(q_i)ᵀS / (φ(q_i)ᵀz + ε), S = Σ_j φ(k_j) v_jᵀ (F, dv), z = Σ_j φ(k_j) (F), per batch and head.
// phi_q (B, H, Nq, F), phi_k (B, H, Nk, F), v (B, H, Nk, dv) -> (B, H, Nq, dv). O(N·F·dv) time forward
// and backward, never an N×N matrix. Non-causal sums are GEMMs in the input dtype (float32
// accumulation, like PyTorch); causal prefix sums run in float64.
Tensor linear_attention(const Tensor& phi_q, const Tensor& phi_k, const Tensor& v,
                        const LinearAttentionOptions& options = {});

// LUNA attention: linear_attention(φ(q), φ(k), v) with one feature map for queries and keys.
// q (B, H, Nq, d), k (B, H, Nk, d), v (B, H, Nk, dv) -> (B, H, Nq, dv). With channel_rms_limit the
// key padding mask also excludes padded queries from the query-side statistics when Nq = Nk.
// Where ψ's output goes straight to the attention (ReLU ψ on its exact path, non-causal, no
// envelope, no RMS limit: the defaults), ψ runs inside the attention's per-head loop, tile by tile,
// and the (B, H, N, F) feature tensors are never materialised, forward or backward; the result is
// the composition's up to float rounding.
Tensor luna_attention(const Tensor& q, const Tensor& k, const Tensor& v, const LunaFeatureMapParams& params,
                      const LunaFeatureMapOptions& feature_map_options,
                      const LinearAttentionOptions& attention_options = {});

// Streaming causal attention: the running sums carried across calls, float64 whatever the input
// dtype. Undefined tensors mean "no token yet" and are created (zeros) by the first step.
struct LinearAttentionState {
  Tensor S;  // (B, H, F, dv) float64
  Tensor z;  // (B, H, F) float64
};

// Causal linear attention over one chunk of tokens, continuing from `state` and updating it, so
// feeding a sequence chunk by chunk equals one causal linear_attention call. Inference only: the
// output has no autograd history.
Tensor linear_attention_step(const Tensor& phi_q, const Tensor& phi_k, const Tensor& v, LinearAttentionState& state,
                             double eps = 1e-6);

}  // namespace luna
