// ViTConfig: the Hugging Face ViT `config.json` (spec/CHECKPOINTS.md), read strictly, plus luna's
// optional "luna_attention" block that records a non-softmax attention kind and its options, so a
// converted model saves and loads back as itself. Also reads timm's hub config.json (architecture,
// num_classes, pretrained_cfg, model_args) with the sizes HF keeps in config.json taken from the
// weights. Every error names the file and the key.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <luna/ops/luna.h>

namespace luna {
struct SafetensorsFile;
}

namespace luna::models {

// The attention every encoder layer runs. Absent from config.json (HF's own files) it is
// softmax; luna writes the block "luna_attention" only for the other kinds:
//   "luna_attention": {"attention": "luna", "linear_eps": 1e-06,
//                      "luna": {"num_projections": 32, "channels": 4, "hidden": 64,
//                               "activation": "relu", "layout": "per_channel", "envelope": false,
//                               "per_head": false, "channel_rms_limit": false}}
// "luna" appears only for attention = luna, "performer_features" and "performer_redraw_interval"
// only for performer, "cosformer_max_len" only for cosformer; "linear_eps" for every linear kind.
// Inside the block every key the kind needs is required and any other key is an error (luna owns
// this format, so a typo must not pass silently). Hugging Face ignores the block.
struct ViTAttentionConfig {
  std::string attention = "softmax";  // nn::available_attention_kinds()
  double linear_eps = 1e-6;
  LunaFeatureMapOptions luna;  // force_direct is not stored (a test knob, not a model property)
  int64_t performer_features = 128;
  int64_t performer_redraw_interval = 1000;
  int64_t cosformer_max_len = 0;

  // Equal when they build the same model: options of kinds not in use are ignored.
  bool operator==(const ViTAttentionConfig& other) const;
};

struct ViTConfig {
  // Required keys (HF writes them all).
  int64_t hidden_size = 0;          // D
  int64_t num_hidden_layers = 0;
  int64_t num_attention_heads = 0;  // H
  int64_t intermediate_size = 0;
  // "gelu" (erf, HF's meaning), "gelu_new" / "gelu_pytorch_tanh" (tanh approximation) or "relu".
  std::string hidden_act = "gelu";
  double layer_norm_eps = 1e-12;
  int64_t image_size = 0;  // square images; HF's [h, w] pairs are rejected
  int64_t patch_size = 0;  // square patches
  int64_t num_channels = 0;
  bool qkv_bias = true;
  // Optional keys with Hugging Face's defaults. num_labels: the size of "id2label", else
  // "num_labels", else 2 (HF writes no id2label for its default of 2 labels).
  int64_t num_labels = 2;
  std::vector<std::string> id2label;  // empty: LABEL_0, LABEL_1, ... on save
  double hidden_dropout_prob = 0.0;
  double attention_probs_dropout_prob = 0.0;
  double initializer_range = 0.02;
  ViTAttentionConfig attention;  // "luna_attention"

  // Parses HF config.json text; `source` (the path) names the file in errors.
  static ViTConfig from_json_string(std::string_view text, const std::string& source);
  // Reads and parses a config.json file.
  static ViTConfig from_json_file(const std::string& path);

  // timm's hub config.json (as timm's save_for_hf / push_to_hf_hub write it) together with the
  // timm-layout weights: D, the patch size, the channels, the depth, the MLP width and qkv_bias
  // come from the tensors; the image size from model_args.img_size or pretrained_cfg.input_size;
  // the heads from model_args.num_heads or, for the stock architectures (vit_tiny/small/medium/
  // base/large/huge_*), from the name; num_labels from num_classes; layer_norm_eps 1e-6 (timm's).
  // Models luna does not implement (global_pool other than "token", no class token, register
  // tokens, layer scale, ...) are errors naming the file and the key or tensor.
  static ViTConfig from_timm_json_string(std::string_view text, const std::string& source,
                                         const SafetensorsFile& weights);

  // Every value in range (positive sizes, hidden_size divisible by the heads, image divisible by
  // the patch, known activation, dropouts in [0, 1), attention options valid); the error names
  // `source` and the key.
  void validate(const std::string& source) const;

  // HF's config.json: architectures ["ViTForImageClassification"], model_type "vit", the keys
  // above, id2label/label2id, and "luna_attention" for a non-softmax kind. Parsing the result
  // gives back an equal config.
  std::string to_json_string() const;

  int64_t head_dim() const { return hidden_size / num_attention_heads; }
  int64_t grid_size() const { return image_size / patch_size; }       // patches per side
  int64_t num_patches() const { return grid_size() * grid_size(); }  // N without the CLS token
  // "hidden_size=32, num_hidden_layers=2, ..." for errors that explain expected shapes.
  std::string summary() const;

  // The name of label i: id2label's entry, or HF's default "LABEL_<i>" when id2label is empty.
  std::string label_name(int64_t i) const;

  // Equal when they describe the same model and labels: an empty id2label equals the explicit
  // LABEL_0.. names it is written out as. It lists every field: a new field must be added there.
  bool operator==(const ViTConfig& other) const;
};

}  // namespace luna::models
