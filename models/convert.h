// Post-hoc attention conversion (spec/LUNA.md §5): replace every softmax attention of a loaded
// model with another kind (luna by default; elu, performer, cosformer, hedgehog), keeping the
// Q/K/V/O weights and every other tensor; choose what trains (the new feature maps only, all
// attention parameters, or everything); optionally warm the new attention up by distillation
// before the task fine-tune.
//
// ViT takes its attention kind from its config (ViTConfig::attention), so conversion builds a new
// model from the same config with the new kind, copies every tensor of the original by name, and
// keeps the fresh initialisation of the new kind's own tensors (feature_map.*, performer's
// projection_matrix). The converted config records the kind, so save_pretrained/from_pretrained
// round-trip the converted model.
//
// BERT's BertSelfAttention runs softmax only and BertConfig records no attention kind, so a
// converted BERT is its own class here, ConvertedBertForSequenceClassification: the same module
// tree and tensor names as BertForSequenceClassification (bert.embeddings.*, bert.encoder.layer.{i}
// .attention.self.query.*, ...), plus the new kind's tensors under attention.self (feature_map.*,
// projection_matrix), reusing models/bert's embeddings, feed-forward, residual-output and pooler
// modules. It has no save_pretrained/from_pretrained (BertConfig has nowhere to record the kind).
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <luna/models/bert.h>
#include <luna/models/vit.h>
#include <luna/nn/attention.h>
#include <luna/nn/module.h>
#include <luna/ops/luna.h>

namespace luna::models {

struct ConvertOptions {
  // The new kind: one of nn::available_attention_kinds() other than softmax (convert_vit_attention
  // also takes softmax: a copy, the control of a conversion study).
  std::string attention = "luna";
  LunaFeatureMapOptions luna;  // attention = luna
  // How luna's feature maps start: "paper" (the paper's initialisation, reset_parameters) or
  // "softmax" (ours: FAVOR+'s random features of the softmax kernel the conversion replaces,
  // LunaFeatureMapImpl::init_softmax_kernel_; needs luna.envelope, channels 1 and activation relu).
  std::string luna_init = "paper";
  double linear_eps = 1e-6;    // every linear kind
  int64_t performer_features = 128;
  int64_t performer_redraw_interval = 1000;
  int64_t cosformer_max_len = 0;
  // What requires grad afterwards:
  //   "feature_map"  the new kind's own parameters only (luna's and hedgehog's feature_map.*);
  //                  an error for kinds without parameters (elu, performer, cosformer)
  //   "attention"    every attention parameter: query/key/value, the output projection and the
  //                  feature map
  //   "all"          every parameter of the model
  std::string train = "feature_map";
  // Attention-distillation warm-up (distill_vit_attention) run by convert_vit_attention when > 0
  // and batches are given.
  int64_t distill_steps = 0;
  double distill_lr = 1e-3;
  // Called after every distillation step with the step (1-based) and its summed loss (for a
  // progress display); may be empty.
  std::function<void(int64_t step, double loss)> distill_progress;
  // Seeds the fresh initialisation of the new kind's tensors.
  uint64_t seed = 0;
};

// The names of the parameters `train` ("feature_map" | "attention" | "all") selects in a converted
// ViT, in named_parameters order. Errors name a bad `train` value, and train = "feature_map" for a
// kind without parameters.
std::vector<std::string> vit_trainable_parameter_names(const ViTForImageClassificationImpl& model,
                                                       const std::string& train);

// Sets requires_grad on exactly the parameters `train` selects (and clears it on the others);
// returns them, named, in named_parameters order: the list to hand the optimizer.
nn::NamedTensors set_vit_trainable(ViTForImageClassificationImpl& model, const std::string& train);

// Per-layer attention-output MSE between `teacher` and `student` on one batch of pixels
// (B, C, H, W): each layer's attention block (layernorm_before, self-attention, output.dense) runs
// on the teacher's hidden state entering that layer, in both models, and the mean squared
// difference of the two outputs (B, 1 + N, D) is taken. No gradient.
std::vector<double> vit_attention_output_mse(const ViTForImageClassificationImpl& teacher,
                                             const ViTForImageClassificationImpl& student, const Tensor& pixels);

struct DistillReport {
  std::vector<double> initial_mse;  // per layer, on the first batch, before any step
  std::vector<double> final_mse;    // per layer, on the first batch, after the last step
};

// Attention distillation (a Hedgehog-style warm-up, our extension of the paper): for `steps`
// steps over `pixel_batches` in turn, minimises the sum over layers of the attention-output MSE of
// vit_attention_output_mse (the teacher's hidden states are the inputs of every layer, so layers
// fit independently) with AdamW(lr, weight decay 0) on the student's attention parameters that
// require grad. Hedgehog matches attention weights; the linear kinds never form them, so the
// matched quantity is each attention block's output, which the weights determine together with V
// and O. Runs in training mode for the student when it already was; the teacher is run without
// gradient.
// `progress` (may be empty) is called after each step with the step (1-based) and its loss.
DistillReport distill_vit_attention(const ViTForImageClassificationImpl& teacher, ViTForImageClassificationImpl& student,
                                    const std::vector<Tensor>& pixel_batches, int64_t steps, double lr,
                                    const std::function<void(int64_t, double)>& progress = {});

// Builds the converted model (see the top of this file), checks that every tensor of `original`
// was carried over with its shape, sets requires_grad per options.train, and, when
// options.distill_steps > 0, runs distill_vit_attention on `distill_batches` (an error when it is
// empty). `original` is left unchanged. The result is in the original's train/eval mode.
// attention = "softmax" gives a copy of a softmax original with the same trainable selection: the
// control of a conversion study (the same fine-tune without a conversion).
ViTForImageClassification convert_vit_attention(const ViTForImageClassification& original,
                                                const ConvertOptions& options,
                                                const std::vector<Tensor>& distill_batches = {});

// ---- BERT ----

// attention.self of a converted BERT layer: query/key/value as in BERT, run by an unregistered
// nn::MultiHeadAttention of the new kind whose out_proj is the layer's attention.output.dense; the
// kind's own state is registered here (feature_map.*, projection_matrix, calls_since_last_redraw).
class ConvertedBertSelfAttentionImpl : public nn::Module {
 public:
  ConvertedBertSelfAttentionImpl(const BertConfig& config, const ConvertOptions& options, nn::Linear out_proj);
  // Also switches the unregistered mha.
  void train(bool on = true) override;

