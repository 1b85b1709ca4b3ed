// ViT parity with Hugging Face transformers and timm on the committed fixtures of
// scripts/make_vit_fixture.py (logits within relative error 1e-4 in the max norm:
// max|luna − ref| / max|ref|), position interpolation against HF's interpolate_pos_encoding,
// state_dict names equal to HF's tensor names, and save_pretrained/from_pretrained round trips
// (softmax and converted attention kinds) giving identical logits.
#include "vit_test_util.h"

#include <iostream>
#include <set>

using namespace luna;
using namespace luna::testing::vit;
using models::ViTConfig;
using models::ViTForImageClassification;

namespace {

constexpr double kParityTolerance = 1e-4;

// Loads `name`/ with from_pretrained and compares the logits at every size in its reference file.
void check_parity(const std::string& name, const std::vector<std::string>& sizes) {
  const ViTForImageClassification model = ViTForImageClassification::from_pretrained((fixture_dir() / name).string());
  model->eval();
  const SafetensorsFile reference = load_safetensors((fixture_dir() / (name + "_reference.safetensors")).string());
  NoGradGuard no_grad;
  for (const std::string& size : sizes) {
    const Tensor pixels = reference.at("pixels_" + size);
    const int64_t S = model->config().image_size;
    const bool native = pixels.size(2) == S && pixels.size(3) == S;
    const Tensor logits = model(pixels, !native);
    const double error = relative_error(logits, reference.at("logits_" + size));
    std::cout << "vit parity " << name << " " << size << ": relative error " << error << "\n";
    INFO(name << " at " << size << ": relative error " << error);
    REQUIRE(error <= kParityTolerance);
  }
}

Tensor small_pixels() {
  return load_safetensors((fixture_dir() / "small_reference.safetensors").string()).at("pixels_32x32");
}

}  // namespace

TEST_CASE("vit: logits match Hugging Face ViTForImageClassification (small, 10 labels)", "[vit]") {
  check_parity("small", {"32x32"});
}

TEST_CASE("vit: interpolated positions match HF interpolate_pos_encoding (bicubic)", "[vit]") {
  // Upsampled and non-square (48x40), downsampled (24x24), and 37x29 where the strided conv
  // drops the pixels past the last whole patch.
  check_parity("small", {"48x40", "24x24", "37x29"});
}

TEST_CASE("vit: 1 channel, qkv_bias false, relu, no id2label match HF", "[vit]") {
  check_parity("tiny_gray", {"16x16"});
  const ViTForImageClassification model =
      ViTForImageClassification::from_pretrained((fixture_dir() / "tiny_gray").string());
  CHECK(model->config().num_labels == 2);  // HF's default when config.json has no id2label
  CHECK_FALSE(model->config().qkv_bias);
  for (const auto& [name, t] : model->state_dict()) CHECK(name.find("attention.attention.query.bias") == std::string::npos);
}

TEST_CASE("vit: timm VisionTransformer checkpoint (fused qkv, timm config.json) matches timm", "[vit]") {
  check_parity("timm_small", {"32x32"});
  const ViTForImageClassification model =
      ViTForImageClassification::from_pretrained((fixture_dir() / "timm_small").string());
  const ViTConfig& c = model->config();
  CHECK(c.hidden_size == 32);
  CHECK(c.num_attention_heads == 4);  // from model_args.num_heads
  CHECK(c.num_hidden_layers == 2);
  CHECK(c.intermediate_size == 64);
  CHECK(c.patch_size == 8);
  CHECK(c.image_size == 32);
  CHECK(c.layer_norm_eps == 1e-6);
  CHECK(c.num_labels == 10);
}

TEST_CASE("vit: state_dict names are exactly the HF tensor names", "[vit]") {
  const SafetensorsFile file = load_safetensors((fixture_dir() / "small" / "model.safetensors").string());
  std::set<std::string> hf, ours;
  for (const auto& [name, t] : file.tensors) hf.insert(name);
  const ViTForImageClassification model(ViTConfig::from_json_file((fixture_dir() / "small" / "config.json").string()));
  for (const auto& [name, t] : model->state_dict()) {
    ours.insert(name);
    INFO(name);
    REQUIRE(file.contains(name));
    CHECK(file.at(name).sizes() == t.sizes());
  }
  CHECK(ours == hf);
  CHECK(ours.count("vit.encoder.layer.1.attention.attention.value.weight") == 1);
  CHECK(ours.count("vit.embeddings.patch_embeddings.projection.weight") == 1);
}

