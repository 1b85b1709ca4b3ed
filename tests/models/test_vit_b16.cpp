// ViT-B/16-shaped parity with Hugging Face (image 224, patch 16, 12 layers, width 768, 12 heads,
// MLP 3072, 1000 labels): the checkpoint (350 MB) is far too big to commit, so this test runs
// scripts/make_vit_fixture.py --b16 at test time into the build tree, when transformers is
// importable, and compares luna's logits with HF's to relative error <= 1e-4 (max norm). Without
// transformers it prints a WARN and checks nothing. The generated files are reused while the
// script is unchanged (a stamp holds a hash of its text), since importing transformers alone
// takes ~10 s on a busy 2-core machine.
#include "vit_test_util.h"

#include <cstdlib>
#include <iostream>
#include <optional>

using namespace luna;
using namespace luna::testing::vit;

TEST_CASE("vit: ViT-B/16 shape matches Hugging Face (generated at test time)", "[vit][b16]") {
  const std::string python = torch_python();
  if (!can_import(python, "torch,transformers,safetensors")) {
    WARN("transformers is not importable by " << python
                                              << " (set LUNA_TORCH_PYTHON, or pip install transformers into "
                                                 "build/venv-torch): ViT-B/16 parity NOT checked");
    return;
  }
  const fs::path script = repo_root() / "scripts" / "make_vit_fixture.py";
  const fs::path out = build_dir() / "vit_b16_parity";
  const std::string stamp = std::to_string(std::hash<std::string>{}(read_file(script)));
  const bool cached = fs::exists(out / "stamp") && read_file(out / "stamp") == stamp &&
                      fs::exists(out / "reference.safetensors") && fs::exists(out / "model" / "model.safetensors");
  if (!cached) {
    fs::remove_all(out);
    const std::string command = shell_quote(python) + " " + shell_quote(script.string()) + " --b16 " +
                                shell_quote(out.string()) + " >" + shell_quote((build_dir() / "vit_b16_parity.log").string()) +
                                " 2>&1";
    const int status = std::system(command.c_str());
    INFO("command: " << command << "\nlog: " << read_file(build_dir() / "vit_b16_parity.log"));
    REQUIRE(status == 0);
    write_file(out / "stamp", stamp);
  }

  const models::ViTForImageClassification model =
      models::ViTForImageClassification::from_pretrained((out / "model").string());
  model->eval();
  const models::ViTConfig& config = model->config();
  REQUIRE(config.image_size == 224);
  REQUIRE(config.patch_size == 16);
  REQUIRE(config.num_hidden_layers == 12);
  REQUIRE(config.hidden_size == 768);
  REQUIRE(config.num_attention_heads == 12);
  REQUIRE(config.intermediate_size == 3072);
  const SafetensorsFile reference = load_safetensors((out / "reference.safetensors").string());
  NoGradGuard no_grad;
  const Tensor logits = model(reference.at("pixels"));  // (2, 1000)
  const double error = relative_error(logits, reference.at("logits"));
  std::cout << "vit parity ViT-B/16 224x224: relative error " << error << (cached ? " (cached fixture)" : "") << "\n";
  INFO("relative error " << error);
  REQUIRE(error <= 1e-4);
}
