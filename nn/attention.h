// Multi-head attention with a pluggable `attention` kind, batch-first like the rest of luna:
// query [B, N, D] -> [B, N, D]. Kinds (spec/LUNA.md §2 and §4):
//   softmax    the quadratic reference, the fused scaled_dot_product_attention op
//   luna       learned feature map (LunaFeatureMap, child `feature_map`)
//   elu        φ = elu + 1
//   performer  FAVOR+ positive orthogonal random features (buffer `projection_matrix`)
//   cosformer  relu features with cos/sin re-weighting over positions
//   hedgehog   learnable per-head softmax map (child `feature_map` with `weight`, `bias`)
// Every linear kind runs linear_attention (ops/luna.h), so key padding masks and causal mode work
// for all of them.
#pragma once
#include <string>
#include <vector>

#include <luna/core/generator.h>
#include <luna/nn/layers.h>
#include <luna/nn/luna_feature_map.h>
#include <luna/nn/module.h>
#include <luna/nn/options.h>
#include <luna/ops/attention.h>

namespace luna::nn {

// The attention kinds MultiHeadAttention accepts, in the order error messages list them.
const std::vector<std::string>& available_attention_kinds();

struct MultiHeadAttentionOptions {
  MultiHeadAttentionOptions(int64_t embed_dim, int64_t num_heads) : embed_dim_(embed_dim), num_heads_(num_heads) {}
  LUNA_ARG(int64_t, embed_dim);
  LUNA_ARG(int64_t, num_heads);
  // Dropout on the attention weights while training. The linear kinds (everything but softmax)
  // never form attention weights, so it does not apply to them and is ignored.
  LUNA_ARG(double, dropout) = 0.0;
  // Biases of q_proj, k_proj, v_proj and out_proj.
  LUNA_ARG(bool, bias) = true;
  // One of available_attention_kinds().
  LUNA_ARG(std::string, attention) = "softmax";
  // Query i attends to keys j <= i only.
  LUNA_ARG(bool, causal) = false;
  // The feature map of attention = "luna" (M, L, Hψ, activation, layout, envelope, ...).
  LUNA_ARG(LunaFeatureMapOptions, luna) = {};
  // Added to the denominator of the linear kinds (all but softmax), since φᵀz may be 0.
  LUNA_ARG(double, linear_eps) = 1e-6;
  // performer: the number m of random features.
  LUNA_ARG(int64_t, performer_features) = 128;
  // performer: redraw the random features every this many training forward calls (each draw
  // serves exactly that many calls); 0 = never. Eval calls never redraw nor count.
  LUNA_ARG(int64_t, performer_redraw_interval) = 1000;
  // cosformer: M of the cos(π/2·(i−j)/M) re-weighting; 0 = max(Nq, Nk) of each call. Set it (to
  // the longest sequence the model sees) for outputs that do not depend on how far a batch is padded.
  LUNA_ARG(int64_t, cosformer_max_len) = 0;
};

// The hedgehog feature map's learnable tensors as a module, so they are named `feature_map.weight`
// and `feature_map.bias` inside MultiHeadAttention: φ(x) = [softmax(xW_h + b_h) ‖ softmax(−(xW_h +
// b_h))] with weight (H, d, d) (x·W, input dim first) initialised to the identity and bias (H, d) to
// zero, one map per head shared by queries and keys.
class HedgehogFeatureMapImpl : public Module {
 public:
  HedgehogFeatureMapImpl(int64_t head_dim, int64_t num_heads);
  void reset_parameters();
  // x (B, H, N, d) -> (B, H, N, 2d)
  Tensor forward(const Tensor& x) const;

  Tensor weight;  // (H, d, d)
  Tensor bias;    // (H, d)
};
LUNA_MODULE(HedgehogFeatureMap);

// Softmax attention on per-head tensors: softmax(q kᵀ / sqrt(d)) v, the fused
// scaled_dot_product_attention op (ops/attention.h; see there what it stores for backward).
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
  // attention = "performer" in training mode counts the call and first redraws the random
  // features when the redraw interval is reached (the one state a forward changes).
  Tensor forward(const Tensor& query, const Tensor& key = Tensor(), const Tensor& value = Tensor(),
                 const Tensor& key_padding_mask = Tensor()) const;

  // performer: draws a fresh ω into `projection_matrix` (orthogonal_random_features, from
  // `generator` or the default one) and restarts the redraw count. The buffer keeps its identity;
  // graphs built before still hold the previous draw.
  void redraw_projection_matrix(Generator* generator = nullptr) const;

  MultiHeadAttentionOptions options;
  Linear q_proj{nullptr};
  Linear k_proj{nullptr};
  Linear v_proj{nullptr};
  Linear out_proj{nullptr};
  LunaFeatureMap feature_map{nullptr};  // attention = "luna" only: φ shared by queries, keys and heads
  // attention = "hedgehog" only, registered as `feature_map` (feature_map.weight, feature_map.bias).
  HedgehogFeatureMap hedgehog_feature_map{nullptr};
  // attention = "performer" only: buffers `projection_matrix` (m, d) — the random features ω — and
  // `calls_since_last_redraw` (int64, 0-dim), so a checkpoint restores both the draw and the schedule.
  Tensor projection_matrix;
  Tensor calls_since_last_redraw;
};
LUNA_MODULE(MultiHeadAttention);

}  // namespace luna::nn
