// models/convert: a small random softmax ViT converted to every other attention kind keeps every
// original tensor bit-identical, gains exactly the new kind's tensors, and `train` makes exactly
// the intended parameters require grad; a converted model round-trips through save_pretrained /
// from_pretrained; attention distillation lowers the per-layer attention-output MSE.
#include "vit_test_util.h"

#include <iostream>
#include <map>
#include <random>
#include <set>

#include <luna/autograd/grad_mode.h>
#include <luna/models/convert.h>
#include <luna/nn/optimizer.h>
#include <luna/ops/factories.h>
#include <luna/ops/nn_functional.h>
#include <luna/ops/reduce.h>

using namespace luna;
using namespace luna::testing;
using namespace luna::testing::vit;
using models::ConvertOptions;
using models::ViTConfig;
using models::ViTForImageClassification;

namespace {

ConvertOptions small_options(const std::string& kind, const std::string& train) {
  ConvertOptions options;
  options.attention = kind;
  options.train = train;
  options.luna.num_projections = 8;
  options.luna.channels = 2;
  options.luna.hidden = 16;
  options.performer_features = 16;
  options.cosformer_max_len = 17;
  options.seed = 7;
  return options;
}

bool bit_identical(const Tensor& a, const Tensor& b) {
  return a.sizes() == b.sizes() && a.dtype() == b.dtype() && values(a) == values(b);
}

// A module's state_dict keyed by name.
std::map<std::string, Tensor> state_by_name(const nn::Module& module) {
  std::map<std::string, Tensor> state;
  for (const auto& [name, t] : module.state_dict()) state.emplace(name, t);
  return state;
}

Tensor random_pixels(int64_t batch, uint64_t seed) {
  Generator generator(seed);
  return randn({batch, 3, 8, 8}, {}, &generator);
}

}  // namespace

TEST_CASE("convert: ViT to every kind keeps all original tensors and adds the kind's own", "[convert]") {
  Generator generator(1);
  const ViTForImageClassification original(small_vit_config(), &generator);
  const nn::NamedTensors old_state = original->state_dict();
  for (const std::string kind : {"luna", "elu", "performer", "cosformer", "hedgehog"}) {
    INFO("kind " << kind);
    const ViTForImageClassification converted = models::convert_vit_attention(original, small_options(kind, "all"));
    CHECK(converted->config().attention.attention == kind);
    std::map<std::string, Tensor> new_state = state_by_name(*converted);
    for (const auto& [name, t] : old_state) {
      INFO("tensor " << name);
      REQUIRE(new_state.count(name) == 1);
      CHECK(bit_identical(new_state.at(name), t));
      CHECK(new_state.at(name).data_ptr() != t.data_ptr());  // a copy: training one leaves the other
      new_state.erase(name);
    }
    // What is left is exactly the kind's own state, in each layer.
    std::set<std::string> added;
    for (const auto& [name, t] : new_state) {
      const auto layer_end = name.find(".attention.attention.");
      REQUIRE(layer_end != std::string::npos);
      added.insert(name.substr(layer_end + std::string(".attention.attention.").size()));
    }
    std::set<std::string> expected;
    if (kind == "hedgehog") expected = {"feature_map.weight", "feature_map.bias"};
    if (kind == "performer") expected = {"projection_matrix", "calls_since_last_redraw"};
    if (kind == "luna") {
      for (const auto& [name, t] : converted->named_parameters())
        if (name.find("feature_map.") != std::string::npos) expected.insert(name.substr(name.find("feature_map.")));
      CHECK(!expected.empty());
    }
    CHECK(added == expected);
    CHECK(new_state.size() == expected.size() * 2);  // two layers

    // Outputs differ from softmax's (the attention really changed) but are finite.
    NoGradGuard no_grad;
    original->eval();
    converted->eval();
    const Tensor pixels = random_pixels(2, 3);
    const std::vector<double> got = values(converted(pixels)), want = values(original(pixels));
    for (double v : got) CHECK(std::isfinite(v));
    CHECK(got != want);
  }
}

