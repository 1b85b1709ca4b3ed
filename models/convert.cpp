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

std::vector<std::string> vit_trainable_parameter_names(const ViTForImageClassificationImpl& model,
                                                       const std::string& train) {
  check_train_value(train);
  const std::string& kind = model.config().attention.attention;
  LUNA_CHECK(train != "feature_map" || kind_has_parameters(kind), "convert: train = feature_map but attention '",
             kind, "' has no parameters of its own; use train = attention or all");
  std::vector<std::string> names;
  for (const auto& [name, parameter] : model.named_parameters()) {
    const bool selected = train == "all" ||
                          (train == "attention" && contains(name, ".attention.")) ||
                          (train == "feature_map" && contains(name, ".attention.attention.feature_map."));
    if (selected) names.push_back(name);
  }
  return names;
}

nn::NamedTensors set_vit_trainable(ViTForImageClassificationImpl& model, const std::string& train) {
  const std::vector<std::string> names = vit_trainable_parameter_names(model, train);
  const std::set<std::string> selected(names.begin(), names.end());
  nn::NamedTensors trainable;
  for (auto [name, parameter] : model.named_parameters()) {
    const bool on = selected.count(name) > 0;
    parameter.requires_grad_(on);
    if (on) trainable.emplace_back(name, parameter);
  }
  return trainable;
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
                                    const std::vector<Tensor>& pixel_batches, int64_t steps, double lr) {
  LUNA_CHECK(steps >= 0, "distill_vit_attention: steps must be >= 0, got ", steps);
  LUNA_CHECK(lr > 0, "distill_vit_attention: lr must be positive, got ", lr);
  LUNA_CHECK(steps == 0 || !pixel_batches.empty(), "distill_vit_attention: ", steps,
             " distillation steps need at least one batch of pixels, got none");
  std::vector<Tensor> parameters;
  for (const auto& [name, parameter] : student.named_parameters())
    if (contains(name, ".attention.") && parameter.requires_grad()) parameters.push_back(parameter);
  LUNA_CHECK(steps == 0 || !parameters.empty(),
             "distill_vit_attention: no attention parameter of the student requires grad (set train first)");
  DistillReport report;
  if (pixel_batches.empty()) return report;
  report.initial_mse = vit_attention_output_mse(teacher, student, pixel_batches.front());
  if (steps > 0) {
    optim::AdamW optimizer(parameters, optim::AdamWOptions(lr).weight_decay(0.0));
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
    }
    optimizer.zero_grad();
  }
  report.final_mse = vit_attention_output_mse(teacher, student, pixel_batches.front());
  return report;
}

ViTForImageClassification convert_vit_attention(const ViTForImageClassification& original,
                                                const ConvertOptions& options,
                                                const std::vector<Tensor>& distill_batches) {
  const auto& kinds = nn::available_attention_kinds();
  LUNA_CHECK(options.attention != "softmax" &&
                 std::find(kinds.begin(), kinds.end(), options.attention) != kinds.end(),
             "convert: attention must be one of luna, elu, performer, cosformer, hedgehog, got '",
             options.attention, "'");
  check_train_value(options.train);
  LUNA_CHECK(options.distill_steps >= 0, "convert: distill_steps must be >= 0, got ", options.distill_steps);
  LUNA_CHECK(options.distill_steps == 0 || !distill_batches.empty(), "convert: distill_steps = ",
             options.distill_steps, " needs distillation batches, got none");

  ViTConfig config = original->config();
  config.attention.attention = options.attention;
  config.attention.linear_eps = options.linear_eps;
  config.attention.luna = options.luna;
  config.attention.performer_features = options.performer_features;
  config.attention.performer_redraw_interval = options.performer_redraw_interval;
  config.attention.cosformer_max_len = options.cosformer_max_len;
  config.validate(original->source());

  // hf_init = false: every HF-initialised tensor is overwritten below. The new kind's own tensors
  // are drawn here from options.seed (their constructors use the default generator).
  ViTForImageClassification converted(config, nullptr, original->source(), /*hf_init=*/false);
  {
    Generator generator(options.seed);
    NoGradGuard no_grad;
    for (size_t i = 0; i < converted->vit->encoder->layer->size(); ++i) {
      const nn::MultiHeadAttention& mha = converted->vit->encoder->layer->at<ViTLayerImpl>(i).attention->attention->mha;
      if (!mha->feature_map.is_empty()) mha->feature_map->reset_parameters(&generator);
      if (!mha->hedgehog_feature_map.is_empty()) mha->hedgehog_feature_map->reset_parameters();
      if (mha->projection_matrix.defined()) mha->redraw_projection_matrix(&generator);
    }
  }

  // Every original tensor by name; the new kind's tensors keep their fresh initialisation.
  const nn::NamedTensors old_state = original->state_dict();
  std::map<std::string, Tensor> old_by_name(old_state.begin(), old_state.end());
  nn::NamedTensors new_state = converted->state_dict();
  size_t carried = 0;
  for (auto& [name, tensor] : new_state) {
    const auto it = old_by_name.find(name);
    if (it == old_by_name.end()) continue;
    LUNA_CHECK(it->second.sizes() == tensor.sizes(), "convert: tensor ", name, " changed shape from ",
               it->second.sizes(), " to ", tensor.sizes());
    tensor = it->second;
    old_by_name.erase(it);
    ++carried;
  }
  std::string missing;
  for (const auto& [name, tensor] : old_by_name) missing += (missing.empty() ? "" : ", ") + name;
  LUNA_CHECK(missing.empty(), "convert: the converted model has no place for these tensors of ",
             original->source(), ": ", missing);
  LUNA_CHECK(carried == old_state.size(), "convert: carried ", carried, " of ", old_state.size(), " tensors");
  converted->load_state_dict(new_state);

  set_vit_trainable(*converted, options.train);
  converted->train(original->is_training());
  if (options.distill_steps > 0) {
    distill_vit_attention(*original, *converted, distill_batches, options.distill_steps, options.distill_lr);
  }
  return converted;
}

}  // namespace luna::models
