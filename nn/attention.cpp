// MultiHeadAttention: input checks, q/k/v/out projections and head splitting, with the attention
// kind chosen by name. softmax runs the fused scaled_dot_product_attention op (ops/attention.h);
// every other kind builds φ(q), φ(k) and runs the fused linear_attention op of ops/luna.h.
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

}  // namespace

const std::vector<std::string>& available_attention_kinds() {
  static const std::vector<std::string> kinds = {"softmax", "luna", "elu", "performer", "cosformer", "hedgehog"};
  return kinds;
}

HedgehogFeatureMapImpl::HedgehogFeatureMapImpl(int64_t head_dim, int64_t num_heads) : Module("HedgehogFeatureMap") {
  LUNA_CHECK(head_dim > 0 && num_heads > 0, "HedgehogFeatureMap: head_dim (", head_dim, ") and num_heads (",
             num_heads, ") must be positive");
  weight = register_parameter("weight", empty({num_heads, head_dim, head_dim}));
  bias = register_parameter("bias", empty({num_heads, head_dim}));
  reset_parameters();
}

void HedgehogFeatureMapImpl::reset_parameters() {
  NoGradGuard no_grad;
  const int64_t H = weight.size(0), d = weight.size(1);
  weight.copy_(eye(d, TensorOptions(weight.dtype()).device(weight.device())).unsqueeze(0).expand({H, d, d}));
  bias.zero_();
}

Tensor HedgehogFeatureMapImpl::forward(const Tensor& x) const { return hedgehog_feature_map(x, weight, bias); }

Tensor softmax_attention(const Tensor& query, const Tensor& key, const Tensor& value, const Tensor& key_padding_mask,
                         bool causal, double dropout_p, bool training, Generator* generator) {
  return scaled_dot_product_attention(query, key, value, key_padding_mask, causal, dropout_p, training, generator);
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
    feature_map = register_module("feature_map", LunaFeatureMap(D / H, options.luna(), H));
  if (options.attention() == "hedgehog")
    hedgehog_feature_map = register_module("feature_map", HedgehogFeatureMap(D / H, H));
  if (options.attention() == "performer") {
    LUNA_CHECK(options.performer_features() > 0, "MultiHeadAttention: performer_features (m) must be positive, got ",
               options.performer_features());
    LUNA_CHECK(options.performer_redraw_interval() >= 0, "MultiHeadAttention: performer_redraw_interval must be >= 0 ",
               "(0 = never redraw), got ", options.performer_redraw_interval());
    projection_matrix = register_buffer("projection_matrix", zeros({options.performer_features(), D / H}));
    calls_since_last_redraw = register_buffer("calls_since_last_redraw", zeros({}, TensorOptions(kInt64)));
  }
  LUNA_CHECK(options.cosformer_max_len() >= 0, "MultiHeadAttention: cosformer_max_len must be >= 0 (0 = the longest ",
             "sequence of each call), got ", options.cosformer_max_len());
  reset_parameters();
}

void MultiHeadAttentionImpl::redraw_projection_matrix(Generator* generator) const {
  LUNA_CHECK(projection_matrix.defined(), "MultiHeadAttention: redraw_projection_matrix needs attention = ",
             "'performer', this module has '", options.attention(), "'");
  NoGradGuard no_grad;
  const TensorOptions like = TensorOptions(projection_matrix.dtype()).device(projection_matrix.device());
  // New storage rather than an in-place copy: a graph built before the redraw still holds the old ω.
  projection_matrix.set_data(orthogonal_random_features(projection_matrix.size(0), projection_matrix.size(1),
                                                        generator, like));
  calls_since_last_redraw.fill_(0);
}

void MultiHeadAttentionImpl::reset_parameters(Generator* generator) {
  for (const Linear& projection : {q_proj, k_proj, v_proj}) {
    init::xavier_uniform_(projection->weight, 1.0 / std::sqrt(2.0), generator);
    if (projection->bias.defined()) init::zeros_(projection->bias);
  }
  out_proj->reset_parameters(generator);
  if (out_proj->bias.defined()) init::zeros_(out_proj->bias);
  if (!feature_map.is_empty()) feature_map->reset_parameters(generator);
  if (!hedgehog_feature_map.is_empty()) hedgehog_feature_map->reset_parameters();
  if (projection_matrix.defined()) redraw_projection_matrix(generator);
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
  const std::string& kind = options.attention();
  LinearAttentionOptions linear_options;  // the linear kinds: all but softmax
  linear_options.key_padding_mask = key_padding_mask;
  linear_options.causal = options.causal();
  linear_options.eps = options.linear_eps();
  if (kind == "softmax") {
    heads = scaled_dot_product_attention(q, k, v, key_padding_mask, options.causal(), options.dropout(),
                                         is_training());
  } else if (kind == "performer") {
    if (is_training() && options.performer_redraw_interval() > 0) {
      if (calls_since_last_redraw.item<int64_t>() >= options.performer_redraw_interval()) redraw_projection_matrix();
      NoGradGuard no_grad;
      calls_since_last_redraw.add_(1);
    }
    heads = performer_attention(q, k, v, projection_matrix, linear_options);
  } else if (kind == "cosformer") {
    heads = cosformer_attention(q, k, v, options.cosformer_max_len(), linear_options);
  } else if (kind == "hedgehog") {
    heads = linear_attention(hedgehog_feature_map(q), hedgehog_feature_map(k), v, linear_options);
  } else if (options.attention() == "luna" || options.attention() == "elu") {
    LinearAttentionOptions linear;
    linear.key_padding_mask = key_padding_mask;
    linear.causal = options.causal();
    linear.eps = options.linear_eps();
    if (options.attention() == "luna") {
      // The op runs ψ inside the attention loop where it can (ops/luna.h), so φ(q) and φ(k) are
      // never materialised.
      heads = luna_attention(q, k, v, feature_map->params(), feature_map->options, linear);
    } else {
      heads = linear_attention(elu(q) + 1.0, elu(k) + 1.0, v, linear);  // F = d
    }
  } else {
    LUNA_FAIL("MultiHeadAttention: attention kind '", options.attention(), "' has no implementation");
  }
  const Tensor merged = heads.transpose(1, 2).reshape({B, Nq, D});  // (B, Nq, D)
  return out_proj(merged);                                          // (B, Nq, D)
}

}  // namespace luna::nn
