// Multi-head attention with a pluggable `attention` kind, batch-first like the rest of luna:
// query [B, N, D] -> [B, N, D]. Kinds: "softmax" (quadratic reference), "luna" (learned feature map,
// spec/LUNA.md) and "elu" (φ = elu+1); the remaining baselines of spec/LUNA.md §4 plug in alike.
#pragma once
#include <string>
#include <vector>

#include <luna/core/generator.h>
#include <luna/nn/layers.h>
#include <luna/nn/luna_feature_map.h>
#include <luna/nn/module.h>
#include <luna/nn/options.h>

namespace luna::nn {

// The attention kinds MultiHeadAttention accepts, in the order error messages list them.
const std::vector<std::string>& available_attention_kinds();

struct MultiHeadAttentionOptions {
  MultiHeadAttentionOptions(int64_t embed_dim, int64_t num_heads) : embed_dim_(embed_dim), num_heads_(num_heads) {}
  LUNA_ARG(int64_t, embed_dim);
  LUNA_ARG(int64_t, num_heads);
  // Dropout on the attention weights while training. The linear kinds (luna, elu) never form
  // attention weights, so it does not apply to them and is ignored.
  LUNA_ARG(double, dropout) = 0.0;
  // Biases of q_proj, k_proj, v_proj and out_proj.
  LUNA_ARG(bool, bias) = true;
  // One of available_attention_kinds().
  LUNA_ARG(std::string, attention) = "softmax";
  // Query i attends to keys j <= i only.
  LUNA_ARG(bool, causal) = false;
  // The feature map of attention = "luna" (M, L, Hψ, activation, layout, envelope, ...).
  LUNA_ARG(LunaFeatureMapOptions, luna) = {};
  // Added to the denominator of the linear kinds (luna, elu), since φᵀz may be 0.
  LUNA_ARG(double, linear_eps) = 1e-6;
};

// Softmax attention on per-head tensors: softmax(q kᵀ / sqrt(d)) v.
//   query (B, H, Nq, d), key (B, H, Nk, d), value (B, H, Nk, dv) -> (B, H, Nq, dv)
//   key_padding_mask: bool (B, Nk), true = padded key (ignored), or undefined.
//   causal: query i sees keys j <= i (needs Nq == Nk).
// A query row whose keys are all masked gets all-zero attention weights, so its output is zero
// (PyTorch would give NaN): this happens for fully padded sequences in a batch, and a zero keeps
// them harmless in losses that ignore those positions.
Tensor softmax_attention(const Tensor& query, const Tensor& key, const Tensor& value,
                         const Tensor& key_padding_mask = Tensor(), bool causal = false, double dropout_p = 0.0,
                         bool training = false, Generator* generator = nullptr);

class MultiHeadAttentionImpl : public Module {
 public:
  MultiHeadAttentionImpl(int64_t embed_dim, int64_t num_heads);
  explicit MultiHeadAttentionImpl(const MultiHeadAttentionOptions& options);

  // Initialisation of PyTorch's nn.MultiheadAttention: its packed [3D, D] in_proj_weight is
  // xavier_uniform_, i.e. U(±sqrt(6 / 4D)); the separate q/k/v [D, D] weights get the same
  // distribution through xavier_uniform_ with gain 1/sqrt(2). In-projection and out_proj biases
  // are zero; out_proj.weight keeps the Linear default.
  void reset_parameters(Generator* generator = nullptr);

  // query [B, Nq, D]; key, value [B, Nk, D] (undefined key: self-attention on query; undefined
  // value: the key); key_padding_mask bool [B, Nk], true = padded. Returns [B, Nq, D].
  Tensor forward(const Tensor& query, const Tensor& key = Tensor(), const Tensor& value = Tensor(),
                 const Tensor& key_padding_mask = Tensor()) const;

  MultiHeadAttentionOptions options;
  Linear q_proj{nullptr};
  Linear k_proj{nullptr};
  Linear v_proj{nullptr};
  Linear out_proj{nullptr};
  LunaFeatureMap feature_map{nullptr};  // attention = "luna" only: φ shared by queries, keys and heads
};
LUNA_MODULE(MultiHeadAttention);

}  // namespace luna::nn
