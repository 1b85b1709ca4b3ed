// BERT in the Hugging Face layout (spec/CHECKPOINTS.md): BertModel (embeddings, post-LN encoder,
// tanh pooler) and BertForSequenceClassification, with HF's module names so that state_dict keys
// equal the tensor names of HF checkpoints, loading from and saving to `config.json` +
// `model.safetensors` directories.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include <luna/core/generator.h>

#include <luna/models/bert_config.h>
#include <luna/nn/containers.h>
#include <luna/nn/layers.h>
#include <luna/nn/module.h>
#include <luna/nn/options.h>

namespace luna::models {

// ---- building blocks (HF class and child names) ----

// word + position + token type embeddings, then LayerNorm and dropout.
class BertEmbeddingsImpl : public nn::Module {
 public:
  explicit BertEmbeddingsImpl(const BertConfig& config);
  // input_ids int64 [B, N]; token_type_ids int64 [B, N] or undefined (all 0) -> [B, N, D].
  // Positions are 0..N-1.
  Tensor forward(const Tensor& input_ids, const Tensor& token_type_ids = Tensor()) const;

  nn::Embedding word_embeddings{nullptr};        // (vocab_size, D)
  nn::Embedding position_embeddings{nullptr};    // (max_position_embeddings, D)
  nn::Embedding token_type_embeddings{nullptr};  // (type_vocab_size, D)
  nn::LayerNorm LayerNorm{nullptr};              // HF's capitalised name, kept for the checkpoint keys
  nn::Dropout dropout{nullptr};
};
LUNA_MODULE(BertEmbeddings);

// attention.self: the query/key/value projections and softmax attention over the heads.
class BertSelfAttentionImpl : public nn::Module {
 public:
  explicit BertSelfAttentionImpl(const BertConfig& config);
  // hidden [B, N, D], key_padding_mask bool [B, N] (true = padded key) or undefined -> context [B, N, D]
  Tensor forward(const Tensor& hidden, const Tensor& key_padding_mask = Tensor()) const;

  int64_t num_heads;
  double attention_dropout;
  nn::Linear query{nullptr};
  nn::Linear key{nullptr};
  nn::Linear value{nullptr};
};
LUNA_MODULE(BertSelfAttention);

// dense -> dropout -> LayerNorm(· + residual): attention.output and, with intermediate_size
// inputs, the block's output.
class BertResidualOutputImpl : public nn::Module {
 public:
  BertResidualOutputImpl(int64_t in_features, const BertConfig& config, const std::string& type_name);
  // hidden [B, N, in], residual [B, N, D] -> [B, N, D]
  Tensor forward(const Tensor& hidden, const Tensor& residual) const;

  nn::Linear dense{nullptr};
  nn::LayerNorm LayerNorm{nullptr};
  nn::Dropout dropout{nullptr};
};
LUNA_MODULE(BertResidualOutput);

class BertAttentionImpl : public nn::Module {
 public:
  explicit BertAttentionImpl(const BertConfig& config);
  // x = LayerNorm(x + dense(self(x)))
  Tensor forward(const Tensor& hidden, const Tensor& key_padding_mask = Tensor()) const;

  BertSelfAttention self{nullptr};
  BertResidualOutput output{nullptr};
};
LUNA_MODULE(BertAttention);

// intermediate.dense and the hidden_act activation.
class BertIntermediateImpl : public nn::Module {
 public:
  explicit BertIntermediateImpl(const BertConfig& config);
  Tensor forward(const Tensor& hidden) const;  // [B, N, D] -> [B, N, intermediate_size]

  nn::Linear dense{nullptr};
  std::string hidden_act;  // a function, not a child module, as in HF
};
LUNA_MODULE(BertIntermediate);

// One post-LN block: x = LN(x + attn(x)), then x = LN(x + ffn(x)).
class BertLayerImpl : public nn::Module {
 public:
  explicit BertLayerImpl(const BertConfig& config);
  Tensor forward(const Tensor& hidden, const Tensor& key_padding_mask = Tensor()) const;

  BertAttention attention{nullptr};
  BertIntermediate intermediate{nullptr};
  BertResidualOutput output{nullptr};
};
LUNA_MODULE(BertLayer);

class BertEncoderImpl : public nn::Module {
 public:
  explicit BertEncoderImpl(const BertConfig& config);
  Tensor forward(const Tensor& hidden, const Tensor& key_padding_mask = Tensor()) const;

  nn::ModuleList layer{nullptr};  // encoder.layer.{i}
};
LUNA_MODULE(BertEncoder);

// tanh(dense(h[:, 0])): the [CLS] token's summary.
class BertPoolerImpl : public nn::Module {
 public:
  explicit BertPoolerImpl(const BertConfig& config);
  Tensor forward(const Tensor& hidden) const;  // [B, N, D] -> [B, D]

