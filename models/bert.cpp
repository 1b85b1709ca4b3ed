// BERT modules (HF layout), their forward passes, and checkpoint loading/saving.
#include <luna/models/bert.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include <luna/autograd/grad_mode.h>
#include <luna/core/atomic_file.h>
#include <luna/core/generator.h>
#include <luna/core/safetensors.h>
#include <luna/nn/init.h>
#include <luna/ops/attention.h>
#include <luna/ops/elementwise.h>
#include <luna/ops/factories.h>

namespace luna::models {
namespace {

void check_ids(const Tensor& t, const char* what, const Dims* like) {
  LUNA_CHECK(t.defined(), "BertModel: ", what, " is undefined");
  LUNA_CHECK(t.dim() == 2, "BertModel: ", what, " must be [B, N], got ", t.str());
  if (like) LUNA_CHECK(t.sizes() == *like, "BertModel: ", what, " has shape ", t.sizes(), ", input_ids ", *like);
}

}  // namespace

// ---- embeddings ----

BertEmbeddingsImpl::BertEmbeddingsImpl(const BertConfig& c) : nn::Module("BertEmbeddings") {
  const int64_t D = c.hidden_size;
  word_embeddings = register_module("word_embeddings", nn::Embedding(c.vocab_size, D, c.pad_token_id));
  position_embeddings = register_module("position_embeddings", nn::Embedding(c.max_position_embeddings, D));
  token_type_embeddings = register_module("token_type_embeddings", nn::Embedding(c.type_vocab_size, D));
  LayerNorm = register_module("LayerNorm", nn::LayerNorm(D, c.layer_norm_eps));
  dropout = register_module("dropout", nn::Dropout(c.hidden_dropout_prob));
}

Tensor BertEmbeddingsImpl::forward(const Tensor& input_ids, const Tensor& token_type_ids) const {
  check_ids(input_ids, "input_ids", nullptr);
  LUNA_CHECK(input_ids.dtype() == kInt64 || input_ids.dtype() == kInt32, "BertModel: input_ids must be int64 or int32, got ",
             input_ids.str());
  const int64_t N = input_ids.size(1), max_positions = position_embeddings->options.num_embeddings();
  LUNA_CHECK(N >= 1, "BertModel: input_ids has no tokens (N = 0); a sequence needs at least [CLS]");
  LUNA_CHECK(N <= max_positions, "BertModel: sequence length ", N, " exceeds max_position_embeddings ", max_positions,
             " (truncate the input, e.g. BertTokenizer::encode with max_length)");
  Tensor x = word_embeddings(input_ids);                                                               // (B, N, D)
  x = x + position_embeddings(arange(N, TensorOptions(kInt64).device(input_ids.device())));           // + (N, D)
  if (token_type_ids.defined()) {
    check_ids(token_type_ids, "token_type_ids", &input_ids.sizes());
    x = x + token_type_embeddings(token_type_ids);                                                     // + (B, N, D)
  } else {
    x = x + token_type_embeddings->weight.select(0, 0);                                                // + (D)
  }
  return dropout(LayerNorm(x));
}

// ---- attention ----

BertSelfAttentionImpl::BertSelfAttentionImpl(const BertConfig& c)
    : nn::Module("BertSelfAttention"), num_heads(c.num_attention_heads), attention_dropout(c.attention_probs_dropout_prob) {
  const int64_t D = c.hidden_size;
  query = register_module("query", nn::Linear(D, D));
  key = register_module("key", nn::Linear(D, D));
  value = register_module("value", nn::Linear(D, D));
}

Tensor BertSelfAttentionImpl::forward(const Tensor& hidden, const Tensor& key_padding_mask) const {
  const int64_t width = query->options.in_features();
  LUNA_CHECK(hidden.defined() && hidden.dim() == 3 && hidden.size(2) == width,
             "BertSelfAttention: expected hidden states [B, N, ", width, "], got ",
             hidden.defined() ? hidden.str() : "undefined");
  const int64_t B = hidden.size(0), N = hidden.size(1), D = width, H = num_heads, d = D / H;
  const Tensor q = query(hidden).reshape({B, N, H, d}).transpose(1, 2);  // (B, H, N, d)
  const Tensor k = key(hidden).reshape({B, N, H, d}).transpose(1, 2);    // (B, H, N, d)
  const Tensor v = value(hidden).reshape({B, N, H, d}).transpose(1, 2);  // (B, H, N, d)
  const Tensor context = scaled_dot_product_attention(q, k, v, key_padding_mask, false, attention_dropout,
                                                      is_training());  // (B, H, N, d)
  return context.transpose(1, 2).reshape({B, N, D});
}

BertResidualOutputImpl::BertResidualOutputImpl(int64_t in_features, const BertConfig& c, const std::string& type_name)
    : nn::Module(type_name) {
  dense = register_module("dense", nn::Linear(in_features, c.hidden_size));
  LayerNorm = register_module("LayerNorm", nn::LayerNorm(c.hidden_size, c.layer_norm_eps));
  dropout = register_module("dropout", nn::Dropout(c.hidden_dropout_prob));
}

Tensor BertResidualOutputImpl::forward(const Tensor& hidden, const Tensor& residual) const {
  return LayerNorm(dropout(dense(hidden)) + residual);
}

BertAttentionImpl::BertAttentionImpl(const BertConfig& c) : nn::Module("BertAttention") {
  self = register_module("self", BertSelfAttention(c));
  output = register_module("output", BertResidualOutput(c.hidden_size, c, "BertSelfOutput"));
}

Tensor BertAttentionImpl::forward(const Tensor& hidden, const Tensor& key_padding_mask) const {
  return output(self(hidden, key_padding_mask), hidden);
}

// ---- feed-forward, layer, encoder, pooler ----

BertIntermediateImpl::BertIntermediateImpl(const BertConfig& c) : nn::Module("BertIntermediate"), hidden_act(c.hidden_act) {
  dense = register_module("dense", nn::Linear(c.hidden_size, c.intermediate_size));
}

Tensor BertIntermediateImpl::forward(const Tensor& hidden) const {
  const Tensor x = dense(hidden);  // (B, N, intermediate_size)
  if (hidden_act == "gelu") return gelu(x);
  // gelu_new and gelu_fast are two spellings of the same tanh formula as gelu_pytorch_tanh.
  if (hidden_act == "gelu_new" || hidden_act == "gelu_pytorch_tanh" || hidden_act == "gelu_fast") return gelu(x, "tanh");
  if (hidden_act == "relu") return relu(x);
  if (hidden_act == "silu" || hidden_act == "swish") return silu(x);
  if (hidden_act == "tanh") return tanh(x);
  LUNA_FAIL("BertIntermediate: unknown hidden_act '", hidden_act, "'");
}

BertLayerImpl::BertLayerImpl(const BertConfig& c) : nn::Module("BertLayer") {
  attention = register_module("attention", BertAttention(c));
  intermediate = register_module("intermediate", BertIntermediate(c));
  output = register_module("output", BertResidualOutput(c.intermediate_size, c, "BertOutput"));
}

Tensor BertLayerImpl::forward(const Tensor& hidden, const Tensor& key_padding_mask) const {
  const Tensor x = attention(hidden, key_padding_mask);  // (B, N, D)
  return output(intermediate(x), x);
}

BertEncoderImpl::BertEncoderImpl(const BertConfig& c) : nn::Module("BertEncoder") {
  layer = register_module("layer", nn::ModuleList());
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) layer->push_back(BertLayer(c));
}

