// BertTokenizer: ids equal to Hugging Face's BertTokenizer (transformers 5, tokenizers backend) on
// the cases of tests/fixtures/bert/tokenizer_cases.json (scripts/make_bert_fixture.py): sentences
// with accents, punctuation, CJK, Hangul, unknown words, control and zero-width characters, special
// tokens written in the text, pairs, truncation, 300 random Unicode strings, under five option
// sets (cased/uncased, strip_accents on/off, CJK splitting off). Then the vocab.txt and
// tokenizer_config.json readers' errors.
#include "bert_test_util.h"

#include <luna/models/bert_tokenizer.h>

#include <nlohmann/json.hpp>

#include <map>

using namespace luna;
using luna::testing::values;
using luna::testing::bert::require_error;
using luna::testing::bert::ScratchDir;
using luna::testing::bert::small_model_dir;

namespace {

std::string vocab_path() { return small_model_dir() + "/vocab.txt"; }

models::BertTokenizerOptions options_from(const nlohmann::json& options) {
  models::BertTokenizerOptions out;
  if (options.contains("do_lower_case")) out.do_lower_case(options["do_lower_case"].get<bool>());
  if (options.contains("strip_accents")) out.strip_accents(options["strip_accents"].get<bool>());
  if (options.contains("tokenize_chinese_chars")) out.tokenize_chinese_chars(options["tokenize_chinese_chars"].get<bool>());
  return out;
}

// Printable form of a test text: non-ASCII and control characters as \u escapes.
std::string escaped(const std::string& text) { return nlohmann::json(text).dump(-1, ' ', true); }

}  // namespace

TEST_CASE("BertTokenizer gives Hugging Face's ids on every fixture case", "[bert][tokenizer]") {
  const nlohmann::json fixture =
      nlohmann::json::parse(testing::bert::read_text((testing::bert::fixtures() / "tokenizer_cases.json").string()));
  const auto& cases = fixture.at("cases");
  REQUIRE(cases.size() >= 400);
  std::map<std::string, models::BertTokenizer> tokenizers;
  size_t checked = 0, with_unknown = 0, pairs = 0, truncated = 0;
  for (const auto& c : cases) {
    const std::string key = c.at("options").dump();
    auto it = tokenizers.find(key);
    if (it == tokenizers.end()) it = tokenizers.emplace(key, models::BertTokenizer(vocab_path(), options_from(c["options"]))).first;
    const models::BertTokenizer& tokenizer = it->second;
    const std::string text = c.at("text").get<std::string>();
    const int64_t max_length = c.at("max_length").get<int64_t>();
    const models::BertEncoding got = c.at("text_pair").is_null()
                                         ? tokenizer.encode(text, max_length)
                                         : tokenizer.encode(text, c["text_pair"].get<std::string>(), max_length);
    const auto want_ids = c.at("input_ids").get<std::vector<int64_t>>();
    std::string got_tokens;
    for (int64_t id : got.input_ids) got_tokens += tokenizer.convert_id_to_token(id) + " ";
    INFO("case " << checked << " options " << key << " text " << escaped(text) << " pair "
                 << (c["text_pair"].is_null() ? "-" : escaped(c["text_pair"].get<std::string>())) << " max_length "
                 << max_length << "\n luna tokens: " << got_tokens);
    REQUIRE(got.input_ids == want_ids);
    REQUIRE(got.token_type_ids == c.at("token_type_ids").get<std::vector<int64_t>>());
    REQUIRE(got.attention_mask == c.at("attention_mask").get<std::vector<int64_t>>());
    ++checked;
    with_unknown += std::count(want_ids.begin(), want_ids.end(), tokenizer.unk_token_id()) > 0;
    pairs += !c["text_pair"].is_null();
    truncated += max_length > 0;
  }
  // The cases exercise what they claim to: unknown words, pairs and truncation all occur.
  CHECK(checked == cases.size());
  CHECK(with_unknown > 50);
  CHECK(pairs > 50);
  CHECK(truncated >= 8);
}

