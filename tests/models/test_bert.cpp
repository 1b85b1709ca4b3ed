// BERT model parity with Hugging Face transformers and checkpoint handling.
// Fixture (scripts/make_bert_fixture.py small): a randomly initialised BertForSequenceClassification
// (2 layers, width 32, 4 heads, FFN 64, 213-token vocab, 3 labels, every parameter randomised)
// saved with save_pretrained, a padded batch of 4 (two singles, two pairs, N = 28) and
// transformers' float64 outputs. luna runs in float32; the error measure is
// max |luna - HF| / max |HF| over the whole tensor, required <= 1e-4.
#include "bert_test_util.h"

#include <luna/models/bert.h>

#include <nlohmann/json.hpp>

#include <cstdio>
#include <set>

using namespace luna;
using luna::testing::values;
using luna::testing::bert::relative_error;
using luna::testing::bert::require_error;
using luna::testing::bert::ScratchDir;
using luna::testing::bert::small_model_dir;

namespace {

SafetensorsFile reference() { return load_safetensors((testing::bert::fixtures() / "reference.safetensors").string()); }

nlohmann::json small_config() {
  return nlohmann::json::parse(testing::bert::read_text(small_model_dir() + "/config.json"));
}

// A copy of the fixture checkpoint in `dir`, with its tensors and config passed through `edit`.
void write_variant(const ScratchDir& dir, const std::function<void(nn::NamedTensors&)>& edit_tensors,
                   const std::function<void(nlohmann::json&)>& edit_config = nullptr) {
  const SafetensorsFile file = load_safetensors(small_model_dir() + "/model.safetensors");
  nn::NamedTensors tensors(file.tensors.begin(), file.tensors.end());
  if (edit_tensors) edit_tensors(tensors);
  save_safetensors(dir.file("model.safetensors"), tensors, {{"format", "pt"}});
  nlohmann::json config = small_config();
  if (edit_config) edit_config(config);
  testing::bert::write_text(dir.file("config.json"), config.dump(2));
}

void rename_tensor(nn::NamedTensors& tensors, const std::string& from, const std::string& to) {
  bool found = false;
  for (auto& [name, t] : tensors)
    if (name == from) name = to, found = true;
  REQUIRE(found);
}

void erase_tensor(nn::NamedTensors& tensors, const std::string& name) {
  const auto before = tensors.size();
  std::erase_if(tensors, [&](const auto& entry) { return entry.first == name; });
  REQUIRE(tensors.size() + 1 == before);
}

std::set<std::string> names(const nn::NamedTensors& tensors) {
  std::set<std::string> out;
  for (const auto& [name, _] : tensors) out.insert(name);
  return out;
}

}  // namespace

TEST_CASE("BertForSequenceClassification matches transformers on the small fixture", "[bert]") {
  const auto model = models::BertForSequenceClassification::from_pretrained(small_model_dir());
  REQUIRE_FALSE(model->is_training());
  const SafetensorsFile ref = reference();
  const Tensor ids = ref.at("input_ids"), mask = ref.at("attention_mask"), types = ref.at("token_type_ids");
  REQUIRE(ids.sizes() == Dims{4, 28});
  // The batch really is padded and has both token types, so masking and type embeddings matter.
  REQUIRE(values(mask.sum()).at(0) < 4 * 28);
  REQUIRE(values(types.sum()).at(0) > 0);

  NoGradGuard no_grad;
  const Tensor embedded = model->bert->embeddings(ids, types);
  const models::BertModelOutput base = model->bert(ids, mask, types);
  const Tensor logits = model(ids, mask, types);
  REQUIRE(logits.sizes() == Dims{4, 3});
  const double e_embed = relative_error(embedded, ref.at("embedding_output"));
  const double e_hidden = relative_error(base.last_hidden_state, ref.at("last_hidden_state"));
  const double e_pooled = relative_error(base.pooler_output, ref.at("pooler_output"));
  const double e_logits = relative_error(logits, ref.at("logits"));
  std::printf("BERT small vs transformers (float64), max|a-b|/max|b|: embeddings %.2e, last_hidden_state %.2e, "
              "pooler_output %.2e, logits %.2e\n",
              e_embed, e_hidden, e_pooled, e_logits);
  CHECK(e_embed <= 1e-4);
  CHECK(e_hidden <= 1e-4);
  CHECK(e_pooled <= 1e-4);
  CHECK(e_logits <= 1e-4);
}

