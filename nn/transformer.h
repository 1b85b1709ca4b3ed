// Transformer encoder blocks with PyTorch's structure and child names (nn.TransformerEncoderLayer,
// nn.TransformerEncoder), batch-first: post-LN (norm_first = false, BERT) or pre-LN
// (norm_first = true, ViT), with the attention kind passed through to MultiHeadAttention.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include <luna/nn/attention.h>
#include <luna/nn/containers.h>
#include <luna/nn/layers.h>
#include <luna/nn/module.h>
#include <luna/nn/options.h>

namespace luna::nn {

struct TransformerEncoderLayerOptions {
  TransformerEncoderLayerOptions(int64_t d_model, int64_t nhead) : d_model_(d_model), nhead_(nhead) {}
  LUNA_ARG(int64_t, d_model);
  LUNA_ARG(int64_t, nhead);
  LUNA_ARG(int64_t, dim_feedforward) = 2048;
  // Used on the attention weights, after attention, after the FFN activation and after linear2.
  LUNA_ARG(double, dropout) = 0.1;
  // "relu" | "gelu"
  LUNA_ARG(std::string, activation) = "relu";
  // false: x = norm1(x + attn(x)), x = norm2(x + ffn(x)) (post-LN);
  // true:  x = x + attn(norm1(x)), x = x + ffn(norm2(x)) (pre-LN).
  LUNA_ARG(bool, norm_first) = false;
  LUNA_ARG(double, layer_norm_eps) = 1e-5;
  // Biases of the attention projections, linear1/linear2 and the layer norms.
  LUNA_ARG(bool, bias) = true;
  // The MultiHeadAttention kind (available_attention_kinds()) and its causal flag.
  LUNA_ARG(std::string, attention) = "softmax";
  LUNA_ARG(bool, causal) = false;
  // The feature map options of attention = "luna" (MultiHeadAttentionOptions::luna).
  LUNA_ARG(LunaFeatureMapOptions, luna) = {};
  // Passed to MultiHeadAttention as its options of the same names (performer: m and the redraw
  // schedule; cosformer: M, 0 = the length of each call).
  LUNA_ARG(int64_t, performer_features) = 128;
  LUNA_ARG(int64_t, performer_redraw_interval) = 1000;
  LUNA_ARG(int64_t, cosformer_max_len) = 0;
};

class TransformerEncoderLayerImpl : public Module {
 public:
  TransformerEncoderLayerImpl(int64_t d_model, int64_t nhead);
  explicit TransformerEncoderLayerImpl(const TransformerEncoderLayerOptions& options);

  // x [B, N, d_model], key_padding_mask bool [B, N] (true = padded) -> [B, N, d_model]
  Tensor forward(const Tensor& x, const Tensor& key_padding_mask = Tensor()) const;

  TransformerEncoderLayerOptions options;
  // Registered in PyTorch's order, so state_dict keys come out in the same order.
  MultiHeadAttention self_attn{nullptr};
  Linear linear1{nullptr};
  Dropout dropout{nullptr};  // after the FFN activation
  Linear linear2{nullptr};
  LayerNorm norm1{nullptr};
  LayerNorm norm2{nullptr};
  Dropout dropout1{nullptr};  // after attention
  Dropout dropout2{nullptr};  // after linear2
  // A function of the layer, not a child (as PyTorch's F.relu / F.gelu).
  std::shared_ptr<ActivationImpl> activation;

 private:
  // residual + dropout(the block applied to x)
  Tensor attention_block(const Tensor& x, const Tensor& residual, const Tensor& key_padding_mask) const;
  Tensor feed_forward_block(const Tensor& x, const Tensor& residual) const;
};
LUNA_MODULE(TransformerEncoderLayer);

class TransformerEncoderImpl : public Module {
 public:
  // num_layers independently initialised layers built from `layer_options`, children
  // layers.0 ... layers.{num_layers-1}; final_norm adds a LayerNorm child `norm` after them.
  TransformerEncoderImpl(const TransformerEncoderLayerOptions& layer_options, int64_t num_layers,
                         bool final_norm = false);

  // x [B, N, d_model], key_padding_mask bool [B, N] (true = padded) -> [B, N, d_model]
  Tensor forward(const Tensor& x, const Tensor& key_padding_mask = Tensor()) const;

  ModuleList layers{nullptr};
  LayerNorm norm{nullptr};  // undefined without final_norm

 private:
  std::vector<TransformerEncoderLayer> typed_layers_;
};
LUNA_MODULE(TransformerEncoder);

}  // namespace luna::nn
