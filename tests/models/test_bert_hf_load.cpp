// luna's save_pretrained output read by transformers: a small BertForSequenceClassification
// (the fixture's, with two tensors changed) saved by luna is loaded with transformers'
// from_pretrained (scripts/make_bert_fixture.py hf-logits, float64) and its logits must equal
// luna's to max|a-b|/max|b| <= 1e-4. Needs build/venv-torch with transformers (or
// LUNA_TORCH_PYTHON); without it the test WARNs and checks nothing. Importing torch takes ~10 s,
// which is why this lives apart from test_bert.cpp, and why the answer is cached in the build tree
// for byte-identical checkpoints.
#include "bert_test_util.h"

#include <luna/models/bert.h>

#include <cstdio>

using namespace luna;
using luna::testing::bert::relative_error;
using luna::testing::bert::ScratchDir;
using luna::testing::bert::small_model_dir;

TEST_CASE("BERT checkpoints saved by luna load in transformers", "[bert]") {
  const auto python = testing::bert::torch_python();
  if (!python || !testing::bert::python_has(*python, "transformers, safetensors")) {
    WARN("skipped: no build/venv-torch with transformers (LUNA_TORCH_PYTHON overrides the interpreter); "
         "nothing is checked about loading luna's checkpoints in transformers");
    return;
  }
  auto model = models::BertForSequenceClassification::from_pretrained(small_model_dir());
  {
    // Different weights than the fixture's, so HF cannot pass by reading the fixture.
    NoGradGuard no_grad;
    model->classifier->bias.add_(1.5);
    model->bert->encoder->layer->at<models::BertLayerImpl>(1).output->dense->weight.mul_(0.5);
  }
  // Kept in the build tree: when luna writes the same bytes again and the script is unchanged,
  // transformers' answer is the one stored, and the ~10 s of importing torch is skipped.
  const std::filesystem::path cache = testing::bert::executable_dir() / "bert_hf_load";
  const std::filesystem::path script = testing::bert::repo_root() / "scripts" / "make_bert_fixture.py";
  const std::filesystem::path hf_logits = cache / "hf_logits.safetensors";
  ScratchDir dir("hf_load");
  model->save_pretrained(dir.file("model"));
  const SafetensorsFile ref = load_safetensors((testing::bert::fixtures() / "reference.safetensors").string());
  bool cached = std::filesystem::exists(hf_logits) &&
                std::filesystem::last_write_time(script) < std::filesystem::last_write_time(hf_logits);
  for (const char* file : {"config.json", "model.safetensors"}) {
    const std::filesystem::path previous = cache / "model" / file;
    cached = cached && std::filesystem::exists(previous) &&
             testing::bert::read_text(previous.string()) == testing::bert::read_text(dir.file("model") + "/" + file);
  }
  if (!cached) {
    std::filesystem::remove_all(cache);
    std::filesystem::create_directories(cache);
    std::filesystem::copy(dir.file("model"), cache / "model", std::filesystem::copy_options::recursive);
    save_safetensors((cache / "inputs.safetensors").string(), {{"input_ids", ref.at("input_ids")},
                                                               {"attention_mask", ref.at("attention_mask")},
                                                               {"token_type_ids", ref.at("token_type_ids")}});
    const std::string args = "hf-logits --model " + testing::bert::shell_quote((cache / "model").string()) +
                             " --inputs " + testing::bert::shell_quote((cache / "inputs.safetensors").string()) +
                             " --out " + testing::bert::shell_quote(hf_logits.string());
    const bool ok = testing::bert::run_fixture_script(*python, args, (cache / "log.txt").string());
    INFO(testing::bert::read_text((cache / "log.txt").string()));
    REQUIRE(ok);
  }
  NoGradGuard no_grad;
  const Tensor logits = model(ref.at("input_ids"), ref.at("attention_mask"), ref.at("token_type_ids"));
  const double error = relative_error(logits, load_safetensors(hf_logits.string()).at("logits"));
  std::printf("luna-saved BERT loaded by transformers%s: logits max|a-b|/max|b| = %.2e\n",
              cached ? " (answer cached for these exact bytes)" : "", error);
  CHECK(error <= 1e-4);
  CHECK(relative_error(logits, ref.at("logits")) > 1e-2);  // the edit changed the model
}