TEST_CASE("BERT from_pretrained leaves the default generator alone", "[bert]") {
  manual_seed(11);
  const GeneratorState before = default_generator().get_state();
  const auto model = models::BertForSequenceClassification::from_pretrained(small_model_dir());
  const auto base = models::BertModel::from_pretrained(small_model_dir());
  CHECK(default_generator().get_state() == before);
}

TEST_CASE("BERT state_dict names are the Hugging Face checkpoint's names", "[bert]") {
  const SafetensorsFile file = load_safetensors(small_model_dir() + "/model.safetensors");
  const auto model = models::BertForSequenceClassification::from_pretrained(small_model_dir());
  CHECK(names(model->state_dict()) == names(file.tensors));
  const std::set<std::string> base = names(model->bert->state_dict());
  CHECK(base.count("embeddings.LayerNorm.weight") == 1);
  CHECK(base.count("encoder.layer.1.attention.self.query.weight") == 1);
  CHECK(base.count("encoder.layer.0.attention.output.LayerNorm.bias") == 1);
  CHECK(base.count("encoder.layer.0.intermediate.dense.weight") == 1);
  CHECK(base.count("encoder.layer.0.output.dense.weight") == 1);
  CHECK(base.count("pooler.dense.bias") == 1);
  const models::BertConfig& config = model->config();
  CHECK(config.num_labels == 3);
  CHECK(config.id2label == std::vector<std::string>{"negative", "neutral", "positive"});
  CHECK(config.layer_norm_eps == 1e-12);
}

TEST_CASE("BERT masks padded keys: real tokens do not see padding", "[bert]") {
  const auto model = models::BertModel::from_pretrained(small_model_dir());
  NoGradGuard no_grad;
  const Tensor ids = tensor(std::vector<int64_t>{2, 151, 16, 152, 5, 3}, {1, 6});
  const Tensor short_out = model(ids).last_hidden_state;  // (1, 6, D), no mask
  // The same sentence padded with arbitrary ids (not only [PAD]) behind a zero mask.
  const Tensor padded = tensor(std::vector<int64_t>{2, 151, 16, 152, 5, 3, 0, 7, 100}, {1, 9});
  const Tensor mask = tensor(std::vector<int64_t>{1, 1, 1, 1, 1, 1, 0, 0, 0}, {1, 9});
  const models::BertModelOutput out = model(padded, mask);
  CHECK(relative_error(out.last_hidden_state.narrow(1, 0, 6), short_out) <= 1e-5);
  // Without the mask the padding leaks into the real tokens.
  CHECK(relative_error(model(padded).last_hidden_state.narrow(1, 0, 6), short_out) > 1e-3);
  // Float and bool masks mean the same as integer ones.
  CHECK(relative_error(model(padded, mask.to(kFloat32)).last_hidden_state, out.last_hidden_state) == 0);
  CHECK(relative_error(model(padded, mask.to(kBool)).last_hidden_state, out.last_hidden_state) == 0);
}

TEST_CASE("BERT trains: dropout in train mode, gradients reach every parameter", "[bert]") {
  auto model = models::BertForSequenceClassification::from_pretrained(small_model_dir());
  const SafetensorsFile ref = reference();
  const Tensor ids = ref.at("input_ids"), mask = ref.at("attention_mask"), types = ref.at("token_type_ids");
  model->train();
  manual_seed(3);
  const Tensor logits = model(ids, mask, types);
  CHECK(relative_error(logits, ref.at("logits")) > 1e-3);  // dropout (p = 0.1) is active
  const Tensor loss = cross_entropy(logits, tensor(std::vector<int64_t>{0, 1, 2, 1}, {4}));
  loss.backward();
  for (const auto& [name, p] : model->named_parameters()) {
    INFO(name);
    REQUIRE(p.grad().defined());
    CHECK(values(p.grad().abs().sum()).at(0) > 0);
  }
}

TEST_CASE("BERT save_pretrained writes a checkpoint that loads back identically", "[bert]") {
  const auto model = models::BertForSequenceClassification::from_pretrained(small_model_dir());
  ScratchDir dir("save");
  model->save_pretrained(dir.str());
  const auto again = models::BertForSequenceClassification::from_pretrained(dir.str());
  CHECK(again->config() == model->config());
  const SafetensorsFile ref = reference();
  NoGradGuard no_grad;
  const Tensor a = model(ref.at("input_ids"), ref.at("attention_mask"), ref.at("token_type_ids"));
  const Tensor b = again(ref.at("input_ids"), ref.at("attention_mask"), ref.at("token_type_ids"));
  CHECK(relative_error(b, a) == 0);
  const SafetensorsFile saved = load_safetensors(dir.file("model.safetensors"));
  CHECK(names(saved.tensors) == names(load_safetensors(small_model_dir() + "/model.safetensors").tensors));
  CHECK(saved.metadata.at("format") == "pt");
  const nlohmann::json config = nlohmann::json::parse(testing::bert::read_text(dir.file("config.json")));
  CHECK(config.at("architectures") == nlohmann::json::array({"BertForSequenceClassification"}));
  CHECK(config.at("id2label").at("2") == "positive");

  // The base model alone saves without the bert. prefix.
  ScratchDir base_dir("save_base");
  model->bert->save_pretrained(base_dir.str());
  const SafetensorsFile base = load_safetensors(base_dir.file("model.safetensors"));
  CHECK(base.contains("embeddings.word_embeddings.weight"));
  CHECK_FALSE(base.contains("classifier.weight"));
}

