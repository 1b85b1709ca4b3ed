// The ViT modules (HF layout), their forward passes, HF's initialisation, and the bicubic
// position-embedding interpolation. Checkpoint loading and saving: models/vit_checkpoint.cpp.
#include <luna/models/vit.h>

#include <cmath>
#include <vector>

#include <luna/autograd/grad_mode.h>
#include <luna/nn/init.h>
#include <luna/ops/elementwise.h>
#include <luna/ops/factories.h>
#include <luna/ops/indexing.h>
#include <luna/ops/linalg.h>

namespace luna::models {

// ---- position interpolation -------------------------------------------------------------------

Tensor bicubic_resize_matrix(int64_t in, int64_t out) {
  LUNA_CHECK(in > 0 && out > 0, "bicubic_resize_matrix: sizes must be positive, got in = ", in, ", out = ", out);
  // PyTorch's upsample_bicubic2d: Keys' cubic convolution with A = -0.75; source coordinate
  // (i + 0.5)·in/out − 0.5 (align_corners=False, not clamped for cubic); taps clamped to the edge.
  constexpr double A = -0.75;
  auto near = [](double x) { return ((A + 2) * x - (A + 3)) * x * x + 1; };           // |x| <= 1
  auto far = [](double x) { return ((A * x - 5 * A) * x + 8 * A) * x - 4 * A; };      // 1 < |x| < 2
  const double scale = double(in) / double(out);
  std::vector<double> weights(size_t(out * in), 0.0);  // (out, in)
  for (int64_t i = 0; i < out; ++i) {
    const double source = scale * (double(i) + 0.5) - 0.5;
    const double floor_source = std::floor(source);
    const double t = source - floor_source;
    const int64_t first = int64_t(floor_source) - 1;
    const double taps[4] = {far(t + 1), near(t), near(1 - t), far(2 - t)};
    for (int64_t k = 0; k < 4; ++k) {
      const int64_t j = std::min(std::max<int64_t>(first + k, 0), in - 1);
      weights[size_t(i * in + j)] += taps[k];
    }
  }
  return tensor(weights, {out, in}, TensorOptions(kFloat64));
}

Tensor interpolate_pos_encoding(const Tensor& position_embeddings, int64_t new_height, int64_t new_width) {
  const Tensor& pos = position_embeddings;
  LUNA_CHECK(pos.defined() && pos.dim() == 3 && pos.size(0) == 1 && pos.size(1) >= 2, "interpolate_pos_encoding: ",
             "expected position_embeddings of shape [1, 1 + grid², D], got ",
             pos.defined() ? pos.sizes().str() : std::string("an undefined tensor"));
  LUNA_CHECK(new_height > 0 && new_width > 0, "interpolate_pos_encoding: the new grid must be positive, got ",
             new_height, " x ", new_width);
  const int64_t positions = pos.size(1) - 1, D = pos.size(2);
  const int64_t grid = int64_t(std::llround(std::sqrt(double(positions))));
  LUNA_CHECK(grid * grid == positions, "interpolate_pos_encoding: ", positions,
             " patch positions do not form a square grid (position_embeddings ", pos.sizes(), ")");
  if (new_height == grid && new_width == grid) return pos;
  const Tensor rows_weights = bicubic_resize_matrix(grid, new_height).to(pos.device(), pos.dtype());  // (nh, g)
  const Tensor cols_weights = bicubic_resize_matrix(grid, new_width).to(pos.device(), pos.dtype());   // (nw, g)
  const Tensor class_pos = pos.narrow(1, 0, 1);                               // (1, 1, D)
  const Tensor patch_pos = pos.narrow(1, 1, positions).reshape({grid, grid * D});  // (g, g·D): rows, (cols, D)
  const Tensor resized_rows = rows_weights.matmul(patch_pos).reshape({new_height, grid, D});  // (nh, g, D)
  const Tensor by_column = resized_rows.transpose(0, 1).reshape({grid, new_height * D});     // (g, nh·D)
  const Tensor resized = cols_weights.matmul(by_column).reshape({new_width, new_height, D});  // (nw, nh, D)
  const Tensor patches = resized.transpose(0, 1).reshape({1, new_height * new_width, D});     // (1, nh·nw, D)
  return cat({class_pos, patches}, 1);
}

// ---- embeddings -------------------------------------------------------------------------------

ViTPatchProjectionImpl::ViTPatchProjectionImpl(int64_t num_channels, int64_t hidden_size, int64_t patch_size_)
    : Module("ViTPatchProjection"), patch_size(patch_size_) {
  LUNA_CHECK(num_channels > 0 && hidden_size > 0 && patch_size > 0, "ViTPatchProjection: channels (", num_channels,
             "), hidden_size (", hidden_size, ") and patch_size (", patch_size, ") must be positive");
  weight = register_parameter("weight", zeros({hidden_size, num_channels, patch_size, patch_size}));
  bias = register_parameter("bias", zeros({hidden_size}));
}

Tensor ViTPatchProjectionImpl::forward(const Tensor& pixels) const {
  const int64_t B = pixels.size(0), C = pixels.size(1), p = patch_size, D = weight.size(0);
  const int64_t grid_h = pixels.size(2) / p, grid_w = pixels.size(3) / p;
  const Tensor whole = pixels.narrow(2, 0, grid_h * p).narrow(3, 0, grid_w * p);  // (B, C, gh·p, gw·p)
  // Unfold: one row of C·p·p values per patch, in the (c, i, j) order of the conv weight.
  const Tensor patches = whole.reshape({B, C, grid_h, p, grid_w, p})
                             .permute({0, 2, 4, 1, 3, 5})
                             .reshape({B, grid_h * grid_w, C * p * p});  // (B, N, C·p·p)
  return linear(patches, weight.reshape({D, C * p * p}), bias);         // (B, N, D)
}

ViTPatchEmbeddingsImpl::ViTPatchEmbeddingsImpl(const ViTConfig& config) : Module("ViTPatchEmbeddings") {
  projection = register_module(
      "projection", ViTPatchProjection(config.num_channels, config.hidden_size, config.patch_size));
}

ViTEmbeddingsImpl::ViTEmbeddingsImpl(const ViTConfig& config_, std::string source_)
    : Module("ViTEmbeddings"), config(config_), source(std::move(source_)) {
  const int64_t D = config.hidden_size;
  cls_token = register_parameter("cls_token", zeros({1, 1, D}));
  position_embeddings = register_parameter("position_embeddings", zeros({1, 1 + config.num_patches(), D}));
  patch_embeddings = register_module("patch_embeddings", ViTPatchEmbeddings(config));
  dropout = register_module("dropout", nn::Dropout(config.hidden_dropout_prob));
}

Tensor ViTEmbeddingsImpl::forward(const Tensor& pixels, bool interpolate) const {
  const int64_t C = config.num_channels, S = config.image_size, p = config.patch_size;
  LUNA_CHECK(pixels.defined(), "ViT: pixel_values is undefined");
  LUNA_CHECK(pixels.dim() == 4, "ViT: pixel_values must have shape [B, C, H, W], got ", pixels.sizes());
  LUNA_CHECK(pixels.size(1) == C, "ViT: pixel_values ", pixels.sizes(), " has ", pixels.size(1),
             " channels, but the model takes num_channels = ", C, " (", source, ")");
  LUNA_CHECK(pixels.dtype() == cls_token.dtype() && pixels.device() == cls_token.device(), "ViT: pixel_values ",
             pixels.str(), " must have the model's dtype and device (", cls_token.str(), ")");
  const int64_t B = pixels.size(0), H = pixels.size(2), W = pixels.size(3);
  if (!interpolate) {
    LUNA_CHECK(H == S && W == S, "ViT: input image size (", H, "*", W, ") doesn't match the model (", S, "*", S,
               ", image_size in ", source, "); resize the image or pass interpolate_pos_encoding = true");
  } else {
    LUNA_CHECK(H >= p && W >= p, "ViT: input image size (", H, "*", W, ") is smaller than one patch (patch_size = ", p,
               " in ", source, ")");
  }
  const Tensor patches = patch_embeddings->projection(pixels);  // (B, N, D)
  const Tensor tokens = cat({cls_token.expand({B, 1, cls_token.size(2)}), patches}, 1);  // (B, 1 + N, D)
  const Tensor positions =
      interpolate ? interpolate_pos_encoding(position_embeddings, H / p, W / p) : position_embeddings;
  return dropout(tokens + positions);
}

// ---- attention --------------------------------------------------------------------------------

void register_hf_self_attention(nn::Module& owner, nn::MultiHeadAttention& mha, nn::Linear& query, nn::Linear& key,
                                nn::Linear& value) {
  query = owner.register_module("query", mha->q_proj);
  key = owner.register_module("key", mha->k_proj);
  value = owner.register_module("value", mha->v_proj);
  if (!mha->feature_map.is_empty()) owner.register_module("feature_map", mha->feature_map);
  if (!mha->hedgehog_feature_map.is_empty()) owner.register_module("feature_map", mha->hedgehog_feature_map);
  if (mha->projection_matrix.defined()) {
    // The registered handles become mha's own, so redraws (set_data) and moves reach both.
    mha->projection_matrix = owner.register_buffer("projection_matrix", mha->projection_matrix);
    mha->calls_since_last_redraw = owner.register_buffer("calls_since_last_redraw", mha->calls_since_last_redraw);
  }
}

ViTSelfAttentionImpl::ViTSelfAttentionImpl(const ViTConfig& config) : Module("ViTSelfAttention") {
  const int64_t D = config.hidden_size;
  const ViTAttentionConfig& a = config.attention;
  auto options = nn::MultiHeadAttentionOptions(D, config.num_attention_heads)
                     .dropout(config.attention_probs_dropout_prob)
                     .bias(true)
                     .attention(a.attention)
                     .luna(a.luna)
                     .linear_eps(a.linear_eps)
                     .performer_features(a.performer_features)
                     .performer_redraw_interval(a.performer_redraw_interval)
                     .cosformer_max_len(a.cosformer_max_len);
  mha = nn::MultiHeadAttention(options);
  // MultiHeadAttention has one bias switch for all four projections; HF's output.dense keeps its
  // bias when qkv_bias is false, so the q/k/v layers are swapped for bias-free ones here.
  if (!config.qkv_bias) {
    mha->q_proj = nn::Linear(D, D, false);
    mha->k_proj = nn::Linear(D, D, false);
    mha->v_proj = nn::Linear(D, D, false);
  }
  register_hf_self_attention(*this, mha, query, key, value);
}

void ViTSelfAttentionImpl::train(bool on) {
  Module::train(on);
  mha->train(on);
}

ViTSelfOutputImpl::ViTSelfOutputImpl(nn::Linear dense_, double dropout_) : Module("ViTSelfOutput") {
  dense = register_module("dense", std::move(dense_));
  dropout = register_module("dropout", nn::Dropout(dropout_));
}

ViTAttentionImpl::ViTAttentionImpl(const ViTConfig& config) : Module("ViTAttention") {
  attention = register_module("attention", ViTSelfAttention(config));
  output = register_module("output", ViTSelfOutput(attention->mha->out_proj, config.hidden_dropout_prob));
}

Tensor ViTAttentionImpl::forward(const Tensor& x) const {
  return output->dropout(attention->mha(x));  // mha ends with out_proj = output.dense
}

// ---- MLP and blocks ---------------------------------------------------------------------------

ViTIntermediateImpl::ViTIntermediateImpl(const ViTConfig& config) : Module("ViTIntermediate") {
  dense = register_module("dense", nn::Linear(config.hidden_size, config.intermediate_size));
  if (config.hidden_act == "gelu") {
    intermediate_act_fn = std::make_shared<nn::GELUImpl>("none");
  } else if (config.hidden_act == "gelu_new" || config.hidden_act == "gelu_pytorch_tanh") {
    intermediate_act_fn = std::make_shared<nn::GELUImpl>("tanh");
  } else {
    intermediate_act_fn = nn::make_activation(config.hidden_act, "ViTIntermediate");
  }
  register_module("intermediate_act_fn", intermediate_act_fn);
}

Tensor ViTIntermediateImpl::forward(const Tensor& x) const { return intermediate_act_fn->forward(dense(x)); }

ViTOutputImpl::ViTOutputImpl(const ViTConfig& config) : Module("ViTOutput") {
  dense = register_module("dense", nn::Linear(config.intermediate_size, config.hidden_size));
  dropout = register_module("dropout", nn::Dropout(config.hidden_dropout_prob));
}

Tensor ViTOutputImpl::forward(const Tensor& hidden, const Tensor& residual) const {
  return dropout(dense(hidden)) + residual;
}

ViTLayerImpl::ViTLayerImpl(const ViTConfig& config) : Module("ViTLayer") {
  attention = register_module("attention", ViTAttention(config));
  intermediate = register_module("intermediate", ViTIntermediate(config));
  output = register_module("output", ViTOutput(config));
  layernorm_before = register_module("layernorm_before", nn::LayerNorm(config.hidden_size, config.layer_norm_eps));
  layernorm_after = register_module("layernorm_after", nn::LayerNorm(config.hidden_size, config.layer_norm_eps));
}

Tensor ViTLayerImpl::forward(const Tensor& x) const {
  const Tensor h = x + attention(layernorm_before(x));       // (B, N, D)
  return output(intermediate(layernorm_after(h)), h);        // (B, N, D)
}

ViTEncoderImpl::ViTEncoderImpl(const ViTConfig& config) : Module("ViTEncoder") {
  layer = register_module("layer", nn::ModuleList());
  for (int64_t i = 0; i < config.num_hidden_layers; ++i) layer->push_back(ViTLayer(config));
}

Tensor ViTEncoderImpl::forward(const Tensor& x) const {
  Tensor h = x;
  for (size_t i = 0; i < layer->size(); ++i) h = layer->at<ViTLayerImpl>(i).forward(h);
  return h;
}

ViTModelImpl::ViTModelImpl(const ViTConfig& config, std::string source) : Module("ViTModel") {
  embeddings = register_module("embeddings", ViTEmbeddings(config, std::move(source)));
  encoder = register_module("encoder", ViTEncoder(config));
  layernorm = register_module("layernorm", nn::LayerNorm(config.hidden_size, config.layer_norm_eps));
}

Tensor ViTModelImpl::forward(const Tensor& pixels, bool interpolate) const {
  return layernorm(encoder(embeddings(pixels, interpolate)));
}

// ---- the classifier ---------------------------------------------------------------------------

ViTForImageClassificationImpl::ViTForImageClassificationImpl(const ViTConfig& config, Generator* generator,
                                                             std::string source, bool hf_init)
    : Module("ViTForImageClassification"), config_(config), source_(std::move(source)) {
  config_.validate(source_);
  vit = register_module("vit", ViTModel(config_, source_));
  classifier = register_module("classifier", nn::Linear(config_.hidden_size, config_.num_labels));
  if (hf_init) reset_parameters(generator);
}

namespace {

// HF's draw N(0, initializer_range²) truncated to [−2, 2]. initializer_range = 0, which the config
// admits, is the point mass at 0: zeros (torch's trunc_normal_ would divide by the zero std).
void init_truncated_normal(const Tensor& t, double std, Generator* generator) {
  if (std == 0.0)
    t.zero_();
  else
    nn::init::trunc_normal_(t, 0.0, std, -2.0, 2.0, generator);
}

}  // namespace

void ViTForImageClassificationImpl::reset_classifier(Generator* generator) {
  NoGradGuard no_grad;
  init_truncated_normal(classifier->weight, config_.initializer_range, generator);
  classifier->bias.zero_();
}

void ViTForImageClassificationImpl::reset_parameters(Generator* generator) {
  NoGradGuard no_grad;
  auto normal = [&](const Tensor& t) { init_truncated_normal(t, config_.initializer_range, generator); };
  for (const auto& [name, module] : named_modules()) {
    (void)name;
    if (auto* linear = dynamic_cast<nn::LinearImpl*>(module.get())) {
      normal(linear->weight);
      if (linear->bias.defined()) linear->bias.zero_();
    } else if (auto* projection = dynamic_cast<ViTPatchProjectionImpl*>(module.get())) {
      normal(projection->weight);
      projection->bias.zero_();
    } else if (auto* norm = dynamic_cast<nn::LayerNormImpl*>(module.get())) {
      norm->weight.fill_(1.0);
      norm->bias.zero_();
    } else if (auto* embeddings = dynamic_cast<ViTEmbeddingsImpl*>(module.get())) {
      normal(embeddings->position_embeddings);
      normal(embeddings->cls_token);
    }
  }
}

Tensor ViTForImageClassificationImpl::forward(const Tensor& pixels, bool interpolate) const {
  const Tensor hidden = vit(pixels, interpolate);  // (B, 1 + N, D)
  return classifier(hidden.select(1, 0));          // (B, num_labels)
}

}  // namespace luna::models