Tensor BertEncoderImpl::forward(const Tensor& hidden, const Tensor& key_padding_mask) const {
  Tensor x = hidden;
  for (size_t i = 0; i < layer->size(); ++i) x = layer->at<BertLayerImpl>(i).forward(x, key_padding_mask);
  return x;
}

BertPoolerImpl::BertPoolerImpl(const BertConfig& c) : nn::Module("BertPooler") {
  dense = register_module("dense", nn::Linear(c.hidden_size, c.hidden_size));
}

Tensor BertPoolerImpl::forward(const Tensor& hidden) const { return tanh(dense(hidden.select(1, 0))); }

// ---- models ----

namespace {

// HF's BertPreTrainedModel._init_weights.
void init_bert_weights(nn::Module& root, double std, Generator* generator) {
  NoGradGuard no_grad;
  root.apply([&](nn::Module& m) {
    if (auto* linear = dynamic_cast<nn::LinearImpl*>(&m)) {
      nn::init::normal_(linear->weight, 0.0, std, generator);
      if (linear->bias.defined()) nn::init::zeros_(linear->bias);
    } else if (auto* embedding = dynamic_cast<nn::EmbeddingImpl*>(&m)) {
      nn::init::normal_(embedding->weight, 0.0, std, generator);
      if (embedding->options.padding_idx() >= 0) embedding->weight.select(0, embedding->options.padding_idx()).zero_();
    } else if (auto* norm = dynamic_cast<nn::LayerNormImpl*>(&m)) {
      nn::init::ones_(norm->weight);
      nn::init::zeros_(norm->bias);
    }
  });
}

Tensor key_padding_mask_from(const Tensor& attention_mask, const Tensor& input_ids) {
  if (!attention_mask.defined()) return Tensor();
  check_ids(attention_mask, "attention_mask", &input_ids.sizes());
  return attention_mask.eq(wrap_scalar(0, attention_mask));  // (B, N), true = padded
}

std::string join_path(const std::string& dir, const char* file) { return (std::filesystem::path(dir) / file).string(); }

// Which config keys set the expected shape of a parameter, for error messages.
std::string shape_reason(const std::string& name, const BertConfig& c) {
  std::ostringstream os;
  auto ends_with = [&](const std::string& suffix) {
    return name.size() >= suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0;
  };
  if (ends_with("word_embeddings.weight")) {
    os << "vocab_size = " << c.vocab_size << ", hidden_size = " << c.hidden_size;
  } else if (ends_with("position_embeddings.weight")) {
    os << "max_position_embeddings = " << c.max_position_embeddings << ", hidden_size = " << c.hidden_size;
  } else if (ends_with("token_type_embeddings.weight")) {
    os << "type_vocab_size = " << c.type_vocab_size << ", hidden_size = " << c.hidden_size;
  } else if (ends_with("intermediate.dense.weight") || ends_with("intermediate.dense.bias") ||
             (name.find(".output.dense.weight") != std::string::npos && name.find("attention") == std::string::npos)) {
    os << "intermediate_size = " << c.intermediate_size << ", hidden_size = " << c.hidden_size;
  } else if (name.rfind("classifier.", 0) == 0) {
    os << "num_labels = " << c.num_labels << ", hidden_size = " << c.hidden_size;
  } else {
    os << "hidden_size = " << c.hidden_size;
  }
  return os.str();
}

struct LoadPlan {
  std::string base_prefix;           // "" (BertModel) or "bert." (task model)
  bool keep_classifier = false;      // classifier.* belongs to the target
  bool allow_missing_classifier = false;
};

// The checkpoint's tensors renamed to `target`'s state_dict names and converted to its dtypes.
// Every problem is collected and reported at once, naming the file and the config.
nn::NamedTensors match_checkpoint(const nn::Module& target, const SafetensorsFile& file, const BertConfig& config,
                                  const std::string& config_path, const LoadPlan& plan) {
  std::map<std::string, Tensor> expected;
  for (const auto& [name, t] : target.state_dict()) expected.emplace(name, t);

  std::map<std::string, std::string> source_of;  // target name -> checkpoint name
  nn::NamedTensors matched;
  std::vector<std::string> unexpected, wrong_shape, wrong_dtype, duplicates;
  for (const auto& [checkpoint_name, tensor] : file.tensors) {
    std::string name = checkpoint_name;
    // Old TF-converted checkpoints call LayerNorm's parameters gamma and beta.
    for (const auto& [legacy, modern] : {std::pair{"LayerNorm.gamma", "LayerNorm.weight"}, {"LayerNorm.beta", "LayerNorm.bias"}}) {
      const std::string suffix = legacy;
      if (name.size() >= suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0)
        name = name.substr(0, name.size() - suffix.size()) + modern;
    }
    const bool prefixed = name.rfind("bert.", 0) == 0;
    const std::string base = prefixed ? name.substr(5) : name;
    // Buffers of older HF versions (positions 0..max-1, zeros); luna computes them.
    if (base == "embeddings.position_ids" || base == "embeddings.token_type_ids") continue;
    std::string target_name;
    if (!prefixed && name.rfind("cls.", 0) == 0) continue;  // pre-training heads (MLM, NSP)
    if (!prefixed && name.rfind("classifier.", 0) == 0) {
      if (!plan.keep_classifier) continue;
      target_name = name;
    } else {
      target_name = plan.base_prefix + base;
    }
    const auto it = expected.find(target_name);
    if (it == expected.end()) {
      unexpected.push_back(checkpoint_name);
      continue;
    }
    if (auto [previous, inserted] = source_of.emplace(target_name, checkpoint_name); !inserted) {
      duplicates.push_back("'" + previous->second + "' and '" + checkpoint_name + "'");
      continue;
    }
    const Tensor& want = it->second;
    if (tensor.sizes() != want.sizes()) {
      std::ostringstream os;
      os << "'" << checkpoint_name << "' has shape " << tensor.sizes() << " but " << config_path << " ("
         << shape_reason(target_name, config) << ") needs " << want.sizes();
      wrong_shape.push_back(os.str());
      continue;
    }
    if (tensor.dtype() != want.dtype()) {
      if (!(tensor.is_floating_point() && want.is_floating_point())) {
        std::ostringstream os;
        os << "'" << checkpoint_name << "' has dtype " << tensor.dtype() << ", expected " << want.dtype();
        wrong_dtype.push_back(os.str());
        continue;
      }
    }
    // Half-precision checkpoints are widened, as HF loads them in float32 by default.
    matched.emplace_back(target_name, tensor.dtype() == want.dtype() ? tensor : tensor.to(want.dtype()));
  }
  std::vector<std::string> missing;
  for (const auto& [name, t] : expected) {
    if (source_of.count(name)) continue;
    if (plan.allow_missing_classifier && name.rfind("classifier.", 0) == 0) continue;
    missing.push_back(name);
  }

  if (missing.empty() && unexpected.empty() && wrong_shape.empty() && wrong_dtype.empty() && duplicates.empty())
    return matched;
  std::ostringstream os;
  os << file.source << ": the checkpoint does not match the BERT model that " << config_path << " describes ("
     << config.num_hidden_layers << " layers, hidden_size " << config.hidden_size << ")";
  auto list = [&](const char* what, const std::vector<std::string>& items) {
    if (items.empty()) return;
    os << "\n  " << what << " (" << items.size() << "):";
    for (size_t i = 0; i < items.size() && i < 20; ++i) os << "\n    " << items[i];
    if (items.size() > 20) os << "\n    ... and " << items.size() - 20 << " more";
  };
  list("missing tensors", missing);
  list("unexpected tensors", unexpected);
  list("wrong shapes", wrong_shape);
  list("wrong dtypes", wrong_dtype);
  list("tensors given twice (with and without the bert. prefix)", duplicates);
  if (!plan.keep_classifier || plan.allow_missing_classifier) {
  } else if (std::any_of(missing.begin(), missing.end(), [](const std::string& n) { return n.rfind("classifier.", 0) == 0; })) {
    os << "\n  (a base-model checkpoint has no classifier: pass BertFromPretrainedOptions().init_missing_classifier(true)"
       << " to start from a fresh one)";
  }
  LUNA_FAIL(os.str());
}

// Builds a model whose initial weights are about to be overwritten, leaving the default generator
// where it was: loading a checkpoint must not shift the random streams of the caller's run.
template <class Model, class... Args>
std::shared_ptr<Model> make_without_drawing(Args&&... args) {
  const GeneratorState saved = default_generator().get_state();
  Generator scratch(saved.seed);
  auto model = std::make_shared<Model>(std::forward<Args>(args)..., &scratch);
  default_generator().set_state(saved);
  return model;
}

SafetensorsFile load_weights_file(const std::string& dir) {
  const std::string path = join_path(dir, "model.safetensors");
  if (!std::filesystem::exists(path)) {
    LUNA_CHECK(!std::filesystem::exists(join_path(dir, "model.safetensors.index.json")), path,
               ": not found; sharded checkpoints (model.safetensors.index.json) are not supported");
    LUNA_FAIL(path, ": not found (from_pretrained needs config.json and model.safetensors)");
  }
  return load_safetensors(path);
}

void save_directory(const std::string& dir, const BertConfig& config, const std::string& architecture,
                    const nn::NamedTensors& state) {
  std::error_code error;
  std::filesystem::create_directories(dir, error);
  LUNA_CHECK(!error, dir, ": cannot create the checkpoint directory (", error.message(), ")");
  // transformers rejects safetensors files whose metadata lacks format = pt.
  save_safetensors(join_path(dir, "model.safetensors"), state, {{"format", "pt"}});
  write_file_atomically(join_path(dir, "config.json"), config.to_json_string({architecture}));
}

}  // namespace