  nn::Linear dense{nullptr};
};
LUNA_MODULE(BertPooler);

// ---- models ----

struct BertModelOutput {
  Tensor last_hidden_state;  // [B, N, D]
  Tensor pooler_output;      // [B, D], undefined without a pooler
};

// How from_pretrained treats what a checkpoint lacks.
struct BertFromPretrainedOptions {
  // BertForSequenceClassification: a checkpoint without classifier.* (a plain BertModel or a
  // pre-training checkpoint) gets a freshly initialised classifier instead of an error, as HF does
  // when fine-tuning starts from a base model: N(0, initializer_range) weights from the default
  // generator (so manual_seed decides them), zero bias.
  LUNA_ARG(bool, init_missing_classifier) = false;
};

class BertModelImpl : public nn::Module {
 public:
  // Weights follow HF's _init_weights: N(0, initializer_range) for Linear and Embedding weights
  // (padding row zeroed), zero biases, LayerNorm weight 1 and bias 0, drawn from `generator`.
  explicit BertModelImpl(const BertConfig& config, bool add_pooling_layer = true, Generator* generator = nullptr);

  // input_ids int64/int32 [B, N] with N <= max_position_embeddings; attention_mask [B, N] of any
  // integer, bool or float dtype, nonzero = real token, 0 = padding (undefined: all real);
  // token_type_ids [B, N] (undefined: all 0).
  // A sequence whose mask is all 0 gets zero attention output instead of HF's uniform weights.
  BertModelOutput forward(const Tensor& input_ids, const Tensor& attention_mask = Tensor(),
                          const Tensor& token_type_ids = Tensor()) const;

  // Reads config.json and model.safetensors from `dir`. Accepts a plain BertModel checkpoint
  // (names as embeddings.*) and task checkpoints (bert.embeddings.*, whose heads classifier.* and
  // cls.* are skipped), legacy LayerNorm.gamma/.beta names, the legacy buffer
  // embeddings.position_ids (ignored) and floating-point tensors of any width (converted to
  // float32, HF's default). A checkpoint without pooler.* loads into a model without a pooler.
  // Missing, unexpected or wrongly shaped tensors are all listed in one error naming the file.
  // Loading does not advance the default generator. The model is returned in eval mode.
  static std::shared_ptr<BertModelImpl> from_pretrained(const std::string& dir);

  // Writes config.json (architectures ["BertModel"]) and model.safetensors with HF's names.
  void save_pretrained(const std::string& dir) const;

  const BertConfig& config() const { return config_; }

  BertEmbeddings embeddings{nullptr};
  BertEncoder encoder{nullptr};
  BertPooler pooler{nullptr};  // undefined when built without a pooling layer

 private:
  BertConfig config_;
};

class BertModel : public nn::ModuleHolder<BertModelImpl> {
 public:
  using nn::ModuleHolder<BertModelImpl>::ModuleHolder;
  static BertModel from_pretrained(const std::string& dir) { return BertModel(BertModelImpl::from_pretrained(dir)); }
};

class BertForSequenceClassificationImpl : public nn::Module {
 public:
  explicit BertForSequenceClassificationImpl(const BertConfig& config, Generator* generator = nullptr);

  // As BertModel::forward -> logits [B, num_labels] = classifier(dropout(pooler_output)).
  Tensor forward(const Tensor& input_ids, const Tensor& attention_mask = Tensor(),
                 const Tensor& token_type_ids = Tensor()) const;

  // Reads config.json and model.safetensors (bert.* and classifier.*; base names without the
  // bert. prefix are accepted too). See BertModelImpl::from_pretrained for what is tolerated;
  // everything else missing, unexpected or of the wrong shape is an error naming the file, the
  // tensors, their shapes and the config keys that set the expected shapes.
  static std::shared_ptr<BertForSequenceClassificationImpl> from_pretrained(
      const std::string& dir, const BertFromPretrainedOptions& options = {});

  // Writes config.json (architectures ["BertForSequenceClassification"]) and model.safetensors
  // (bert.*, classifier.*), which transformers' from_pretrained reads.
  void save_pretrained(const std::string& dir) const;

  const BertConfig& config() const { return config_; }

  BertModel bert{nullptr};
  nn::Dropout dropout{nullptr};
  nn::Linear classifier{nullptr};  // (num_labels, D)

 private:
  BertConfig config_;
};

class BertForSequenceClassification : public nn::ModuleHolder<BertForSequenceClassificationImpl> {
 public:
  using nn::ModuleHolder<BertForSequenceClassificationImpl>::ModuleHolder;
  static BertForSequenceClassification from_pretrained(const std::string& dir,
                                                       const BertFromPretrainedOptions& options = {}) {
    return BertForSequenceClassification(BertForSequenceClassificationImpl::from_pretrained(dir, options));
  }
};

}  // namespace luna::models
