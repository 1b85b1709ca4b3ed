// libFuzzer target for the ViT config.json readers (`make fuzz`): Hugging Face's config with luna's
// "luna_attention" block, and timm's hub config (read against a fixed small timm checkpoint). Any
// byte string must parse or be rejected with luna::Error. An accepted config must validate, write
// out and parse back equal, and, when small, build a model that runs a forward pass. Anything else
// (another exception type, a sanitizer report) aborts and is a bug.
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include <luna/autograd/grad_mode.h>
#include <luna/core/safetensors.h>
#include <luna/models/vit.h>
#include <luna/ops/factories.h>

namespace {

[[noreturn]] void report(const char* what, const std::string& detail = "") {
  std::fprintf(stderr, "fuzz_vit_config: %s %s\n", what, detail.c_str());
  std::abort();
}

// A timm-layout checkpoint with width 8, patch 4, 3 channels, one block, a 2x2 grid, 5 classes.
const luna::SafetensorsFile& timm_weights() {
  static const luna::SafetensorsFile weights = [] {
    using luna::zeros;
    const std::vector<std::pair<std::string, luna::Tensor>> tensors = {
        {"cls_token", zeros({1, 1, 8})},
        {"pos_embed", zeros({1, 5, 8})},
        {"patch_embed.proj.weight", zeros({8, 3, 4, 4})},
        {"blocks.0.norm1.weight", zeros({8})},
        {"blocks.0.attn.qkv.weight", zeros({24, 8})},
        {"blocks.0.attn.qkv.bias", zeros({24})},
        {"blocks.0.mlp.fc1.weight", zeros({16, 8})},
        {"head.weight", zeros({5, 8})}};
    const std::vector<uint8_t> bytes = luna::serialize_safetensors(tensors);
    return luna::parse_safetensors(bytes.data(), bytes.size(), "fuzz-timm-weights");
  }();
  return weights;
}

// Builds and runs configs small enough to do so quickly (the parser admits sizes up to 2^31).
bool small_enough(const luna::models::ViTConfig& c) {
  const auto& a = c.attention;
  const double params = double(c.hidden_size) * double(c.hidden_size + c.intermediate_size) * 4.0 *
                            double(c.num_hidden_layers + 1) +
                        double(c.num_patches() + 1) * double(c.hidden_size) +
                        double(c.hidden_size) * double(c.num_channels) * double(c.patch_size) * double(c.patch_size) +
                        double(c.hidden_size) * double(c.num_labels);
  if (params > 2e5 || c.image_size > 64 || c.num_hidden_layers > 4 || c.num_attention_heads > 16) return false;
  if (a.attention == "luna" &&
      double(a.luna.num_projections) * double(a.luna.channels) * double(a.luna.hidden) *
              double(a.luna.per_head ? c.num_attention_heads : 1) > 1e5)
    return false;
  if (a.attention == "performer" && a.performer_features > 512) return false;
  return true;
}

void exercise(const luna::models::ViTConfig& config) {
  try {
    config.validate("fuzz-accepted");
  } catch (const luna::Error& error) {
    report("an accepted config fails validate():", error.what());
  }
  const std::string written = config.to_json_string();
  luna::models::ViTConfig again;
  try {
    again = luna::models::ViTConfig::from_json_string(written, "fuzz-rewritten");
  } catch (const luna::Error& error) {
    report("a written config does not parse:", error.what() + std::string("\n") + written);
  }
  if (!(again == config)) report("the config changed through to_json_string:", written);
  if (!small_enough(config)) return;
  // The model and a forward pass: anything validate() let through must build and run.
  luna::NoGradGuard no_grad;
  try {
    luna::models::ViTForImageClassification model(config);
    model->eval();
    const luna::Tensor logits = model(luna::zeros({1, config.num_channels, config.image_size, config.image_size}));
    if (!(logits.sizes() == luna::Dims({1, config.num_labels}))) report("logits of the wrong shape");
  } catch (const luna::Error& error) {
    report("an accepted config fails to build or run:", error.what() + std::string("\n") + written);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    exercise(luna::models::ViTConfig::from_json_string(text, "fuzz-input"));
  } catch (const luna::Error&) {
    // rejected with a proper error: the expected outcome for most inputs
  }
  try {
    exercise(luna::models::ViTConfig::from_timm_json_string(text, "fuzz-input", timm_weights()));
  } catch (const luna::Error&) {
  }
  return 0;
}
