// Strict reading and writing of ViT config.json files: Hugging Face's, luna's attention block, and
// timm's hub config (with the sizes taken from the weights).
#include <luna/models/vit_config.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <limits>
#include <map>
#include <regex>
#include <sstream>

#include <nlohmann/json.hpp>

#include <luna/core/error.h>
#include <luna/core/safetensors.h>
#include <luna/nn/attention.h>

namespace luna::models {
namespace {

using nlohmann::json;

// Sizes beyond this are rejected: no real ViT comes near, and products of two still fit int64.
constexpr int64_t kMaxSize = std::numeric_limits<int32_t>::max();

// A short description of a JSON value for errors. Containers are summarised, never dumped:
// dumping recurses, and a hostile file may nest deeply.
std::string describe(const json& value) {
  if (value.is_object()) return "an object of " + std::to_string(value.size()) + " keys";
  if (value.is_array()) return "an array of " + std::to_string(value.size()) + " elements";
  std::string text = value.dump();
  text = text.size() > 80 ? text.substr(0, 77) + "..." : text;
  return std::string(value.type_name()) + " " + text;
}

// Reads keys of one JSON object; `prefix` spells where the object sits ("luna_attention.") so
// errors name nested keys fully.
class Reader {
 public:
  Reader(const json& object, std::string source, std::string prefix, std::string what)
      : object_(object), source_(std::move(source)), prefix_(std::move(prefix)), what_(std::move(what)) {}

  const json* find(const char* key) const {
    const auto it = object_.find(key);
    return it == object_.end() ? nullptr : &*it;
  }

  const json& require(const char* key) const {
    const json* value = find(key);
    LUNA_CHECK(value != nullptr, source_, ": missing key \"", prefix_, key, "\" (", what_, " needs it)");
    return *value;
  }

  int64_t integer(const char* key, bool required, int64_t fallback) const {
    const json* value = required ? &require(key) : find(key);
    if (value == nullptr) return fallback;
    return to_integer(*value, key);
  }

  int64_t to_integer(const json& value, const char* key) const {
    LUNA_CHECK(value.is_number_integer(), source_, ": key \"", prefix_, key, "\" must be an integer, got ",
               describe(value));
    if (value.is_number_unsigned()) {
      const uint64_t number = value.get<uint64_t>();
      LUNA_CHECK(number <= uint64_t(kMaxSize), source_, ": key \"", prefix_, key, "\" = ", number,
                 " is out of range (at most ", kMaxSize, ")");
      return int64_t(number);
    }
    const int64_t number = value.get<int64_t>();
    LUNA_CHECK(number >= -kMaxSize && number <= kMaxSize, source_, ": key \"", prefix_, key, "\" = ", number,
               " is out of range");
    return number;
  }

  double number(const char* key, bool required, double fallback) const {
    const json* value = required ? &require(key) : find(key);
    if (value == nullptr) return fallback;
    LUNA_CHECK(value->is_number(), source_, ": key \"", prefix_, key, "\" must be a number, got ", describe(*value));
    const double number = value->get<double>();
    LUNA_CHECK(std::isfinite(number), source_, ": key \"", prefix_, key, "\" must be finite, got ", number);
    return number;
  }

  bool boolean(const char* key, bool required, bool fallback) const {
    const json* value = required ? &require(key) : find(key);
    if (value == nullptr) return fallback;
    LUNA_CHECK(value->is_boolean(), source_, ": key \"", prefix_, key, "\" must be true or false, got ",
               describe(*value));
    return value->get<bool>();
  }

  std::string string(const char* key, bool required, const std::string& fallback) const {
    const json* value = required ? &require(key) : find(key);
    if (value == nullptr) return fallback;
    LUNA_CHECK(value->is_string(), source_, ": key \"", prefix_, key, "\" must be a string, got ", describe(*value));
    return value->get<std::string>();
  }

  // An integer, or a list of two equal integers ([h, w] of a square); anything else is an error.
  int64_t square_size(const char* key, bool required, int64_t fallback) const {
    const json* value = required ? &require(key) : find(key);
    if (value == nullptr) return fallback;
    if (value->is_array()) {
      LUNA_CHECK(value->size() == 2, source_, ": key \"", prefix_, key, "\" must be an integer or [height, width], got ",
                 describe(*value));
      const int64_t height = to_integer((*value)[0], key), width = to_integer((*value)[1], key);
      LUNA_CHECK(height == width, source_, ": key \"", prefix_, key, "\" = [", height, ", ", width,
                 "]: luna's ViT supports square sizes only");
      return height;
    }
    return to_integer(*value, key);
  }