TEST_CASE("convert: the same seed gives the same converted model", "[convert]") {
  Generator generator(5);
  const ViTForImageClassification original(small_vit_config(), &generator);
  for (const std::string kind : {"luna", "performer"}) {
    const nn::NamedTensors a = models::convert_vit_attention(original, small_options(kind, "all"))->state_dict();
    const nn::NamedTensors b = models::convert_vit_attention(original, small_options(kind, "all"))->state_dict();
    ConvertOptions other_seed = small_options(kind, "all");
    other_seed.seed = 8;
    const nn::NamedTensors c = models::convert_vit_attention(original, other_seed)->state_dict();
    REQUIRE(a.size() == b.size());
    bool any_differs = false;
    for (size_t i = 0; i < a.size(); ++i) {
      CHECK(bit_identical(a[i].second, b[i].second));
      any_differs = any_differs || !bit_identical(a[i].second, c[i].second);
    }
    CHECK(any_differs);
  }
}

TEST_CASE("convert: train selects feature maps, attention parameters or everything", "[convert]") {
  Generator generator(2);
  const ViTForImageClassification original(small_vit_config(), &generator);
  for (const std::string kind : {"luna", "hedgehog", "elu"}) {
    for (const std::string train : {"feature_map", "attention", "all"}) {
      INFO(kind << " train " << train);
      if (kind == "elu" && train == "feature_map") {
        const std::string message = error_of([&] { models::convert_vit_attention(original, small_options(kind, train)); });
        CHECK(message.find("elu") != std::string::npos);
        CHECK(message.find("feature_map") != std::string::npos);
        continue;
      }
      ViTForImageClassification converted = models::convert_vit_attention(original, small_options(kind, train));
      const nn::NamedTensors trainable = models::set_vit_trainable(*converted, train);
      std::set<std::string> trainable_names;
      for (const auto& [name, t] : trainable) trainable_names.insert(name);
      size_t count = 0;
      for (const auto& [name, parameter] : converted->named_parameters()) {
        INFO("parameter " << name);
        const bool in_attention = name.find(".attention.") != std::string::npos;
        const bool feature_map = name.find(".attention.attention.feature_map.") != std::string::npos;
        const bool qkvo = name.find(".attention.attention.query.") != std::string::npos ||
                          name.find(".attention.attention.key.") != std::string::npos ||
                          name.find(".attention.attention.value.") != std::string::npos ||
                          name.find(".attention.output.dense.") != std::string::npos;
        CHECK(in_attention == (feature_map || qkvo));
        const bool expected = train == "all" || (train == "attention" && in_attention) || (train == "feature_map" && feature_map);
        CHECK(parameter.requires_grad() == expected);
        CHECK(trainable_names.count(name) == (expected ? 1u : 0u));
        count += expected;
      }
      CHECK(count == trainable.size());
      CHECK(count > 0);
    }
  }
  CHECK(error_of([&] { models::convert_vit_attention(original, small_options("luna", "heads")); }).find("'heads'") !=
        std::string::npos);
  CHECK(error_of([&] { models::convert_vit_attention(original, small_options("sparse", "all")); }).find("'sparse'") !=
        std::string::npos);
  {
    // softmax: the control, a copy with identical logits and the asked trainable selection.
    const ViTForImageClassification copy = models::convert_vit_attention(original, small_options("softmax", "attention"));
    NoGradGuard no_grad;
    const Tensor pixels = random_pixels(2, 9);
    original->eval();
    copy->eval();
    CHECK(bit_identical(copy(pixels), original(pixels)));
    CHECK(copy->config().attention.attention == "softmax");
    for (const auto& [name, parameter] : copy->named_parameters())
      CHECK(parameter.requires_grad() == (name.find(".attention.") != std::string::npos));
    CHECK(error_of([&] { models::convert_vit_attention(original, small_options("softmax", "feature_map")); })
              .find("softmax") != std::string::npos);
  }
  CHECK(error_of([&] {
          ConvertOptions options = small_options("luna", "all");
          options.distill_steps = 5;
          models::convert_vit_attention(original, options);
        }).find("batches") != std::string::npos);
}

