// MultiHeadAttention: input checks, q/k/v/out projections and head splitting, with the attention
// kind chosen by name. softmax_attention is composed from differentiable ops (matmul, masked_fill,
// the fused softmax, dropout), so its backward comes from theirs; luna and elu run the fused
// linear_attention op of ops/luna.h on φ(q), φ(k).
#include <luna/nn/attention.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include <luna/autograd/grad_mode.h>
#include <luna/nn/init.h>
#include <luna/ops/elementwise.h>
#include <luna/ops/factories.h>
#include <luna/ops/linalg.h>
#include <luna/ops/luna.h>
#include <luna/ops/nn_functional.h>
#include <luna/ops/reduce.h>

namespace luna::nn {
namespace {

std::string join_kinds() {
  std::string out;
  for (const auto& kind : available_attention_kinds()) out += (out.empty() ? "" : ", ") + kind;
  return out;
}

// key_padding_mask must be bool [B, Nk]; `who` names the caller.
void check_key_padding_mask(const Tensor& key_padding_mask, int64_t B, int64_t Nk, const char* who) {
  LUNA_CHECK(key_padding_mask.dtype() == kBool, who, ": key_padding_mask must be a bool tensor (true = padded), got ",
             key_padding_mask.str(), "; build it with a comparison such as tokens.eq(pad)");
  LUNA_CHECK(key_padding_mask.sizes() == Dims({B, Nk}), who, ": key_padding_mask must have shape [B, Nk] = [", B,
             ",", Nk, "], got ", key_padding_mask.sizes());
}

// Softmax over the last dim of scores (B, H, Nq, Nk) with blocked keys (bool, broadcastable)
// excluded. A row with every key blocked would be softmax over all -inf = NaN: such rows are left
// unblocked (finite scores) and their weights set to zero after the softmax.
Tensor softmax_with_blocked_rows(const Tensor& scores, const Tensor& blocked, double minus_infinity) {
  const int64_t Nk = scores.size(-1);
  const Tensor blocked_count = blocked.sum({-1}, /*keepdim=*/true);                   // (B|1, 1, Nq|1, 1) int64
  const Tensor all_keys = full({}, Nk, TensorOptions(kInt64).device(scores.device()));  // ()
  const Tensor fully_blocked = blocked_count.eq(all_keys);                             // (B|1, 1, Nq|1, 1)
  const Tensor effective_block = logical_and(blocked, blocked_count.lt(all_keys));     // (B|1, 1, Nq|1, Nk)
  const Tensor weights = softmax(scores.masked_fill(effective_block, minus_infinity), -1);  // (B, H, Nq, Nk)
  return weights.masked_fill(fully_blocked, 0.0);
}

}  // namespace

const std::vector<std::string>& available_attention_kinds() {
  static const std::vector<std::string> kinds = {"softmax", "luna", "elu"};
  return kinds;
}

Tensor softmax_attention(const Tensor& query, const Tensor& key, const Tensor& value, const Tensor& key_padding_mask,
                         bool causal, double dropout_p, bool training, Generator* generator) {
  LUNA_CHECK(query.defined() && key.defined() && value.defined(), "softmax_attention: query, key and value must be ",
             "defined");
  LUNA_CHECK(query.dim() == 4 && key.dim() == 4 && value.dim() == 4, "softmax_attention: expected query, key and ",
             "value of shape [B, H, N, d], got ", query.sizes(), ", ", key.sizes(), " and ", value.sizes());
  const int64_t B = query.size(0), H = query.size(1), Nq = query.size(2), d = query.size(3);
  const int64_t Nk = key.size(2);
  LUNA_CHECK(key.size(0) == B && key.size(1) == H && key.size(3) == d, "softmax_attention: key of shape ", key.sizes(),
             " does not match query of shape ", query.sizes(), " (expected [", B, ",", H, ",Nk,", d, "])");
  LUNA_CHECK(value.size(0) == B && value.size(1) == H && value.size(2) == Nk, "softmax_attention: value of shape ",
             value.sizes(), " does not match key of shape ", key.sizes(), " (expected [", B, ",", H, ",", Nk, ",dv])");
  LUNA_CHECK(!causal || Nq == Nk, "softmax_attention: causal attention needs as many queries as keys, got Nq = ", Nq,
             " and Nk = ", Nk);
  if (key_padding_mask.defined()) check_key_padding_mask(key_padding_mask, B, Nk, "softmax_attention");

  // Scaling q (N·d values) is cheaper than scaling the scores (N·N values).
  const Tensor scores = matmul(query * (1.0 / std::sqrt(double(d))), key.transpose(-2, -1));  // (B, H, Nq, Nk)

  // blocked[b, h, i, j] = true when query i may not see key j; broadcastable to the scores.
  Tensor blocked;
  if (key_padding_mask.defined()) blocked = key_padding_mask.view({B, 1, 1, Nk});  // (B, 1, 1, Nk)
  if (causal) {
    const TensorOptions positions = TensorOptions(kInt64).device(query.device());
    const Tensor query_position = arange(Nq, positions).view({Nq, 1});  // (Nq, 1)
    const Tensor key_position = arange(Nk, positions).view({1, Nk});    // (1, Nk)
    const Tensor future = key_position.gt(query_position);              // (Nq, Nk)
    blocked = blocked.defined() ? logical_or(blocked, future) : future;  // (B|1, 1, Nq, Nk)
  }
  const double minus_infinity = -std::numeric_limits<double>::infinity();
  Tensor weights;  // (B, H, Nq, Nk)
  if (!blocked.defined()) {
    weights = softmax(scores, -1);
  } else if (!key_padding_mask.defined()) {
    // Causal only: every query sees at least its own key, so no row is fully blocked.
    weights = softmax(scores.masked_fill(blocked, minus_infinity), -1);
  } else {
    weights = softmax_with_blocked_rows(scores, blocked, minus_infinity);
  }
  return matmul(dropout(weights, dropout_p, training, generator), value);  // (B, H, Nq, dv)
}

MultiHeadAttentionImpl::MultiHeadAttentionImpl(int64_t embed_dim, int64_t num_heads)
    : MultiHeadAttentionImpl(MultiHeadAttentionOptions(embed_dim, num_heads)) {}

MultiHeadAttentionImpl::MultiHeadAttentionImpl(const MultiHeadAttentionOptions& options_)
    : Module("MultiHeadAttention"), options(options_) {
  const int64_t D = options.embed_dim(), H = options.num_heads();
  LUNA_CHECK(D > 0 && H > 0, "MultiHeadAttention: embed_dim (", D, ") and num_heads (", H, ") must be positive");
  LUNA_CHECK(D % H == 0, "MultiHeadAttention: embed_dim ", D, " is not divisible by num_heads ", H,
             " (each head gets embed_dim / num_heads features)");
  LUNA_CHECK(options.dropout() >= 0.0 && options.dropout() < 1.0, "MultiHeadAttention: dropout must be in [0, 1), got ",
             options.dropout());
  const auto& kinds = available_attention_kinds();
  LUNA_CHECK(std::find(kinds.begin(), kinds.end(), options.attention()) != kinds.end(),
             "MultiHeadAttention: unknown attention kind '", options.attention(), "'; available kinds: ", join_kinds());
  q_proj = register_module("q_proj", Linear(D, D, options.bias()));
  k_proj = register_module("k_proj", Linear(D, D, options.bias()));
  v_proj = register_module("v_proj", Linear(D, D, options.bias()));
  out_proj = register_module("out_proj", Linear(D, D, options.bias()));
  if (options.attention() == "luna")
    feature_map = register_module("feature_map", LunaFeatureMap(D / H, options.luna()));
  reset_parameters();
}

void MultiHeadAttentionImpl::reset_parameters(Generator* generator) {
  for (const Linear& projection : {q_proj, k_proj, v_proj}) {
    init::xavier_uniform_(projection->weight, 1.0 / std::sqrt(2.0), generator);
    if (projection->bias.defined()) init::zeros_(projection->bias);
  }
  out_proj->reset_parameters(generator);
  if (out_proj->bias.defined()) init::zeros_(out_proj->bias);
  if (!feature_map.is_empty()) feature_map->reset_parameters(generator);
}

Tensor MultiHeadAttentionImpl::forward(const Tensor& query, const Tensor& key_in, const Tensor& value_in,
                                       const Tensor& key_padding_mask) const {
  const int64_t D = options.embed_dim(), H = options.num_heads(), d = D / H;
  LUNA_CHECK(query.defined(), "MultiHeadAttention: query is undefined");
  LUNA_CHECK(query.is_floating_point(), "MultiHeadAttention: query must be floating point, got ", query.str());
  LUNA_CHECK(query.dim() == 3 && query.size(2) == D, "MultiHeadAttention: expected query of shape [B, N, ", D,
             "] (embed_dim = ", D, "), got ", query.sizes());
  const Tensor key = key_in.defined() ? key_in : query;
  const Tensor value = value_in.defined() ? value_in : key;
  const int64_t B = query.size(0), Nq = query.size(1);
  LUNA_CHECK(key.dim() == 3 && key.size(0) == B && key.size(2) == D, "MultiHeadAttention: expected key of shape [",
             B, ", Nk, ", D, "] (batch of the query, embed_dim = ", D, "), got ", key.sizes());
  const int64_t Nk = key.size(1);
  LUNA_CHECK(value.sizes() == key.sizes(), "MultiHeadAttention: expected value of the key's shape ", key.sizes(),
             ", got ", value.sizes());
  if (key_padding_mask.defined()) check_key_padding_mask(key_padding_mask, B, Nk, "MultiHeadAttention");
  LUNA_CHECK(!options.causal() || Nq == Nk, "MultiHeadAttention: causal attention needs as many queries as keys, got ",
             Nq, " queries and ", Nk, " keys");

  const Tensor q = q_proj(query).reshape({B, Nq, H, d}).transpose(1, 2);  // (B, H, Nq, d)
  const Tensor k = k_proj(key).reshape({B, Nk, H, d}).transpose(1, 2);    // (B, H, Nk, d)
  const Tensor v = v_proj(value).reshape({B, Nk, H, d}).transpose(1, 2);  // (B, H, Nk, d)
  // The constructor admits only available kinds; each kind maps (q, k, v) to (B, H, Nq, d).
  Tensor heads;
  if (options.attention() == "softmax") {
    heads = softmax_attention(q, k, v, key_padding_mask, options.causal(), options.dropout(), is_training());
  } else if (options.attention() == "luna" || options.attention() == "elu") {
    LinearAttentionOptions linear;
    linear.key_padding_mask = key_padding_mask;
    linear.causal = options.causal();
    linear.eps = options.linear_eps();
    Tensor phi_q, phi_k;  // (B, H, Nq, F), (B, H, Nk, F)
    if (options.attention() == "luna") {
      // As luna_attention: the key mask keeps padded queries out of channel_rms_limit statistics
      // only when queries and keys are the same tokens.
      phi_q = feature_map(q, Nq == Nk ? key_padding_mask : Tensor());
      phi_k = feature_map(k, key_padding_mask);
    } else {
      phi_q = elu(q) + 1.0;  // F = d
      phi_k = elu(k) + 1.0;
    }
    heads = linear_attention(phi_q, phi_k, v, linear);
  } else {
    LUNA_FAIL("MultiHeadAttention: attention kind '", options.attention(), "' has no implementation");
  }
  const Tensor merged = heads.transpose(1, 2).reshape({B, Nq, D});  // (B, Nq, D)
  return out_proj(merged);                                          // (B, Nq, D)
}

}  // namespace luna::nn
