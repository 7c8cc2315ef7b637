#!/usr/bin/env python3
"""Reference outputs of Keras 3's image augmentation layers, for tests/test_augment.cpp.

Each transform is written in numpy float64 from the Keras source (keras-team/keras,
keras/src/layers/preprocessing/image_preprocessing/ and keras/src/backend/{numpy,tensorflow}/
image.py), not from parafine's C++:
  - RandomRotation / RandomZoom / RandomTranslation build a transform [a0 a1 a2 b0 b1 b2 c0 c1]
    (BaseImagePreprocessingLayer._compute_affine_matrix, RandomZoom._get_zoom_matrix,
    RandomTranslation._get_translation_matrix) and call backend.image.affine_transform:
    the (a, b) swap, the index einsum and map_coordinates(order=1, fill_mode="reflect") with
    TensorFlow's _linear_indices_and_weights and _reflect_index_fixer;
  - RandomContrast._adjust_contrast, then clip to value_range (0, 255);
  - RandomCrop._random_crop: images[h:h+S, w:w+S];
  - RandomFlip("horizontal"): numpy.flip on the width axis.
Parameters are fixed (angle, zoom, shift, contrast factor, crop offset), not drawn: the C++
test applies the same transform with the same numbers. The input images are random floats in
[0, 255] that are exact in float32.

Writes one JSON file: {"cases": [{name, steps: [{kind, ...params}], height, width, input,
output}]} with input [H_in, W_in, 3] and output [H, W, 3] flattened.
"""
import argparse
import itertools
import json
import math

import numpy as np


# --- keras/src/backend/tensorflow/image.py: map_coordinates' helpers ---
def _mirror_index_fixer(index, size):
    s = size - 1  # Half-wavelength of triangular wave
    return np.abs((index + s) % (2 * s) - s)


def _reflect_index_fixer(index, size):
    return np.floor_divide(_mirror_index_fixer(2 * index + 1, 2 * size + 1) - 1, 2)


def _linear_indices_and_weights(coordinate):
    lower = np.floor(coordinate)
    upper_weight = coordinate - lower
    lower_weight = 1 - upper_weight
    index = lower.astype(np.int64)
    return [(index, lower_weight), (index + 1, upper_weight)]


def map_coordinates_reflect_linear(inputs, coordinates):
    """map_coordinates(inputs, coordinates, order=1, fill_mode="reflect")."""
    per_dim = [_linear_indices_and_weights(c) for c in coordinates]
    out = np.zeros(coordinates[0].shape, np.float64)
    for items in itertools.product(*per_dim):
        indices, weights = zip(*items)
        fixed = [_reflect_index_fixer(i, size) for i, size in zip(indices, inputs.shape)]
        w = np.ones_like(out)
        for wi in weights:
            w = w * wi
        out += inputs[tuple(fixed)] * w
    return out


# --- keras/src/backend/numpy/image.py: affine_transform (one image, channels_last) ---
def affine_transform(image, transform):
    transform = np.array(transform, np.float64).copy()
    indices = np.stack(np.meshgrid(*[np.arange(s) for s in image.shape], indexing="ij"), -1)
    a0, a2, b1, b2 = transform[0], transform[2], transform[4], transform[5]
    transform[0], transform[2], transform[4], transform[5] = b1, b2, a0, a2
    transform = np.reshape(np.pad(transform, [0, 1], constant_values=1), (3, 3))
    offset = np.pad(transform[0:2, 2].copy(), [0, 1])
    transform[0:2, 2] = 0
    coordinates = np.einsum("hwcj,jk->hwck", indices, transform)  # [H,W,C,3]
    coordinates = np.moveaxis(coordinates, -1, 0) + offset[:, None, None, None]
    return map_coordinates_reflect_linear(image, coordinates)


# --- BaseImagePreprocessingLayer._compute_affine_matrix (RandomRotation's use of it) ---
def rotation_matrix(angle_degrees, height, width):
    angle = angle_degrees * (math.pi / 180.0)
    shear_x = shear_y = math.tan(0.0)
    translate_x = translate_y = 0.0
    scale = 1.0
    cx = 0.5 * (width - 1)
    cy = 0.5 * (height - 1)
    cos_theta, sin_theta = math.cos(angle), math.sin(angle)
    a0 = scale * (cos_theta + shear_x * sin_theta)
    a1 = scale * (-sin_theta + shear_x * cos_theta)
    a2 = translate_x + cx - cx * a0 - cy * a1
    b0 = scale * (shear_y * cos_theta + sin_theta)
    b1 = scale * (shear_y * -sin_theta + cos_theta)
    b2 = translate_y + cy - cx * b0 - cy * b1
    return [a0, a1, a2, b0, b1, b2, 0.0, 0.0]


