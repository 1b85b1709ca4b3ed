// ViT checkpoint I/O: from_pretrained for Hugging Face (ViTForImageClassification, ViTModel) and
// timm layouts, and save_pretrained in HF's layout. Every mismatch between the weights and the
// config is reported at once, naming the weights file, each tensor and the config file.
#include <luna/models/vit.h>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <regex>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include <luna/autograd/grad_mode.h>
#include <luna/core/atomic_file.h>
#include <luna/core/safetensors.h>

namespace luna::models {
namespace {

namespace fs = std::filesystem;

std::string read_text(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  LUNA_CHECK(file.good(), path, ": cannot open the config (every checkpoint folder needs config.json)");
  std::ostringstream text;
  text << file.rdbuf();
  LUNA_CHECK(!file.bad(), path, ": reading failed");
  return text.str();
}

// A tensor renamed from another layout remembers its original name for errors.
struct Renamed {
  Tensor tensor;
  std::string original;  // empty when the name is unchanged
};
using RenamedTensors = std::map<std::string, Renamed>;

// timm VisionTransformer names -> HF ViTForImageClassification names; the fused qkv [3D, D] is
// split into query, key, value (in that order). Names timm models have but luna does not
// implement pass through unchanged and are reported as unexpected.
RenamedTensors from_timm(const SafetensorsFile& weights) {
  static const std::regex block_pattern(R"(^blocks\.(\d+)\.(.+)$)");
  static const std::map<std::string, std::string> top = {
      {"cls_token", "vit.embeddings.cls_token"},
      {"pos_embed", "vit.embeddings.position_embeddings"},
      {"patch_embed.proj.weight", "vit.embeddings.patch_embeddings.projection.weight"},
      {"patch_embed.proj.bias", "vit.embeddings.patch_embeddings.projection.bias"},
      {"norm.weight", "vit.layernorm.weight"},
      {"norm.bias", "vit.layernorm.bias"},
      {"head.weight", "classifier.weight"},
      {"head.bias", "classifier.bias"}};
  static const std::map<std::string, std::string> in_block = {
      {"norm1.weight", "layernorm_before.weight"},          {"norm1.bias", "layernorm_before.bias"},
      {"attn.proj.weight", "attention.output.dense.weight"}, {"attn.proj.bias", "attention.output.dense.bias"},
      {"norm2.weight", "layernorm_after.weight"},           {"norm2.bias", "layernorm_after.bias"},
      {"mlp.fc1.weight", "intermediate.dense.weight"},      {"mlp.fc1.bias", "intermediate.dense.bias"},
      {"mlp.fc2.weight", "output.dense.weight"},            {"mlp.fc2.bias", "output.dense.bias"}};
  RenamedTensors out;
  for (const auto& [name, t] : weights.tensors) {
    if (const auto it = top.find(name); it != top.end()) {
      out[it->second] = {t, name};
      continue;
    }
    std::smatch match;
    if (!std::regex_match(name, match, block_pattern)) {
      out[name] = {t, ""};
      continue;
    }
    const std::string prefix = "vit.encoder.layer." + match[1].str() + ".";
    const std::string rest = match[2].str();
    if (const auto it = in_block.find(rest); it != in_block.end()) {
      out[prefix + it->second] = {t, name};
    } else if (rest == "attn.qkv.weight" || rest == "attn.qkv.bias") {
      LUNA_CHECK(t.dim() >= 1 && t.size(0) % 3 == 0, weights.source, ": tensor \"", name, "\" has shape ", t.sizes(),
                 "; a fused qkv needs a first dim of 3·hidden_size (q, k, v stacked)");
      const int64_t D = t.size(0) / 3;
      const std::string field = rest == "attn.qkv.weight" ? "weight" : "bias";
      const char* parts[3] = {"query", "key", "value"};
      for (int64_t part = 0; part < 3; ++part)
        out[prefix + "attention.attention." + parts[part] + "." + field] = {t.narrow(0, part * D, D).contiguous(),
                                                                          name};
    } else {
      out[name] = {t, ""};
    }
  }
  return out;
}

// HF ViTForImageClassification names are used as they are; a ViTModel checkpoint ("embeddings.*",
// "encoder.*", "layernorm.*") gets the "vit." prefix and drops its pooler, which the classifier
// does not use.
RenamedTensors from_hf(const SafetensorsFile& weights, bool base_model) {
  RenamedTensors out;
  for (const auto& [name, t] : weights.tensors) {
    if (!base_model) {
      out[name] = {t, ""};
      continue;
    }
    if (name.rfind("pooler.", 0) == 0) continue;
    out["vit." + name] = {t, name};
  }
  return out;
}

std::string display_name(const std::string& name, const RenamedTensors& given) {
  const auto it = given.find(name);
  if (it == given.end() || it->second.original.empty() || it->second.original == name) return "\"" + name + "\"";
  return "\"" + it->second.original + "\" (as " + name + ")";
}

}  // namespace

ViTForImageClassification ViTForImageClassification::from_pretrained(const std::string& dir) {
  const char* who = "ViTForImageClassification.from_pretrained";
  LUNA_CHECK(fs::is_directory(dir), who, ": '", dir, "' is not a directory (expected config.json and model.safetensors)");
  const std::string config_path = (fs::path(dir) / "config.json").string();
  const std::string weights_path = (fs::path(dir) / "model.safetensors").string();
  if (!fs::exists(weights_path)) {
    std::string hint;
    if (fs::exists(fs::path(dir) / "model.safetensors.index.json")) hint = " (sharded checkpoints are not read)";
    else if (fs::exists(fs::path(dir) / "pytorch_model.bin")) hint = " (pytorch_model.bin is a pickle; convert it to safetensors)";
    LUNA_FAIL(weights_path, ": not found", hint);
  }
  const std::string config_text = read_text(config_path);
  const SafetensorsFile weights = load_safetensors(weights_path);

  // HF's config has hidden_size; timm's hub config has architecture.
  bool timm_config = false;
  try {
    const nlohmann::json root = nlohmann::json::parse(config_text);
    timm_config = root.is_object() && !root.contains("hidden_size") && root.contains("architecture");
  } catch (const nlohmann::json::exception&) {
    // from_json_string reports it with the file name.
  }
  const ViTConfig config = timm_config ? ViTConfig::from_timm_json_string(config_text, config_path, weights)
                                       : ViTConfig::from_json_string(config_text, config_path);

  RenamedTensors given;
  bool base_model = false;
  if (weights.contains("vit.embeddings.cls_token")) {
    given = from_hf(weights, false);
  } else if (weights.contains("embeddings.cls_token")) {
    base_model = true;
    given = from_hf(weights, true);
  } else if (weights.contains("cls_token")) {
    given = from_timm(weights);
  } else {
    LUNA_FAIL(weights_path, ": neither a Hugging Face ViT checkpoint (tensor \"vit.embeddings.cls_token\" or ",
              "\"embeddings.cls_token\") nor a timm one (\"cls_token\"); it holds ", weights.tensors.size(), " tensors",
              weights.tensors.empty() ? std::string() : ", the first \"" + weights.tensors.front().first + "\"");
  }

  // Every tensor is overwritten below (a ViTModel checkpoint's classifier gets HF's init there).
  ViTForImageClassification model(config, nullptr, config_path, /*hf_init=*/false);
  const nn::NamedTensors own = model->state_dict();
  std::vector<std::string> missing, mismatched, unexpected;
  std::set<std::string> expected;
  for (const auto& [name, t] : own) {
    expected.insert(name);
    const auto it = given.find(name);
    if (it == given.end()) {
      // A ViTModel checkpoint has no classifier; HF initialises it afresh, and so does luna.
      if (!(base_model && name.rfind("classifier.", 0) == 0)) missing.push_back("\"" + name + "\"");
      continue;
    }
    const Tensor& src = it->second.tensor;
    if (src.sizes() != t.sizes()) {
      mismatched.push_back(display_name(name, given) + " has shape " + src.sizes().str() + ", the config implies " +
                           t.sizes().str());
    } else if (src.is_floating_point() != t.is_floating_point()) {
      mismatched.push_back(display_name(name, given) + " has dtype " + dtype_name(src.dtype()) + ", expected " +
                           dtype_name(t.dtype()));
    }
  }
  for (const auto& [name, renamed] : given)
    if (!expected.count(name)) unexpected.push_back(display_name(name, given));
  if (!missing.empty() || !mismatched.empty() || !unexpected.empty()) {
    std::ostringstream os;
    os << weights_path << ": the weights do not match " << config_path << " (" << config.summary() << "):";
    auto list = [&](const char* title, const std::vector<std::string>& items) {
      if (items.empty()) return;
      os << "\n  " << title << " (" << items.size() << "):";
      for (const auto& item : items) os << "\n    " << item;
    };
    list("missing tensors", missing);
    list("tensors whose shape or dtype disagrees", mismatched);
    list("unexpected tensors", unexpected);
    throw Error(os.str());
  }

  NoGradGuard no_grad;
  for (const auto& [name, t] : own) {
    const auto it = given.find(name);
    if (it == given.end()) continue;
    // Half-precision and float64 checkpoints load into the model's float32 (copy_ converts).
    t.copy_(it->second.tensor);
  }
  if (base_model) {
    model->reset_classifier();
    std::cerr << who << ": " << weights_path << " is a ViTModel checkpoint without a classifier; classifier.weight "
              << "and classifier.bias are newly initialised (train them before use)\n";
  }
  return model;
}

void ViTForImageClassificationImpl::save_pretrained(const std::string& dir) const {
  std::error_code error;
  fs::create_directories(dir, error);
  LUNA_CHECK(!error && fs::is_directory(dir), "ViTForImageClassification.save_pretrained: cannot create the directory '",
             dir, "': ", error ? error.message() : std::string("a file of that name exists"));
  // Each file is replaced atomically, the pair is not: after a crash between the two writes the
  // old config.json sits beside the new weights, and from_pretrained names any disagreement.
  save_safetensors((fs::path(dir) / "model.safetensors").string(), state_dict(), {{"format", "pt"}});
  write_file_atomically((fs::path(dir) / "config.json").string(), config_.to_json_string());
}

}  // namespace luna::models
