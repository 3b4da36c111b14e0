"""The reference augmentation of training patches (horizontal flip, Gaussian blur) and the Gaussian blur
itself, from torchvision (also used by the demo's synthetic sensors for their point spread)."""

from __future__ import annotations

import math

import numpy as np

from ..torch_import import import_torch

MIN_SIGMA = 0.05  # pixels: a narrower blur leaves the image as it is


def gaussian_blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """float32 Gaussian blur of the last two axes of a (C, H, W) image: kernel radius ceil(3σ), edges
    reflected."""
    radius = min(math.ceil(3 * sigma), min(image.shape[-2:]) - 1)
    if sigma < MIN_SIGMA or radius < 1:
        return image
    import_torch()  # makes torchvision importable on a CPU-only torch
    from torchvision.transforms.v2 import functional

    tensor = import_torch().from_numpy(np.ascontiguousarray(image, dtype=np.float32))
    size = 2 * radius + 1
    return functional.gaussian_blur(tensor, [size, size], [float(sigma), float(sigma)]).numpy()


def augment(rng: np.random.Generator, img: np.ndarray, *others: np.ndarray) -> tuple[np.ndarray, ...]:
    """The reference augmentation: horizontal flip (p 0.5), Gaussian blur with radius U(0, 1) (p 0.5).
    ``others`` (validity, labels) are flipped with the image and never blurred."""
    if rng.random() < 0.5:
        img = img[:, :, ::-1]
        others = tuple(o[..., ::-1] for o in others)
    if rng.random() < 0.5:
        img = gaussian_blur(np.ascontiguousarray(img), float(rng.random()))
    return (np.ascontiguousarray(img),) + tuple(np.ascontiguousarray(o) for o in others)
