// Vision Transformer in the Hugging Face layout (spec/CHECKPOINTS.md): module names follow
// transformers' ViTForImageClassification, so state_dict() keys equal the tensor names of its
// model.safetensors and checkpoints load by name. Patch embedding as unfold + GEMM, a CLS token,
// learned positions (bicubic interpolation for other image sizes, as HF's interpolate_pos_encoding),
// pre-LN blocks, GELU (erf), the classifier on the final-LN CLS token. Any attention kind of
// nn::MultiHeadAttention can run in the blocks (config.attention), so a converted model saves and
// loads back as itself. Loading reads HF (ViTForImageClassification or ViTModel) and timm
// checkpoints; checkpoint I/O lives in models/vit_checkpoint.cpp.
#pragma once
#include <string>

#include <luna/core/generator.h>
#include <luna/models/vit_config.h>
#include <luna/nn/attention.h>
#include <luna/nn/containers.h>
#include <luna/nn/layers.h>
#include <luna/nn/module.h>

namespace luna::models {

// HF's interpolate_pos_encoding: the patch rows of position_embeddings (1, 1 + g·g, D), a square
// g×g grid, resized to new_height × new_width patches by bicubic interpolation exactly as
// torch.nn.functional.interpolate(mode="bicubic", align_corners=False, size=...) (Keys kernel with
// A = −0.75, edge samples clamped), the CLS row kept. Returns (1, 1 + new_height·new_width, D).
// Written as two matmuls with constant weight matrices, so it is differentiable. The grid itself
// is returned unchanged when new_height = new_width = g.
Tensor interpolate_pos_encoding(const Tensor& position_embeddings, int64_t new_height, int64_t new_width);

// The (out, in) matrix of 1-D bicubic resizing from `in` to `out` samples (align_corners=False),
// in float64: row i holds the weights that output i gives to the inputs.
Tensor bicubic_resize_matrix(int64_t in, int64_t out);

// vit.embeddings.patch_embeddings.projection: a Conv2d(C, D, kernel = stride = p) in PyTorch's
// parameter shapes, applied as unfold + GEMM.
class ViTPatchProjectionImpl : public nn::Module {
 public:
  ViTPatchProjectionImpl(int64_t num_channels, int64_t hidden_size, int64_t patch_size);
  // pixels (B, C, H, W) -> (B, ⌊H/p⌋·⌊W/p⌋, D), row-major over the patch grid; pixels past the
  // last whole patch are ignored, as by the strided convolution.
  Tensor forward(const Tensor& pixels) const;

  int64_t patch_size;
  Tensor weight;  // (D, C, p, p)
  Tensor bias;    // (D)
};
LUNA_MODULE(ViTPatchProjection);

class ViTPatchEmbeddingsImpl : public nn::Module {
 public:
  explicit ViTPatchEmbeddingsImpl(const ViTConfig& config);
  ViTPatchProjection projection{nullptr};
};
LUNA_MODULE(ViTPatchEmbeddings);

class ViTEmbeddingsImpl : public nn::Module {
 public:
  // source: the config file (or a description), named in input errors.
  ViTEmbeddingsImpl(const ViTConfig& config, std::string source);
  // pixels (B, C, H, W) -> (B, 1 + N, D). Without interpolate_pos_encoding H and W must equal
  // config.image_size (as HF); with it the positions are resized to the patch grid of H × W.
  Tensor forward(const Tensor& pixels, bool interpolate_pos_encoding = false) const;

  ViTConfig config;
  std::string source;
  Tensor cls_token;            // (1, 1, D)
  Tensor position_embeddings;  // (1, 1 + N, D), N = (image_size / patch_size)²
  ViTPatchEmbeddings patch_embeddings{nullptr};
  nn::Dropout dropout{nullptr};
};
LUNA_MODULE(ViTEmbeddings);

// Registers on `owner` (an HF-layout self-attention module) the parts of `mha` under HF's names:
// its q/k/v projections as query/key/value (returned through the three handles), its feature map
// as feature_map, and performer's projection_matrix and redraw counter as buffers. Handles are
// shared, so training, performer redraws and device moves reach both owner and mha.
void register_hf_self_attention(nn::Module& owner, nn::MultiHeadAttention& mha, nn::Linear& query, nn::Linear& key,
                                nn::Linear& value);

// attention.attention: HF's query/key/value Linear layers. They are the q/k/v projections of an
// nn::MultiHeadAttention held (not registered) in `mha`, which runs the chosen attention kind; its
// kind-specific state (feature_map.*, performer's projection_matrix) is registered here too, so
// every tensor appears exactly once in state_dict under HF's names.
class ViTSelfAttentionImpl : public nn::Module {
 public:
  explicit ViTSelfAttentionImpl(const ViTConfig& config);
  // Also switches the unregistered mha (dropout on attention weights, performer redraws).
  void train(bool on = true) override;