TEST_CASE("vit: save_pretrained then from_pretrained gives identical logits and config", "[vit]") {
  const ViTForImageClassification model =
      ViTForImageClassification::from_pretrained((fixture_dir() / "small").string());
  model->eval();
  ScratchDir dir("roundtrip");
  model->save_pretrained((dir.path() / "saved").string());
  const ViTForImageClassification again = ViTForImageClassification::from_pretrained((dir.path() / "saved").string());
  again->eval();
  CHECK(again->config() == model->config());
  NoGradGuard no_grad;
  const Tensor pixels = small_pixels();
  REQUIRE(testing::values(again(pixels)) == testing::values(model(pixels)));  // bit-identical
  // HF's reader needs these; safetensors metadata as HF writes it.
  const auto config = nlohmann::json::parse(read_file(dir.path() / "saved" / "config.json"));
  CHECK(config["model_type"] == "vit");
  CHECK(config["architectures"][0] == "ViTForImageClassification");
  CHECK(config["id2label"]["9"] == "LABEL_9");
  CHECK(!config.contains("luna_attention"));
  CHECK(load_safetensors_metadata((dir.path() / "saved" / "model.safetensors").string()).at("format") == "pt");
  // Saving over an existing checkpoint replaces it.
  model->save_pretrained((dir.path() / "saved").string());
  CHECK(ViTForImageClassification::from_pretrained((dir.path() / "saved").string())->config() == model->config());
}

TEST_CASE("vit: a config without id2label equals itself written out with LABEL_i names", "[vit]") {
  const ViTConfig config = small_vit_config();  // 3 labels, no names
  const ViTConfig again = ViTConfig::from_json_string(config.to_json_string(), "written");
  CHECK(again.id2label == std::vector<std::string>{"LABEL_0", "LABEL_1", "LABEL_2"});
  CHECK(again == config);
  CHECK(config == again);
  ViTConfig named = config;
  named.id2label = {"cat", "dog", "LABEL_2"};
  CHECK(!(named == config));
  ViTConfig more_labels = config;
  more_labels.num_labels = 4;
  CHECK(!(more_labels == config));
  ViTConfig short_names = config;  // invalid (validate() rejects it), but comparable without a crash
  short_names.id2label = {"LABEL_0"};
  CHECK(short_names == config);
  CHECK_THROWS_AS(short_names.validate("short"), Error);
  ViTConfig other_eps = config;
  other_eps.layer_norm_eps = 1e-6;
  CHECK(!(other_eps == config));
}

TEST_CASE("vit: a model converted to another attention kind round-trips through save/from_pretrained", "[vit]") {
  const ViTForImageClassification softmax =
      ViTForImageClassification::from_pretrained((fixture_dir() / "small").string());
  for (const std::string kind : {"luna", "performer", "hedgehog", "elu", "cosformer"}) {
    DYNAMIC_SECTION(kind) {
      ViTConfig config = softmax->config();
      config.attention.attention = kind;
      config.attention.luna.num_projections = 8;
      config.attention.luna.channels = 2;
      config.attention.luna.hidden = 16;
      config.attention.performer_features = 16;
      config.attention.cosformer_max_len = 17;
      Generator generator(7);
      const ViTForImageClassification converted(config, &generator);
      // Keep the softmax model's Q/K/V/O and everything else; the feature map stays fresh.
      converted->load_state_dict(softmax->state_dict(), /*strict=*/false);
      converted->eval();
      ScratchDir dir("convert_" + kind);
      converted->save_pretrained(dir.str());
      const auto json = nlohmann::json::parse(read_file(dir.path() / "config.json"));
      CHECK(json["luna_attention"]["attention"] == kind);
      const ViTForImageClassification loaded = ViTForImageClassification::from_pretrained(dir.str());
      loaded->eval();
      CHECK(loaded->config() == config);
      NoGradGuard no_grad;
      const Tensor pixels = small_pixels();
      const Tensor logits = converted(pixels);
      REQUIRE(testing::values(loaded(pixels)) == testing::values(logits));
      // It is a different model from the softmax one (the kind is really in use).
      CHECK(relative_error(logits, softmax(pixels)) > 1e-3);
      if (kind == "luna") {
        bool has_feature_map = false;
        for (const auto& [name, t] : loaded->state_dict())
          has_feature_map |= name == "vit.encoder.layer.0.attention.attention.feature_map.proj.weight";
        CHECK(has_feature_map);
      }
    }
  }
}

TEST_CASE("vit: a ViTModel checkpoint (no vit. prefix, pooler) loads with a fresh classifier", "[vit]") {
  ScratchDir dir("base_model");
  copy_checkpoint(fixture_dir() / "small", dir.path());
  edit_weights(dir.path(), [](nn::NamedTensors& tensors) {
    nn::NamedTensors base;
    for (const auto& [name, t] : tensors)
      if (name.rfind("vit.", 0) == 0) base.emplace_back(name.substr(4), t);
    base.emplace_back("pooler.dense.weight", zeros({32, 32}));
    base.emplace_back("pooler.dense.bias", zeros({32}));
    tensors = base;
  });
  const ViTForImageClassification full = ViTForImageClassification::from_pretrained((fixture_dir() / "small").string());
  const ViTForImageClassification base = ViTForImageClassification::from_pretrained(dir.str());
  full->eval();
  base->eval();
  NoGradGuard no_grad;
  const Tensor pixels = small_pixels();
  REQUIRE(testing::values(base->vit(pixels)) == testing::values(full->vit(pixels)));
  // The classifier got HF's initialisation: N(0, 0.02²) weights, zero bias.
  const double weight_std = base->classifier->weight.std({0, 1}).item<float>();
  CHECK(weight_std > 0.015);
  CHECK(weight_std < 0.025);
  CHECK(base->classifier->bias.abs().max().item<float>() == 0.0f);
}

