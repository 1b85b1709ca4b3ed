// luna's ViT checkpoint folder read by transformers: a small random model saved as apps/train_vit
// saves it (model->save_pretrained + ViTImageProcessor::save_pretrained: config.json,
// model.safetensors, preprocessor_config.json) is loaded with AutoImageProcessor and
// ViTForImageClassification (scripts/make_vit_fixture.py hf-logits, float64), and the same uint8
// images must give HF's pixel_values and logits: luna's normalize() and forward to max|a-b|/max|b|
// <= 1e-5 and 1e-4. Needs build/venv-torch with transformers and Pillow or torchvision (or
// LUNA_TORCH_PYTHON); without them the test WARNs and checks nothing. transformers' answer is
// cached in the build tree for byte-identical inputs, since importing torch takes ~10 s.
#include "vit_test_util.h"

#include <cstdio>
#include <cstdlib>

#include <nlohmann/json.hpp>

#include <luna/models/vit_image_processor.h>

using namespace luna;
using namespace luna::testing::vit;

namespace {

// Unit-scale parameters, as scripts/make_vit_fixture.py's redraw_ (HF's 0.02 init leaves the
// attention nearly uniform, where a wrong detail hardly moves the logits).
void redraw(const models::ViTForImageClassification& model, uint64_t seed) {
  Generator generator(seed);
  NoGradGuard no_grad;
  for (const auto& [name, p] : model->named_parameters()) {
    const Tensor noise = randn(p.sizes(), TensorOptions(p.dtype()), &generator);
    const std::string leaf = name.substr(name.rfind('.') + 1);
    if (name.ends_with("cls_token") || name.find("position_embeddings") != std::string::npos) {
      p.copy_(noise * 0.5);
    } else if (name.find("layernorm") != std::string::npos && leaf == "weight") {
      p.copy_(noise * 0.2 + 1.0);
    } else if (leaf == "bias") {
      p.copy_(noise * 0.1);
    } else {  // Linear (out, in) or patch (D, C, p, p): fan_in is all but dim 0
      p.copy_(noise * (1.0 / std::sqrt(double(p.numel() / p.size(0)))));
    }
  }
}

// Saves `model` and `processor` as apps/train_vit does, has transformers read the folder and run
// `images`, and compares its pixel_values and logits with luna's.
void check_in_transformers(const std::string& name, const models::ViTForImageClassification& model,
                           const models::ViTImageProcessor& processor, const Tensor& images) {
  const std::string python = torch_python();
  // AutoImageProcessor needs torchvision (its default backend) or Pillow.
  if (!can_import(python, "torch,transformers,safetensors") ||
      !(can_import(python, "torchvision") || can_import(python, "PIL"))) {
    WARN("transformers with Pillow or torchvision is not importable by "
         << python
         << " (set LUNA_TORCH_PYTHON, or pip install transformers pillow into build/venv-torch): loading luna's ViT "
            "checkpoints in transformers NOT checked");
    return;
  }
  ScratchDir scratch("hf_load_" + name);
  const fs::path saved = scratch.path() / "model";
  model->save_pretrained(saved.string());
  processor.save_pretrained(saved.string());
  save_safetensors((scratch.path() / "images.safetensors").string(), {{"images", images}});

  // Kept in the build tree: when luna writes the same bytes and the script and interpreter are
  // unchanged, transformers' stored answer is used and the torch import is skipped.
  const fs::path script = repo_root() / "scripts" / "make_vit_fixture.py";
  const fs::path cache = build_dir() / "vit_hf_load" / name;
  const fs::path answer = cache / "hf.safetensors";
  const std::string stamp = python + "\n" + std::to_string(std::hash<std::string>{}(read_file(script)));
  const std::vector<fs::path> inputs = {"model/config.json", "model/model.safetensors",
                                        "model/preprocessor_config.json", "images.safetensors"};
  bool cached = fs::exists(answer) && fs::exists(cache / "stamp") && read_file(cache / "stamp") == stamp;
  for (const fs::path& file : inputs)
    cached = cached && fs::exists(cache / file) && read_file(cache / file) == read_file(scratch.path() / file);
  if (!cached) {
    fs::remove_all(cache);
    fs::create_directories(cache / "model");
    for (const fs::path& file : inputs) fs::copy_file(scratch.path() / file, cache / file);
    const fs::path log = cache / "log.txt";
    const std::string command = "OMP_NUM_THREADS=2 " + shell_quote(python) + " " + shell_quote(script.string()) +
                                " hf-logits --model " + shell_quote((cache / "model").string()) + " --images " +
                                shell_quote((cache / "images.safetensors").string()) + " --out " +
                                shell_quote(answer.string()) + " >" + shell_quote(log.string()) + " 2>&1";
    const int status = std::system(command.c_str());
    INFO("command: " << command << "\nlog: " << read_file(log));
    REQUIRE(status == 0);
    write_file(cache / "stamp", stamp);
  }
  const SafetensorsFile hf = load_safetensors(answer.string());

  NoGradGuard no_grad;
  const Tensor pixels = processor.normalize(images);  // (B, C, S, S)
  const Tensor logits = model(pixels);               // (B, num_labels)
  const double pixel_error = relative_error(pixels, hf.at("pixel_values"));
  const double logit_error = relative_error(logits, hf.at("logits"));
  std::printf("luna-saved ViT %s loaded by transformers (%s)%s: pixel_values max|a-b|/max|b| = %.2e, logits = %.2e\n",
              name.c_str(), hf.metadata.at("processor").c_str(), cached ? ", answer cached for these exact bytes" : "",
              pixel_error, logit_error);
  CHECK(pixel_error <= 1e-5);
  CHECK(logit_error <= 1e-4);

  // HF names the classes as luna's config does (LABEL_i when it has no names).
  std::vector<std::string> labels = model->config().id2label;
  for (int64_t i = int64_t(labels.size()); i < model->config().num_labels; ++i)
    labels.push_back("LABEL_" + std::to_string(i));
  CHECK(nlohmann::json::parse(hf.metadata.at("id2label")).get<std::vector<std::string>>() == labels);
}

// uint8 images (B, C, S, S) with both extremes present.
Tensor random_images(int64_t batch, int64_t channels, int64_t size, uint64_t seed) {
  Generator generator(seed);
  Tensor images = randint(0, 256, {batch, channels, size, size}, TensorOptions(kUInt8), &generator);
  images.data_ptr<uint8_t>()[0] = 0;
  images.data_ptr<uint8_t>()[1] = 255;
  return images;
}

}  // namespace

