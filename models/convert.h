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
// BERT is not converted here yet: models/bert's BertSelfAttention runs softmax only and has no
// attention kind in BertConfig (see the report of this change).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <luna/models/vit.h>
#include <luna/nn/module.h>
#include <luna/ops/luna.h>

namespace luna::models {

struct ConvertOptions {
  // The new kind: one of nn::available_attention_kinds() other than softmax.
  std::string attention = "luna";
  LunaFeatureMapOptions luna;  // attention = luna
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
DistillReport distill_vit_attention(const ViTForImageClassificationImpl& teacher, ViTForImageClassificationImpl& student,
                                    const std::vector<Tensor>& pixel_batches, int64_t steps, double lr);

// Builds the converted model (see the top of this file), checks that every tensor of `original`
// was carried over with its shape, sets requires_grad per options.train, and, when
// options.distill_steps > 0, runs distill_vit_attention on `distill_batches` (an error when it is
// empty). `original` is left unchanged. The result is in the original's train/eval mode.
ViTForImageClassification convert_vit_attention(const ViTForImageClassification& original,
                                                const ConvertOptions& options,
                                                const std::vector<Tensor>& distill_batches = {});

}  // namespace luna::models