BertModelImpl::BertModelImpl(const BertConfig& config, bool add_pooling_layer, Generator* generator)
    : nn::Module("BertModel"), config_(config) {
  config_.validate("BertConfig");
  embeddings = register_module("embeddings", BertEmbeddings(config_));
  encoder = register_module("encoder", BertEncoder(config_));
  if (add_pooling_layer) pooler = register_module("pooler", BertPooler(config_));
  init_bert_weights(*this, config_.initializer_range, generator);
}

BertModelOutput BertModelImpl::forward(const Tensor& input_ids, const Tensor& attention_mask,
                                       const Tensor& token_type_ids) const {
  const Tensor key_padding_mask = key_padding_mask_from(attention_mask, input_ids);  // (B, N) or undefined
  const Tensor hidden = encoder(embeddings(input_ids, token_type_ids), key_padding_mask);  // (B, N, D)
  return {hidden, pooler.is_empty() ? Tensor() : pooler(hidden)};
}

std::shared_ptr<BertModelImpl> BertModelImpl::from_pretrained(const std::string& dir) {
  const std::string config_path = join_path(dir, "config.json");
  const BertConfig config = BertConfig::from_json_file(config_path);
  const SafetensorsFile file = load_weights_file(dir);
  bool has_pooler = false;
  for (const auto& [name, t] : file.tensors)
    has_pooler = has_pooler || name.rfind("pooler.", 0) == 0 || name.rfind("bert.pooler.", 0) == 0;
  auto model = make_without_drawing<BertModelImpl>(config, has_pooler);
  model->load_state_dict(match_checkpoint(*model, file, config, config_path, LoadPlan{}));
  model->eval();
  return model;
}