  // Keys of this object outside `allowed` are errors (for luna's own block, where a typo must fail).
  void reject_unknown(const std::vector<std::string>& allowed) const {
    for (const auto& [key, value] : object_.items()) {
      (void)value;
      LUNA_CHECK(std::find(allowed.begin(), allowed.end(), key) != allowed.end(), source_, ": unknown key \"",
                 prefix_, key, "\" (", what_, " allows only: ", join(allowed), ")");
    }
  }

  static std::string join(const std::vector<std::string>& items) {
    std::string out;
    for (const auto& item : items) out += (out.empty() ? "" : ", ") + item;
    return out;
  }

 private:
  const json& object_;
  std::string source_, prefix_, what_;
};

json parse_object(std::string_view text, const std::string& source) {
  json root;
  try {
    root = json::parse(text.begin(), text.end());
  } catch (const json::exception& error) {
    LUNA_FAIL(source, ": not valid JSON: ", error.what());
  }
  LUNA_CHECK(root.is_object(), source, ": a config.json must hold a JSON object, got ", describe(root));
  return root;
}

const std::vector<std::string>& hidden_acts() {
  static const std::vector<std::string> acts = {"gelu", "gelu_new", "gelu_pytorch_tanh", "relu"};
  return acts;
}

// "luna_attention": which kind, and the options that kind needs (see ViTAttentionConfig).
ViTAttentionConfig read_attention_block(const json& block, const std::string& source) {
  LUNA_CHECK(block.is_object(), source, ": key \"luna_attention\" must be an object, got ", describe(block));
  const Reader reader(block, source, "luna_attention.", "luna's attention block");
  ViTAttentionConfig config;
  config.attention = reader.string("attention", true, "");
  const auto& kinds = nn::available_attention_kinds();
  LUNA_CHECK(std::find(kinds.begin(), kinds.end(), config.attention) != kinds.end(), source,
             ": key \"luna_attention.attention\" = \"", config.attention, "\" is not an attention kind (one of ",
             Reader::join(kinds), ")");
  std::vector<std::string> allowed = {"attention"};
  if (config.attention != "softmax") {
    allowed.push_back("linear_eps");
    config.linear_eps = reader.number("linear_eps", true, 0);
  }
  if (config.attention == "luna") {
    allowed.push_back("luna");
    const json& luna = reader.require("luna");
    LUNA_CHECK(luna.is_object(), source, ": key \"luna_attention.luna\" must be an object, got ", describe(luna));
    const Reader options(luna, source, "luna_attention.luna.", "the LUNA feature map options");
    options.reject_unknown({"num_projections", "channels", "hidden", "activation", "layout", "envelope", "per_head",
                            "channel_rms_limit"});
    config.luna.num_projections = options.integer("num_projections", true, 0);
    config.luna.channels = options.integer("channels", true, 0);
    config.luna.hidden = options.integer("hidden", true, 0);
    config.luna.activation = options.string("activation", true, "");
    config.luna.layout = options.string("layout", true, "");
    config.luna.envelope = options.boolean("envelope", true, false);
    config.luna.per_head = options.boolean("per_head", true, false);
    config.luna.channel_rms_limit = options.boolean("channel_rms_limit", true, false);
  }
  if (config.attention == "performer") {
    allowed.push_back("performer_features");
    allowed.push_back("performer_redraw_interval");
    config.performer_features = reader.integer("performer_features", true, 0);
    config.performer_redraw_interval = reader.integer("performer_redraw_interval", true, 0);
  }
  if (config.attention == "cosformer") {
    allowed.push_back("cosformer_max_len");
    config.cosformer_max_len = reader.integer("cosformer_max_len", true, 0);
  }
  reader.reject_unknown(allowed);
  return config;
}

json write_attention_block(const ViTAttentionConfig& config) {
  json block;
  block["attention"] = config.attention;
  if (config.attention != "softmax") block["linear_eps"] = config.linear_eps;
  if (config.attention == "luna") {
    const LunaFeatureMapOptions& o = config.luna;
    block["luna"] = {{"num_projections", o.num_projections}, {"channels", o.channels},
                     {"hidden", o.hidden},                   {"activation", o.activation},
                     {"layout", o.layout},                   {"envelope", o.envelope},
                     {"per_head", o.per_head},               {"channel_rms_limit", o.channel_rms_limit}};
  }
  if (config.attention == "performer") {
    block["performer_features"] = config.performer_features;
    block["performer_redraw_interval"] = config.performer_redraw_interval;
  }
  if (config.attention == "cosformer") block["cosformer_max_len"] = config.cosformer_max_len;
  return block;
}

// "id2label": {"0": "cat", "1": "dog", ...} with keys exactly 0..n-1.
std::vector<std::string> read_id2label(const json& value, const std::string& source) {
  LUNA_CHECK(value.is_object(), source, ": key \"id2label\" must be an object {\"0\": \"name\", ...}, got ",
             describe(value));
  LUNA_CHECK(int64_t(value.size()) <= kMaxSize, source, ": key \"id2label\" has too many entries (", value.size(), ")");
  std::vector<std::string> labels(value.size());
  std::vector<bool> seen(value.size(), false);
  for (const auto& [key, name] : value.items()) {
    size_t index = 0;
    bool numeric = !key.empty() && key.size() <= 10 && std::all_of(key.begin(), key.end(), [](char c) {
      return c >= '0' && c <= '9';
    });
    if (numeric) index = size_t(std::stoull(key));
    LUNA_CHECK(numeric && index < labels.size(), source, ": key \"id2label\" has the entry \"", key.substr(0, 40),
               "\"; its keys must be the label ids 0..", labels.size() - 1);
    LUNA_CHECK(!seen[index], source, ": key \"id2label\" lists label ", index, " twice");
    LUNA_CHECK(name.is_string(), source, ": key \"id2label.", key, "\" must be a string, got ", describe(name));
    labels[index] = name.get<std::string>();
    seen[index] = true;
  }
  return labels;
}

void check_positive(int64_t value, const char* key, const std::string& source) {
  LUNA_CHECK(value > 0, source, ": key \"", key, "\" must be positive, got ", value);
}

void check_probability(double value, const char* key, const std::string& source) {
  LUNA_CHECK(value >= 0.0 && value < 1.0, source, ": key \"", key, "\" must be in [0, 1), got ", value);
}

}  // namespace

bool ViTAttentionConfig::operator==(const ViTAttentionConfig& other) const {
  // Options of kinds not in use are not part of the model (and are not saved).
  if (attention != other.attention) return false;
  if (attention == "softmax") return true;
  if (linear_eps != other.linear_eps) return false;
  const LunaFeatureMapOptions &a = luna, &b = other.luna;
  if (attention == "luna")
    return a.num_projections == b.num_projections && a.channels == b.channels && a.hidden == b.hidden &&
           a.activation == b.activation && a.layout == b.layout && a.envelope == b.envelope &&
           a.per_head == b.per_head && a.channel_rms_limit == b.channel_rms_limit;
  if (attention == "performer")
    return performer_features == other.performer_features &&
           performer_redraw_interval == other.performer_redraw_interval;
  if (attention == "cosformer") return cosformer_max_len == other.cosformer_max_len;
  return true;
}

std::string ViTConfig::label_name(int64_t i) const {
  // Past the end of a short id2label (a config validate() would reject) it falls back too, so
  // comparing or writing an unvalidated config never reads out of bounds.
  return i >= 0 && size_t(i) < id2label.size() ? id2label[size_t(i)] : "LABEL_" + std::to_string(i);
}

bool ViTConfig::operator==(const ViTConfig& other) const {
  const bool same_model =
      hidden_size == other.hidden_size && num_hidden_layers == other.num_hidden_layers &&
      num_attention_heads == other.num_attention_heads && intermediate_size == other.intermediate_size &&
      hidden_act == other.hidden_act && layer_norm_eps == other.layer_norm_eps && image_size == other.image_size &&
      patch_size == other.patch_size && num_channels == other.num_channels && qkv_bias == other.qkv_bias &&
      num_labels == other.num_labels && hidden_dropout_prob == other.hidden_dropout_prob &&
      attention_probs_dropout_prob == other.attention_probs_dropout_prob &&
      initializer_range == other.initializer_range && attention == other.attention;
  if (!same_model) return false;
  for (int64_t i = 0; i < num_labels; ++i)
    if (label_name(i) != other.label_name(i)) return false;
  return true;
}

ViTConfig ViTConfig::from_json_string(std::string_view text, const std::string& source) {
  const json root = parse_object(text, source);
  const Reader reader(root, source, "", "a ViT config.json");
  if (const json* model_type = reader.find("model_type")) {
    LUNA_CHECK(model_type->is_string() && model_type->get<std::string>() == "vit", source,
               ": key \"model_type\" is ", describe(*model_type),
               "; luna's ViTForImageClassification reads \"vit\" checkpoints only");
  }
  ViTConfig config;
  config.hidden_size = reader.integer("hidden_size", true, 0);
  config.num_hidden_layers = reader.integer("num_hidden_layers", true, 0);
  config.num_attention_heads = reader.integer("num_attention_heads", true, 0);
  config.intermediate_size = reader.integer("intermediate_size", true, 0);
  config.hidden_act = reader.string("hidden_act", true, "");
  config.layer_norm_eps = reader.number("layer_norm_eps", true, 0);
  config.image_size = reader.square_size("image_size", true, 0);
  config.patch_size = reader.square_size("patch_size", true, 0);
  config.num_channels = reader.integer("num_channels", true, 0);
  config.qkv_bias = reader.boolean("qkv_bias", true, true);
  config.hidden_dropout_prob = reader.number("hidden_dropout_prob", false, 0.0);
  config.attention_probs_dropout_prob = reader.number("attention_probs_dropout_prob", false, 0.0);
  config.initializer_range = reader.number("initializer_range", false, 0.02);
  if (const json* id2label = reader.find("id2label")) {
    config.id2label = read_id2label(*id2label, source);
    config.num_labels = int64_t(config.id2label.size());
    if (const json* num_labels = reader.find("num_labels")) {
      const int64_t given = reader.to_integer(*num_labels, "num_labels");
      LUNA_CHECK(given == config.num_labels, source, ": key \"num_labels\" = ", given, " but \"id2label\" has ",
                 config.num_labels, " entries");
    }
  } else {
    config.num_labels = reader.integer("num_labels", false, 2);
  }
  if (const json* block = reader.find("luna_attention")) config.attention = read_attention_block(*block, source);
  config.validate(source);
  return config;
}

ViTConfig ViTConfig::from_json_file(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  LUNA_CHECK(file.good(), path, ": cannot open the ViT config (config.json)");
  std::ostringstream text;
  text << file.rdbuf();
  LUNA_CHECK(!file.bad(), path, ": reading failed");
  return from_json_string(text.str(), path);
}

void ViTConfig::validate(const std::string& source) const {
  check_positive(hidden_size, "hidden_size", source);
  LUNA_CHECK(num_hidden_layers >= 0, source, ": key \"num_hidden_layers\" must be >= 0, got ", num_hidden_layers);
  check_positive(num_attention_heads, "num_attention_heads", source);
  LUNA_CHECK(hidden_size % num_attention_heads == 0, source, ": key \"hidden_size\" = ", hidden_size,
             " is not divisible by \"num_attention_heads\" = ", num_attention_heads);
  check_positive(intermediate_size, "intermediate_size", source);
  LUNA_CHECK(std::find(hidden_acts().begin(), hidden_acts().end(), hidden_act) != hidden_acts().end(), source,
             ": key \"hidden_act\" = \"", hidden_act, "\" is not supported (one of ", Reader::join(hidden_acts()), ")");
  LUNA_CHECK(std::isfinite(layer_norm_eps) && layer_norm_eps > 0, source, ": key \"layer_norm_eps\" must be positive, got ",
             layer_norm_eps);
  check_positive(image_size, "image_size", source);
  check_positive(patch_size, "patch_size", source);
  LUNA_CHECK(patch_size <= image_size, source, ": key \"patch_size\" = ", patch_size, " is larger than \"image_size\" = ",
             image_size);
  check_positive(num_channels, "num_channels", source);
  check_positive(num_labels, "num_labels", source);
  LUNA_CHECK(id2label.empty() || int64_t(id2label.size()) == num_labels, source, ": \"id2label\" has ", id2label.size(),
             " entries for ", num_labels, " labels");
  check_probability(hidden_dropout_prob, "hidden_dropout_prob", source);
  check_probability(attention_probs_dropout_prob, "attention_probs_dropout_prob", source);
  LUNA_CHECK(std::isfinite(initializer_range) && initializer_range >= 0, source,
             ": key \"initializer_range\" must be >= 0, got ", initializer_range);
  const ViTAttentionConfig& a = attention;
  const auto& kinds = nn::available_attention_kinds();
  LUNA_CHECK(std::find(kinds.begin(), kinds.end(), a.attention) != kinds.end(), source,
             ": key \"luna_attention.attention\" = \"", a.attention, "\" is not an attention kind (one of ",
             Reader::join(kinds), ")");
  if (a.attention != "softmax")
    LUNA_CHECK(a.linear_eps > 0 && std::isfinite(a.linear_eps), source,
               ": key \"luna_attention.linear_eps\" must be positive, got ", a.linear_eps);
  if (a.attention == "luna") {
    check_positive(a.luna.num_projections, "luna_attention.luna.num_projections", source);
    check_positive(a.luna.channels, "luna_attention.luna.channels", source);
    check_positive(a.luna.hidden, "luna_attention.luna.hidden", source);
    const std::vector<std::string> activations = {"relu", "gelu", "silu"}, layouts = {"per_channel", "shared"};
    LUNA_CHECK(std::find(activations.begin(), activations.end(), a.luna.activation) != activations.end(), source,
               ": key \"luna_attention.luna.activation\" = \"", a.luna.activation, "\" is not one of relu, gelu, silu");
    LUNA_CHECK(std::find(layouts.begin(), layouts.end(), a.luna.layout) != layouts.end(), source,
               ": key \"luna_attention.luna.layout\" = \"", a.luna.layout, "\" is not one of per_channel, shared");
  }
  if (a.attention == "performer") {
    check_positive(a.performer_features, "luna_attention.performer_features", source);
    LUNA_CHECK(a.performer_redraw_interval >= 0, source,
               ": key \"luna_attention.performer_redraw_interval\" must be >= 0 (0 = never), got ",
               a.performer_redraw_interval);
  }
  if (a.attention == "cosformer")
    LUNA_CHECK(a.cosformer_max_len == 0 || a.cosformer_max_len >= 1 + num_patches(), source,
               ": key \"luna_attention.cosformer_max_len\" must be 0 (each call's length) or at least the ",
               1 + num_patches(), " tokens of an image_size image, got ", a.cosformer_max_len);
}

std::string ViTConfig::to_json_string() const {
  json root;
  root["architectures"] = json::array({"ViTForImageClassification"});
  root["model_type"] = "vit";
  root["hidden_size"] = hidden_size;
  root["num_hidden_layers"] = num_hidden_layers;
  root["num_attention_heads"] = num_attention_heads;
  root["intermediate_size"] = intermediate_size;
  root["hidden_act"] = hidden_act;
  root["layer_norm_eps"] = layer_norm_eps;
  root["image_size"] = image_size;
  root["patch_size"] = patch_size;
  root["num_channels"] = num_channels;
  root["qkv_bias"] = qkv_bias;
  root["hidden_dropout_prob"] = hidden_dropout_prob;
  root["attention_probs_dropout_prob"] = attention_probs_dropout_prob;
  root["initializer_range"] = initializer_range;
  json id2label_json = json::object(), label2id = json::object();
  for (int64_t i = 0; i < num_labels; ++i) {
    const std::string name = label_name(i);
    id2label_json[std::to_string(i)] = name;
    label2id[name] = i;
  }
  root["id2label"] = id2label_json;
  root["label2id"] = label2id;
  if (attention.attention != "softmax") root["luna_attention"] = write_attention_block(attention);
  return root.dump(2) + "\n";
}

std::string ViTConfig::summary() const {
  std::ostringstream os;
  os << "hidden_size=" << hidden_size << ", num_hidden_layers=" << num_hidden_layers
     << ", num_attention_heads=" << num_attention_heads << ", intermediate_size=" << intermediate_size
     << ", image_size=" << image_size << ", patch_size=" << patch_size << ", num_channels=" << num_channels
     << ", qkv_bias=" << (qkv_bias ? "true" : "false") << ", num_labels=" << num_labels
     << ", attention=" << attention.attention;
  return os.str();
}

// ---- timm --------------------------------------------------------------------------------------

namespace {

const Tensor& timm_tensor(const SafetensorsFile& weights, const std::string& name, int64_t dims) {
  LUNA_CHECK(weights.contains(name), weights.source, ": tensor \"", name,
             "\" is missing (a timm VisionTransformer checkpoint has it)");
  const Tensor& t = weights.at(name);
  LUNA_CHECK(t.dim() == dims, weights.source, ": tensor \"", name, "\" must have ", dims, " dims, has shape ",
             t.sizes());
  return t;
}

// Heads of timm's stock ViT architectures by the size word of their name, with the width that
// goes with it (the name says nothing about a model built with other widths).
bool stock_heads(const std::string& architecture, int64_t width, int64_t& heads) {
  static const std::map<std::string, std::pair<int64_t, int64_t>> sizes = {
      {"tiny", {192, 3}},    {"small", {384, 6}},  {"medium", {512, 8}},    {"base", {768, 12}},
      {"large", {1024, 16}}, {"huge", {1280, 16}}, {"giant", {1408, 16}}, {"gigantic", {1664, 16}}};
  static const std::regex pattern("^vit_([a-z]+)_patch");
  std::smatch match;
  if (!std::regex_search(architecture, match, pattern)) return false;
  const auto it = sizes.find(match[1].str());
  if (it == sizes.end() || it->second.first != width) return false;
  heads = it->second.second;
  return true;
}

}  // namespace

ViTConfig ViTConfig::from_timm_json_string(std::string_view text, const std::string& source,
                                           const SafetensorsFile& weights) {
  const json root = parse_object(text, source);
  const Reader reader(root, source, "", "a timm config.json");
  const std::string architecture = reader.string("architecture", true, "");
  LUNA_CHECK(architecture.rfind("vit_", 0) == 0, source, ": key \"architecture\" = \"", architecture,
             "\" is not a timm VisionTransformer (vit_*)");
  const std::string pool = reader.string("global_pool", false, "token");
  LUNA_CHECK(pool == "token", source, ": key \"global_pool\" = \"", pool,
             "\": luna's ViT classifies the CLS token (\"token\") only");

  // Architecture options luna does not implement, if model_args sets them.
  const json empty_object = json::object();
  const json* model_args_json = reader.find("model_args");
  if (model_args_json != nullptr)
    LUNA_CHECK(model_args_json->is_object(), source, ": key \"model_args\" must be an object, got ",
               describe(*model_args_json));
  const Reader args(model_args_json ? *model_args_json : empty_object, source, "model_args.", "timm's model_args");
  LUNA_CHECK(args.boolean("class_token", false, true), source, ": key \"model_args.class_token\" is false; luna's ViT needs the CLS token");
  LUNA_CHECK(!args.boolean("no_embed_class", false, false), source, ": key \"model_args.no_embed_class\" is true; luna's ViT adds positions to the CLS token too");
  LUNA_CHECK(args.integer("reg_tokens", false, 0) == 0, source, ": key \"model_args.reg_tokens\" is not 0; register tokens are not supported");
  LUNA_CHECK(!args.boolean("pre_norm", false, false), source, ": key \"model_args.pre_norm\" is true; not supported");
  LUNA_CHECK(!args.boolean("qk_norm", false, false), source, ": key \"model_args.qk_norm\" is true; not supported");
  if (const json* fc_norm = args.find("fc_norm"))
    LUNA_CHECK(fc_norm->is_null() || (fc_norm->is_boolean() && !fc_norm->get<bool>()), source,
               ": key \"model_args.fc_norm\" is ", describe(*fc_norm), "; not supported");
  if (const json* init_values = args.find("init_values"))
    LUNA_CHECK(init_values->is_null(), source, ": key \"model_args.init_values\" is ", describe(*init_values),
               "; layer scale is not supported");
  const std::string args_pool = args.string("global_pool", false, "token");
  LUNA_CHECK(args_pool == "token", source, ": key \"model_args.global_pool\" = \"", args_pool,
             "\": luna's ViT classifies the CLS token (\"token\") only");

  ViTConfig config;
  config.hidden_act = "gelu";
  config.layer_norm_eps = 1e-6;  // timm's LayerNorm(eps=1e-6) in every VisionTransformer

  const Tensor& cls_token = timm_tensor(weights, "cls_token", 3);
  config.hidden_size = cls_token.size(2);
  const Tensor& patch_weight = timm_tensor(weights, "patch_embed.proj.weight", 4);
  LUNA_CHECK(patch_weight.size(2) == patch_weight.size(3), weights.source, ": tensor \"patch_embed.proj.weight\" has ",
             "shape ", patch_weight.sizes(), "; luna's ViT supports square patches only");
  config.patch_size = patch_weight.size(2);
  config.num_channels = patch_weight.size(1);
  int64_t depth = 0;
  while (weights.contains("blocks." + std::to_string(depth) + ".norm1.weight")) ++depth;
  config.num_hidden_layers = depth;
  if (depth > 0) {
    config.intermediate_size = timm_tensor(weights, "blocks.0.mlp.fc1.weight", 2).size(0);
    config.qkv_bias = weights.contains("blocks.0.attn.qkv.bias");
  } else {
    config.intermediate_size = 4 * config.hidden_size;
  }

  const int64_t channels_arg = args.integer("in_chans", false, config.num_channels);
  LUNA_CHECK(channels_arg == config.num_channels, source, ": key \"model_args.in_chans\" = ", channels_arg,
             " but \"patch_embed.proj.weight\" in ", weights.source, " has ", config.num_channels, " input channels");

  config.num_attention_heads = args.integer("num_heads", false, 0);
  if (config.num_attention_heads == 0) {
    LUNA_CHECK(stock_heads(architecture, config.hidden_size, config.num_attention_heads), source,
               ": cannot tell the number of attention heads of \"", architecture, "\" with width ", config.hidden_size,
               " (not a stock timm ViT size); add \"model_args\": {\"num_heads\": H} to the file");
  }

  const Tensor& pos_embed = timm_tensor(weights, "pos_embed", 3);
  int64_t image_size = 0;
  if (args.find("img_size")) {
    image_size = args.square_size("img_size", false, 0);
  } else if (const json* pretrained = reader.find("pretrained_cfg"); pretrained && pretrained->is_object() &&
                                                                     pretrained->contains("input_size")) {
    const json& input = (*pretrained)["input_size"];
    LUNA_CHECK(input.is_array() && input.size() == 3, source,
               ": key \"pretrained_cfg.input_size\" must be [channels, height, width], got ", describe(input));
    const Reader cfg(*pretrained, source, "pretrained_cfg.", "timm's pretrained_cfg");
    const int64_t channels = cfg.to_integer(input[0], "input_size"), height = cfg.to_integer(input[1], "input_size"),
                  width = cfg.to_integer(input[2], "input_size");
    LUNA_CHECK(height == width, source, ": key \"pretrained_cfg.input_size\" = [", channels, ", ", height, ", ", width,
               "]: luna's ViT supports square images only");
    LUNA_CHECK(channels == config.num_channels, source, ": key \"pretrained_cfg.input_size\" has ", channels,
               " channels but \"patch_embed.proj.weight\" in ", weights.source, " has ", config.num_channels);
    image_size = height;
  } else {
    // Neither says: the position table's square grid times the patch size.
    const int64_t patches = pos_embed.size(1) - 1;
    const int64_t grid = int64_t(std::llround(std::sqrt(double(std::max<int64_t>(patches, 0)))));
    LUNA_CHECK(grid * grid == patches, weights.source, ": tensor \"pos_embed\" has shape ", pos_embed.sizes(),
               ", not 1 + a square number of positions; add model_args.img_size to ", source);
    image_size = grid * config.patch_size;
  }
  config.image_size = image_size;

  const int64_t num_classes = reader.integer("num_classes", true, 0);
  LUNA_CHECK(num_classes > 0, source, ": key \"num_classes\" = ", num_classes,
             "; luna's ViTForImageClassification needs a classifier head (num_classes > 0)");
  config.num_labels = num_classes;
  if (const json* names = reader.find("label_names"); names && names->is_array() &&
                                                     int64_t(names->size()) == num_classes) {
    for (const json& name : *names) {
      LUNA_CHECK(name.is_string(), source, ": key \"label_names\" must hold strings, got ", describe(name));
      config.id2label.push_back(name.get<std::string>());
    }
  }
  config.validate(source);
  return config;
}

}  // namespace luna::models
