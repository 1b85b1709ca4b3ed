// BERT's WordPiece tokenizer: vocabulary parsing, normalisation, pre-tokenization, WordPiece and
// the [CLS]/[SEP] template with truncation.
#include <luna/models/bert_tokenizer.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include <luna/models/bert_unicode.h>
#include <luna/ops/factories.h>

namespace luna::models {
namespace {

namespace text = bert_unicode;

std::string read_file(const std::string& path, const char* what) {
  std::ifstream file(path, std::ios::binary);
  LUNA_CHECK(file.good(), path, ": cannot open the ", what);
  std::ostringstream contents;
  contents << file.rdbuf();
  LUNA_CHECK(!file.bad(), path, ": read error");
  return contents.str();
}

// tokenizer_config.json: the keys BertTokenizer understands, each checked for its type.
BertTokenizerOptions read_tokenizer_config(const std::string& path) {
  using nlohmann::json;
  const std::string contents = read_file(path, "tokenizer config");
  json root;
  try {
    root = json::parse(contents);
  } catch (const json::exception& e) {
    LUNA_FAIL(path, ": not valid JSON (", e.what(), ")");
  }
  LUNA_CHECK(root.is_object(), path, ": expected a JSON object at the top level, got ", root.type_name());
  BertTokenizerOptions options;
  auto read_bool = [&](const char* key, bool& out) {
    const auto it = root.find(key);
    if (it == root.end() || it->is_null()) return;
    LUNA_CHECK(it->is_boolean(), path, ": key \"", key, "\" must be true or false, got ", it->dump());
    out = it->get<bool>();
  };
  read_bool("do_lower_case", options.do_lower_case());
  read_bool("tokenize_chinese_chars", options.tokenize_chinese_chars());
  if (const auto it = root.find("strip_accents"); it != root.end() && !it->is_null()) {
    LUNA_CHECK(it->is_boolean(), path, ": key \"strip_accents\" must be true, false or null, got ", it->dump());
    options.strip_accents(it->get<bool>());
  }
  // Special tokens are strings, or AddedToken objects {"content": "[UNK]", ...}.
  auto read_token = [&](const char* key, std::string& out) {
    const auto it = root.find(key);
    if (it == root.end() || it->is_null()) return;
    if (it->is_object() && it->contains("content") && (*it)["content"].is_string()) {
      out = (*it)["content"].get<std::string>();
      return;
    }
    LUNA_CHECK(it->is_string(), path, ": key \"", key, "\" must be a string or {\"content\": ...}, got ", it->dump());
    out = it->get<std::string>();
  };
  read_token("unk_token", options.unk_token());
  read_token("sep_token", options.sep_token());
  read_token("pad_token", options.pad_token());
  read_token("cls_token", options.cls_token());
  read_token("mask_token", options.mask_token());
  if (const auto it = root.find("model_max_length"); it != root.end() && it->is_number_integer()) {
    // HF writes a huge float (1e30) for "no limit"; only a real integer limit is kept.
    const int64_t limit = it->is_number_unsigned() && it->get<uint64_t>() > uint64_t(INT64_MAX) ? 0 : it->get<int64_t>();
    if (limit > 0 && limit < (int64_t(1) << 40)) options.model_max_length(limit);
  }
  return options;
}

// HF's longest_first truncation of a pair to `room` tokens (the tokenizers library's rule).
void truncate_pair(std::vector<int64_t>& a, std::vector<int64_t>& b, size_t room) {
  size_t n1 = a.size(), n2 = b.size();
  if (n1 + n2 <= room) return;
  const bool swap = n1 > n2;
  if (swap) std::swap(n1, n2);  // n1 is now the shorter length
  n2 = n1 > room ? n1 : std::max(n1, room - n1);
  if (n1 + n2 > room) {
    n1 = room / 2;
    n2 = n1 + room % 2;
  }
  if (swap) std::swap(n1, n2);
  a.resize(std::min(a.size(), n1));
  b.resize(std::min(b.size(), n2));
}

}  // namespace

TokenizerJson parse_tokenizer_json(std::string_view contents, const std::string& source, BertTokenizerOptions defaults) {
  using nlohmann::json;
  json root;
  try {
    root = json::parse(contents.begin(), contents.end());
  } catch (const json::exception& e) {
    LUNA_FAIL(source, ": not valid JSON (", e.what(), ")");
  }
  LUNA_CHECK(root.is_object(), source, ": expected a JSON object at the top level, got ", root.type_name());
  TokenizerJson out{{}, std::move(defaults)};
  auto type_of = [&](const json& object, const char* key) {
    const auto it = object.find("type");
    LUNA_CHECK(it != object.end() && it->is_string(), source, ": key \"", key, ".type\" must be a string");
    return it->get<std::string>();
  };
  auto bool_field = [&](const json& object, const char* owner, const char* key) -> std::optional<bool> {
    const auto it = object.find(key);
    if (it == object.end() || it->is_null()) return std::nullopt;
    LUNA_CHECK(it->is_boolean(), source, ": key \"", owner, ".", key, "\" must be true, false or null, got ", it->dump());
    return it->get<bool>();
  };

  const auto model = root.find("model");
  LUNA_CHECK(model != root.end() && model->is_object(), source, ": key \"model\" is missing or not an object");
  const std::string model_type = type_of(*model, "model");
  LUNA_CHECK(model_type == "WordPiece", source, ": key \"model.type\" is \"", model_type,
             "\"; BertTokenizer reads WordPiece models only");
  if (const auto it = model->find("continuing_subword_prefix"); it != model->end() && !it->is_null()) {
    LUNA_CHECK(it->is_string() && it->get<std::string>() == "##", source,
               ": key \"model.continuing_subword_prefix\" must be \"##\", got ", it->dump());
  }
  if (const auto it = model->find("unk_token"); it != model->end() && !it->is_null()) {
    LUNA_CHECK(it->is_string(), source, ": key \"model.unk_token\" must be a string, got ", it->dump());
    out.options.unk_token(it->get<std::string>());
  }
  if (const auto it = model->find("max_input_chars_per_word"); it != model->end() && !it->is_null()) {
    LUNA_CHECK(it->is_number_unsigned() && it->get<uint64_t>() > 0 && it->get<uint64_t>() < (uint64_t(1) << 40), source,
               ": key \"model.max_input_chars_per_word\" must be a positive integer, got ", it->dump());
    out.options.max_input_chars_per_word(int64_t(it->get<uint64_t>()));
  }
  const auto vocab = model->find("vocab");
  LUNA_CHECK(vocab != model->end() && vocab->is_object(), source,
             ": key \"model.vocab\" is missing or not an object {\"token\": id, ...}");
  LUNA_CHECK(!vocab->empty(), source, ": key \"model.vocab\" is empty");
  out.tokens.assign(vocab->size(), std::string());
  std::vector<bool> taken(vocab->size(), false);
  for (const auto& [token, id_json] : vocab->items()) {
    LUNA_CHECK(id_json.is_number_unsigned(), source, ": key \"model.vocab\" gives token \"", token,
               "\" the id ", id_json.dump(), "; ids are integers 0..", vocab->size() - 1);
    const uint64_t id = id_json.get<uint64_t>();
    LUNA_CHECK(id < vocab->size(), source, ": key \"model.vocab\" gives token \"", token, "\" the id ", id,
               "; with ", vocab->size(), " tokens the ids must be 0..", vocab->size() - 1);
    LUNA_CHECK(!taken[id], source, ": key \"model.vocab\" gives the id ", id, " to both \"", out.tokens[id],
               "\" and \"", token, "\"");
    LUNA_CHECK(!token.empty(), source, ": key \"model.vocab\" has an empty token (id ", id, ")");
    taken[id] = true;
    out.tokens[id] = token;
  }

  // transformers' BertTokenizer always has both; without them HF would not split or clean the text.
  const auto normalizer = root.find("normalizer");
  LUNA_CHECK(normalizer != root.end() && normalizer->is_object(), source,
             ": key \"normalizer\" is missing or not an object (BertTokenizer needs a BertNormalizer)");
  const std::string normalizer_type = type_of(*normalizer, "normalizer");
  LUNA_CHECK(normalizer_type == "BertNormalizer", source, ": key \"normalizer.type\" is \"", normalizer_type,
             "\"; BertTokenizer implements BertNormalizer only");
  LUNA_CHECK(bool_field(*normalizer, "normalizer", "clean_text").value_or(true), source,
             ": key \"normalizer.clean_text\" is false; BertTokenizer always cleans text");
  if (auto v = bool_field(*normalizer, "normalizer", "lowercase")) out.options.do_lower_case(*v);
  if (auto v = bool_field(*normalizer, "normalizer", "handle_chinese_chars")) out.options.tokenize_chinese_chars(*v);
  out.options.strip_accents(bool_field(*normalizer, "normalizer", "strip_accents"));
  const auto pre = root.find("pre_tokenizer");
  LUNA_CHECK(pre != root.end() && pre->is_object(), source,
             ": key \"pre_tokenizer\" is missing or not an object (BertTokenizer needs a BertPreTokenizer)");
  const std::string pre_type = type_of(*pre, "pre_tokenizer");
  LUNA_CHECK(pre_type == "BertPreTokenizer", source, ": key \"pre_tokenizer.type\" is \"", pre_type,
             "\"; BertTokenizer implements BertPreTokenizer only");
  return out;
}

std::vector<std::string> parse_vocab(std::string_view contents, const std::string& source) {
  std::vector<std::string> tokens;
  std::unordered_map<std::string_view, size_t> first_line;  // views into `contents`
  size_t start = 0;
  while (start < contents.size()) {
    size_t end = start;
    while (end < contents.size() && contents[end] != '\n' && contents[end] != '\r') ++end;
    const std::string_view token = contents.substr(start, end - start);
    const size_t line = tokens.size() + 1;
    LUNA_CHECK(!token.empty(), source, ":", line, ": empty line; every line of a vocab.txt holds one token");
    text::decode_utf8(token, source + ":" + std::to_string(line));
    const auto [it, inserted] = first_line.emplace(token, line);
    LUNA_CHECK(inserted, source, ":", line, ": token \"", token, "\" is already on line ", it->second,
               " (each token needs its own id)");
    tokens.emplace_back(token);
    // One line break: \r\n, \n or \r (Python's universal newlines, as HF reads the file).
    if (end < contents.size() && contents[end] == '\r' && end + 1 < contents.size() && contents[end + 1] == '\n') ++end;
    start = end + 1;
  }
  LUNA_CHECK(!tokens.empty(), source, ": empty vocabulary (a vocab.txt lists one token per line)");
  return tokens;
}

BertTokenizer::BertTokenizer(std::vector<std::string> tokens, const std::string& source, BertTokenizerOptions options)
    : options_(std::move(options)), id_to_token_(std::move(tokens)) {
  LUNA_CHECK(options_.max_input_chars_per_word() > 0, "BertTokenizer: max_input_chars_per_word must be positive, got ",
             options_.max_input_chars_per_word());
  token_to_id_.reserve(id_to_token_.size());
  for (size_t i = 0; i < id_to_token_.size(); ++i) token_to_id_.emplace(id_to_token_[i], int64_t(i));
  auto required = [&](const std::string& token, const char* role) {
    const auto it = token_to_id_.find(token);
    LUNA_CHECK(it != token_to_id_.end(), source, ": the ", role, " token \"", token, "\" is not in the vocabulary");
    return it->second;
  };
  unk_id_ = required(options_.unk_token(), "unknown");
  cls_id_ = required(options_.cls_token(), "classifier");
  sep_id_ = required(options_.sep_token(), "separator");
  pad_id_ = required(options_.pad_token(), "padding");
  for (const std::string* token : {&options_.pad_token(), &options_.unk_token(), &options_.cls_token(),
                                   &options_.sep_token(), &options_.mask_token()}) {
    const auto it = token_to_id_.find(*token);
    if (it == token_to_id_.end() || token->empty()) continue;
    std::u32string code_points = text::decode_utf8(*token, source + ": special token");
    const bool seen = std::any_of(special_tokens_.begin(), special_tokens_.end(),
                                  [&](const auto& s) { return s.first == code_points; });
    if (!seen) special_tokens_.emplace_back(std::move(code_points), it->second);
  }
}

BertTokenizer::BertTokenizer(const std::string& vocab_file, BertTokenizerOptions options)
    : BertTokenizer(parse_vocab(read_file(vocab_file, "vocabulary"), vocab_file), vocab_file, std::move(options)) {}

BertTokenizer BertTokenizer::from_vocab_text(std::string_view contents, const std::string& source,
                                             BertTokenizerOptions options) {
  return BertTokenizer(parse_vocab(contents, source), source, std::move(options));
}

BertTokenizer BertTokenizer::from_tokens(std::vector<std::string> tokens, const std::string& source,
                                         BertTokenizerOptions options) {
  LUNA_CHECK(!tokens.empty(), source, ": empty vocabulary");
  std::unordered_map<std::string, size_t> first;
  for (size_t i = 0; i < tokens.size(); ++i) {
    LUNA_CHECK(!tokens[i].empty(), source, ": token ", i, " is empty");
    text::decode_utf8(tokens[i], source + ": token " + std::to_string(i));
    const auto [it, inserted] = first.emplace(tokens[i], i);
    LUNA_CHECK(inserted, source, ": token \"", tokens[i], "\" has ids ", it->second, " and ", i);
  }
  return BertTokenizer(std::move(tokens), source, std::move(options));
}

BertTokenizer BertTokenizer::from_pretrained(const std::string& dir) {
  const std::filesystem::path root(dir);
  const std::filesystem::path vocab = root / "vocab.txt", config = root / "tokenizer_config.json",
                              tokenizer_json = root / "tokenizer.json";
  const BertTokenizerOptions options =
      std::filesystem::exists(config) ? read_tokenizer_config(config.string()) : BertTokenizerOptions();
  if (std::filesystem::exists(vocab)) return BertTokenizer(vocab.string(), options);
  LUNA_CHECK(std::filesystem::exists(tokenizer_json), vocab.string(),
             ": not found, and no tokenizer.json either (BertTokenizer reads vocab.txt or tokenizer.json)");
  TokenizerJson parsed = parse_tokenizer_json(read_file(tokenizer_json.string(), "tokenizer"), tokenizer_json.string(),
                                              options);
  return from_tokens(std::move(parsed.tokens), tokenizer_json.string(), std::move(parsed.options));
}

// ---- the pipeline ----

void BertTokenizer::append_wordpiece(std::u32string_view word, std::vector<int64_t>& ids) const {
  if (int64_t(word.size()) > options_.max_input_chars_per_word()) {
    ids.push_back(unk_id_);
    return;
  }
  // Byte offset of every code point, so candidate pieces are substrings of one UTF-8 string.
  std::string utf8;
  std::vector<size_t> offsets;
  offsets.reserve(word.size() + 1);
  for (char32_t c : word) {
    offsets.push_back(utf8.size());
    text::append_utf8(utf8, c);
  }
  offsets.push_back(utf8.size());
  const size_t first_piece = ids.size();
  std::string candidate;
  size_t start = 0;
  while (start < word.size()) {
    int64_t found = -1;
    size_t end = word.size();
    for (; end > start; --end) {
      candidate.assign(start > 0 ? "##" : "");
      candidate.append(utf8, offsets[start], offsets[end] - offsets[start]);
      if (const auto it = token_to_id_.find(candidate); it != token_to_id_.end()) {
        found = it->second;
        break;
      }
    }
    if (found < 0) {  // some stretch matches nothing: the whole word is unknown
      ids.resize(first_piece);
      ids.push_back(unk_id_);
      return;
    }
    ids.push_back(found);
    start = end;
  }
}

void BertTokenizer::append_word_ids(std::u32string_view raw, std::vector<int64_t>& ids) const {
  const bool strip = options_.strip_accents().value_or(options_.do_lower_case());
  // BertNormalizer, one code point at a time: clean text, CJK spacing, strip accents, lowercase.
  std::u32string normalized, spaced, stripped;
  normalized.reserve(raw.size());
  for (char32_t c : raw) {
    if (text::is_removed(c)) continue;
    if (text::is_space(c)) c = U' ';
    spaced.clear();
    if (options_.tokenize_chinese_chars() && text::is_chinese(c)) {
      spaced = {U' ', c, U' '};
    } else {
      spaced.push_back(c);
    }
    stripped.clear();
    for (char32_t s : spaced) {
      if (strip) {
        text::append_stripped(stripped, s);
      } else {
        stripped.push_back(s);
      }
    }
    for (char32_t s : stripped) {
      if (options_.do_lower_case()) {
        text::append_lowered(normalized, s);
      } else {
        normalized.push_back(s);
      }
    }
  }
  // BertPreTokenizer: whitespace ends a word, punctuation is a word of its own.
  size_t word_start = 0;
  for (size_t i = 0; i <= normalized.size(); ++i) {
    const bool at_end = i == normalized.size();
    const bool space = !at_end && text::is_split_space(normalized[i]);
    const bool punct = !at_end && !space && text::is_punctuation(normalized[i]);
    if (at_end || space || punct) {
      if (i > word_start) append_wordpiece(std::u32string_view(normalized).substr(word_start, i - word_start), ids);
      if (punct) append_wordpiece(std::u32string_view(normalized).substr(i, 1), ids);
      word_start = i + 1;
    }
  }
}

std::vector<int64_t> BertTokenizer::text_to_ids(const std::string& input) const {
  const std::u32string raw = text::decode_utf8(input, "BertTokenizer: text");
  std::vector<int64_t> ids;
  // Special tokens are found in the raw text first (leftmost, then longest), as HF's added tokens.
  size_t segment_start = 0, i = 0;
  while (i < raw.size()) {
    const std::pair<std::u32string, int64_t>* match = nullptr;
    for (const auto& special : special_tokens_) {
      if (raw.compare(i, special.first.size(), special.first) == 0 &&
          (match == nullptr || special.first.size() > match->first.size()))
        match = &special;
    }
    if (match == nullptr) {
      ++i;
      continue;
    }
    append_word_ids(std::u32string_view(raw).substr(segment_start, i - segment_start), ids);
    ids.push_back(match->second);
    i += match->first.size();
    segment_start = i;
  }
  append_word_ids(std::u32string_view(raw).substr(segment_start), ids);
  return ids;
}

std::vector<std::string> BertTokenizer::tokenize(const std::string& input) const {
  std::vector<std::string> tokens;
  for (int64_t id : text_to_ids(input)) tokens.push_back(id_to_token_[size_t(id)]);
  return tokens;
}

std::vector<int64_t> BertTokenizer::convert_tokens_to_ids(const std::vector<std::string>& tokens) const {
  std::vector<int64_t> ids;
  ids.reserve(tokens.size());
  for (const std::string& token : tokens) ids.push_back(token_to_id(token).value_or(unk_id_));
  return ids;
}

std::string BertTokenizer::convert_id_to_token(int64_t id) const {
  LUNA_CHECK(id >= 0 && id < vocab_size(), "BertTokenizer: id ", id, " is outside the vocabulary [0, ", vocab_size(), ")");
  return id_to_token_[size_t(id)];
}

std::optional<int64_t> BertTokenizer::token_to_id(const std::string& token) const {
  const auto it = token_to_id_.find(token);
  if (it == token_to_id_.end()) return std::nullopt;
  return it->second;
}

BertEncoding BertTokenizer::build(std::vector<int64_t> a, const std::vector<int64_t>* b) const {
  BertEncoding out;
  out.input_ids.push_back(cls_id_);
  out.input_ids.insert(out.input_ids.end(), a.begin(), a.end());
  out.input_ids.push_back(sep_id_);
  out.token_type_ids.assign(out.input_ids.size(), 0);
  if (b) {
    out.input_ids.insert(out.input_ids.end(), b->begin(), b->end());
    out.input_ids.push_back(sep_id_);
    out.token_type_ids.resize(out.input_ids.size(), 1);
  }
  out.attention_mask.assign(out.input_ids.size(), 1);
  return out;
}

BertEncoding BertTokenizer::encode(const std::string& text_a, int64_t max_length) const {
  LUNA_CHECK(max_length == 0 || max_length >= 2, "BertTokenizer: max_length ", max_length,
             " leaves no room for [CLS] and [SEP] (use 0 for no truncation, or at least 2)");
  std::vector<int64_t> a = text_to_ids(text_a);
  if (max_length > 0 && int64_t(a.size()) > max_length - 2) a.resize(size_t(max_length - 2));
  return build(std::move(a), nullptr);
}

BertEncoding BertTokenizer::encode(const std::string& text_a, const std::string& text_b, int64_t max_length) const {
  // transformers drops an empty second text (Python treats "" as no pair).
  if (text_b.empty()) return encode(text_a, max_length);
  LUNA_CHECK(max_length == 0 || max_length >= 3, "BertTokenizer: max_length ", max_length,
             " leaves no room for [CLS] and two [SEP] (use 0 for no truncation, or at least 3)");
  std::vector<int64_t> a = text_to_ids(text_a), b = text_to_ids(text_b);
  if (max_length > 0) truncate_pair(a, b, size_t(max_length - 3));
  return build(std::move(a), &b);
}

BertBatch BertTokenizer::pad(const std::vector<BertEncoding>& encodings) const {
  size_t longest = 0;
  for (const BertEncoding& e : encodings) longest = std::max(longest, e.input_ids.size());
  const size_t B = encodings.size();
  std::vector<int64_t> ids(B * longest, pad_id_), types(B * longest, 0), mask(B * longest, 0);  // (B, N)
  for (size_t row = 0; row < B; ++row) {
    const BertEncoding& e = encodings[row];
    LUNA_CHECK(e.token_type_ids.size() == e.input_ids.size() && e.attention_mask.size() == e.input_ids.size(),
               "BertTokenizer::pad: encoding ", row, " has ", e.input_ids.size(), " ids but ", e.token_type_ids.size(),
               " token types and ", e.attention_mask.size(), " mask entries");
    std::copy(e.input_ids.begin(), e.input_ids.end(), ids.begin() + row * longest);
    std::copy(e.token_type_ids.begin(), e.token_type_ids.end(), types.begin() + row * longest);
    std::copy(e.attention_mask.begin(), e.attention_mask.end(), mask.begin() + row * longest);
  }
  const Dims shape{int64_t(B), int64_t(longest)};
  return {tensor(ids, shape), tensor(types, shape), tensor(mask, shape)};
}

BertBatch BertTokenizer::batch_encode(const std::vector<std::string>& texts, int64_t max_length) const {
  std::vector<BertEncoding> encodings;
  for (const std::string& t : texts) encodings.push_back(encode(t, max_length));
  return pad(encodings);
}

BertBatch BertTokenizer::batch_encode(const std::vector<std::pair<std::string, std::string>>& pairs,
                                      int64_t max_length) const {
  std::vector<BertEncoding> encodings;
  for (const auto& [a, b] : pairs) encodings.push_back(encode(a, b, max_length));
  return pad(encodings);
}

}  // namespace luna::models