TEST_CASE("BERT from_pretrained accepts HF's name variants", "[bert]") {
  const auto original = models::BertForSequenceClassification::from_pretrained(small_model_dir());
  const SafetensorsFile ref = reference();
  const Tensor ids = ref.at("input_ids"), mask = ref.at("attention_mask"), types = ref.at("token_type_ids");
  NoGradGuard no_grad;
  const Tensor want_logits = original(ids, mask, types);
  const Tensor want_hidden = original->bert(ids, mask, types).last_hidden_state;

  SECTION("legacy LayerNorm.gamma / .beta and the position_ids buffer") {
    ScratchDir dir("legacy");
    write_variant(dir, [](nn::NamedTensors& t) {
      rename_tensor(t, "bert.embeddings.LayerNorm.weight", "bert.embeddings.LayerNorm.gamma");
      rename_tensor(t, "bert.encoder.layer.1.output.LayerNorm.bias", "bert.encoder.layer.1.output.LayerNorm.beta");
      t.emplace_back("bert.embeddings.position_ids", arange(40, TensorOptions(kInt64)).unsqueeze(0));
    });
    CHECK(relative_error(models::BertForSequenceClassification::from_pretrained(dir.str())(ids, mask, types),
                         want_logits) == 0);
  }
  SECTION("a task checkpoint loads into BertModel (bert. prefix dropped, head skipped)") {
    const auto base = models::BertModel::from_pretrained(small_model_dir());
    CHECK(relative_error(base(ids, mask, types).last_hidden_state, want_hidden) == 0);
  }
  SECTION("a base checkpoint without the prefix loads into the task model only with a fresh classifier") {
    ScratchDir dir("base_names");
    write_variant(dir, [](nn::NamedTensors& t) {
      std::erase_if(t, [](const auto& e) { return e.first.rfind("classifier.", 0) == 0; });
      for (auto& [name, tensor] : t) name = name.substr(5);  // drop "bert."
    });
    require_error([&] { models::BertForSequenceClassification::from_pretrained(dir.str()); },
                  {dir.file("model.safetensors"), "missing tensors", "classifier.weight", "classifier.bias",
                   "init_missing_classifier"});
    const auto options = models::BertFromPretrainedOptions().init_missing_classifier(true);
    manual_seed(7);
    const auto fresh = models::BertForSequenceClassification::from_pretrained(dir.str(), options);
    CHECK(relative_error(fresh->bert(ids, mask, types).last_hidden_state, want_hidden) == 0);
    // The fresh classifier is HF's init, N(0, 0.02) and zero bias, decided by manual_seed.
    manual_seed(7);
    const auto again = models::BertForSequenceClassification::from_pretrained(dir.str(), options);
    CHECK(relative_error(again->classifier->weight, fresh->classifier->weight) == 0);
    const double weight_std = std::sqrt(values(fresh->classifier->weight.square().mean()).at(0));
    CHECK((weight_std > 0.01 && weight_std < 0.03));
    CHECK(values(fresh->classifier->bias.abs().sum()).at(0) == 0);
    CHECK(relative_error(models::BertModel::from_pretrained(dir.str())(ids, mask, types).last_hidden_state,
                         want_hidden) == 0);
  }
  SECTION("half-precision tensors are widened to float32") {
    ScratchDir dir("half");
    write_variant(dir, [](nn::NamedTensors& t) {
      for (auto& [name, tensor] : t) tensor = tensor.to(kFloat16);
    });
    const auto half = models::BertForSequenceClassification::from_pretrained(dir.str());
    const Tensor w = half->classifier->weight;
    CHECK(w.dtype() == kFloat32);
    CHECK(relative_error(w, original->classifier->weight.to(kFloat16).to(kFloat32)) == 0);
    CHECK(relative_error(half(ids, mask, types), want_logits) < 1e-2);
  }
  SECTION("a checkpoint without a pooler loads into a BertModel without one") {
    ScratchDir dir("no_pooler");
    write_variant(dir, [](nn::NamedTensors& t) {
      std::erase_if(t, [](const auto& e) { return e.first.find("pooler.") != std::string::npos ||
                                                  e.first.rfind("classifier.", 0) == 0; });
    });
    const auto base = models::BertModel::from_pretrained(dir.str());
    CHECK(base->pooler.is_empty());
    const models::BertModelOutput out = base(ids, mask, types);
    CHECK_FALSE(out.pooler_output.defined());
    CHECK(relative_error(out.last_hidden_state, want_hidden) == 0);
  }
}

