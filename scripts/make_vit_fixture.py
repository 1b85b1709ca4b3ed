#!/usr/bin/env python3
"""ViT parity fixtures for tests/models/test_vit*.cpp, made with Hugging Face transformers and timm.

  make_vit_fixture.py [--out tests/fixtures/vit]   the small committed fixtures:
      small/            HF ViTForImageClassification (image 32, patch 8, 2 layers, width 32, 4 heads,
                        MLP 64, 10 labels), written by save_pretrained
      small_reference.safetensors   pixels and logits at 32x32, and with interpolate_pos_encoding=True
                        at 48x40, 24x24 and 37x29 (a size that leaves pixels past the last patch)
      tiny_gray/        HF model with 1 channel, qkv_bias=False, hidden_act "relu", image 16,
                        patch 4, 1 layer, width 24, 3 heads, 2 labels (HF then writes no id2label)
      tiny_gray_reference.safetensors
      timm_small/       timm VisionTransformer (same sizes as small/, timm names, fused qkv) saved
                        with timm's save_for_hf: timm's config.json and model.safetensors
      timm_small_reference.safetensors
  make_vit_fixture.py --b16 DIR    the ViT-B/16 shape (224, patch 16, 12 layers, width 768, 12 heads,
                        MLP 3072, 1000 labels) into DIR/model/ and DIR/reference.safetensors; the
                        test runs this at test time into the build tree (350 MB, never committed).
  make_vit_fixture.py hf-logits --model DIR --images FILE --out FILE
                        reads a checkpoint folder (e.g. one luna saved: config.json,
                        model.safetensors, preprocessor_config.json) with transformers'
                        AutoImageProcessor and ViTForImageClassification (strict: a missing or
                        unexpected tensor is an error), runs the uint8 images (B, C, H, W) under
                        "images" in FILE through both (the model in float64) and writes
                        "pixel_values" and "logits" to --out, with the processor's class and the
                        model's id2label in its metadata. The images must already be of the
                        processor's size, so its resize has nothing to do. Needs transformers
                        with Pillow or torchvision (AutoImageProcessor's PIL or torchvision backend).

Parameters are redrawn at unit scale (LayerNorm weights 1 + 0.2·N(0,1), Linear weights
N(0, 1/fan_in), biases 0.1·N(0,1), cls/positions 0.5·N(0,1)) instead of HF's 0.02 init, so the
attention rows are far from uniform and a wrong detail changes the logits. Logits come from the
float32 models in eval mode. Run it with the venv that has torch, transformers and timm
(build/venv-torch: pip install transformers safetensors timm torchvision).
"""
import argparse
import os

import torch
from safetensors.torch import save_file


