// libFuzzer target for BERT's config.json reader (`make fuzz`). Any byte string must either parse
// into a valid BertConfig or be rejected with luna::Error. An accepted config must pass validate(),
// be written and re-read to an equal config, and, when small, build a BertModel that runs a
// forward pass of the right shape. Anything else aborts and is a bug.
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>

#include <luna/autograd/grad_mode.h>
#include <luna/models/bert.h>
#include <luna/models/bert_config.h>
#include <luna/ops/factories.h>

namespace {

[[noreturn]] void fail(const std::string& what) {
  std::fprintf(stderr, "fuzz_bert_config: %s\n", what.c_str());
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  std::optional<luna::models::BertConfig> config;
  try {
    config = luna::models::BertConfig::from_json_string(text, "fuzz/config.json");
  } catch (const luna::Error&) {
    return 0;  // rejected with a proper error: the expected outcome for most inputs
  }
  config->validate("accepted config");  // throws (a bug) if the reader let a bad value through
  if (config->hidden_size % config->num_attention_heads != 0) fail("hidden_size not divisible by the heads");

  const std::string written = config->to_json_string({"BertModel"});
  const luna::models::BertConfig reread = luna::models::BertConfig::from_json_string(written, "fuzz/rewritten.json");
  if (!(reread == *config)) fail("config differs after writing and reading it back:\n" + written);

  // Small configs are built and run: the constructors must accept whatever the reader accepts.
  const luna::models::BertConfig& c = *config;
  const int64_t per_layer = 4 * c.hidden_size * c.hidden_size + 2 * c.hidden_size * c.intermediate_size;
  const int64_t embeddings = (c.vocab_size + c.max_position_embeddings + c.type_vocab_size) * c.hidden_size;
  if (c.num_hidden_layers <= 3 && per_layer <= 20000 && embeddings <= 20000 && c.num_labels <= 64) {
    luna::NoGradGuard no_grad;
    luna::models::BertForSequenceClassification model(c);
    model->eval();
    const int64_t n = std::min<int64_t>(3, c.max_position_embeddings);
    const luna::Tensor ids = luna::zeros({2, n}, luna::TensorOptions(luna::kInt64));
    const luna::Tensor logits = model(ids, luna::ones({2, n}, luna::TensorOptions(luna::kInt64)));
    if (!(logits.sizes() == luna::Dims{2, c.num_labels})) fail("logits have the wrong shape");
  }
  return 0;
}
