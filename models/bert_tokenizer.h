// BertTokenizer: BERT's WordPiece tokenizer from a `vocab.txt`, producing the ids of Hugging Face's
// BertTokenizer (the `tokenizers`-backed one of transformers 5): special tokens matched verbatim,
// then BertNormalizer (clean text, spaces around CJK ideographs, accent stripping, lowercasing),
// BertPreTokenizer (split on whitespace and punctuation) and greedy longest-match-first WordPiece
// with "##" continuations; [CLS] a [SEP] (b [SEP]) with token types 0/1 and longest-first truncation.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include <luna/core/tensor.h>
#include <luna/nn/options.h>

namespace luna::models {

struct BertTokenizerOptions {
  LUNA_ARG(bool, do_lower_case) = true;
  // Unset: follow do_lower_case (the original BERT rule); set: strip accents or keep them.
  LUNA_ARG(std::optional<bool>, strip_accents) = std::nullopt;
  LUNA_ARG(bool, tokenize_chinese_chars) = true;
  LUNA_ARG(std::string, unk_token) = "[UNK]";
  LUNA_ARG(std::string, sep_token) = "[SEP]";
  LUNA_ARG(std::string, pad_token) = "[PAD]";
  LUNA_ARG(std::string, cls_token) = "[CLS]";
  LUNA_ARG(std::string, mask_token) = "[MASK]";  // optional in the vocabulary
  // A word longer than this many code points becomes one [UNK].
  LUNA_ARG(int64_t, max_input_chars_per_word) = 100;
  // tokenizer_config.json's model_max_length, for callers to pass as max_length (0 = not given).
  LUNA_ARG(int64_t, model_max_length) = 0;
};

// One encoded input, as HF's tokenizer(text) returns it.
struct BertEncoding {
  std::vector<int64_t> input_ids;
  std::vector<int64_t> token_type_ids;
  std::vector<int64_t> attention_mask;
};

// A padded batch of encodings: int64 tensors [B, N], N the longest encoding; padding uses
// pad_token_id, token type 0 and attention mask 0, on the right.
struct BertBatch {
  Tensor input_ids;
  Tensor token_type_ids;
  Tensor attention_mask;
};

// The tokens of a vocab.txt: one per line, id = line number (0-based); line breaks \n, \r\n or \r.
// Rejected with an error naming `source` and the line: an empty file, an empty line, invalid
// UTF-8, and a token listed twice (both lines named).
std::vector<std::string> parse_vocab(std::string_view text, const std::string& source);

// What a Hugging Face tokenizer.json says about a BERT tokenizer: the WordPiece vocabulary
// (model.vocab, token -> id, the ids exactly 0..n-1) as tokens by id, and the options of its
// BertNormalizer (lowercase, strip_accents, handle_chinese_chars) and WordPiece model (unk_token,
// max_input_chars_per_word), applied on top of `defaults`. Anything but a WordPiece model with
// "##" continuations, a BertNormalizer with clean_text and a BertPreTokenizer is an error naming
// `source` and the key, as are duplicate or missing ids and empty tokens. Other parts (added
// tokens beyond the special ones, post-processor, truncation, padding) are not read.
struct TokenizerJson {
  std::vector<std::string> tokens;
  BertTokenizerOptions options;
};
TokenizerJson parse_tokenizer_json(std::string_view text, const std::string& source,
                                   BertTokenizerOptions defaults = {});

class BertTokenizer {
 public:
  // Reads `vocab_file` (see parse_vocab). The special tokens [UNK], [CLS], [SEP] and [PAD] (as
  // named in the options) must be in the vocabulary; the error names the file and the token.
  explicit BertTokenizer(const std::string& vocab_file, BertTokenizerOptions options = {});
  // From vocab.txt text already in memory; `source` names it in errors.
  static BertTokenizer from_vocab_text(std::string_view text, const std::string& source, BertTokenizerOptions options = {});
  // `dir`/vocab.txt, with the options of `dir`/tokenizer_config.json when present (do_lower_case,
  // strip_accents, tokenize_chinese_chars, the special tokens, model_max_length; other keys are
  // ignored). A key of the wrong type is an error naming the file and the key.
  // Without vocab.txt (transformers 5 saves only tokenizer.json) the vocabulary comes from
  // `dir`/tokenizer.json (parse_tokenizer_json), whose normalizer settings then override
  // tokenizer_config.json's.
  static BertTokenizer from_pretrained(const std::string& dir);
  // From tokens by id (e.g. parse_tokenizer_json's); `source` names them in errors.
  static BertTokenizer from_tokens(std::vector<std::string> tokens, const std::string& source,
                                   BertTokenizerOptions options = {});

  // The word pieces of `text` (special tokens written in the text are kept whole), no [CLS]/[SEP].
  // `text` must be valid UTF-8 (an error names the byte offset otherwise).
  std::vector<std::string> tokenize(const std::string& text) const;
  std::vector<int64_t> convert_tokens_to_ids(const std::vector<std::string>& tokens) const;  // unknown -> unk id
  std::string convert_id_to_token(int64_t id) const;  // an error outside [0, vocab_size)

  // [CLS] text [SEP], token types 0. max_length > 0 truncates the text so the result fits (it
  // must leave room for the special tokens); 0 keeps everything.
  BertEncoding encode(const std::string& text, int64_t max_length = 0) const;
  // [CLS] a [SEP] b [SEP], token types 0 for [CLS] a [SEP] and 1 for b [SEP]. Truncation is HF's
  // longest_first: when both are too long each keeps about half of the room, otherwise the
  // longer one is cut to what the shorter leaves. An empty text_b means no pair, as in transformers.
  BertEncoding encode(const std::string& text_a, const std::string& text_b, int64_t max_length = 0) const;
  // encode() of each text (or pair), padded into one batch.
  BertBatch batch_encode(const std::vector<std::string>& texts, int64_t max_length = 0) const;
  BertBatch batch_encode(const std::vector<std::pair<std::string, std::string>>& pairs, int64_t max_length = 0) const;
  // Pads encodings on the right to the longest one.
  BertBatch pad(const std::vector<BertEncoding>& encodings) const;

  int64_t vocab_size() const { return int64_t(id_to_token_.size()); }
  std::optional<int64_t> token_to_id(const std::string& token) const;
  int64_t unk_token_id() const { return unk_id_; }
  int64_t cls_token_id() const { return cls_id_; }
  int64_t sep_token_id() const { return sep_id_; }
  int64_t pad_token_id() const { return pad_id_; }
  const BertTokenizerOptions& options() const { return options_; }

 private:
  BertTokenizer(std::vector<std::string> tokens, const std::string& source, BertTokenizerOptions options);
  std::vector<int64_t> text_to_ids(const std::string& text) const;
  // Normalises and pre-tokenizes one stretch of text without special tokens and appends the
  // WordPiece ids of its words.
  void append_word_ids(std::u32string_view text, std::vector<int64_t>& ids) const;
  void append_wordpiece(std::u32string_view word, std::vector<int64_t>& ids) const;
  BertEncoding build(std::vector<int64_t> a, const std::vector<int64_t>* b) const;

  BertTokenizerOptions options_;
  std::vector<std::string> id_to_token_;
  std::unordered_map<std::string, int64_t> token_to_id_;
  // The special tokens present in the vocabulary, as code points, matched verbatim in raw text.
  std::vector<std::pair<std::u32string, int64_t>> special_tokens_;
  int64_t unk_id_ = -1, cls_id_ = -1, sep_id_ = -1, pad_id_ = -1;
};

}  // namespace luna::models
