// libFuzzer target for BERT's vocab.txt reader and tokenizer (`make fuzz`). The input is a vocab
// file, optionally followed by a NUL byte and a text to encode (without one the input is also the
// text). Reading must succeed or throw luna::Error; a tokenizer (from the file as is, or with the
// special tokens put in front) must encode valid UTF-8 to ids inside the vocabulary framed by
// [CLS] ... [SEP], with consistent token types and masks and truncation within max_length, and
// must reject invalid UTF-8 with luna::Error only. Anything else aborts and is a bug.
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>

#include <luna/models/bert_tokenizer.h>

constexpr const char* kFuzzTarget = "fuzz_vocab";
#include "fuzz_bert_common.h"

using namespace luna::fuzz::bert;

namespace {

std::optional<BertTokenizer> make_tokenizer(std::string_view vocab, const BertTokenizerOptions& options) {
  try {
    return BertTokenizer::from_vocab_text(vocab, "fuzz/vocab.txt", options);
  } catch (const luna::Error&) {
    return std::nullopt;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const size_t nul = input.find('\0');
  const std::string_view vocab = nul == std::string_view::npos ? input : input.substr(0, nul);
  const std::string text(nul == std::string_view::npos ? input : input.substr(nul + 1));
  const uint8_t knob = size > 0 ? data[size - 1] : 0;
  BertTokenizerOptions options;
  options.do_lower_case(knob & 1).tokenize_chinese_chars(knob & 2);
  if (knob & 4) options.strip_accents(bool(knob & 8));

  try {
    const auto tokens = luna::models::parse_vocab(vocab, "fuzz/vocab.txt");
    if (tokens.empty()) fail("parse_vocab accepted an empty vocabulary");
  } catch (const luna::Error&) {
  }
  if (auto tokenizer = make_tokenizer(vocab, options)) exercise(*tokenizer, text, knob);
  // With the special tokens in front the lines themselves get tokenized far more often.
  const std::string with_specials = "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n" + std::string(vocab);
  if (auto tokenizer = make_tokenizer(with_specials, options)) exercise(*tokenizer, text, knob);
  return 0;
}