TEST_CASE("convert: a converted ViT saves and loads back with identical logits", "[convert]") {
  Generator generator(3);
  const ViTForImageClassification original(small_vit_config(), &generator);
  for (const std::string kind : {"luna", "performer", "hedgehog", "cosformer"}) {
    INFO("kind " << kind);
    const ViTForImageClassification converted = models::convert_vit_attention(original, small_options(kind, "attention"));
    converted->eval();
    ScratchDir dir("convert_" + kind);
    converted->save_pretrained(dir.str());
    const ViTForImageClassification loaded = ViTForImageClassification::from_pretrained(dir.str());
    loaded->eval();
    CHECK(loaded->config().to_json_string() == converted->config().to_json_string());
    CHECK(loaded->config().attention == converted->config().attention);
    NoGradGuard no_grad;
    const Tensor pixels = random_pixels(2, 4);
    CHECK(values(loaded(pixels)) == values(converted(pixels)));
  }
}

TEST_CASE("convert: attention distillation lowers the per-layer attention-output MSE", "[convert]") {
  Generator generator(4);
  ViTForImageClassification original(small_vit_config(), &generator);
  original->eval();
  std::vector<Tensor> batches;
  for (uint64_t seed = 10; seed < 14; ++seed) batches.push_back(random_pixels(8, seed));
  for (const std::string kind : {"luna", "hedgehog"}) {
    INFO("kind " << kind);
    ViTForImageClassification converted = models::convert_vit_attention(original, small_options(kind, "attention"));
    converted->eval();
    const models::DistillReport report = models::distill_vit_attention(*original, *converted, batches, 150, 3e-3);
    REQUIRE(report.initial_mse.size() == 2);
    REQUIRE(report.final_mse.size() == 2);
    for (size_t layer = 0; layer < 2; ++layer) {
      std::cout << "convert distill " << kind << " layer " << layer << ": attention-output MSE "
                << report.initial_mse[layer] << " -> " << report.final_mse[layer] << "\n";
      CHECK(report.final_mse[layer] < report.initial_mse[layer] / 4);
    }
    // The report measures what vit_attention_output_mse measures.
    // It generalises to images it was not fitted on.
    const std::vector<double> held_out_before = models::vit_attention_output_mse(
        *original, *models::convert_vit_attention(original, small_options(kind, "attention")), random_pixels(8, 99));
    const std::vector<double> held_out = models::vit_attention_output_mse(*original, *converted, random_pixels(8, 99));
    for (size_t layer = 0; layer < 2; ++layer) {
      std::cout << "convert distill " << kind << " layer " << layer << " held-out: " << held_out_before[layer] << " -> "
                << held_out[layer] << "\n";
      CHECK(held_out[layer] < held_out_before[layer] / 4);
    }
    const std::vector<double> again = models::vit_attention_output_mse(*original, *converted, batches.front());
    CHECK(again == report.final_mse);
  }
  // The library call with distill_steps runs the same warm-up.
  ConvertOptions options = small_options("luna", "attention");
  options.distill_steps = 100;
  options.distill_lr = 3e-3;
  const ViTForImageClassification plain = models::convert_vit_attention(original, small_options("luna", "attention"));
  const ViTForImageClassification distilled = models::convert_vit_attention(original, options, batches);
  const std::vector<double> before = models::vit_attention_output_mse(*original, *plain, batches[1]);
  const std::vector<double> after = models::vit_attention_output_mse(*original, *distilled, batches[1]);
  for (size_t layer = 0; layer < 2; ++layer) {
    std::cout << "convert distill via convert_vit_attention layer " << layer << ": " << before[layer] << " -> "
              << after[layer] << "\n";
    CHECK(after[layer] < before[layer] / 2);
  }
}

// ---- BERT ----

