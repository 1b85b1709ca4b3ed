// Hugging Face's ViTImageProcessor settings (`preprocessor_config.json` next to config.json):
// resize to `size`, rescale by 1/255, normalise with image_mean / image_std per channel. Read so a
// checkpoint's images are prepared as the model was trained; written by save_pretrained so HF's
// AutoImageProcessor reads luna's checkpoints back.
//
//   ViTImageProcessor processor = ViTImageProcessor::from_pretrained(dir, model->config());
//   Tensor pixel_values = processor.normalize(images_u8);  // (B, C, S, S) float32
#pragma once
#include <string>
#include <string_view>
#include <vector>

#include <luna/core/tensor.h>
#include <luna/models/vit_config.h>

namespace luna::models {

struct ViTImageProcessor {
  int64_t height = 224;  // HF's size {"height", "width"} (or one int for both)
  int64_t width = 224;
  bool do_resize = true;
  bool do_rescale = true;
  double rescale_factor = 1.0 / 255.0;
  bool do_normalize = true;
  std::vector<double> image_mean = {0.5, 0.5, 0.5};  // one per channel
  std::vector<double> image_std = {0.5, 0.5, 0.5};
  // PIL resample filter: 2 = bilinear (ViTImageProcessor's default), 3 = bicubic. luna resizes
  // bilinearly only; others are accepted with a warning (see from_pretrained).
  int64_t resample = 2;

  // HF's defaults for a model: size = config.image_size, mean = std = 0.5 for each channel.
  static ViTImageProcessor defaults_for(const ViTConfig& config);

  // `dir`/preprocessor_config.json when it exists (keys of other processors are ignored; a known
  // key of the wrong type or value is an error naming the file and the key); otherwise, for a timm
  // checkpoint, pretrained_cfg.mean/std of its config.json; otherwise defaults_for(config). The
  // result is checked against the config (one mean/std per channel). A resample other than
  // bilinear prints a note on stderr: luna's resize is bilinear.
  static ViTImageProcessor from_pretrained(const std::string& dir, const ViTConfig& config);
  // Parses preprocessor_config.json text; `source` names it in errors.
  static ViTImageProcessor from_json_string(std::string_view text, const std::string& source,
                                            const ViTConfig& config);

  // The JSON HF writes (image_processor_type ViTImageProcessor, size {height, width}, ...).
  std::string to_json_string() const;
  // Writes `dir`/preprocessor_config.json atomically.
  void save_pretrained(const std::string& dir) const;

  // The square side images are resized to: height == width is required (luna's ViT is square).
  int64_t image_size() const;

  // uint8 images (B, C, H, W), already of the processor's size -> float32 pixel values
  // (B, C, H, W): x·rescale_factor (when do_rescale), then (x − mean[c]) / std[c] (when
  // do_normalize). Errors name a wrong dtype, rank or channel count.
  Tensor normalize(const Tensor& images) const;
};

}  // namespace luna::models