# --- RandomZoom._get_zoom_matrix with width_zoom = height_zoom (width_factor None) ---
def zoom_matrix(zoom, height, width):
    zx = zy = zoom
    x_offset = ((width - 1.0) / 2.0) * (1.0 - zx)
    y_offset = ((height - 1.0) / 2.0) * (1.0 - zy)
    return [zx, 0.0, x_offset, 0.0, zy, y_offset, 0.0, 0.0]


# --- RandomTranslation._get_translation_matrix (translations = [dx, dy] in pixels) ---
def translation_matrix(shift_y, shift_x):
    return [1.0, 0.0, -shift_x, 0.0, 1.0, -shift_y, 0.0, 0.0]


# --- RandomContrast.transform_images ---
def contrast(image, factor):
    mean = np.mean(np.mean(image, axis=-3, keepdims=True), axis=-2, keepdims=True)
    return np.clip((image - mean) * factor + mean, 0, 255)


def apply(image, step):
    h, w = image.shape[0], image.shape[1]
    kind = step["kind"]
    if kind == "rotation":
        return affine_transform(image, rotation_matrix(step["angle_degrees"], h, w))
    if kind == "zoom":
        return affine_transform(image, zoom_matrix(step["zoom"], h, w))
    if kind == "translation":
        return affine_transform(image, translation_matrix(step["shift_y"], step["shift_x"]))
    if kind == "contrast":
        return contrast(image, step["contrast"])
    if kind == "flip":
        return np.flip(image, axis=-2)
    if kind == "crop":
        s, y, x = step["size"], step["crop_y"], step["crop_x"]
        return image[y:y + s, x:x + s, :]
    raise ValueError(kind)


CASES = [
    # name, input height, width, steps
    ("rotation_30_odd", 17, 17, [{"kind": "rotation", "angle_degrees": 30.0}]),
    ("rotation_135_reflect", 16, 16, [{"kind": "rotation", "angle_degrees": 135.0}]),
    ("rotation_-250_nonsquare", 11, 18, [{"kind": "rotation", "angle_degrees": -250.0}]),
    ("rotation_-7.3_224", 224, 224, [{"kind": "rotation", "angle_degrees": -7.3}]),
    ("zoom_in_0.55", 17, 17, [{"kind": "zoom", "zoom": 0.55}]),
    ("zoom_out_1.95_reflect", 16, 16, [{"kind": "zoom", "zoom": 1.95}]),
    ("zoom_out_1.3_nonsquare", 9, 14, [{"kind": "zoom", "zoom": 1.3}]),
    ("translation_reflect", 16, 16, [{"kind": "translation", "shift_y": 7.3, "shift_x": -12.6}]),
    ("translation_full", 15, 15, [{"kind": "translation", "shift_y": -14.9, "shift_x": 14.2}]),
    ("contrast_1.8_clips", 13, 13, [{"kind": "contrast", "contrast": 1.8}]),
    ("contrast_1.05", 12, 12, [{"kind": "contrast", "contrast": 1.05}]),
    ("flip_odd", 7, 7, [{"kind": "flip"}]),
    ("crop_19_to_16", 19, 19, [{"kind": "crop", "size": 16, "crop_y": 2, "crop_x": 3}]),
    ("zoom_translation_contrast", 14, 14, [
        {"kind": "zoom", "zoom": 1.2},
        {"kind": "translation", "shift_y": 3.3, "shift_x": -2.1},
        {"kind": "contrast", "contrast": 1.4},
    ]),
    ("all_in_order", 21, 21, [
        {"kind": "crop", "size": 17, "crop_y": 4, "crop_x": 1},
        {"kind": "flip"},
        {"kind": "rotation", "angle_degrees": 21.5},
        {"kind": "zoom", "zoom": 0.85},
        {"kind": "translation", "shift_y": -1.7, "shift_x": 2.4},
        {"kind": "contrast", "contrast": 1.25},
    ]),
]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--seed", type=int, default=15)
    args = parser.parse_args()
    rng = np.random.RandomState(args.seed)
    cases = []
    for name, h, w, steps in CASES:
        image = rng.uniform(0, 255, size=(h, w, 3)).astype(np.float32).astype(np.float64)
        out = image
        for step in steps:
            out = apply(out, step)
        cases.append({"name": name, "steps": steps, "height": h, "width": w,
                      "out_height": out.shape[0], "out_width": out.shape[1],
                      "input": image.ravel().tolist(), "output": out.ravel().tolist()})
    with open(args.out, "w") as f:
        json.dump({"cases": cases}, f)
    print(f"wrote {len(cases)} cases to {args.out}")


if __name__ == "__main__":
    main()
