// The Long Range Arena classifier: token + position embedding, a Transformer encoder with any
// attention kind, CLS or mean pooling over real tokens, and an MLP head. The dual-tower form
// (retrieval) encodes two documents with shared weights and classifies their interaction.
#pragma once
#include <string>

#include <luna/nn/layers.h>
#include <luna/nn/options.h>
#include <luna/nn/transformer.h>

namespace luna::models {

struct LraClassifierOptions {
  LraClassifierOptions(int64_t vocab_size, int64_t num_classes, int64_t max_len)
      : vocab_size_(vocab_size), num_classes_(num_classes), max_len_(max_len) {}
  LUNA_ARG(int64_t, vocab_size);
  LUNA_ARG(int64_t, num_classes);
  LUNA_ARG(int64_t, max_len);
  // The skyformer protocol's model (spec/LRA.md) is the default.
  LUNA_ARG(int64_t, dim) = 64;
  LUNA_ARG(int64_t, depth) = 2;
  LUNA_ARG(int64_t, heads) = 2;
  LUNA_ARG(int64_t, ffn_dim) = 128;
  LUNA_ARG(int64_t, head_hidden) = 128;
  LUNA_ARG(double, dropout) = 0.1;
  LUNA_ARG(std::string, activation) = "gelu";
  LUNA_ARG(bool, norm_first) = true;
  LUNA_ARG(bool, final_norm) = true;
  LUNA_ARG(std::string, attention) = "softmax";
  // The feature map options of attention = "luna" (M, L, Hψ, ...), passed to every layer.
  LUNA_ARG(LunaFeatureMapOptions, luna) = {};
  // performer: m random features and the redraw schedule (training calls between redraws, 0 =
  // never). cosformer's M is the model's max_len, so outputs do not depend on a batch's padding.
  LUNA_ARG(int64_t, performer_features) = 128;
  LUNA_ARG(int64_t, performer_redraw_interval) = 1000;
  LUNA_ARG(std::string, pooling) = "mean";        // "mean" over real tokens | "cls" (position 0)
  LUNA_ARG(std::string, positions) = "learned";   // "learned" | "sinusoidal"
  // Standard deviations of the normal initialisation of the token and the learned position
  // embeddings (the padding row is zeroed). The PyTorch LRA code of the skyformer protocol
  // (Nyströmformer/Skyformer) draws both from N(0, 0.02); the JAX LRA code draws tokens from
  // N(0, 1) and learned positions from N(0, 0.02); nn::Embedding alone would draw N(0, 1).
  LUNA_ARG(double, token_embedding_std) = 0.02;
  LUNA_ARG(double, position_embedding_std) = 0.02;
  LUNA_ARG(int64_t, padding_idx) = 0;             // token id of padding; its positions are masked
  // Retrieval: two towers with shared weights; "concat4" = [e1, e2, e1*e2, e1-e2], "concat2" = [e1, e2].
  LUNA_ARG(bool, dual) = false;
  LUNA_ARG(std::string, interaction) = "concat4";
};

class LraClassifierImpl : public nn::Module {
 public:
  explicit LraClassifierImpl(const LraClassifierOptions& options);

  // tokens int64 [B, N] -> pooled features [B, dim]. Padding (tokens == padding_idx) is masked
  // out of attention and pooling.
  Tensor encode(const Tensor& tokens) const;
  // Single input: tokens [B, N] -> logits [B, num_classes].
  Tensor forward(const Tensor& tokens) const;
  // Dual input (retrieval): two token batches [B, N1], [B, N2] -> logits [B, num_classes].
  Tensor forward(const Tensor& tokens1, const Tensor& tokens2) const;

  const LraClassifierOptions& options() const { return options_; }

  nn::Embedding token_embedding{nullptr};
  nn::Embedding position_embedding{nullptr};  // undefined for sinusoidal positions
  nn::TransformerEncoder encoder{nullptr};
  nn::Dropout embedding_dropout{nullptr};
  nn::MLP head{nullptr};

 private:
  LraClassifierOptions options_;
  Tensor sinusoidal_;  // (max_len, dim), a constant (not a parameter or buffer)
};
LUNA_MODULE(LraClassifier);

}  // namespace luna::models
