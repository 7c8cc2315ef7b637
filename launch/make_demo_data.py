#!/usr/bin/python3
"""Writes the demo's synthetic image folder: DIR/{train,val}/<class>/<n>.png.

Three classes told apart by colour (with faint stripes whose angle depends on the class) under
noise, so that even a randomly initialised ResNet50's features separate them: a task to show the
two-phase pipeline end to end without downloading anything. PNGs are written with zlib alone.
Usage: make_demo_data.py DIR [--train 300] [--val 150] [--size 32] [--seed 0]
"""
import argparse
import os
import struct
import zlib

import numpy as np

CLASSES = ["amber", "teal", "violet"]


def write_png(path, rgb):
    """rgb: uint8 [h, w, 3]."""
    h, w, _ = rgb.shape
    raw = b"".join(b"\x00" + rgb[y].tobytes() for y in range(h))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b""))


def image(rng, label, size):
    hue = 2 * np.pi * label / len(CLASSES)
    base = 128 + 90 * np.cos(hue + np.array([0.0, 2.094, 4.189]))
    angle, period = np.pi * label / len(CLASSES), 8.0
    y, x = np.mgrid[0:size, 0:size]
    stripes = 10 * np.sin((x * np.cos(angle) + y * np.sin(angle)) * 2 * np.pi / period + rng.uniform(0, 2 * np.pi))
    img = base * rng.uniform(0.9, 1.1) + stripes[..., None] + rng.uniform(-4, 4, (size, size, 3))
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--train", type=int, default=300)
    ap.add_argument("--val", type=int, default=150)
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    rng = np.random.default_rng(a.seed)
    for split, count in (("train", a.train), ("val", a.val)):
        for c in CLASSES:
            os.makedirs(os.path.join(a.dir, split, c), exist_ok=True)
        for i in range(count):
            label = i % len(CLASSES)
            write_png(os.path.join(a.dir, split, CLASSES[label], f"{i:05d}.png"), image(rng, label, a.size))
    print(f"wrote {a.train} training and {a.val} validation images ({a.size}x{a.size}, {len(CLASSES)} classes) to {a.dir}")


if __name__ == "__main__":
    main()
