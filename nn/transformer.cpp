// TransformerEncoderLayer / TransformerEncoder: PyTorch's block structure (attention block and
// feed-forward block, each with residual and dropout, pre- or post-LN) on luna's layers.
#include <luna/nn/transformer.h>
#include <luna/ops/nn_functional.h>

namespace luna::nn {

TransformerEncoderLayerImpl::TransformerEncoderLayerImpl(int64_t d_model, int64_t nhead)
    : TransformerEncoderLayerImpl(TransformerEncoderLayerOptions(d_model, nhead)) {}

TransformerEncoderLayerImpl::TransformerEncoderLayerImpl(const TransformerEncoderLayerOptions& options_)
    : Module("TransformerEncoderLayer"), options(options_) {
  const int64_t D = options.d_model();
  LUNA_CHECK(options.activation() == "relu" || options.activation() == "gelu",
             "TransformerEncoderLayer: activation must be 'relu' or 'gelu', got '", options.activation(), "'");
  LUNA_CHECK(options.dim_feedforward() > 0, "TransformerEncoderLayer: dim_feedforward must be positive, got ",
             options.dim_feedforward());
  LUNA_CHECK(options.dropout() >= 0.0 && options.dropout() < 1.0,
             "TransformerEncoderLayer: dropout must be in [0, 1), got ", options.dropout());
  self_attn = register_module("self_attn", MultiHeadAttention(MultiHeadAttentionOptions(D, options.nhead())
                                                                   .dropout(options.dropout())
                                                                   .bias(options.bias())
                                                                   .attention(options.attention())
                                                                   .causal(options.causal())
                                                                   .luna(options.luna())
                                                                   .performer_features(options.performer_features())
                                                                   .performer_redraw_interval(
                                                                       options.performer_redraw_interval())
                                                                   .cosformer_max_len(options.cosformer_max_len())));
  linear1 = register_module("linear1", Linear(D, options.dim_feedforward(), options.bias()));
  dropout = register_module("dropout", Dropout(options.dropout()));
  linear2 = register_module("linear2", Linear(options.dim_feedforward(), D, options.bias()));
  const auto norm_options = LayerNormOptions({D}).eps(options.layer_norm_eps()).bias(options.bias());
  norm1 = register_module("norm1", LayerNorm(norm_options));
  norm2 = register_module("norm2", LayerNorm(norm_options));
  dropout1 = register_module("dropout1", Dropout(options.dropout()));
  dropout2 = register_module("dropout2", Dropout(options.dropout()));
  activation = make_activation(options.activation(), "TransformerEncoderLayer");
}

// Each block ends in its dropout and the residual connection, residual + dropout(block(x)), one
// pass over memory (dropout_add): the values, draws and gradients of the Dropout module and the add.
Tensor TransformerEncoderLayerImpl::attention_block(const Tensor& x, const Tensor& residual,
                                                    const Tensor& key_padding_mask) const {
  const Tensor attended = self_attn(x, Tensor(), Tensor(), key_padding_mask);  // (B, N, D)
  return dropout_add(attended, residual, dropout1->p, dropout1->is_training());
}

Tensor TransformerEncoderLayerImpl::feed_forward_block(const Tensor& x, const Tensor& residual) const {
  const Tensor hidden = linear1(x);  // (B, N, dim_feedforward)
  // The exact GELU and its dropout in one pass: the values, draws and gradients of the two modules.
  const auto* gelu = dynamic_cast<const GELUImpl*>(activation.get());
  const Tensor activated = gelu != nullptr && gelu->approximate == "none"
                               ? gelu_dropout(hidden, dropout->p, dropout->is_training())
                               : dropout(activation->forward(hidden));
  return dropout_add(linear2(activated), residual, dropout2->p, dropout2->is_training());  // (B, N, D)
}

Tensor TransformerEncoderLayerImpl::forward(const Tensor& x, const Tensor& key_padding_mask) const {
  LUNA_CHECK(x.defined(), "TransformerEncoderLayer: input is undefined");
  LUNA_CHECK(x.dim() == 3 && x.size(2) == options.d_model(), "TransformerEncoderLayer: expected input of shape [B, N, ",
             options.d_model(), "] (d_model = ", options.d_model(), "), got ", x.sizes());
  if (options.norm_first()) {
    const Tensor h = attention_block(norm1(x), x, key_padding_mask);  // (B, N, D)
    return feed_forward_block(norm2(h), h);                           // (B, N, D)
  }
  const Tensor h = norm1(attention_block(x, x, key_padding_mask));  // (B, N, D)
  return norm2(feed_forward_block(h, h));                           // (B, N, D)
}

TransformerEncoderImpl::TransformerEncoderImpl(const TransformerEncoderLayerOptions& layer_options, int64_t num_layers,
                                               bool final_norm)
    : Module("TransformerEncoder") {
  LUNA_CHECK(num_layers >= 1, "TransformerEncoder: num_layers must be at least 1, got ", num_layers);
  layers = register_module("layers", ModuleList());
  for (int64_t i = 0; i < num_layers; ++i) {
    typed_layers_.emplace_back(layer_options);
    layers->push_back(typed_layers_.back());
  }
  if (final_norm) {
    norm = register_module(
        "norm", LayerNorm(LayerNormOptions({layer_options.d_model()}).eps(layer_options.layer_norm_eps())));
  }
}

Tensor TransformerEncoderImpl::forward(const Tensor& x, const Tensor& key_padding_mask) const {
  Tensor h = x;  // (B, N, D)
  for (const TransformerEncoderLayer& layer : typed_layers_) h = layer(h, key_padding_mask);
  return norm.is_empty() ? h : norm(h);
}

}  // namespace luna::nn
