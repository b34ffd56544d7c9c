"""PNG compression levels: encode time and size per level, to pick the worker's default by figures.

Two kinds of 512x512 images: a tiny-model output (noise: worst case for zlib) and a smooth synthetic scene
(gradients and shapes, closer to what real SD images compress like). Each level's time is the median of
``--repeats`` encodes, with the same text chunks the worker writes.

    python benchmarks/png_levels.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from ablerefusal.worker.engine.images import encode_png

PARAMS = "a prompt\nNegative prompt: blur\nSteps: 20, Sampler: Euler a, CFG scale: 7.5, Seed: 1, Size: 512x512"


def noise_image() -> Image.Image:
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 256, (512, 512, 3), dtype=np.uint8), "RGB")


def scene_image() -> Image.Image:
    y, x = np.mgrid[0:512, 0:512].astype(np.float32)
    base = np.stack([x / 2, y / 2, (x + y) / 4], axis=-1)
    grain = np.random.default_rng(1).normal(0, 6, base.shape)  # sensor-like grain, as in photographic outputs
    image = Image.fromarray(np.clip(base + grain, 0, 255).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(image)
    for i in range(12):
        draw.ellipse((30 * i, 20 * i, 30 * i + 120, 20 * i + 90), fill=(200 - 10 * i, 40 + 15 * i, 90))
    return image.filter(ImageFilter.GaussianBlur(1.2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    images = {"noise (tiny model)": noise_image(), "smooth scene": scene_image()}
    raw = 512 * 512 * 3
    print(f"{'image':<20} {'level':>5} {'ms/encode':>10} {'KiB':>8} {'ratio':>6}")
    for label, image in images.items():
        for level in range(10):
            times = []
            for _ in range(args.repeats):
                start = time.perf_counter()
                data = encode_png(image, PARAMS, {"seed": 1}, level)
                times.append(time.perf_counter() - start)
            ms = statistics.median(times) * 1000
            print(f"{label:<20} {level:>5} {ms:>10.1f} {len(data) / 1024:>8.0f} {len(data) / raw:>6.3f}")


if __name__ == "__main__":
    main()
