#!/usr/bin/env python3
"""Reference pixels for luna's Pathfinder raster primitives (data/pathfinder_raster.h), made with
PIL exactly as the original generator (snakes2.py) made them: ImageDraw.line on a mode 'F' canvas,
Image.resize(LANCZOS) of 'F' and 'L' images, and the marker disk of draw_circle. The dilation of
the paddle mask (cv2.dilate in the original) is done here with numpy, as a max over the disk.

Needs PIL and numpy (Debian: python3-pil python3-numpy). Run from the repository root:
    /usr/bin/python3 scripts/make_pathfinder_raster_fixture.py
Writes tests/fixtures/pathfinder_raster/reference.json.
"""
import json
import math
import os

import numpy as np
from PIL import Image, ImageDraw

OUT = os.path.join("tests", "fixtures", "pathfinder_raster", "reference.json")


def translate_coord(coord, orientation, dist):
    return [int(np.ceil(coord[0] + float(dist) * np.sin(orientation))),
            int(np.ceil(coord[1] + float(dist) * np.cos(orientation)))]


def disk(radius):
    k = np.zeros((2 * radius + 1, 2 * radius + 1))
    y, x = np.ogrid[-radius:radius + 1, -radius:radius + 1]
    k[x ** 2 + y ** 2 <= radius ** 2] = 1
    return k


def dilate(image, kernel):
    """cv2.dilate for a kernel whose centre is set: max over the kernel cells inside the image."""
    image = np.asarray(image, dtype=np.float64)
    h, w = image.shape
    cy, cx = kernel.shape[0] // 2, kernel.shape[1] // 2
    out = np.full((h, w), -np.inf)
    for ky in range(kernel.shape[0]):
        for kx in range(kernel.shape[1]):
            if kernel[ky, kx] == 0:
                continue
            oy, ox = ky - cy, kx - cx
            out[max(0, -oy):min(h, h - oy), max(0, -ox):min(w, w - ox)] = np.maximum(
                out[max(0, -oy):min(h, h - oy), max(0, -ox):min(w, w - ox)],
                image[max(0, oy):min(h, h + oy), max(0, ox):min(w, w + ox)])
    return out


def paddle(length, thickness, margin, aa, orientation):
    """draw_line_n_mask's patches (before placement): blown line, line, mask bytes."""
    r = length + int(np.ceil(thickness)) + margin
    blown_size = r * 2 * aa + 1
    centre = r * aa
    head = translate_coord([centre, centre], orientation, length * aa)
    blown = Image.new('F', (blown_size, blown_size), 'black')
    ImageDraw.Draw(blown).line([(centre, centre), (head[1], head[0])], fill='white',
                               width=int(np.round(thickness * aa)))
    size = r * 2 + 1
    line = np.array(blown.resize((size, size), resample=Image.LANCZOS))  # float32, before / 255
    mask_blown = dilate(np.array(blown), disk(margin * aa)).astype(np.uint8)
    mask = np.array(Image.fromarray(mask_blown).resize((size, size), resample=Image.LANCZOS))
    blown_pixels = np.argwhere(np.array(blown) != 0)
    return {
        "length": length, "thickness": thickness, "margin": margin, "aa": aa,
        "orientation": orientation,
        "blown_size": blown_size, "blown_on": blown_pixels.ravel().tolist(),  # (row, col) pairs set to 255
        "size": size,
        "line": [float("%.9g" % v) for v in line.ravel()],
        "mask": mask.ravel().tolist(),
    }


def marker(window, coordinate, radius, aa):
    """draw_circle: the disk as 0/255 bytes (scipy imresize's bytescale of 0/1), LANCZOS down."""
    big = np.zeros((window * aa, window * aa), np.uint8)
    y, x = np.ogrid[-coordinate[0] * aa:(window - coordinate[0]) * aa,
                    -coordinate[1] * aa:(window - coordinate[1]) * aa]
    big[x ** 2 + y ** 2 <= (radius * aa) ** 2] = 255
    small = np.array(Image.fromarray(big).resize((window, window), resample=Image.LANCZOS))
    on = np.argwhere(small != 0)
    return {"window": window, "row": coordinate[0], "col": coordinate[1], "radius": radius, "aa": aa,
            "nonzero": [[int(r), int(c), int(small[r, c])] for r, c in on]}


def main():
    degrees = [0, 15, 37, 45, 90, 128, 180, -30, -90, -135, -163, -1]
    odd = [math.atan2(2, 3), math.atan2(-3, -1)]  # orientations extend_snake produces
    paddles = []
    for deg in degrees:
        paddles.append(paddle(2, 0.5, 1, 2, deg * np.pi / 180))
    for o in odd:
        paddles.append(paddle(2, 0.5, 1, 2, o))
    for margin in (2, 3):
        for deg in [0, 37, 90, 128, -45, -100, -163] :
            paddles.append(paddle(5, 1.5, margin, 2, deg * np.pi / 180))
        paddles.append(paddle(5, 1.5, margin, 2, odd[0]))

    rng = np.random.RandomState(5)
    float_in = rng.uniform(-1, 2, size=(17, 23)).astype(np.float32)
    float_out = np.array(Image.fromarray(float_in, mode='F').resize((9, 7), resample=Image.LANCZOS))
    byte_in = rng.randint(0, 256, size=(41, 30)).astype(np.uint8)
    byte_out = np.array(Image.fromarray(byte_in).resize((21, 13), resample=Image.LANCZOS))
    resizes = {
        "float_in": [float("%.9g" % v) for v in float_in.ravel()], "float_in_shape": [17, 23],
        "float_out": [float("%.9g" % v) for v in float_out.ravel()], "float_out_shape": [7, 9],
        "byte_in": byte_in.ravel().tolist(), "byte_in_shape": [41, 30],
        "byte_out": byte_out.ravel().tolist(), "byte_out_shape": [13, 21],
    }
    markers = [marker(32, [15, 16], 1.5, 2), marker(32, [0, 31], 1.5, 2), marker(128, [60, 71], 3, 2)]
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        json.dump({"pil_version": Image.__version__, "paddles": paddles, "resizes": resizes,
                   "markers": markers}, f, separators=(",", ":"))
    print("wrote", OUT, os.path.getsize(OUT), "bytes")


if __name__ == "__main__":
    main()
