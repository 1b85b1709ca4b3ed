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


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "vit"))
    parser.add_argument("--b16", metavar="DIR", help="write the ViT-B/16-shaped fixture into DIR instead")
    args = parser.parse_args()
    torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))

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

    out = os.path.abspath(args.out)
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