TEST_CASE("BERT checkpoint errors name the file, the tensor and the config key", "[bert]") {
  const std::string weights_name = "model.safetensors";
  SECTION("config and tensors disagree: vocab_size") {
    ScratchDir dir("vocab_mismatch");
    write_variant(dir, nullptr, [](nlohmann::json& c) { c["vocab_size"] = 300; });
    require_error([&] { models::BertForSequenceClassification::from_pretrained(dir.str()); },
                  {dir.file(weights_name), "wrong shapes", "'bert.embeddings.word_embeddings.weight' has shape [213,32]",
                   "vocab_size = 300", "needs [300,32]", dir.file("config.json")});
  }
  SECTION("config and tensors disagree: more layers than the checkpoint has") {
    ScratchDir dir("layers_mismatch");
    write_variant(dir, nullptr, [](nlohmann::json& c) { c["num_hidden_layers"] = 3; });
    require_error([&] { models::BertForSequenceClassification::from_pretrained(dir.str()); },
                  {dir.file(weights_name), "3 layers", "missing tensors (16)", "bert.encoder.layer.2.attention.self.query.weight"});
  }
  SECTION("config and tensors disagree: intermediate_size") {
    ScratchDir dir("ffn_mismatch");
    write_variant(dir, nullptr, [](nlohmann::json& c) { c["intermediate_size"] = 48; });
    require_error([&] { models::BertForSequenceClassification::from_pretrained(dir.str()); },
                  {"'bert.encoder.layer.0.intermediate.dense.weight' has shape [64,32]", "intermediate_size = 48",
                   "'bert.encoder.layer.1.output.dense.weight' has shape [32,64]"});
  }
  SECTION("a missing tensor") {
    ScratchDir dir("missing");
    write_variant(dir, [](nn::NamedTensors& t) { erase_tensor(t, "bert.encoder.layer.1.attention.self.key.bias"); });
    require_error([&] { models::BertForSequenceClassification::from_pretrained(dir.str()); },
                  {dir.file(weights_name), "missing tensors (1)", "bert.encoder.layer.1.attention.self.key.bias"});
  }
  SECTION("an unexpected tensor and a wrong dtype") {
    ScratchDir dir("unexpected");
    write_variant(dir, [](nn::NamedTensors& t) {
      t.emplace_back("bert.encoder.layer.0.attention.self.rotary.weight", zeros({2}));
      for (auto& [name, tensor] : t)
        if (name == "bert.pooler.dense.bias") tensor = zeros({32}, TensorOptions(kInt64));
    });
    require_error([&] { models::BertForSequenceClassification::from_pretrained(dir.str()); },
                  {dir.file(weights_name), "unexpected tensors (1)", "bert.encoder.layer.0.attention.self.rotary.weight",
                   "'bert.pooler.dense.bias' has dtype int64, expected float32"});
  }
  SECTION("the same tensor with and without the prefix") {
    ScratchDir dir("duplicate");
    write_variant(dir, [](nn::NamedTensors& t) { t.emplace_back("pooler.dense.bias", zeros({32})); });
    require_error([&] { models::BertForSequenceClassification::from_pretrained(dir.str()); },
                  {"given twice", "'bert.pooler.dense.bias' and 'pooler.dense.bias'"});
  }
  SECTION("a missing config key, a wrong type, bad JSON, unsupported settings") {
    ScratchDir dir("config");
    write_variant(dir, nullptr, [](nlohmann::json& c) { c.erase("hidden_size"); });
    require_error([&] { models::BertForSequenceClassification::from_pretrained(dir.str()); },
                  {dir.file("config.json"), "missing key \"hidden_size\""});
    write_variant(dir, nullptr, [](nlohmann::json& c) { c["num_attention_heads"] = "4"; });
    require_error([&] { models::BertModel::from_pretrained(dir.str()); },
                  {dir.file("config.json"), "\"num_attention_heads\" must be an integer, got string"});
    write_variant(dir, nullptr, [](nlohmann::json& c) { c["num_attention_heads"] = 5; });
    require_error([&] { models::BertModel::from_pretrained(dir.str()); },
                  {dir.file("config.json"), "\"hidden_size\" = 32 is not divisible by \"num_attention_heads\" = 5"});
    write_variant(dir, nullptr, [](nlohmann::json& c) { c["hidden_act"] = "mish"; });
    require_error([&] { models::BertModel::from_pretrained(dir.str()); }, {"\"hidden_act\" = \"mish\" is not supported"});
    write_variant(dir, nullptr, [](nlohmann::json& c) { c["position_embedding_type"] = "relative_key"; });
    require_error([&] { models::BertModel::from_pretrained(dir.str()); }, {"position_embedding_type", "relative_key"});
    write_variant(dir, nullptr, [](nlohmann::json& c) { c["model_type"] = "vit"; });
    require_error([&] { models::BertModel::from_pretrained(dir.str()); }, {"\"model_type\" is \"vit\"", "expected \"bert\""});
    write_variant(dir, nullptr, [](nlohmann::json& c) { c["num_labels"] = 4; });
    require_error([&] { models::BertModel::from_pretrained(dir.str()); }, {"\"num_labels\" = 4 disagrees", "id2label"});
    testing::bert::write_text(dir.file("config.json"), "{\"vocab_size\": 213,");
    require_error([&] { models::BertModel::from_pretrained(dir.str()); }, {dir.file("config.json"), "not valid JSON"});
  }
  SECTION("missing files") {
    ScratchDir dir("files");
    require_error([&] { models::BertModel::from_pretrained(dir.str()); }, {dir.file("config.json"), "cannot open"});
    testing::bert::write_text(dir.file("config.json"), small_config().dump());
    require_error([&] { models::BertModel::from_pretrained(dir.str()); }, {dir.file(weights_name), "not found"});
    testing::bert::write_text(dir.file("model.safetensors"), "truncated");
    require_error([&] { models::BertModel::from_pretrained(dir.str()); }, {dir.file(weights_name)});
  }
}

