// BertConfig: the Hugging Face BERT `config.json` (spec/CHECKPOINTS.md), read strictly. A missing
// required key, a value of the wrong type or out of range, or a setting luna does not implement
// (another model_type, relative positions, a decoder) is an error naming the file and the key.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace luna::models {

struct BertConfig {
  // Required keys (HF writes them all).
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t num_hidden_layers = 0;
  int64_t num_attention_heads = 0;
  int64_t intermediate_size = 0;
  // "gelu" (erf form); "gelu_new", "gelu_pytorch_tanh", "gelu_fast" (tanh approximation);
  // "relu"; "silu" / "swish"; "tanh".
  std::string hidden_act = "gelu";
  int64_t max_position_embeddings = 0;
  int64_t type_vocab_size = 0;
  double layer_norm_eps = 1e-12;
  // Optional keys, with Hugging Face's defaults.
  int64_t pad_token_id = 0;  // -1 when the file says null (no padding row)
  // "num_labels", else the size of "id2label", else 2.
  int64_t num_labels = 2;
  // "id2label" as a list indexed by label (empty: HF's LABEL_0, LABEL_1, ... on save).
  std::vector<std::string> id2label;
  double hidden_dropout_prob = 0.1;
  double attention_probs_dropout_prob = 0.1;
  // null/absent: hidden_dropout_prob is used before the classifier.
  std::optional<double> classifier_dropout;
  double initializer_range = 0.02;

  // Parses config.json text; `source` (the path) names the file in errors.
  static BertConfig from_json_string(std::string_view text, const std::string& source);
  // Reads and parses a config.json file.
  static BertConfig from_json_file(const std::string& path);

  // Every value in range (positive sizes, hidden_size divisible by the heads, known activation,
  // dropouts in [0, 1), ...); the error names `source` and the key.
  void validate(const std::string& source) const;

  // HF's config.json for this configuration: model_type "bert", `architectures` as given, the keys
  // above, id2label/label2id. Parsing the result gives back an equal config.
  std::string to_json_string(const std::vector<std::string>& architectures = {}) const;

  // The classifier's dropout probability (classifier_dropout or hidden_dropout_prob).
  double effective_classifier_dropout() const { return classifier_dropout.value_or(hidden_dropout_prob); }
  int64_t head_dim() const { return hidden_size / num_attention_heads; }

  bool operator==(const BertConfig&) const = default;
};

}  // namespace luna::models