namespace {

using models::BertConfig;
using models::BertForSequenceClassification;
using models::ConvertedBertForSequenceClassification;

BertConfig small_bert_config() {
  BertConfig config;
  config.vocab_size = 16;
  config.hidden_size = 32;
  config.num_hidden_layers = 2;
  config.num_attention_heads = 4;
  config.intermediate_size = 64;
  config.max_position_embeddings = 16;
  config.type_vocab_size = 2;
  config.num_labels = 2;
  config.hidden_dropout_prob = 0.0;
  config.attention_probs_dropout_prob = 0.0;
  config.initializer_range = 0.1;
  return config;
}

// The synthetic task: token 1 ([CLS]) then 15 tokens; token A = 2 appears a times and token B = 3
// b times (a ≠ b, both in 0..5) at random places among fillers 4..15; the label is a > b. Solving
// it needs attention to count across the whole sequence.
struct TextBatch {
  Tensor input_ids;  // int64 (B, 16)
  Tensor labels;     // int64 (B)
};

TextBatch make_text_batch(int64_t batch, std::mt19937& rng) {
  constexpr int64_t N = 16;
  std::vector<int64_t> ids, labels;
  std::uniform_int_distribution<int64_t> count(0, 5), filler(4, 15);
  for (int64_t b = 0; b < batch; ++b) {
    int64_t a_count = count(rng), b_count = count(rng);
    while (b_count == a_count) b_count = count(rng);
    std::vector<int64_t> body;
    for (int64_t i = 0; i < a_count; ++i) body.push_back(2);
    for (int64_t i = 0; i < b_count; ++i) body.push_back(3);
    while (static_cast<int64_t>(body.size()) < N - 1) body.push_back(filler(rng));
    std::shuffle(body.begin(), body.end(), rng);
    ids.push_back(1);
    ids.insert(ids.end(), body.begin(), body.end());
    labels.push_back(a_count > b_count ? 1 : 0);
  }
  return {tensor(ids, {batch, N}), tensor(labels, {batch})};
}

template <class Model>
double accuracy(const Model& model, const std::vector<TextBatch>& batches) {
  NoGradGuard no_grad;
  int64_t correct = 0, total = 0;
  for (const TextBatch& batch : batches) {
    const std::vector<double> predicted = values(argmax(model(batch.input_ids), 1));
    const std::vector<double> labels = values(batch.labels);
    for (size_t i = 0; i < labels.size(); ++i) correct += predicted[i] == labels[i];
    total += static_cast<int64_t>(labels.size());
  }
  return static_cast<double>(correct) / static_cast<double>(total);
}

// AdamW on the parameters that require grad, cross-entropy on fresh batches.
template <class Model>
void fine_tune(Model& model, int64_t steps, double lr, std::mt19937& rng) {
  std::vector<Tensor> parameters;
  for (const Tensor& p : model->parameters())
    if (p.requires_grad()) parameters.push_back(p);
  optim::AdamW optimizer(parameters, optim::AdamWOptions(lr).weight_decay(0.0));
  model->train();
  for (int64_t step = 0; step < steps; ++step) {
    const TextBatch batch = make_text_batch(32, rng);
    optimizer.zero_grad();
    cross_entropy(model(batch.input_ids), batch.labels).backward();
    optimizer.step();
  }
  model->eval();
}

}  // namespace

