#!/usr/bin/env python3
"""Seed corpus for tests/fuzz/fuzz_image_decode.cpp: tiny valid images (each < 2 KB) in every format
decode_image accepts, written by Pillow into tests/fuzz/corpus/image_decode/.

Usage: build/venv-pil/bin/python scripts/make_image_decode_corpus.py   (venv: see make_resize_fixture.py)
"""
import io
import os

import numpy as np
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "fuzz", "corpus", "image_decode")


def pixels(height, width, channels):
    y, x, c = np.meshgrid(np.arange(height), np.arange(width), np.arange(channels), indexing="ij")
    return ((x * 50 + y * 23 + c * 80) % 256).astype(np.uint8)


def main():
    os.makedirs(OUT, exist_ok=True)
    gray = Image.fromarray(pixels(4, 5, 1)[:, :, 0])
    rgb = Image.fromarray(pixels(6, 6, 3))
    rgba = Image.fromarray(pixels(3, 4, 4))
    images = {
        "gray_5x4.png": (gray, "PNG", {}),
        "gray_alpha_3x3.png": (Image.fromarray(pixels(3, 3, 2)), "PNG", {}),
        "rgb_6x6.png": (rgb, "PNG", {}),
        "rgba_4x3.png": (rgba, "PNG", {}),
        "palette_6x6.png": (rgb.convert("P", palette=Image.Palette.ADAPTIVE, colors=8), "PNG", {}),
        "gray16_3x2.png": (Image.fromarray((pixels(2, 3, 1)[:, :, 0].astype(np.uint16) * 257)), "PNG", {}),
        "rgb_8x8.jpg": (Image.fromarray(pixels(8, 8, 3)), "JPEG", {"quality": 90}),
        "gray_8x8.jpg": (Image.fromarray(pixels(8, 8, 1)[:, :, 0]), "JPEG", {"quality": 90}),
        "progressive_8x8.jpg": (Image.fromarray(pixels(8, 8, 3)), "JPEG", {"progressive": True}),
        "rgb_5x4.bmp": (Image.fromarray(pixels(4, 5, 3)), "BMP", {}),
        "gray_6x6.gif": (Image.fromarray(pixels(6, 6, 1)[:, :, 0]), "GIF", {}),
        "rgb_4x3.tga": (Image.fromarray(pixels(3, 4, 3)), "TGA", {}),
        "rgb_4x3.ppm": (Image.fromarray(pixels(3, 4, 3)), "PPM", {}),
        "gray_5x4.pgm": (gray, "PPM", {}),
    }
    for name, (image, fmt, options) in images.items():
        buffer = io.BytesIO()
        image.save(buffer, fmt, **options)
        data = buffer.getvalue()
        assert len(data) < 2048, (name, len(data))
        with open(os.path.join(OUT, name), "wb") as out:
            out.write(data)
        print(f"{name}: {len(data)} bytes")


if __name__ == "__main__":
    main()