TEST_CASE("BERT forward rejects bad inputs with clear errors", "[bert]") {
  const auto model = models::BertModel::from_pretrained(small_model_dir());
  NoGradGuard no_grad;
  const Tensor ids = tensor(std::vector<int64_t>{2, 151, 3}, {1, 3});
  require_error([&] { model(zeros({1, 41}, TensorOptions(kInt64))); }, {"sequence length 41", "max_position_embeddings 40"});
  require_error([&] { model(ids.to(kFloat32)); }, {"input_ids must be int64 or int32"});
  require_error([&] { model(ids.view({3})); }, {"input_ids must be [B, N]"});
  require_error([&] { model(ids, ones({1, 4}, TensorOptions(kInt64))); }, {"attention_mask has shape [1,4]"});
  require_error([&] { model(ids, Tensor(), zeros({2, 3}, TensorOptions(kInt64))); }, {"token_type_ids has shape [2,3]"});
  require_error([&] { model(tensor(std::vector<int64_t>{2, 213, 3}, {1, 3})); }, {"index 213 is out of bounds", "213 rows"});
  require_error([&] { model(ids, Tensor(), full({1, 3}, 2, TensorOptions(kInt64))); },
                {"index 2 is out of bounds for dim 0 with size 2"});
  require_error([&] { model->encoder->layer->at<models::BertLayerImpl>(0).attention->self(zeros({1, 3, 31})); },
                {"BertSelfAttention: expected hidden states [B, N, 32]", "[1,3,31]"});
}

TEST_CASE("BertConfig round-trips through config.json text", "[bert]") {
  const models::BertConfig config = models::BertConfig::from_json_file(small_model_dir() + "/config.json");
  CHECK(config.vocab_size == 213);
  CHECK(config.hidden_size == 32);
  CHECK(config.num_hidden_layers == 2);
  CHECK(config.num_attention_heads == 4);
  CHECK(config.intermediate_size == 64);
  CHECK(config.max_position_embeddings == 40);
  CHECK(config.type_vocab_size == 2);
  CHECK(config.pad_token_id == 0);
  CHECK(config.hidden_act == "gelu");
  CHECK(models::BertConfig::from_json_string(config.to_json_string({"BertModel"}), "round trip") == config);
  models::BertConfig plain = config;
  plain.id2label.clear();
  plain.classifier_dropout = 0.25;
  plain.pad_token_id = -1;
  CHECK(models::BertConfig::from_json_string(plain.to_json_string(), "round trip") == plain);
}