TEST_CASE("vit: a 1-channel checkpoint saved by luna gives the same logits in transformers", "[vit][hf]") {
  models::ViTConfig config;  // as apps/train_vit builds it for fmnist
  config.image_size = 16;
  config.patch_size = 4;
  config.num_channels = 1;
  config.hidden_size = 32;
  config.num_hidden_layers = 2;
  config.num_attention_heads = 4;
  config.intermediate_size = 64;
  config.num_labels = 3;
  config.id2label = {"circle", "square", "T-shirt/top"};
  config.validate("the test config");
  const models::ViTForImageClassification model(config);
  redraw(model, 11);
  model->eval();
  check_in_transformers("gray", model, models::ViTImageProcessor::defaults_for(config), random_images(4, 1, 16, 12));
}

TEST_CASE("vit: a 3-channel checkpoint with its own mean/std gives the same pixels and logits in transformers",
          "[vit][hf]") {
  models::ViTConfig config;
  config.image_size = 24;
  config.patch_size = 8;
  config.num_channels = 3;
  config.hidden_size = 48;
  config.num_hidden_layers = 2;
  config.num_attention_heads = 4;
  config.intermediate_size = 96;
  config.num_labels = 5;  // no names: HF's LABEL_0 ... LABEL_4
  config.validate("the test config");
  const models::ViTForImageClassification model(config);
  redraw(model, 21);
  model->eval();
  models::ViTImageProcessor processor = models::ViTImageProcessor::defaults_for(config);
  processor.image_mean = {0.485, 0.456, 0.406};  // ImageNet's, not HF's default 0.5
  processor.image_std = {0.229, 0.224, 0.225};
  const Tensor images = random_images(3, 3, 24, 22);
  check_in_transformers("rgb", model, processor, images);
  // The custom mean/std matter: the defaults would give clearly different pixels.
  NoGradGuard no_grad;
  const Tensor defaults = models::ViTImageProcessor::defaults_for(config).normalize(images);
  CHECK(relative_error(defaults, processor.normalize(images)) > 1e-2);
}
