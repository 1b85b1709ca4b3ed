// models/convert: a small random softmax ViT converted to every other attention kind keeps every
// original tensor bit-identical, gains exactly the new kind's tensors, and `train` makes exactly
// the intended parameters require grad; a converted model round-trips through save_pretrained /
// from_pretrained; attention distillation lowers the per-layer attention-output MSE.
#include "vit_test_util.h"

#include <iostream>
#include <map>
#include <set>

#include <luna/autograd/grad_mode.h>
#include <luna/models/convert.h>
#include <luna/ops/factories.h>

using namespace luna;
using namespace luna::testing;
using namespace luna::testing::vit;
using models::ConvertOptions;
using models::ViTConfig;
using models::ViTForImageClassification;

namespace {

ViTConfig small_vit_config() {
  ViTConfig config;
  config.hidden_size = 16;
  config.num_hidden_layers = 2;
  config.num_attention_heads = 2;
  config.intermediate_size = 32;
  config.image_size = 8;
  config.patch_size = 2;
  config.num_channels = 3;
  config.num_labels = 3;
  config.layer_norm_eps = 1e-12;
  config.initializer_range = 0.2;  // large enough that softmax attention is far from uniform
  return config;
}

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
    std::map<std::string, Tensor> new_state;
    for (const auto& [name, t] : converted->state_dict()) new_state.emplace(name, t);
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
  CHECK(error_of([&] { models::convert_vit_attention(original, small_options("softmax", "all")); }).find("'softmax'") !=
        std::string::npos);
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
