// ViTImageProcessor: HF's preprocessor_config.json read and written, and pixel normalisation.
#include <luna/models/vit_image_processor.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include <nlohmann/json.hpp>

#include <luna/core/atomic_file.h>
#include <luna/core/error.h>
#include <luna/ops/elementwise.h>
#include <luna/ops/factories.h>

namespace luna::models {

namespace {

using json = nlohmann::json;
namespace fs = std::filesystem;

constexpr const char* kFileName = "preprocessor_config.json";

std::string read_text(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  LUNA_CHECK(file.good(), path, ": cannot open");
  std::ostringstream text;
  text << file.rdbuf();
  LUNA_CHECK(!file.bad(), path, ": reading failed");
  return text.str();
}

json parse_object(std::string_view text, const std::string& source) {
  json root;
  try {
    root = json::parse(text.begin(), text.end());
  } catch (const json::exception& e) {
    LUNA_FAIL(source, ": not valid JSON (", e.what(), ")");
  }
  LUNA_CHECK(root.is_object(), source, ": expected a JSON object, got ", root.type_name());
  return root;
}

bool get_bool(const json& root, const char* key, bool fallback, const std::string& source) {
  const auto it = root.find(key);
  if (it == root.end() || it->is_null()) return fallback;
  LUNA_CHECK(it->is_boolean(), source, ": key \"", key, "\" must be true or false, got ", it->dump());
  return it->get<bool>();
}

double get_number(const json& root, const char* key, double fallback, const std::string& source) {
  const auto it = root.find(key);
  if (it == root.end() || it->is_null()) return fallback;
  LUNA_CHECK(it->is_number() && std::isfinite(it->get<double>()), source, ": key \"", key,
             "\" must be a finite number, got ", it->dump());
  return it->get<double>();
}

int64_t positive_integer(const json& value, const std::string& key, const std::string& source) {
  LUNA_CHECK(value.is_number_integer() && value.get<int64_t>() > 0 && value.get<int64_t>() <= (int64_t(1) << 20),
             source, ": key \"", key, "\" must be a positive integer (at most 2^20), got ", value.dump());
  return value.get<int64_t>();
}

// A mean or std list (or one number for every channel) with `channels` entries.
std::vector<double> per_channel(const json& value, const std::string& key, int64_t channels,
                                const std::string& source) {
  std::vector<double> out;
  if (value.is_number()) {
    out.assign(size_t(channels), value.get<double>());
  } else {
    LUNA_CHECK(value.is_array(), source, ": key \"", key, "\" must be a number or a list of numbers, got ", value.dump());
    for (const json& entry : value) {
      LUNA_CHECK(entry.is_number(), source, ": key \"", key, "\" must hold numbers, got ", entry.dump());
      out.push_back(entry.get<double>());
    }
  }
  LUNA_CHECK(int64_t(out.size()) == channels, source, ": key \"", key, "\" has ", out.size(),
             " entries but the model has num_channels = ", channels);
  for (double v : out) LUNA_CHECK(std::isfinite(v), source, ": key \"", key, "\" holds a non-finite value");
  return out;
}

void check_std(const std::vector<double>& std_values, const std::string& source) {
  for (double v : std_values)
    LUNA_CHECK(v > 0, source, ": key \"image_std\" must hold positive values, got ", v);
}

}  // namespace

ViTImageProcessor ViTImageProcessor::defaults_for(const ViTConfig& config) {
  ViTImageProcessor p;
  p.height = p.width = config.image_size;
  p.image_mean.assign(size_t(config.num_channels), 0.5);
  p.image_std.assign(size_t(config.num_channels), 0.5);
  return p;
}

ViTImageProcessor ViTImageProcessor::from_json_string(std::string_view text, const std::string& source,
                                                      const ViTConfig& config) {
  const json root = parse_object(text, source);
  ViTImageProcessor p = defaults_for(config);
  p.do_resize = get_bool(root, "do_resize", p.do_resize, source);
  p.do_rescale = get_bool(root, "do_rescale", p.do_rescale, source);
  p.do_normalize = get_bool(root, "do_normalize", p.do_normalize, source);
  p.rescale_factor = get_number(root, "rescale_factor", p.rescale_factor, source);
  LUNA_CHECK(p.rescale_factor > 0, source, ": key \"rescale_factor\" must be positive, got ", p.rescale_factor);
  if (const auto it = root.find("size"); it != root.end() && !it->is_null()) {
    if (it->is_object()) {
      // HF also writes {"shortest_edge": n} for other processors; ViT's is height/width.
      LUNA_CHECK(it->contains("height") && it->contains("width"), source,
                 ": key \"size\" must be {\"height\": h, \"width\": w} (or one integer), got ", it->dump());
      p.height = positive_integer(it->at("height"), "size.height", source);
      p.width = positive_integer(it->at("width"), "size.width", source);
    } else {
      p.height = p.width = positive_integer(*it, "size", source);
    }
  }
  if (const auto it = root.find("image_mean"); it != root.end() && !it->is_null())
    p.image_mean = per_channel(*it, "image_mean", config.num_channels, source);
  if (const auto it = root.find("image_std"); it != root.end() && !it->is_null())
    p.image_std = per_channel(*it, "image_std", config.num_channels, source);
  check_std(p.image_std, source);
  if (const auto it = root.find("resample"); it != root.end() && !it->is_null()) {
    LUNA_CHECK(it->is_number_integer() && it->get<int64_t>() >= 0 && it->get<int64_t>() <= 5, source,
               ": key \"resample\" must be a PIL filter number 0-5, got ", it->dump());
    p.resample = it->get<int64_t>();
  }
  return p;
}

ViTImageProcessor ViTImageProcessor::from_pretrained(const std::string& dir, const ViTConfig& config) {
  const std::string path = (fs::path(dir) / kFileName).string();
  ViTImageProcessor p = defaults_for(config);
  if (fs::exists(path)) {
    p = from_json_string(read_text(path), path, config);
  } else if (const std::string config_path = (fs::path(dir) / "config.json").string(); fs::exists(config_path)) {
    // timm keeps its normalisation in config.json's pretrained_cfg.
    const json root = parse_object(read_text(config_path), config_path);
    if (const auto cfg = root.find("pretrained_cfg"); cfg != root.end() && cfg->is_object()) {
      if (const auto mean = cfg->find("mean"); mean != cfg->end())
        p.image_mean = per_channel(*mean, "pretrained_cfg.mean", config.num_channels, config_path);
      if (const auto std_values = cfg->find("std"); std_values != cfg->end())
        p.image_std = per_channel(*std_values, "pretrained_cfg.std", config.num_channels, config_path);
      check_std(p.image_std, config_path);
      if (const auto interpolation = cfg->find("interpolation");
          interpolation != cfg->end() && interpolation->is_string() && interpolation->get<std::string>() == "bicubic")
        p.resample = 3;
    }
  }
  if (p.resample != 2 && p.do_resize)
    std::cerr << "note: " << dir << " asks for PIL resample filter " << p.resample
              << " (3 = bicubic); luna resizes bilinearly (filter 2), so resized images differ slightly\n";
  return p;
}

std::string ViTImageProcessor::to_json_string() const {
  json root;
  root["do_normalize"] = do_normalize;
  root["do_rescale"] = do_rescale;
  root["do_resize"] = do_resize;
  root["image_mean"] = image_mean;
  root["image_processor_type"] = "ViTImageProcessor";
  root["image_std"] = image_std;
  root["resample"] = resample;
  root["rescale_factor"] = rescale_factor;
  root["size"] = {{"height", height}, {"width", width}};
  return root.dump(2) + "\n";
}

void ViTImageProcessor::save_pretrained(const std::string& dir) const {
  std::error_code error;
  fs::create_directories(dir, error);
  LUNA_CHECK(!error, dir, ": cannot create the folder (", error.message(), ")");
  write_file_atomically((fs::path(dir) / kFileName).string(), to_json_string());
}

int64_t ViTImageProcessor::image_size() const {
  LUNA_CHECK(height == width, "ViTImageProcessor: size ", height, "x", width,
             " is not square; luna's ViT takes square images (set size to {\"height\": n, \"width\": n})");
  return height;
}

Tensor ViTImageProcessor::normalize(const Tensor& images) const {
  LUNA_CHECK(images.defined(), "ViTImageProcessor::normalize: expected uint8 images (B, C, H, W), got an undefined tensor");
  LUNA_CHECK(images.dtype() == kUInt8 && images.dim() == 4,
             "ViTImageProcessor::normalize: expected uint8 images (B, C, H, W), got ", images.dtype(), " ",
             images.sizes());
  const int64_t channels = images.size(1);
  LUNA_CHECK(!do_normalize || (int64_t(image_mean.size()) == channels && int64_t(image_std.size()) == channels),
             "ViTImageProcessor::normalize: images have ", channels, " channels but image_mean/image_std have ",
             image_mean.size(), "/", image_std.size(), " entries");
  Tensor pixels = images.to(kFloat32);  // (B, C, H, W)
  if (do_rescale) pixels = pixels * rescale_factor;
  if (!do_normalize) return pixels;
  std::vector<float> mean(image_mean.begin(), image_mean.end()), inverse_std;
  for (double s : image_std) inverse_std.push_back(float(1.0 / s));
  return (pixels - tensor(mean, {1, channels, 1, 1})) * tensor(inverse_std, {1, channels, 1, 1});
}

}  // namespace luna::models