TEST_CASE("vit: half-precision checkpoints load into float32", "[vit]") {
  ScratchDir dir("f16");
  copy_checkpoint(fixture_dir() / "small", dir.path());
  edit_weights(dir.path(), [](nn::NamedTensors& tensors) {
    for (auto& [name, t] : tensors) t = t.to(kFloat16);
  });
  const ViTForImageClassification half = ViTForImageClassification::from_pretrained(dir.str());
  const ViTForImageClassification full = ViTForImageClassification::from_pretrained((fixture_dir() / "small").string());
  for (const auto& [name, t] : full->state_dict()) {
    NoGradGuard no_grad;
    t.copy_(t.to(kFloat16).to(kFloat32));  // the same rounding
  }
  half->eval();
  full->eval();
  NoGradGuard no_grad;
  for (const auto& [name, t] : half->state_dict()) REQUIRE(t.dtype() == kFloat32);
  REQUIRE(testing::values(half(small_pixels())) == testing::values(full(small_pixels())));
}

TEST_CASE("vit: bicubic interpolation weights and gradient", "[vit]") {
  // Rows are a partition of unity (edge taps clamp onto the border), identity at equal sizes.
  for (const auto& [in, out] : std::vector<std::pair<int64_t, int64_t>>{{4, 6}, {4, 3}, {14, 24}, {5, 5}, {1, 3}}) {
    const std::vector<double> w = testing::values(models::bicubic_resize_matrix(in, out));
    for (int64_t i = 0; i < out; ++i) {
      double sum = 0;
      for (int64_t j = 0; j < in; ++j) sum += w[size_t(i * in + j)];
      CHECK(sum == Approx(1.0).epsilon(1e-12));
      if (in == out)
        for (int64_t j = 0; j < in; ++j) CHECK(w[size_t(i * in + j)] == Approx(i == j ? 1.0 : 0.0).margin(1e-12));
    }
  }
  // PyTorch's value for in 4 -> out 6, output 1: source (1.5·4/6 − 0.5) = 0.5, t = 0.5,
  // taps at −1..2 = [−0.09375, 0.59375, 0.59375, −0.09375], the −1 tap clamped onto 0.
  const std::vector<double> w = testing::values(models::bicubic_resize_matrix(4, 6));
  CHECK(w[6 * 0 + 0] != 0);
  CHECK(w[4 * 1 + 0] == Approx(0.5));
  CHECK(w[4 * 1 + 1] == Approx(0.59375));
  CHECK(w[4 * 1 + 2] == Approx(-0.09375));

  const Tensor same = testing::random_leaf({1, 1 + 9, 4}, 3);
  CHECK(models::interpolate_pos_encoding(same, 3, 3).is_same(same));
  testing::require_gradcheck(
      [](const std::vector<Tensor>& in) { return models::interpolate_pos_encoding(in[0], 5, 2); },
      {testing::random_leaf({1, 1 + 9, 4}, 11)});
}

TEST_CASE("vit: training mode, backward through the whole model, and f64", "[vit]") {
  ViTConfig config = ViTConfig::from_json_file((fixture_dir() / "small" / "config.json").string());
  config.hidden_dropout_prob = 0.1;
  config.attention_probs_dropout_prob = 0.1;
  Generator generator(5);
  const ViTForImageClassification model(config, &generator);
  model->train();
  REQUIRE(model->vit->encoder->layer->at<models::ViTLayerImpl>(0).attention->attention->mha->is_training());
  const Tensor logits = model(small_pixels(), /*interpolate_pos_encoding=*/false);
  logits.square().sum().backward();
  for (const auto& [name, p] : model->named_parameters()) {
    INFO(name);
    REQUIRE(p.grad().defined());
    CHECK(p.grad().abs().sum().item<float>() > 0);
  }
  model->eval();
  REQUIRE_FALSE(model->vit->encoder->layer->at<models::ViTLayerImpl>(0).attention->attention->mha->is_training());
  // Moved to float64 the model still runs (pixels in the same dtype) and agrees with float32.
  const ViTForImageClassification f32 = ViTForImageClassification::from_pretrained((fixture_dir() / "small").string());
  const ViTForImageClassification f64 = ViTForImageClassification::from_pretrained((fixture_dir() / "small").string());
  f32->eval();
  f64->eval();
  f64->to(kFloat64);
  NoGradGuard no_grad;
  CHECK(relative_error(f64(small_pixels().to(kFloat64)), f32(small_pixels())) < 1e-5);
}
