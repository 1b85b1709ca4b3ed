// Checks shared by the BERT tokenizer fuzz targets (vocab.txt and tokenizer.json): whatever a
// tokenizer accepts it must encode to ids inside its vocabulary framed by [CLS] ... [SEP], with
// consistent token types and masks and truncation within max_length; invalid UTF-8 must be
// rejected with luna::Error by every entry point. Anything else aborts. Define kFuzzTarget first.
#pragma once
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>

#include <luna/models/bert_tokenizer.h>

namespace luna::fuzz::bert {

using luna::models::BertEncoding;
using luna::models::BertTokenizer;
using luna::models::BertTokenizerOptions;

[[noreturn]] inline void fail(const std::string& what) {
  std::fprintf(stderr, "%s: %s\n", kFuzzTarget, what.c_str());
  std::abort();
}

inline void check_encoding(const BertTokenizer& tokenizer, const BertEncoding& e, bool pair, int64_t max_length) {
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

inline void exercise(const BertTokenizer& tokenizer, const std::string& text, uint8_t knob) {
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

}  // namespace luna::fuzz::bert
