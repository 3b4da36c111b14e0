"""Cheap numpy noise fields for the generated landscapes (no scipy)."""

from __future__ import annotations

import numpy as np


def smooth_noise(rng: np.random.Generator, shape: tuple[int, int], cell: float) -> np.ndarray:
    """A smooth float32 field (bilinear interpolation of a random grid with spacing ``cell`` pixels), ~N(0,
    0.6)."""
    rows, cols = shape
    cell = max(float(cell), 1.0)
    grid = rng.standard_normal((int(rows / cell) + 3, int(cols / cell) + 3)).astype(np.float32)
    oy, ox = rng.random(2)
    y = np.arange(rows, dtype=np.float32) / cell + oy
    x = np.arange(cols, dtype=np.float32) / cell + ox
    y0 = y.astype(np.int64)
    x0 = x.astype(np.int64)
    fy = y - y0
    fx = x - x0
    fy = (fy * fy * (3 - 2 * fy))[:, None]
    fx = (fx * fx * (3 - 2 * fx))[None, :]
    a = grid[y0] * (1 - fy) + grid[y0 + 1] * fy
    return (a[:, x0] * (1 - fx) + a[:, x0 + 1] * fx).astype(np.float32)


def blocky_noise(rng: np.random.Generator, shape: tuple[int, int], cell: float) -> np.ndarray:
    """A piecewise-constant float32 N(0, 1) field on cells of ``cell`` pixels (stands in for parcels)."""
    rows, cols = shape
    cell = max(float(cell), 1.0)
    grid = rng.standard_normal((int(rows / cell) + 2, int(cols / cell) + 2)).astype(np.float32)
    oy, ox = rng.random(2)
    yi = (np.arange(rows) / cell + oy).astype(np.int64)
    xi = (np.arange(cols) / cell + ox).astype(np.int64)
    return grid[yi][:, xi]