def redraw_(model, generator):
    """Unit-scale parameters (see the module docstring), deterministic from `generator`."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=generator, dtype=p.dtype)
            leaf = name.rsplit(".", 1)[-1]
            norm = any(key in name for key in ("layernorm", "norm1", "norm2", "norm."))
            if name.endswith("cls_token") or "position_embeddings" in name or name.endswith("pos_embed"):
                p.copy_(0.5 * noise)
            elif norm and leaf == "weight":
                p.copy_(1.0 + 0.2 * noise)
            elif leaf == "bias":
                p.copy_(0.1 * noise)
            else:  # Linear [out, in] or conv [D, C, p, p]: fan_in = everything but dim 0
                fan_in = p[0].numel()
                p.copy_(noise / fan_in ** 0.5)


def pixels(generator, batch, channels, height, width):
    return (torch.rand((batch, channels, height, width), generator=generator, dtype=torch.float64) * 2 - 1).float()


def hf_model(generator, **config):
    from transformers import ViTConfig, ViTForImageClassification
    model = ViTForImageClassification(ViTConfig(**config)).eval()
    redraw_(model, generator)
    return model


def write_hf(out, name, model, generator, sizes):
    """save_pretrained into out/name/ and the logits at each (height, width) into out/name_reference."""
    model.save_pretrained(os.path.join(out, name))
    config = model.config
    reference = {}
    with torch.no_grad():
        for height, width in sizes:
            x = pixels(generator, 2, config.num_channels, height, width)
            native = height == config.image_size and width == config.image_size
            logits = model(pixel_values=x, interpolate_pos_encoding=not native).logits
            reference[f"pixels_{height}x{width}"] = x.contiguous()
            reference[f"logits_{height}x{width}"] = logits.contiguous()
    save_file(reference, os.path.join(out, name + "_reference.safetensors"))
    print(f"{name}: {sum(p.numel() for p in model.parameters())} parameters, sizes {sizes}")


def write_timm(out, generator):
    import timm
    from timm.models._hub import save_for_hf
    args = dict(img_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=4, mlp_ratio=2.0, num_classes=10)
    model = timm.create_model("vit_tiny_patch16_224", pretrained=False, **args).eval()
    redraw_(model, generator)
    directory = os.path.join(out, "timm_small")
    save_for_hf(model, directory, model_args=args, safe_serialization=True)
    x = pixels(generator, 2, 3, 32, 32)
    with torch.no_grad():
        logits = model(x)
    save_file({"pixels_32x32": x.contiguous(), "logits_32x32": logits.contiguous()},
              os.path.join(out, "timm_small_reference.safetensors"))
    print(f"timm_small: timm {timm.__version__}, {sum(p.numel() for p in model.parameters())} parameters")


def hf_logits(model_dir, images_path, out_path):
    """transformers' reading of a checkpoint folder: pixel_values and float64 logits (see the docstring)."""
    import json

    from safetensors.torch import load_file
    from transformers import AutoImageProcessor, ViTForImageClassification

    images = load_file(images_path)["images"]  # (B, C, H, W) uint8
    if images.dtype != torch.uint8 or images.dim() != 4:
        raise SystemExit(f"{images_path}: expected uint8 images (B, C, H, W), got {images.dtype} {tuple(images.shape)}")
    processor = AutoImageProcessor.from_pretrained(model_dir)
    size = (processor.size["height"], processor.size["width"])
    if tuple(images.shape[2:]) != size:
        raise SystemExit(f"{images_path}: images are {tuple(images.shape[2:])}, the processor resizes to {size}")
    # A list of (C, H, W) arrays, channels first said explicitly (a 1-channel image is ambiguous).
    batch = [image.numpy() for image in images]
    pixel_values = processor(images=batch, return_tensors="pt", input_data_format="channels_first")["pixel_values"]
    model, info = ViTForImageClassification.from_pretrained(model_dir, output_loading_info=True)
    problems = {key: value for key, value in info.items() if value}
    if problems:
        raise SystemExit(f"{model_dir}: transformers did not load the weights cleanly: {problems}")
    model = model.double().eval()
    with torch.no_grad():
        logits = model(pixel_values=pixel_values.double()).logits
    id2label = [model.config.id2label[i] for i in range(model.config.num_labels)]
    save_file({"pixel_values": pixel_values.contiguous(), "logits": logits.contiguous()}, out_path,
              metadata={"processor": type(processor).__name__, "id2label": json.dumps(id2label)})
    print(f"{type(processor).__name__}: pixel_values {tuple(pixel_values.shape)} {pixel_values.dtype}; "
          f"logits {tuple(logits.shape)}; id2label {id2label}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", nargs="?", default="fixtures", choices=["fixtures", "hf-logits"])
    parser.add_argument("--out", help="fixtures: the folder (default tests/fixtures/vit); hf-logits: the output file")
    parser.add_argument("--b16", metavar="DIR", help="write the ViT-B/16-shaped fixture into DIR instead")
    parser.add_argument("--model", metavar="DIR", help="hf-logits: the checkpoint folder")
    parser.add_argument("--images", metavar="FILE", help="hf-logits: safetensors with uint8 \"images\" (B, C, H, W)")
    args = parser.parse_args()
    torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))

    if args.mode == "hf-logits":
        if not (args.model and args.images and args.out):
            parser.error("hf-logits needs --model, --images and --out")
        hf_logits(args.model, args.images, args.out)
        return

    if args.b16:
        generator = torch.Generator().manual_seed(16)
        model = hf_model(generator, num_labels=1000)  # ViTConfig's defaults are the B/16 shape
        os.makedirs(args.b16, exist_ok=True)
        model.save_pretrained(os.path.join(args.b16, "model"))
        x = pixels(generator, 2, 3, 224, 224)
        with torch.no_grad():
            logits = model(pixel_values=x).logits
        save_file({"pixels": x.contiguous(), "logits": logits.contiguous()},
                  os.path.join(args.b16, "reference.safetensors"))
        return

    out = os.path.abspath(args.out or os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "vit"))
    os.makedirs(out, exist_ok=True)
    generator = torch.Generator().manual_seed(6)
    small = hf_model(generator, image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2,
                     num_attention_heads=4, intermediate_size=64, num_labels=10)
    write_hf(out, "small", small, generator, [(32, 32), (48, 40), (24, 24), (37, 29)])
    gray = hf_model(generator, image_size=16, patch_size=4, num_channels=1, hidden_size=24, num_hidden_layers=1,
                    num_attention_heads=3, intermediate_size=40, qkv_bias=False, hidden_act="relu",
                    layer_norm_eps=1e-6)
    write_hf(out, "tiny_gray", gray, generator, [(16, 16)])
    write_timm(out, generator)


if __name__ == "__main__":
    main()