  nn::MultiHeadAttention mha{nullptr};
  nn::Linear query{nullptr}, key{nullptr}, value{nullptr};
};
LUNA_MODULE(ConvertedBertSelfAttention);

// A post-LN BERT block with the converted attention: x = LN(x + dropout(mha(x))), then the
// feed-forward as BertLayer.
class ConvertedBertLayerImpl : public nn::Module {
 public:
  ConvertedBertLayerImpl(const BertConfig& config, const ConvertOptions& options);
  // hidden [B, N, D], key_padding_mask bool [B, N] (true = padded) or undefined -> [B, N, D]
  Tensor forward(const Tensor& hidden, const Tensor& key_padding_mask = Tensor()) const;
  // The attention output before dropout, residual and LayerNorm: attention.output.dense(context).
  Tensor attention_output(const Tensor& hidden, const Tensor& key_padding_mask = Tensor()) const;

  std::shared_ptr<nn::Module> attention;  // "attention": children "self" and "output"
  ConvertedBertSelfAttention self{nullptr};
  BertResidualOutput attention_output_block{nullptr};  // attention.output (dense, LayerNorm, dropout)
  BertIntermediate intermediate{nullptr};
  BertResidualOutput output{nullptr};
};
LUNA_MODULE(ConvertedBertLayer);

class ConvertedBertForSequenceClassificationImpl : public nn::Module {
 public:
  // Fresh tensors (the new kind's drawn from options.seed); convert_bert_attention fills the rest.
  ConvertedBertForSequenceClassificationImpl(const BertConfig& config, const ConvertOptions& options);
  // As BertForSequenceClassificationImpl::forward: input_ids int64 [B, N], attention_mask [B, N]
  // (nonzero = real token; undefined: all real), token_type_ids [B, N] or undefined -> logits [B, labels].
  Tensor forward(const Tensor& input_ids, const Tensor& attention_mask = Tensor(),
                 const Tensor& token_type_ids = Tensor()) const;
  // The bool key padding mask (true = padded) of an attention mask, undefined for undefined.
  static Tensor key_padding_mask(const Tensor& attention_mask);

  const BertConfig& config() const { return config_; }
  const ConvertOptions& options() const { return options_; }
  size_t num_layers() const { return layer->size(); }
  const ConvertedBertLayerImpl& layer_at(size_t i) const { return layer->at<ConvertedBertLayerImpl>(i); }

  std::shared_ptr<nn::Module> bert;     // "bert": embeddings, encoder, pooler
  std::shared_ptr<nn::Module> encoder;  // "bert.encoder": layer
  BertEmbeddings embeddings{nullptr};
  nn::ModuleList layer{nullptr};
  BertPooler pooler{nullptr};
  nn::Dropout dropout{nullptr};
  nn::Linear classifier{nullptr};

 private:
  BertConfig config_;
  ConvertOptions options_;
};
LUNA_MODULE(ConvertedBertForSequenceClassification);

// The BERT counterparts of the ViT functions above. Parameter selection is by name, as for ViT:
// feature_map = `.attention.self.feature_map.`, attention = `.attention.`, all.
nn::NamedTensors set_bert_trainable(ConvertedBertForSequenceClassificationImpl& model, const std::string& train);

// Per-layer MSE of the attention output (attention.output.dense of the context, before dropout,
// residual and LayerNorm) between the softmax teacher and the student, each layer run on the
// teacher's hidden state entering it, over every position (padded ones included). No gradient.
std::vector<double> bert_attention_output_mse(const BertForSequenceClassificationImpl& teacher,
                                              const ConvertedBertForSequenceClassificationImpl& student,
                                              const Tensor& input_ids, const Tensor& attention_mask = Tensor());

// The distillation of distill_vit_attention for BERT, on batches of input_ids (no padding).
DistillReport distill_bert_attention(const BertForSequenceClassificationImpl& teacher,
                                     ConvertedBertForSequenceClassificationImpl& student,
                                     const std::vector<Tensor>& input_id_batches, int64_t steps, double lr,
                                     const std::function<void(int64_t, double)>& progress = {});

// convert_vit_attention for BERT: every tensor of `original` is carried over by name (checked),
// requires_grad is set per options.train, and options.distill_steps > 0 runs
// distill_bert_attention on `distill_input_ids`.
ConvertedBertForSequenceClassification convert_bert_attention(const BertForSequenceClassification& original,
                                                              const ConvertOptions& options,
                                                              const std::vector<Tensor>& distill_input_ids = {});

}  // namespace luna::models
