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

namespace {

using luna::models::BertEncoding;
using luna::models::BertTokenizer;
using luna::models::BertTokenizerOptions;

[[noreturn]] void fail(const std::string& what) {
  std::fprintf(stderr, "fuzz_vocab: %s\n", what.c_str());
  std::abort();
}

std::optional<BertTokenizer> make_tokenizer(std::string_view vocab, const BertTokenizerOptions& options) {
  try {
    return BertTokenizer::from_vocab_text(vocab, "fuzz/vocab.txt", options);
  } catch (const luna::Error&) {
    return std::nullopt;
  }
}

void check_encoding(const BertTokenizer& tokenizer, const BertEncoding& e, bool pair, int64_t max_length) {
  const size_t n = e.input_ids.size();
  if (n < (pair ? 3u : 2u)) fail("encoding shorter than its special tokens");
  if (e.token_type_ids.size() != n || e.attention_mask.size() != n) fail("ids, token types and mask differ in length");
  if (max_length > 0 && int64_t(n) > max_length) fail("encoding longer than max_length");
  if (e.input_ids.front() != tokenizer.cls_token_id() || e.input_ids.back() != tokenizer.sep_token_id())
    fail("encoding not framed by [CLS] ... [SEP]");
  for (size_t i = 0; i < n; ++i) {
    if (e.input_ids[i] < 0 || e.input_ids[i] >= tokenizer.vocab_size()) fail("id outside the vocabulary");
    if (e.attention_mask[i] != 1) fail("mask of an unpadded encoding is not all 1");
    if (e.token_type_ids[i] != 0 && e.token_type_ids[i] != 1) fail("token type not 0/1");
    if (i > 0 && e.token_type_ids[i] < e.token_type_ids[i - 1]) fail("token types not 0...0 1...1");
  }
  if (!pair && e.token_type_ids.back() != 0) fail("single text with token type 1");
}

void exercise(const BertTokenizer& tokenizer, const std::string& text, uint8_t knob) {
  // Every token of the vocabulary maps back to its own id.
  for (int64_t id = 0; id < tokenizer.vocab_size(); ++id)
    if (tokenizer.token_to_id(tokenizer.convert_id_to_token(id)) != id) fail("token does not map back to its id");
  std::optional<BertEncoding> single;
  try {
    single = tokenizer.encode(text);
  } catch (const luna::Error&) {
    // Only invalid UTF-8 may be rejected; then every other entry point must reject it too.
    try {
      tokenizer.tokenize(text);
    } catch (const luna::Error&) {
      return;
    }
    fail("encode rejected a text that tokenize accepted");
  }
  check_encoding(tokenizer, *single, false, 0);
  if (tokenizer.tokenize(text).size() + 2 != single->input_ids.size()) fail("tokenize and encode disagree");
  const int64_t max_length = 3 + knob % 13;
  check_encoding(tokenizer, tokenizer.encode(text, max_length), false, max_length);
  const size_t half = text.size() / 2;
  std::string a = text.substr(0, half), b = text.substr(half);
  try {
    const BertEncoding pair = tokenizer.encode(a, b, max_length);
    check_encoding(tokenizer, pair, !b.empty(), max_length);
  } catch (const luna::Error&) {
    // Splitting in the middle of a UTF-8 sequence makes both halves invalid: fine.
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
