// Strict reading and writing of Hugging Face BERT config.json files.
#include <luna/models/bert_config.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <limits>
#include <sstream>

#include <nlohmann/json.hpp>

#include <luna/core/error.h>

namespace luna::models {
namespace {

using nlohmann::json;

// Sizes beyond this are rejected: no real BERT comes near, and products of two of them still fit int64.
constexpr int64_t kMaxSize = std::numeric_limits<int32_t>::max();

const char* json_type(const json& value) { return value.type_name(); }

std::string describe(const json& value) {
  std::string text = value.dump();
  return text.size() > 80 ? text.substr(0, 77) + "..." : text;
}

int64_t read_int(const json& object, const char* key, const std::string& source, bool required, int64_t fallback) {
  const auto it = object.find(key);
  if (it == object.end()) {
    LUNA_CHECK(!required, source, ": missing key \"", key, "\" (a BERT config.json needs it)");
    return fallback;
  }
  LUNA_CHECK(it->is_number_integer(), source, ": key \"", key, "\" must be an integer, got ", json_type(*it), " ",
             describe(*it));
  if (it->is_number_unsigned()) {
    const uint64_t value = it->get<uint64_t>();
    LUNA_CHECK(value <= uint64_t(kMaxSize), source, ": key \"", key, "\" = ", value, " is out of range (at most ",
               kMaxSize, ")");
    return int64_t(value);
  }
  const int64_t value = it->get<int64_t>();
  LUNA_CHECK(value >= -kMaxSize && value <= kMaxSize, source, ": key \"", key, "\" = ", value, " is out of range");
  return value;
}

double read_double(const json& object, const char* key, const std::string& source, bool required, double fallback) {
  const auto it = object.find(key);
  if (it == object.end()) {
    LUNA_CHECK(!required, source, ": missing key \"", key, "\" (a BERT config.json needs it)");
    return fallback;
  }
  LUNA_CHECK(it->is_number(), source, ": key \"", key, "\" must be a number, got ", json_type(*it), " ", describe(*it));
  return it->get<double>();
}

std::string read_string(const json& object, const char* key, const std::string& source, bool required,
                        const std::string& fallback) {
  const auto it = object.find(key);
  if (it == object.end()) {
    LUNA_CHECK(!required, source, ": missing key \"", key, "\" (a BERT config.json needs it)");
    return fallback;
  }
  LUNA_CHECK(it->is_string(), source, ": key \"", key, "\" must be a string, got ", json_type(*it), " ", describe(*it));
  return it->get<std::string>();
}

// "id2label": {"0": "negative", "1": "positive"} -> ["negative", "positive"]; keys must be 0..n-1.
std::vector<std::string> read_id2label(const json& object, const std::string& source) {
  const auto it = object.find("id2label");
  if (it == object.end() || it->is_null()) return {};
  LUNA_CHECK(it->is_object(), source, ": key \"id2label\" must be an object {\"0\": \"label\", ...}, got ",
             json_type(*it));
  LUNA_CHECK(int64_t(it->size()) <= kMaxSize, source, ": key \"id2label\" has too many entries");
  std::vector<std::string> labels(it->size());
  std::vector<bool> seen(it->size(), false);
  for (const auto& [index_text, label] : it->items()) {
    size_t index = 0, parsed = 0;
    bool ok = !index_text.empty() && index_text.size() <= 10 && index_text.find_first_not_of("0123456789") == std::string::npos;
    if (ok) {
      index = std::stoul(index_text, &parsed);
      ok = index < labels.size();
    }
    LUNA_CHECK(ok, source, ": key \"id2label\" has entry \"", index_text, "\"; its keys must be the label ids 0..",
               labels.size() - 1);
    LUNA_CHECK(!seen[index], source, ": key \"id2label\" lists label id ", index, " twice");
    LUNA_CHECK(label.is_string(), source, ": key \"id2label\" entry \"", index_text, "\" must be a string, got ",
               json_type(label));
    labels[index] = label.get<std::string>();
    seen[index] = true;
  }
  // HF's placeholder names carry no information; dropping them keeps a written-then-read config equal.
  bool placeholders = true;
  for (size_t i = 0; i < labels.size(); ++i) placeholders = placeholders && labels[i] == "LABEL_" + std::to_string(i);
  if (placeholders) labels.clear();
  return labels;
}

}  // namespace

BertConfig BertConfig::from_json_string(std::string_view text, const std::string& source) {
  json root;
  try {
    root = json::parse(text.begin(), text.end());
  } catch (const json::exception& e) {
    LUNA_FAIL(source, ": not valid JSON (", e.what(), ")");
  }
  LUNA_CHECK(root.is_object(), source, ": expected a JSON object at the top level, got ", json_type(root));

  if (const auto it = root.find("model_type"); it != root.end()) {
    LUNA_CHECK(it->is_string() && it->get<std::string>() == "bert", source, ": key \"model_type\" is ", describe(*it),
               ", expected \"bert\" (this loader reads BERT checkpoints only)");
  }
  if (const auto it = root.find("position_embedding_type"); it != root.end() && !it->is_null()) {
    LUNA_CHECK(it->is_string() && it->get<std::string>() == "absolute", source, ": key \"position_embedding_type\" is ",
               describe(*it), "; only \"absolute\" (learned positions) is implemented");
  }
  if (const auto it = root.find("is_decoder"); it != root.end()) {
    LUNA_CHECK(it->is_boolean() && !it->get<bool>(), source, ": key \"is_decoder\" is ", describe(*it),
               "; only the BERT encoder is implemented");
  }

  BertConfig config;
  config.vocab_size = read_int(root, "vocab_size", source, true, 0);
  config.hidden_size = read_int(root, "hidden_size", source, true, 0);
  config.num_hidden_layers = read_int(root, "num_hidden_layers", source, true, 0);
  config.num_attention_heads = read_int(root, "num_attention_heads", source, true, 0);
  config.intermediate_size = read_int(root, "intermediate_size", source, true, 0);
  config.hidden_act = read_string(root, "hidden_act", source, true, "");
  config.max_position_embeddings = read_int(root, "max_position_embeddings", source, true, 0);
  config.type_vocab_size = read_int(root, "type_vocab_size", source, true, 0);
  config.layer_norm_eps = read_double(root, "layer_norm_eps", source, true, 0.0);

  if (const auto it = root.find("pad_token_id"); it != root.end() && it->is_null()) {
    config.pad_token_id = -1;
  } else {
    config.pad_token_id = read_int(root, "pad_token_id", source, false, 0);
    LUNA_CHECK(config.pad_token_id >= 0, source, ": key \"pad_token_id\" = ", config.pad_token_id,
               " must be >= 0 (or null for no padding row)");
  }
  config.id2label = read_id2label(root, source);
  const bool has_num_labels = root.contains("num_labels");
  config.num_labels = read_int(root, "num_labels", source, false, config.id2label.empty() ? 2 : int64_t(config.id2label.size()));
  LUNA_CHECK(!has_num_labels || config.id2label.empty() || int64_t(config.id2label.size()) == config.num_labels, source,
             ": key \"num_labels\" = ", config.num_labels, " disagrees with the ", config.id2label.size(),
             " entries of \"id2label\"");
  config.hidden_dropout_prob = read_double(root, "hidden_dropout_prob", source, false, 0.1);
  config.attention_probs_dropout_prob = read_double(root, "attention_probs_dropout_prob", source, false, 0.1);
  if (const auto it = root.find("classifier_dropout"); it != root.end() && !it->is_null()) {
    config.classifier_dropout = read_double(root, "classifier_dropout", source, false, 0.0);
  }
  config.initializer_range = read_double(root, "initializer_range", source, false, 0.02);
  config.validate(source);
  return config;
}

BertConfig BertConfig::from_json_file(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  LUNA_CHECK(file.good(), path, ": cannot open the BERT config (does the checkpoint directory have a config.json?)");
  std::ostringstream text;
  text << file.rdbuf();
  LUNA_CHECK(!file.bad(), path, ": read error");
  return from_json_string(text.str(), path);
}

void BertConfig::validate(const std::string& source) const {
  auto positive = [&](const char* key, int64_t value) {
    LUNA_CHECK(value > 0 && value <= kMaxSize, source, ": key \"", key, "\" = ", value, " must be a positive integer");
  };
  positive("vocab_size", vocab_size);
  positive("hidden_size", hidden_size);
  positive("num_attention_heads", num_attention_heads);
  positive("intermediate_size", intermediate_size);
  positive("max_position_embeddings", max_position_embeddings);
  positive("type_vocab_size", type_vocab_size);
  positive("num_labels", num_labels);
  LUNA_CHECK(num_hidden_layers >= 0 && num_hidden_layers <= kMaxSize, source, ": key \"num_hidden_layers\" = ",
             num_hidden_layers, " must be >= 0");
  LUNA_CHECK(hidden_size % num_attention_heads == 0, source, ": key \"hidden_size\" = ", hidden_size,
             " is not divisible by \"num_attention_heads\" = ", num_attention_heads);
  static const char* const kActivations[] = {"gelu", "gelu_new", "gelu_pytorch_tanh", "gelu_fast",
                                              "relu", "silu",     "swish",             "tanh"};
  LUNA_CHECK(std::find(std::begin(kActivations), std::end(kActivations), hidden_act) != std::end(kActivations), source,
             ": key \"hidden_act\" = \"", hidden_act,
             "\" is not supported (gelu, gelu_new, gelu_pytorch_tanh, gelu_fast, relu, silu, swish, tanh)");
  LUNA_CHECK(std::isfinite(layer_norm_eps) && layer_norm_eps > 0, source, ": key \"layer_norm_eps\" = ", layer_norm_eps,
             " must be a positive number");
  LUNA_CHECK(pad_token_id >= -1 && pad_token_id < vocab_size, source, ": key \"pad_token_id\" = ", pad_token_id,
             " is outside the vocabulary (vocab_size = ", vocab_size, ")");
  LUNA_CHECK(id2label.empty() || int64_t(id2label.size()) == num_labels, source, ": \"id2label\" has ", id2label.size(),
             " entries but \"num_labels\" = ", num_labels);
  auto probability = [&](const char* key, double p) {
    LUNA_CHECK(p >= 0.0 && p < 1.0, source, ": key \"", key, "\" = ", p, " must be a probability in [0, 1)");
  };
  probability("hidden_dropout_prob", hidden_dropout_prob);
  probability("attention_probs_dropout_prob", attention_probs_dropout_prob);
  if (classifier_dropout) probability("classifier_dropout", *classifier_dropout);
  LUNA_CHECK(std::isfinite(initializer_range) && initializer_range >= 0, source, ": key \"initializer_range\" = ",
             initializer_range, " must be a non-negative number");
}

std::string BertConfig::to_json_string(const std::vector<std::string>& architectures) const {
  json root = json::object();
  if (!architectures.empty()) root["architectures"] = architectures;
  root["model_type"] = "bert";
  root["vocab_size"] = vocab_size;
  root["hidden_size"] = hidden_size;
  root["num_hidden_layers"] = num_hidden_layers;
  root["num_attention_heads"] = num_attention_heads;
  root["intermediate_size"] = intermediate_size;
  root["hidden_act"] = hidden_act;
  root["max_position_embeddings"] = max_position_embeddings;
  root["type_vocab_size"] = type_vocab_size;
  root["layer_norm_eps"] = layer_norm_eps;
  root["pad_token_id"] = pad_token_id >= 0 ? json(pad_token_id) : json(nullptr);
  root["hidden_dropout_prob"] = hidden_dropout_prob;
  root["attention_probs_dropout_prob"] = attention_probs_dropout_prob;
  root["classifier_dropout"] = classifier_dropout ? json(*classifier_dropout) : json(nullptr);
  root["initializer_range"] = initializer_range;
  root["position_embedding_type"] = "absolute";
  // HF derives num_labels from id2label; both are written so either reading agrees.
  json id2label_json = json::object(), label2id_json = json::object();
  for (int64_t i = 0; i < num_labels; ++i) {
    const std::string label = id2label.empty() ? "LABEL_" + std::to_string(i) : id2label[size_t(i)];
    id2label_json[std::to_string(i)] = label;
    label2id_json[label] = i;
  }
  root["id2label"] = id2label_json;
  root["label2id"] = label2id_json;
  root["num_labels"] = num_labels;
  return root.dump(2) + "\n";
}

}  // namespace luna::models