  nn::MultiHeadAttention mha{nullptr};
  nn::Linear query{nullptr}, key{nullptr}, value{nullptr};
};
LUNA_MODULE(ViTSelfAttention);

// attention.output: `dense` is mha's out_proj (HF gives it a bias even when qkv_bias is false).
class ViTSelfOutputImpl : public nn::Module {
 public:
  ViTSelfOutputImpl(nn::Linear dense, double dropout);
  nn::Linear dense{nullptr};
  nn::Dropout dropout{nullptr};
};
LUNA_MODULE(ViTSelfOutput);

class ViTAttentionImpl : public nn::Module {
 public:
  explicit ViTAttentionImpl(const ViTConfig& config);
  // x (B, N, D) -> (B, N, D), before the residual.
  Tensor forward(const Tensor& x) const;
  ViTSelfAttention attention{nullptr};
  ViTSelfOutput output{nullptr};
};
LUNA_MODULE(ViTAttention);

class ViTIntermediateImpl : public nn::Module {
 public:
  explicit ViTIntermediateImpl(const ViTConfig& config);
  Tensor forward(const Tensor& x) const;  // (B, N, D) -> (B, N, I)
  nn::Linear dense{nullptr};
  std::shared_ptr<nn::ActivationImpl> intermediate_act_fn;  // not a child: HF's has no name either
};
LUNA_MODULE(ViTIntermediate);

class ViTOutputImpl : public nn::Module {
 public:
  explicit ViTOutputImpl(const ViTConfig& config);
  // dropout(dense(hidden)) + residual: (B, N, I), (B, N, D) -> (B, N, D)
  Tensor forward(const Tensor& hidden, const Tensor& residual) const;
  nn::Linear dense{nullptr};
  nn::Dropout dropout{nullptr};
};
LUNA_MODULE(ViTOutput);

// One pre-LN block: x + attention(LN(x)), then + output(intermediate(LN(·))).
class ViTLayerImpl : public nn::Module {
 public:
  explicit ViTLayerImpl(const ViTConfig& config);
  Tensor forward(const Tensor& x) const;  // (B, N, D) -> (B, N, D)
  ViTAttention attention{nullptr};
  ViTIntermediate intermediate{nullptr};
  ViTOutput output{nullptr};
  nn::LayerNorm layernorm_before{nullptr};
  nn::LayerNorm layernorm_after{nullptr};
};
LUNA_MODULE(ViTLayer);

class ViTEncoderImpl : public nn::Module {
 public:
  explicit ViTEncoderImpl(const ViTConfig& config);
  Tensor forward(const Tensor& x) const;
  nn::ModuleList layer{nullptr};  // "layer.{i}" as HF
};
LUNA_MODULE(ViTEncoder);

// HF's ViTModel without the pooler (ViTForImageClassification builds it with add_pooling_layer=False).
class ViTModelImpl : public nn::Module {
 public:
  ViTModelImpl(const ViTConfig& config, std::string source);
  // pixels (B, C, H, W) -> last hidden state after the final LayerNorm (B, 1 + N, D).
  Tensor forward(const Tensor& pixels, bool interpolate_pos_encoding = false) const;
  ViTEmbeddings embeddings{nullptr};
  ViTEncoder encoder{nullptr};
  nn::LayerNorm layernorm{nullptr};
};
LUNA_MODULE(ViTModel);

class ViTForImageClassificationImpl : public nn::Module {
 public:
  // Parameters initialised as HF's _init_weights: Linear and patch weights, cls_token and
  // position_embeddings ~ N(0, initializer_range²) truncated to [−2, 2], biases 0, LayerNorm 1/0
  // (non-softmax kinds keep their own feature-map initialisation). `source` names the config in
  // input errors ("<in-memory config>" when built directly). hf_init = false skips that
  // initialisation (the layers keep their constructors' defaults): for loaders that overwrite
  // every tensor, since the truncated normal draw takes seconds at ViT-B size.
  explicit ViTForImageClassificationImpl(const ViTConfig& config, Generator* generator = nullptr,
                                         std::string source = "<in-memory config>", bool hf_init = true);

  void reset_parameters(Generator* generator = nullptr);
  // HF's initialisation of the classifier alone (a ViTModel checkpoint brings none).
  void reset_classifier(Generator* generator = nullptr);

  // pixels float (B, C, H, W), the parameters' dtype -> logits (B, num_labels). Without
  // interpolate_pos_encoding the image must be config.image_size square (as HF); with it any
  // H, W >= patch_size work and the positions are resized bicubically (as HF).
  Tensor forward(const Tensor& pixels, bool interpolate_pos_encoding = false) const;

  // Writes `dir`/config.json (config.to_json_string()) and `dir`/model.safetensors (state_dict,
  // metadata {"format": "pt"} as HF writes), each atomically (temp file, fsync, rename); creates
  // `dir` if needed.
  void save_pretrained(const std::string& dir) const;

  const ViTConfig& config() const { return config_; }
  const std::string& source() const { return source_; }

  ViTModel vit{nullptr};
  nn::Linear classifier{nullptr};

 private:
  ViTConfig config_;
  std::string source_;
};

class ViTForImageClassification : public nn::ModuleHolder<ViTForImageClassificationImpl> {
 public:
  using nn::ModuleHolder<ViTForImageClassificationImpl>::ModuleHolder;

  // Loads `dir`/config.json and `dir`/model.safetensors. Reads
  //  - Hugging Face ViTForImageClassification checkpoints (names as state_dict());
  //  - Hugging Face ViTModel checkpoints (no "vit." prefix, pooler.* ignored): the classifier
  //    keeps its fresh initialisation and a note says so on stderr, as HF warns;
  //  - timm VisionTransformer checkpoints (cls_token, pos_embed, blocks.{i}.attn.qkv, ...; the
  //    fused qkv is split into query/key/value), with an HF config.json or timm's own.
  // F16/BF16/F64 weights are converted to float32. A missing, unexpected or wrongly shaped tensor
  // is an error naming the weights file, every offending tensor (with its timm name when renamed)
  // and the config file it disagrees with.
  static ViTForImageClassification from_pretrained(const std::string& dir);
};

}  // namespace luna::models