TEST_CASE("convert: luna_init = softmax starts LUNA at the softmax kernel, as close as performer", "[convert]") {
  Generator generator(4);
  ViTForImageClassification original(small_vit_config(), &generator);
  original->eval();
  const Tensor pixels = random_pixels(8, 21);
  ConvertOptions options = small_options("luna", "attention");
  options.luna.num_projections = 256;
  options.luna.channels = 1;
  options.luna.hidden = 64;
  options.luna.envelope = true;
  const ViTForImageClassification paper = models::convert_vit_attention(original, options);
  options.luna_init = "softmax";
  const ViTForImageClassification softmax_start = models::convert_vit_attention(original, options);
  ConvertOptions performer_options = small_options("performer", "attention");
  performer_options.performer_features = 256;
  const ViTForImageClassification performer = models::convert_vit_attention(original, performer_options);
  const std::vector<double> paper_mse = models::vit_attention_output_mse(*original, *paper, pixels);
  const std::vector<double> softmax_mse = models::vit_attention_output_mse(*original, *softmax_start, pixels);
  const std::vector<double> performer_mse = models::vit_attention_output_mse(*original, *performer, pixels);
  // The same seed draws the same ω for both kinds in every layer (each layer's first draw), so LUNA
  // starts as this performer up to ψ's interpolation of exp.
  double paper_total = 0.0, softmax_total = 0.0;
  for (size_t layer = 0; layer < 2; ++layer) {
    std::cout << "convert luna_init layer " << layer << ": attention-output MSE paper " << paper_mse[layer]
              << ", softmax " << softmax_mse[layer] << ", performer " << performer_mse[layer] << "\n";
    CHECK(softmax_mse[layer] == Approx(performer_mse[layer]).epsilon(0.02));
    CHECK(softmax_mse[layer] < paper_mse[layer]);
    paper_total += paper_mse[layer];
    softmax_total += softmax_mse[layer];
  }
  CHECK(softmax_total < paper_total / 3);
  // Every feature-map tensor stays trainable, and the original's tensors are carried over unchanged.
  for (const auto& [name, parameter] : softmax_start->named_parameters())
    if (name.find("feature_map") != std::string::npos) CHECK(parameter.requires_grad());
  const std::map<std::string, Tensor> converted_state = state_by_name(*softmax_start);
  for (const auto& [name, tensor] : original->state_dict()) {
    INFO("tensor " << name);
    REQUIRE(converted_state.count(name) == 1);
    CHECK(bit_identical(converted_state.at(name), tensor));
  }

  ConvertOptions elu = small_options("elu", "attention");
  elu.luna_init = "softmax";
  CHECK_THROWS_WITH(models::convert_vit_attention(original, elu),
                    Catch::Matchers::Contains("luna_init = softmax") && Catch::Matchers::Contains("'elu'"));
  ConvertOptions unknown = small_options("luna", "attention");
  unknown.luna_init = "xavier";
  CHECK_THROWS_WITH(models::convert_vit_attention(original, unknown), Catch::Matchers::Contains("'xavier'"));
  ConvertOptions no_envelope = small_options("luna", "attention");  // L = 2 and no envelope
  no_envelope.luna_init = "softmax";
  CHECK_THROWS_WITH(models::convert_vit_attention(original, no_envelope),
                    Catch::Matchers::Contains("needs the envelope"));
}

TEST_CASE("convert: BERT to every kind keeps all original tensors; train selects the intended parameters", "[convert]") {
  Generator generator(6);
  const BertForSequenceClassification original(small_bert_config(), &generator);
  const nn::NamedTensors old_state = original->state_dict();
  std::mt19937 rng(3);
  const TextBatch batch = make_text_batch(4, rng);
  for (const std::string kind : {"luna", "elu", "performer", "cosformer", "hedgehog"}) {
    for (const std::string train : {"feature_map", "attention", "all"}) {
      INFO("kind " << kind << " train " << train);
      if (train == "feature_map" && (kind != "luna" && kind != "hedgehog")) {
        CHECK(error_of([&] { models::convert_bert_attention(original, small_options(kind, train)); }).find(kind) !=
              std::string::npos);
        continue;
      }
      ConvertedBertForSequenceClassification converted = models::convert_bert_attention(original, small_options(kind, train));
      std::map<std::string, Tensor> new_state;
      for (const auto& [name, t] : converted->state_dict()) new_state.emplace(name, t);
      for (const auto& [name, t] : old_state) {
        INFO("tensor " << name);
        REQUIRE(new_state.count(name) == 1);
        CHECK(bit_identical(new_state.at(name), t));
        new_state.erase(name);
      }
      for (const auto& [name, t] : new_state) {
        INFO("added " << name);
        CHECK(name.find("bert.encoder.layer.") == 0);
        const bool own = name.find(".attention.self.feature_map.") != std::string::npos ||
                         name.find(".attention.self.projection_matrix") != std::string::npos ||
                         name.find(".attention.self.calls_since_last_redraw") != std::string::npos;
        CHECK(own);
      }
      CHECK(new_state.empty() == (kind == "elu" || kind == "cosformer"));

      const nn::NamedTensors trainable = models::set_bert_trainable(*converted, train);
      std::set<std::string> trainable_names;
      for (const auto& [name, t] : trainable) trainable_names.insert(name);
      for (const auto& [name, parameter] : converted->named_parameters()) {
        INFO("parameter " << name);
        const bool feature_map = name.find(".attention.self.feature_map.") != std::string::npos;
        const bool qkvo = name.find(".attention.self.query.") != std::string::npos ||
                          name.find(".attention.self.key.") != std::string::npos ||
                          name.find(".attention.self.value.") != std::string::npos ||
                          name.find(".attention.output.dense.") != std::string::npos ||
                          name.find(".attention.output.LayerNorm.") != std::string::npos;
        const bool expected = train == "all" || (train == "attention" && qkvo) || (train == "attention" && feature_map) ||
                              (train == "feature_map" && feature_map);
        CHECK(parameter.requires_grad() == expected);
        CHECK(trainable_names.count(name) == (expected ? 1u : 0u));
      }
      converted->eval();
      NoGradGuard no_grad;
      for (double v : values(converted(batch.input_ids))) CHECK(std::isfinite(v));
    }
  }
}