TEST_CASE("BertTokenizer basics: WordPiece, specials, truncation, batches", "[bert][tokenizer]") {
  const models::BertTokenizer tokenizer = models::BertTokenizer::from_pretrained(small_model_dir());
  CHECK(tokenizer.vocab_size() == 213);
  CHECK(tokenizer.pad_token_id() == 0);
  CHECK(tokenizer.unk_token_id() == 1);
  CHECK(tokenizer.cls_token_id() == 2);
  CHECK(tokenizer.sep_token_id() == 3);
  CHECK(tokenizer.options().model_max_length() == 40);  // from tokenizer_config.json
  CHECK(tokenizer.tokenize("Unbelievable jumping!") ==
        std::vector<std::string>{"un", "##believ", "##able", "jump", "##ing", "!"});
  CHECK(tokenizer.tokenize("Café") == std::vector<std::string>{"cafe"});
  CHECK(tokenizer.tokenize("[SEP]hello[MASK]") == std::vector<std::string>{"[SEP]", "hello", "[MASK]"});
  // 100 code points form a word; 101 are one [UNK].
  CHECK(tokenizer.tokenize(std::string(100, 'b')).size() == 100);
  CHECK(tokenizer.tokenize(std::string(101, 'b')) == std::vector<std::string>{"[UNK]"});
  // A word with an unmatchable stretch is a single [UNK], not partial pieces.
  CHECK(tokenizer.tokenize("helloЖ world") == std::vector<std::string>{"[UNK]", "world"});

  const models::BertEncoding single = tokenizer.encode("the quick brown fox", 4);
  CHECK(single.input_ids == std::vector<int64_t>{2, tokenizer.token_to_id("the").value(),
                                                 tokenizer.token_to_id("quick").value(), 3});
  const models::BertEncoding pair = tokenizer.encode("a b c d e f g", "h i j", 7);
  CHECK(pair.token_type_ids == std::vector<int64_t>{0, 0, 0, 0, 1, 1, 1});
  require_error([&] { tokenizer.encode("x", 1); }, {"max_length 1", "[CLS] and [SEP]"});
  require_error([&] { tokenizer.encode("x", "y", 2); }, {"max_length 2"});

  const models::BertBatch batch = tokenizer.batch_encode(std::vector<std::string>{"hello world", "the"});
  REQUIRE(batch.input_ids.sizes() == Dims{2, 4});
  CHECK(values(batch.input_ids) == std::vector<double>{2, 151, 152, 3, 2, 143, 3, 0});
  CHECK(values(batch.attention_mask) == std::vector<double>{1, 1, 1, 1, 1, 1, 1, 0});
  CHECK(values(batch.token_type_ids) == std::vector<double>{0, 0, 0, 0, 0, 0, 0, 0});
  const models::BertBatch pairs =
      tokenizer.batch_encode(std::vector<std::pair<std::string, std::string>>{{"hello", "world"}});
  CHECK(values(pairs.token_type_ids) == std::vector<double>{0, 0, 0, 1, 1});
}

TEST_CASE("BertTokenizer rejects invalid UTF-8 text, naming the byte", "[bert][tokenizer]") {
  const models::BertTokenizer tokenizer(vocab_path());
  require_error([&] { tokenizer.encode("ab\xff"); }, {"invalid UTF-8 lead byte 0xFF at byte 2"});
  require_error([&] { tokenizer.encode("\xc3"); }, {"truncated UTF-8 sequence at byte 0"});
  require_error([&] { tokenizer.encode("\xc3\x28"); }, {"invalid UTF-8 continuation byte 0x28 at byte 1"});
  require_error([&] { tokenizer.encode("\xe0\x80\xaf"); }, {"overlong"});
  require_error([&] { tokenizer.encode("\xed\xa0\x80"); }, {"U+D800", "not a Unicode scalar value"});
  require_error([&] { tokenizer.encode("\xf4\x90\x80\x80"); }, {"U+110000"});
}

