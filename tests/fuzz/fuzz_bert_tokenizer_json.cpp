// libFuzzer target for the tokenizer.json reader of BertTokenizer (`make fuzz`). Any byte string
// must parse or be rejected with luna::Error; a parsed vocabulary must hold every id 0..n-1 once,
// and the tokenizer built from it (when it has the special tokens) must pass the shared encoding
// checks on a few texts, including its own tokens. Anything else aborts and is a bug.
#include <string>
#include <string_view>

#include <luna/models/bert_tokenizer.h>

constexpr const char* kFuzzTarget = "fuzz_bert_tokenizer_json";
#include "fuzz_bert_common.h"

using namespace luna::fuzz::bert;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  std::optional<luna::models::TokenizerJson> parsed;
  try {
    parsed = luna::models::parse_tokenizer_json(input, "fuzz/tokenizer.json");
  } catch (const luna::Error&) {
    return 0;
  }
  if (parsed->tokens.empty()) fail("accepted an empty vocabulary");
  std::string all_tokens;
  for (const std::string& token : parsed->tokens) {
    if (token.empty()) fail("accepted an empty token");
    all_tokens += token + " ";
  }
  std::optional<BertTokenizer> tokenizer;
  try {
    tokenizer = BertTokenizer::from_tokens(parsed->tokens, "fuzz/tokenizer.json", parsed->options);
  } catch (const luna::Error&) {
    return 0;  // e.g. no [UNK] in the vocabulary
  }
  if (tokenizer->vocab_size() != int64_t(parsed->tokens.size())) fail("vocabulary size changed");
  const uint8_t knob = size > 0 ? data[size - 1] : 0;
  exercise(*tokenizer, all_tokens, knob);
  exercise(*tokenizer, "Hello, World! r\xc3\xa9sum\xc3\xa9 \xe4\xb8\xad\xe6\x96\x87 [SEP] x", knob);
  return 0;
}