void BertModelImpl::save_pretrained(const std::string& dir) const {
  save_directory(dir, config_, "BertModel", state_dict());
}

BertForSequenceClassificationImpl::BertForSequenceClassificationImpl(const BertConfig& config, Generator* generator)
    : nn::Module("BertForSequenceClassification"), config_(config) {
  bert = register_module("bert", BertModel(config, true, generator));
  dropout = register_module("dropout", nn::Dropout(config_.effective_classifier_dropout()));
  classifier = register_module("classifier", nn::Linear(config_.hidden_size, config_.num_labels));
  init_bert_weights(*classifier, config_.initializer_range, generator);
}

Tensor BertForSequenceClassificationImpl::forward(const Tensor& input_ids, const Tensor& attention_mask,
                                                  const Tensor& token_type_ids) const {
  const BertModelOutput out = bert(input_ids, attention_mask, token_type_ids);
  return classifier(dropout(out.pooler_output));  // (B, num_labels)
}

std::shared_ptr<BertForSequenceClassificationImpl> BertForSequenceClassificationImpl::from_pretrained(
    const std::string& dir, const BertFromPretrainedOptions& options) {
  const std::string config_path = join_path(dir, "config.json");
  const BertConfig config = BertConfig::from_json_file(config_path);
  const SafetensorsFile file = load_weights_file(dir);
  auto model = make_without_drawing<BertForSequenceClassificationImpl>(config);
  LoadPlan plan;
  plan.base_prefix = "bert.";
  plan.keep_classifier = true;
  plan.allow_missing_classifier = options.init_missing_classifier();
  const nn::NamedTensors state = match_checkpoint(*model, file, config, config_path, plan);
  const bool has_classifier = std::any_of(state.begin(), state.end(), [](const auto& e) { return e.first == "classifier.weight"; });
  // A fresh classifier draws from the default generator, so manual_seed decides it.
  if (!has_classifier) init_bert_weights(*model->classifier, config.initializer_range, nullptr);
  model->load_state_dict(state, !plan.allow_missing_classifier);
  model->eval();
  return model;
}

void BertForSequenceClassificationImpl::save_pretrained(const std::string& dir) const {
  save_directory(dir, config_, "BertForSequenceClassification", state_dict());
}

}  // namespace luna::models
