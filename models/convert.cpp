#include <luna/models/convert.h>

#include <algorithm>
#include <map>
#include <memory>
#include <set>

#include <luna/autograd/grad_mode.h>
#include <luna/core/error.h>
#include <luna/core/generator.h>
#include <luna/nn/attention.h>
#include <luna/nn/optimizer.h>
#include <luna/ops/elementwise.h>
#include <luna/ops/nn_functional.h>

namespace luna::models {
namespace {

// Kinds with parameters of their own (the rest only have buffers or nothing).
bool kind_has_parameters(const std::string& kind) { return kind == "luna" || kind == "hedgehog"; }

void check_train_value(const std::string& train) {
  LUNA_CHECK(train == "feature_map" || train == "attention" || train == "all",
             "convert: train must be feature_map, attention or all, got '", train, "'");
}

bool contains(const std::string& name, const std::string& part) { return name.find(part) != std::string::npos; }

// The attention block of one layer on hidden state x (B, 1 + N, D): output.dense(mha(LN(x))).
Tensor attention_block(const ViTLayerImpl& layer, const Tensor& x) {
  return layer.attention->forward(layer.layernorm_before->forward(x));
}

// Runs fn(layer index, teacher layer, student layer, input of the layer) over the layers, the
// input being the teacher's hidden state (computed without gradient).
template <class Fn>
void for_each_layer_input(const ViTForImageClassificationImpl& teacher, const ViTForImageClassificationImpl& student,
                          const Tensor& pixels, Fn&& fn) {
  const size_t layers = teacher.vit->encoder->layer->size();
  LUNA_CHECK(student.vit->encoder->layer->size() == layers, "convert: teacher has ", layers,
             " layers but student has ", student.vit->encoder->layer->size());
  Tensor x;
  {
    NoGradGuard no_grad;
    x = teacher.vit->embeddings->forward(pixels);  // (B, 1 + N, D)
  }
  for (size_t i = 0; i < layers; ++i) {
    const auto& teacher_layer = teacher.vit->encoder->layer->at<ViTLayerImpl>(i);
    const auto& student_layer = student.vit->encoder->layer->at<ViTLayerImpl>(i);
    fn(i, teacher_layer, student_layer, x);
    NoGradGuard no_grad;
    x = teacher_layer.forward(x);
  }
}

}  // namespace

namespace {

// The parameters of `model` that `train` selects; feature-map parameters are those whose name
// contains `feature_map_part`.
std::vector<std::string> trainable_parameter_names(const nn::Module& model, const std::string& kind,
                                                   const std::string& train, const std::string& feature_map_part) {
  check_train_value(train);
  LUNA_CHECK(train != "feature_map" || kind_has_parameters(kind), "convert: train = feature_map but attention '",
             kind, "' has no parameters of its own; use train = attention or all");
  std::vector<std::string> names;
  for (const auto& [name, parameter] : model.named_parameters()) {
    const bool selected = train == "all" || (train == "attention" && contains(name, ".attention.")) ||
                          (train == "feature_map" && contains(name, feature_map_part));
    if (selected) names.push_back(name);
  }
  return names;
}

nn::NamedTensors set_trainable(nn::Module& model, const std::vector<std::string>& names) {
  const std::set<std::string> selected(names.begin(), names.end());
  nn::NamedTensors trainable;
  for (auto [name, parameter] : model.named_parameters()) {
    const bool on = selected.count(name) > 0;
    parameter.requires_grad_(on);
    if (on) trainable.emplace_back(name, parameter);
  }
  return trainable;
}

// Copies every tensor of `old_state` into the same-named tensor of `model` (the others keep their
// values); an old tensor without a place, or of another shape, is an error naming it.
void carry_over(nn::Module& model, const nn::NamedTensors& old_state, const std::string& source) {
  std::map<std::string, Tensor> old_by_name(old_state.begin(), old_state.end());
  nn::NamedTensors new_state = model.state_dict();
  size_t carried = 0;
  for (auto& [name, tensor] : new_state) {
    const auto it = old_by_name.find(name);
    if (it == old_by_name.end()) continue;
    LUNA_CHECK(it->second.sizes() == tensor.sizes(), "convert: tensor ", name, " of ", source, " changed shape from ",
               it->second.sizes(), " to ", tensor.sizes());
    tensor = it->second;
    old_by_name.erase(it);
    ++carried;
  }
  std::string missing;
  for (const auto& [name, tensor] : old_by_name) missing += (missing.empty() ? "" : ", ") + name;
  LUNA_CHECK(missing.empty(), "convert: the converted model has no place for these tensors of ", source, ": ", missing);
  LUNA_CHECK(carried == old_state.size(), "convert: carried ", carried, " of ", old_state.size(), " tensors of ", source);
  model.load_state_dict(new_state);
}

// allow_softmax: ViT's "conversion" to softmax is a copy (the control of a conversion study).
void check_convert_options(const ConvertOptions& options, size_t distill_batches, bool allow_softmax) {
  const auto& kinds = nn::available_attention_kinds();
  LUNA_CHECK((allow_softmax || options.attention != "softmax") &&
                 std::find(kinds.begin(), kinds.end(), options.attention) != kinds.end(),
             "convert: attention must be one of ", allow_softmax ? "softmax (a copy), " : "",
             "luna, elu, performer, cosformer, hedgehog, got '", options.attention, "'");
  check_train_value(options.train);
  LUNA_CHECK(options.luna_init == "paper" || options.luna_init == "softmax",
             "convert: luna_init must be paper or softmax, got '", options.luna_init, "'");
  LUNA_CHECK(options.luna_init == "paper" || options.attention == "luna", "convert: luna_init = softmax is an ",
             "initialisation of luna's feature maps, but attention is '", options.attention, "'");
  LUNA_CHECK(options.distill_steps >= 0, "convert: distill_steps must be >= 0, got ", options.distill_steps);
  LUNA_CHECK(options.distill_steps == 0 || distill_batches > 0, "convert: distill_steps = ", options.distill_steps,
             " needs distillation batches, got none");
}

// Draws the new kind's own tensors of one attention from `generator`.
void reset_kind_state(const nn::MultiHeadAttention& mha, const ConvertOptions& options, Generator& generator) {
  NoGradGuard no_grad;
  if (!mha->feature_map.is_empty()) {
    if (options.luna_init == "softmax")
      mha->feature_map->init_softmax_kernel_(&generator);
    else
      mha->feature_map->reset_parameters(&generator);
  }
  if (!mha->hedgehog_feature_map.is_empty()) mha->hedgehog_feature_map->reset_parameters();
  if (mha->projection_matrix.defined()) mha->redraw_projection_matrix(&generator);
}

// The attention parameters of `student` that require grad, for the distillation optimizer.
std::vector<Tensor> trainable_attention_parameters(const nn::Module& student, const char* who) {
  std::vector<Tensor> parameters;
  for (const auto& [name, parameter] : student.named_parameters())
    if (contains(name, ".attention.") && parameter.requires_grad()) parameters.push_back(parameter);
  LUNA_CHECK(!parameters.empty(), who, ": no attention parameter of the student requires grad (set train first)");
  return parameters;
}

}  // namespace

std::vector<std::string> vit_trainable_parameter_names(const ViTForImageClassificationImpl& model,
                                                       const std::string& train) {
  return trainable_parameter_names(model, model.config().attention.attention, train, ".attention.attention.feature_map.");
}

nn::NamedTensors set_vit_trainable(ViTForImageClassificationImpl& model, const std::string& train) {
  return set_trainable(model, vit_trainable_parameter_names(model, train));
}

std::vector<double> vit_attention_output_mse(const ViTForImageClassificationImpl& teacher,
                                             const ViTForImageClassificationImpl& student, const Tensor& pixels) {
  NoGradGuard no_grad;
  std::vector<double> mse;
  for_each_layer_input(teacher, student, pixels,
                       [&](size_t, const ViTLayerImpl& teacher_layer, const ViTLayerImpl& student_layer, const Tensor& x) {
                         const Tensor target = attention_block(teacher_layer, x);  // (B, 1 + N, D)
                         const Tensor output = attention_block(student_layer, x);
                         mse.push_back(mse_loss(output, target).item<double>());
                       });
  return mse;
}

DistillReport distill_vit_attention(const ViTForImageClassificationImpl& teacher, ViTForImageClassificationImpl& student,
                                    const std::vector<Tensor>& pixel_batches, int64_t steps, double lr,
                                    const std::function<void(int64_t, double)>& progress) {
  LUNA_CHECK(steps >= 0, "distill_vit_attention: steps must be >= 0, got ", steps);
  LUNA_CHECK(lr > 0, "distill_vit_attention: lr must be positive, got ", lr);
  LUNA_CHECK(steps == 0 || !pixel_batches.empty(), "distill_vit_attention: ", steps,
             " distillation steps need at least one batch of pixels, got none");
  DistillReport report;
  if (pixel_batches.empty()) return report;
  report.initial_mse = vit_attention_output_mse(teacher, student, pixel_batches.front());
  if (steps > 0) {
    optim::AdamW optimizer(trainable_attention_parameters(student, "distill_vit_attention"),
                           optim::AdamWOptions(lr).weight_decay(0.0));
    for (int64_t step = 0; step < steps; ++step) {
      const Tensor& pixels = pixel_batches[static_cast<size_t>(step) % pixel_batches.size()];
      optimizer.zero_grad();
      Tensor loss;
      for_each_layer_input(teacher, student, pixels,
                           [&](size_t, const ViTLayerImpl& teacher_layer, const ViTLayerImpl& student_layer,
                               const Tensor& x) {
                             Tensor target;
                             {
                               NoGradGuard no_grad;
                               target = attention_block(teacher_layer, x);  // (B, 1 + N, D)
                             }
                             const Tensor layer_loss = mse_loss(attention_block(student_layer, x), target);
                             loss = loss.defined() ? add(loss, layer_loss) : layer_loss;
                           });
      loss.backward();
      optimizer.step();
      if (progress) progress(step + 1, loss.item<double>());
    }
    optimizer.zero_grad();
  }
  report.final_mse = vit_attention_output_mse(teacher, student, pixel_batches.front());
  return report;
}

ViTForImageClassification convert_vit_attention(const ViTForImageClassification& original,
                                                const ConvertOptions& options,
                                                const std::vector<Tensor>& distill_batches) {
  check_convert_options(options, distill_batches.size(), /*allow_softmax=*/true);
  ViTConfig config = original->config();
  config.attention.attention = options.attention;
  config.attention.linear_eps = options.linear_eps;
  config.attention.luna = options.luna;
  config.attention.performer_features = options.performer_features;
  config.attention.performer_redraw_interval = options.performer_redraw_interval;
  config.attention.cosformer_max_len = options.cosformer_max_len;
  config.validate(original->source());

  // hf_init = false: every HF-initialised tensor is overwritten by carry_over. The new kind's own
  // tensors are drawn here from options.seed (their constructors use the default generator).
  ViTForImageClassification converted(config, nullptr, original->source(), /*hf_init=*/false);
  Generator generator(options.seed);
  for (size_t i = 0; i < converted->vit->encoder->layer->size(); ++i)
    reset_kind_state(converted->vit->encoder->layer->at<ViTLayerImpl>(i).attention->attention->mha, options, generator);
  carry_over(*converted, original->state_dict(), original->source());

  set_vit_trainable(*converted, options.train);
  converted->train(original->is_training());
  if (options.distill_steps > 0) {
    distill_vit_attention(*original, *converted, distill_batches, options.distill_steps, options.distill_lr,
                          options.distill_progress);
  }
  return converted;
}

// ---- BERT ----

ConvertedBertSelfAttentionImpl::ConvertedBertSelfAttentionImpl(const BertConfig& config, const ConvertOptions& options,
                                                               nn::Linear out_proj)
    : nn::Module("ConvertedBertSelfAttention") {
  nn::MultiHeadAttentionOptions mha_options(config.hidden_size, config.num_attention_heads);
  mha_options.attention(options.attention)
      .luna(options.luna)
      .linear_eps(options.linear_eps)
      .performer_features(options.performer_features)
      .performer_redraw_interval(options.performer_redraw_interval)
      .cosformer_max_len(options.cosformer_max_len)
      .dropout(config.attention_probs_dropout_prob);
  mha = nn::MultiHeadAttention(mha_options);
  mha->out_proj = std::move(out_proj);
  register_hf_self_attention(*this, mha, query, key, value);
}

void ConvertedBertSelfAttentionImpl::train(bool on) {
  nn::Module::train(on);
  mha->train(on);
}

ConvertedBertLayerImpl::ConvertedBertLayerImpl(const BertConfig& config, const ConvertOptions& options)
    : nn::Module("ConvertedBertLayer") {
  attention = register_module("attention", std::make_shared<nn::Module>("BertAttention"));
  attention_output_block = BertResidualOutput(config.hidden_size, config, "BertSelfOutput");
  self = attention->register_module("self", ConvertedBertSelfAttention(config, options, attention_output_block->dense));
  attention->register_module("output", attention_output_block);
  intermediate = register_module("intermediate", BertIntermediate(config));
  output = register_module("output", BertResidualOutput(config.intermediate_size, config, "BertOutput"));
}

Tensor ConvertedBertLayerImpl::attention_output(const Tensor& hidden, const Tensor& key_padding_mask) const {
  return self->mha(hidden, Tensor(), Tensor(), key_padding_mask);  // (B, N, D), out_proj = attention.output.dense
}

Tensor ConvertedBertLayerImpl::forward(const Tensor& hidden, const Tensor& key_padding_mask) const {
  const BertResidualOutputImpl& attention_out = *attention_output_block;
  const Tensor x = attention_out.LayerNorm(attention_out.dropout(attention_output(hidden, key_padding_mask)) + hidden);
  return output(intermediate(x), x);  // (B, N, D)
}

ConvertedBertForSequenceClassificationImpl::ConvertedBertForSequenceClassificationImpl(const BertConfig& config,
                                                                                       const ConvertOptions& options)
    : nn::Module("ConvertedBertForSequenceClassification"), config_(config), options_(options) {
  config_.validate("BertConfig");
  check_convert_options(options, 1, /*allow_softmax=*/false);
  bert = register_module("bert", std::make_shared<nn::Module>("BertModel"));
  embeddings = bert->register_module("embeddings", BertEmbeddings(config_));
  encoder = bert->register_module("encoder", std::make_shared<nn::Module>("BertEncoder"));
  layer = encoder->register_module("layer", nn::ModuleList());
  Generator generator(options.seed);
  for (int64_t i = 0; i < config_.num_hidden_layers; ++i) {
    ConvertedBertLayer block(config_, options);
    reset_kind_state(block->self->mha, options, generator);
    layer->push_back(block);
  }
  pooler = bert->register_module("pooler", BertPooler(config_));
  dropout = register_module("dropout", nn::Dropout(config_.effective_classifier_dropout()));
  classifier = register_module("classifier", nn::Linear(config_.hidden_size, config_.num_labels));
}

Tensor ConvertedBertForSequenceClassificationImpl::key_padding_mask(const Tensor& attention_mask) {
  if (!attention_mask.defined()) return Tensor();
  LUNA_CHECK(attention_mask.dim() == 2, "ConvertedBertForSequenceClassification: attention_mask must be [B, N], got ",
             attention_mask.sizes());
  return attention_mask.eq(wrap_scalar(0, attention_mask));  // (B, N), true = padded
}

Tensor ConvertedBertForSequenceClassificationImpl::forward(const Tensor& input_ids, const Tensor& attention_mask,
                                                           const Tensor& token_type_ids) const {
  LUNA_CHECK(!attention_mask.defined() || attention_mask.sizes() == input_ids.sizes(),
             "ConvertedBertForSequenceClassification: attention_mask ", attention_mask.sizes(),
             " must have the shape of input_ids ", input_ids.sizes());
  const Tensor mask = key_padding_mask(attention_mask);  // (B, N) or undefined
  Tensor hidden = embeddings(input_ids, token_type_ids);  // (B, N, D)
  for (size_t i = 0; i < layer->size(); ++i) hidden = layer_at(i).forward(hidden, mask);
  return classifier(dropout(pooler(hidden)));  // (B, num_labels)
}

nn::NamedTensors set_bert_trainable(ConvertedBertForSequenceClassificationImpl& model, const std::string& train) {
  return set_trainable(model, trainable_parameter_names(model, model.options().attention, train,
                                                        ".attention.self.feature_map."));
}

namespace {

// fn(teacher layer, student layer, input) over the layers, the input being the teacher's hidden
// state (computed without gradient).
template <class Fn>
void for_each_bert_layer_input(const BertForSequenceClassificationImpl& teacher,
                               const ConvertedBertForSequenceClassificationImpl& student, const Tensor& input_ids,
                               const Tensor& mask, Fn&& fn) {
  const auto& teacher_layers = teacher.bert->encoder->layer;
  LUNA_CHECK(teacher_layers->size() == student.num_layers(), "convert: teacher has ", teacher_layers->size(),
             " layers but student has ", student.num_layers());
  Tensor x;
  {
    NoGradGuard no_grad;
    x = teacher.bert->embeddings(input_ids);  // (B, N, D)
  }
  for (size_t i = 0; i < student.num_layers(); ++i) {
    const auto& teacher_layer = teacher_layers->at<BertLayerImpl>(i);
    fn(teacher_layer, student.layer_at(i), x);
    NoGradGuard no_grad;
    x = teacher_layer.forward(x, mask);
  }
}

// The teacher's attention output: attention.output.dense of the softmax context.
Tensor teacher_attention_output(const BertLayerImpl& layer, const Tensor& x, const Tensor& mask) {
  NoGradGuard no_grad;
  return layer.attention->output->dense(layer.attention->self(x, mask));  // (B, N, D)
}

}  // namespace

std::vector<double> bert_attention_output_mse(const BertForSequenceClassificationImpl& teacher,
                                              const ConvertedBertForSequenceClassificationImpl& student,
                                              const Tensor& input_ids, const Tensor& attention_mask) {
  NoGradGuard no_grad;
  const Tensor mask = ConvertedBertForSequenceClassificationImpl::key_padding_mask(attention_mask);
  std::vector<double> mse;
  for_each_bert_layer_input(teacher, student, input_ids, mask,
                            [&](const BertLayerImpl& teacher_layer, const ConvertedBertLayerImpl& student_layer,
                                const Tensor& x) {
                              mse.push_back(mse_loss(student_layer.attention_output(x, mask),
                                                     teacher_attention_output(teacher_layer, x, mask))
                                                .item<double>());
                            });
  return mse;
}

DistillReport distill_bert_attention(const BertForSequenceClassificationImpl& teacher,
                                     ConvertedBertForSequenceClassificationImpl& student,
                                     const std::vector<Tensor>& input_id_batches, int64_t steps, double lr,
                                     const std::function<void(int64_t, double)>& progress) {
  LUNA_CHECK(steps >= 0, "distill_bert_attention: steps must be >= 0, got ", steps);
  LUNA_CHECK(lr > 0, "distill_bert_attention: lr must be positive, got ", lr);
  LUNA_CHECK(steps == 0 || !input_id_batches.empty(), "distill_bert_attention: ", steps,
             " distillation steps need at least one batch of input_ids, got none");
  DistillReport report;
  if (input_id_batches.empty()) return report;
  report.initial_mse = bert_attention_output_mse(teacher, student, input_id_batches.front());
  if (steps > 0) {
    optim::AdamW optimizer(trainable_attention_parameters(student, "distill_bert_attention"),
                           optim::AdamWOptions(lr).weight_decay(0.0));
    for (int64_t step = 0; step < steps; ++step) {
      const Tensor& input_ids = input_id_batches[static_cast<size_t>(step) % input_id_batches.size()];
      optimizer.zero_grad();
      Tensor loss;
      for_each_bert_layer_input(teacher, student, input_ids, Tensor(),
                                [&](const BertLayerImpl& teacher_layer, const ConvertedBertLayerImpl& student_layer,
                                    const Tensor& x) {
                                  const Tensor layer_loss = mse_loss(student_layer.attention_output(x),
                                                                     teacher_attention_output(teacher_layer, x, Tensor()));
                                  loss = loss.defined() ? add(loss, layer_loss) : layer_loss;
                                });
      loss.backward();
      optimizer.step();
      if (progress) progress(step + 1, loss.item<double>());
    }
    optimizer.zero_grad();
  }
  report.final_mse = bert_attention_output_mse(teacher, student, input_id_batches.front());
  return report;
}

ConvertedBertForSequenceClassification convert_bert_attention(const BertForSequenceClassification& original,
                                                              const ConvertOptions& options,
                                                              const std::vector<Tensor>& distill_input_ids) {
  check_convert_options(options, distill_input_ids.size(), /*allow_softmax=*/false);
  ConvertedBertForSequenceClassification converted(original->config(), options);
  carry_over(*converted, original->state_dict(), "the BertForSequenceClassification");
  set_bert_trainable(*converted, options.train);
  converted->train(original->is_training());
  if (options.distill_steps > 0) {
    distill_bert_attention(*original, *converted, distill_input_ids, options.distill_steps, options.distill_lr,
                           options.distill_progress);
  }
  return converted;
}

}  // namespace luna::models