TEST_CASE("convert: BERT attention distillation lowers the per-layer attention-output MSE", "[convert]") {
  Generator generator(7);
  BertForSequenceClassification original(small_bert_config(), &generator);
  original->eval();
  std::mt19937 rng(4);
  std::vector<Tensor> batches;
  for (int i = 0; i < 4; ++i) batches.push_back(make_text_batch(16, rng).input_ids);
  ConvertedBertForSequenceClassification converted = models::convert_bert_attention(original, small_options("luna", "attention"));
  converted->eval();
  const models::DistillReport report = models::distill_bert_attention(*original, *converted, batches, 100, 3e-3);
  REQUIRE(report.final_mse.size() == 2);
  for (size_t layer = 0; layer < 2; ++layer) {
    std::cout << "convert bert distill luna layer " << layer << ": attention-output MSE " << report.initial_mse[layer]
              << " -> " << report.final_mse[layer] << "\n";
    CHECK(report.final_mse[layer] < report.initial_mse[layer] / 4);
  }
}

TEST_CASE("convert: a trained BERT converted to luna and fine-tuned recovers its accuracy (issue 6 item 8)", "[convert]") {
  Generator generator(8);
  BertForSequenceClassification original(small_bert_config(), &generator);
  std::mt19937 rng(5);
  std::vector<TextBatch> dev;
  for (int i = 0; i < 8; ++i) dev.push_back(make_text_batch(64, rng));
  fine_tune(original, 300, 2e-3, rng);
  const double original_accuracy = accuracy(original, dev);

  ConvertOptions options = small_options("luna", "all");
  ConvertedBertForSequenceClassification converted = models::convert_bert_attention(original, options);
  converted->eval();
  const double before_fine_tune = accuracy(converted, dev);
  fine_tune(converted, 150, 1e-3, rng);
  const double converted_accuracy = accuracy(converted, dev);
  std::cout << "convert bert item 8: softmax dev accuracy " << original_accuracy << ", luna before fine-tune "
            << before_fine_tune << ", after 150 steps " << converted_accuracy << " (recovery "
            << 100 * converted_accuracy / original_accuracy << "%)\n";
  REQUIRE(original_accuracy >= 0.9);  // the task was learned
  CHECK(before_fine_tune >= 0.75);     // the carried weights already do most of the work (chance: 0.5)
  CHECK(converted_accuracy >= 0.95 * original_accuracy);

  // The same with only the feature maps trained (the default `train`).
  ConvertedBertForSequenceClassification feature_map_only =
      models::convert_bert_attention(original, small_options("luna", "feature_map"));
  fine_tune(feature_map_only, 150, 1e-3, rng);
  const double feature_map_accuracy = accuracy(feature_map_only, dev);
  std::cout << "convert bert item 8: luna, feature maps only, after 150 steps " << feature_map_accuracy << "\n";
  CHECK(feature_map_accuracy >= 0.95 * original_accuracy);
}
