#!/usr/bin/env python3
"""PIL bilinear-resize fixture for data/image_resize.cpp (tests/data/test_images.cpp).

Builds a few deterministic 8-bit test images (gray and RGB; downscale, upscale, non-square, one axis
only, same size, both of Pillow 13's pass orders), resizes each with Pillow's Image.resize(size, Image.Resampling.BILINEAR) (what
Hugging Face's ViTImageProcessor calls), and writes tests/fixtures/resize/pil_bilinear.safetensors.gz:
a gzip'd safetensors file with, per case, "<case>.input" and "<case>.output", uint8 (C, H, W). The
metadata records the Pillow version. luna must reproduce every output byte.

Usage: python3 -m venv build/venv-pil && build/venv-pil/bin/pip install pillow numpy
       build/venv-pil/bin/python scripts/make_resize_fixture.py
"""
import gzip
import json
import os
import struct

import numpy as np
import PIL
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "fixtures", "resize", "pil_bilinear.safetensors.gz")

# (name, channels, (in_height, in_width), (out_height, out_width), pattern)
CASES = [
    ("gray_28x28_to_20x20", 1, (28, 28), (20, 20), "texture"),    # Fashion-MNIST shrunk
    ("rgb_32x32_to_224x224", 3, (32, 32), (224, 224), "smooth"),  # CIFAR-10 for a ViT
    ("rgb_53x37_to_16x16", 3, (53, 37), (16, 16), "texture"),     # non-square, odd ratios
    ("gray_40x30_to_25x60", 1, (40, 30), (25, 60), "texture"),    # shrink one axis, grow the other (vertical first)
    ("gray_24x24_to_10x24", 1, (24, 24), (10, 24), "texture"),    # vertical pass only
    ("rgb_24x24_to_24x10", 3, (24, 24), (24, 10), "texture"),     # horizontal pass only
    ("rgb_61x97_to_5x7", 3, (61, 97), (5, 7), "texture"),         # strong antialiasing
    ("rgb_97x40_to_20x30", 3, (97, 40), (20, 30), "texture"),     # Pillow >= 13: vertical pass first
    ("gray_1x1_to_3x5", 1, (1, 1), (3, 5), "texture"),            # a single pixel
    ("gray_16x16_to_28x28_edges", 1, (16, 16), (28, 28), "checker"),  # hard 0/255 edges
    ("rgb_19x19_same", 3, (19, 19), (19, 19), "texture"),         # same size: a copy
]


def pattern(kind, channels, height, width):
    """Deterministic (C, H, W) uint8 images: no RNG, so any numpy gives the same bytes."""
    c, y, x = np.meshgrid(np.arange(channels), np.arange(height), np.arange(width), indexing="ij")
    if kind == "texture":  # high-frequency content, both extremes present
        v = (x * x * 7 + y * 13 + c * 101 + (x * y * 31) % 97 + (x ^ y) * 29) % 256
        v[:, ::5, ::3] = 255
        v[:, 1::7, 2::4] = 0
    elif kind == "smooth":  # gradients and a few edges: compresses well once upscaled
        v = (x * 255 // max(width - 1, 1) + y * 3 + c * 60) % 256
        v[:, height // 3: height // 2, :] = 255 - v[:, height // 3: height // 2, :]
        v[:, :, width // 4] = 0
    else:  # checker: 4x4 squares of 0 and 255
        v = np.where(((x // 4) + (y // 4) + c) % 2 == 0, 255, 0)
    return v.astype(np.uint8)


def pil_resize(planar, out_height, out_width):
    channels = planar.shape[0]
    image = Image.fromarray(planar[0] if channels == 1 else np.ascontiguousarray(planar.transpose(1, 2, 0)))
    assert image.mode == ("L" if channels == 1 else "RGB")
    resized = np.asarray(image.resize((out_width, out_height), Image.Resampling.BILINEAR))
    return resized[None] if channels == 1 else np.ascontiguousarray(resized.transpose(2, 0, 1))


def safetensors_bytes(tensors, metadata):
    header, offset = {"__metadata__": metadata}, 0
    for name, array in tensors:
        header[name] = {"dtype": "U8", "shape": list(array.shape), "data_offsets": [offset, offset + array.nbytes]}
        offset += array.nbytes
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + b"".join(array.tobytes() for _, array in tensors)


def main():
    tensors = []
    for name, channels, (in_h, in_w), (out_h, out_w), kind in CASES:
        image = pattern(kind, channels, in_h, in_w)
        resized = pil_resize(image, out_h, out_w)
        assert resized.shape == (channels, out_h, out_w), (name, resized.shape)
        tensors += [(name + ".input", image), (name + ".output", resized)]
    metadata = {"generator": "scripts/make_resize_fixture.py", "pillow": PIL.__version__,
                "cases": ",".join(case[0] for case in CASES)}
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    # mtime=0: the same images give the same bytes.
    with open(OUT, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=9, mtime=0) as out:
        out.write(safetensors_bytes(tensors, metadata))
    print(f"{OUT}: {len(CASES)} cases, {os.path.getsize(OUT)} bytes (Pillow {PIL.__version__})")


if __name__ == "__main__":
    main()