TEST_CASE("vocab.txt errors name the file, the line and the token", "[bert][tokenizer]") {
  ScratchDir dir("vocab");
  const std::string path = dir.file("vocab.txt");
  auto load = [&](const std::string& text) {
    testing::bert::write_text(path, text);
    return models::BertTokenizer(path);
  };
  const std::string specials = "[PAD]\n[UNK]\n[CLS]\n[SEP]\n";
  require_error([&] { load(""); }, {path, "empty vocabulary"});
  require_error([&] { load(specials + "a\n\nb\n"); }, {path + ":6", "empty line"});
  require_error([&] { load(specials + "hello\nworld\nhello\n"); }, {path + ":7", "\"hello\" is already on line 5"});
  require_error([&] { load(specials + "ok\nbad\xff\n"); }, {path + ":6", "invalid UTF-8"});
  require_error([&] { load("[PAD]\n[CLS]\n[SEP]\nhello\n"); }, {path, "unknown token \"[UNK]\" is not in the vocabulary"});
  require_error([&] { load("[PAD]\n[UNK]\n[SEP]\n"); }, {path, "\"[CLS]\""});
  require_error([&] { models::BertTokenizer(dir.file("missing.txt")); }, {dir.file("missing.txt"), "cannot open"});
  require_error([&] { models::BertTokenizer::from_pretrained(dir.file("nowhere")); }, {"vocab.txt", "not found"});

  // \r\n and \r line breaks read like \n; a last line without a break counts; [MASK] is optional.
  const models::BertTokenizer crlf = load("[PAD]\r\n[UNK]\r[CLS]\r\n[SEP]\nhello");
  CHECK(crlf.vocab_size() == 5);
  CHECK(crlf.token_to_id("hello") == 4);
  CHECK(crlf.encode("hello there").input_ids == std::vector<int64_t>{2, 4, 1, 3});
  CHECK(models::parse_vocab("a\nb\n", "mem") == std::vector<std::string>{"a", "b"});
}

TEST_CASE("tokenizer_config.json is read strictly", "[bert][tokenizer]") {
  ScratchDir dir("tokenizer_config");
  testing::bert::write_text(dir.file("vocab.txt"), testing::bert::read_text(vocab_path()));
  const std::string config = dir.file("tokenizer_config.json");
  testing::bert::write_text(config, R"({"do_lower_case": "yes"})");
  require_error([&] { models::BertTokenizer::from_pretrained(dir.str()); },
                {config, "\"do_lower_case\" must be true or false"});
  testing::bert::write_text(config, R"({"strip_accents": 1})");
  require_error([&] { models::BertTokenizer::from_pretrained(dir.str()); }, {config, "\"strip_accents\""});
  testing::bert::write_text(config, R"({"unk_token": 5})");
  require_error([&] { models::BertTokenizer::from_pretrained(dir.str()); }, {config, "\"unk_token\""});
  testing::bert::write_text(config, R"({"unk_token": "[NOPE]"})");
  require_error([&] { models::BertTokenizer::from_pretrained(dir.str()); }, {"\"[NOPE]\" is not in the vocabulary"});
  testing::bert::write_text(config, "{oops");
  require_error([&] { models::BertTokenizer::from_pretrained(dir.str()); }, {config, "not valid JSON"});

  // AddedToken objects, null strip_accents and HF's huge "no limit" model_max_length are understood.
  testing::bert::write_text(config, R"({"do_lower_case": false, "strip_accents": null,
      "unk_token": {"content": "[UNK]", "lstrip": false}, "model_max_length": 1000000000000000019884624838656})");
  const models::BertTokenizer cased = models::BertTokenizer::from_pretrained(dir.str());
  CHECK_FALSE(cased.options().do_lower_case());
  CHECK(cased.options().model_max_length() == 0);
  CHECK(cased.tokenize("Hello") == std::vector<std::string>{"Hello"});
}

TEST_CASE("BertTokenizer reads transformers 5's tokenizer.json when there is no vocab.txt", "[bert][tokenizer]") {
  const nlohmann::json fixture =
      nlohmann::json::parse(testing::bert::read_text((testing::bert::fixtures() / "tokenizer_cases.json").string()));
  const std::string json_dir = (testing::bert::fixtures() / "tokenizer_json").string();
  // Only tokenizer.json, no tokenizer_config.json: the options must come from its normalizer.
  ScratchDir cased_only("tokenizer_json_only");
  testing::bert::write_text(cased_only.file("tokenizer.json"),
                            testing::bert::read_text(json_dir + "/cased_strip/tokenizer.json"));
  const models::BertTokenizer uncased = models::BertTokenizer::from_pretrained(json_dir + "/uncased");
  const models::BertTokenizer cased = models::BertTokenizer::from_pretrained(cased_only.str());
  CHECK(uncased.vocab_size() == 213);
  CHECK(uncased.options().do_lower_case());
  CHECK_FALSE(cased.options().do_lower_case());
  CHECK(cased.options().strip_accents() == std::optional<bool>(true));
  const std::string uncased_key = nlohmann::json::object().dump();
  const std::string cased_key = nlohmann::json({{"do_lower_case", false}, {"strip_accents", true}}).dump();
  size_t checked = 0;
  for (const auto& c : fixture.at("cases")) {
    const std::string key = c.at("options").dump();
    const models::BertTokenizer* tokenizer = key == uncased_key ? &uncased : key == cased_key ? &cased : nullptr;
    if (tokenizer == nullptr) continue;
    const std::string text = c.at("text").get<std::string>();
    const int64_t max_length = c.at("max_length").get<int64_t>();
    INFO("options " << key << " text " << escaped(text));
    const models::BertEncoding got = c.at("text_pair").is_null()
                                         ? tokenizer->encode(text, max_length)
                                         : tokenizer->encode(text, c["text_pair"].get<std::string>(), max_length);
    REQUIRE(got.input_ids == c.at("input_ids").get<std::vector<int64_t>>());
    ++checked;
  }
  CHECK(checked > 150);
}

TEST_CASE("tokenizer.json errors name the file and the key", "[bert][tokenizer]") {
  const std::string good =
      testing::bert::read_text((testing::bert::fixtures() / "tokenizer_json" / "uncased" / "tokenizer.json").string());
  auto edited = [&](const std::function<void(nlohmann::json&)>& edit) {
    nlohmann::json j = nlohmann::json::parse(good);
    edit(j);
    return j.dump();
  };
  auto parse = [](const std::string& text) { return models::parse_tokenizer_json(text, "dir/tokenizer.json"); };
  CHECK(parse(good).tokens.size() == 213);
  require_error([&] { parse(edited([](auto& j) { j["model"]["type"] = "BPE"; })); },
                {"dir/tokenizer.json", "\"model.type\" is \"BPE\""});
  require_error([&] { parse(edited([](auto& j) { j["model"]["vocab"]["hello"] = 3; })); },
                {"dir/tokenizer.json", "gives the id 3 to both"});
  require_error([&] { parse(edited([](auto& j) { j["model"]["vocab"]["hello"] = 500; })); },
                {"\"hello\" the id 500", "0..212"});
  require_error([&] { parse(edited([](auto& j) { j["model"]["vocab"]["hello"] = -1; })); }, {"\"hello\" the id -1"});
  require_error([&] { parse(edited([](auto& j) { j["model"]["continuing_subword_prefix"] = "@@"; })); },
                {"continuing_subword_prefix"});
  require_error([&] { parse(edited([](auto& j) { j["normalizer"] = nullptr; })); }, {"\"normalizer\" is missing"});
  require_error([&] { parse(edited([](auto& j) { j["normalizer"]["type"] = "NFKC"; })); },
                {"\"normalizer.type\" is \"NFKC\""});
  require_error([&] { parse(edited([](auto& j) { j["normalizer"]["lowercase"] = "yes"; })); },
                {"\"normalizer.lowercase\" must be true, false or null"});
  require_error([&] { parse(edited([](auto& j) { j["normalizer"]["clean_text"] = false; })); }, {"clean_text"});
  require_error([&] { parse(edited([](auto& j) { j["pre_tokenizer"]["type"] = "Whitespace"; })); },
                {"\"pre_tokenizer.type\" is \"Whitespace\""});
  require_error([&] { parse(edited([](auto& j) { j.erase("model"); })); }, {"\"model\" is missing"});
  require_error([&] { parse("[1, 2"); }, {"dir/tokenizer.json", "not valid JSON"});
  ScratchDir empty("no_vocab");
  require_error([&] { models::BertTokenizer::from_pretrained(empty.str()); }, {"vocab.txt", "no tokenizer.json"});
}
