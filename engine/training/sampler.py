"""Patch sampling through GDAL windows (never whole scenes): labelled source patches, with optional
class-aware sampling, a deterministic scene-wise train/validation split, the reference augmentation,
and unlabelled target patches read and normalised exactly as mapping reads them."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from ..classes import NUM_OUTPUTS
from ..errors import FbpError
from ..io.normalize import normalize, resolve_stats
from . import augment as augmentation


class LabelledScene(Protocol):
    """What the sampler needs from a labelled scene (FbpScene, LabelledRaster)."""

    name: str
    width: int
    height: int

    def read(self, x: int, y: int, w: int, h: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]: ...
    def label_window(self, x: int, y: int, w: int, h: int) -> np.ndarray: ...
    def sample(self, max_pixels: int = ...) -> np.ndarray: ...


# ---- class index and regions ------------------------------------------------------------------------

@dataclass
class ClassIndex:
    """Per-cell class pixel counts (rows, cols, 25) of a scene's labels, built once by strips."""

    cell: int
    counts: np.ndarray

    @property
    def totals(self) -> np.ndarray:
        return self.counts.sum(axis=(0, 1))


def build_class_index(scene: LabelledScene, cell: int = 32, rows_per_read: int = 512) -> ClassIndex:
    """Read the labels strip by strip and count classes per ``cell`` x ``cell`` block."""
    ny, nx = math.ceil(scene.height / cell), math.ceil(scene.width / cell)
    counts = np.zeros((ny, nx, NUM_OUTPUTS), np.int64)
    step = max(cell, rows_per_read // cell * cell)
    xs = np.arange(scene.width) // cell
    for y0 in range(0, scene.height, step):
        h = min(step, scene.height - y0)
        lab = scene.label_window(0, y0, scene.width, h).astype(np.int64)
        ys = (np.arange(h) + y0) // cell
        cell_id = (ys[:, None] - y0 // cell) * nx + xs[None, :]
        binc = np.bincount((cell_id * NUM_OUTPUTS + lab).ravel(),
                           minlength=(ys[-1] - y0 // cell + 1) * nx * NUM_OUTPUTS)
        counts[y0 // cell: ys[-1] + 1] += binc.reshape(-1, nx, NUM_OUTPUTS)
    return ClassIndex(cell, counts)


@dataclass
class Region:
    """Rows [y0, y1) of a scene; labels outside them are never used (keeps train and validation apart)."""

    scene: LabelledScene
    y0: int
    y1: int
    # cells of these rows only (cells straddling y0/y1 belong to the region holding their top)
    index: ClassIndex

    @property
    def name(self) -> str:
        if self.y0 == 0 and self.y1 == self.scene.height:
            return self.scene.name
        return f"{self.scene.name}[rows {self.y0}:{self.y1}]"


def split_scenes(names: Sequence[str], val_fraction: float = 0.1, seed: int = 0) -> tuple[list[str],
                                                                                          list[str]]:
    """Deterministic scene-wise split: the scenes whose sha1(seed:name) sorts first go to validation."""
    names = sorted(set(names))
    if len(names) < 2 or val_fraction <= 0:
        return names, []
    n_val = min(len(names) - 1, max(1, round(len(names) * val_fraction)))
    ranked = sorted(names, key=lambda n: hashlib.sha1(f"{seed}:{n}".encode()).hexdigest())
    val = set(ranked[:n_val])
    return [n for n in names if n not in val], [n for n in names if n in val]


def make_regions(scenes: Sequence[LabelledScene], val_fraction: float = 0.1, seed: int = 0,
                 cell: int = 32) -> tuple[list[Region], list[Region]]:
    """Train and validation regions: whole scenes split scene-wise; a single scene is split by rows
    (the bottom ``val_fraction`` of its rows, at a cell boundary, is validation)."""
    indexes = {s.name: build_class_index(s, cell) for s in scenes}
    if len(scenes) == 1 and val_fraction > 0:
        s = scenes[0]
        ix = indexes[s.name]
        cut_cell = max(1, min(ix.counts.shape[0] - 1, int(round(ix.counts.shape[0] * (1 - val_fraction)))))
        cut = min(s.height, cut_cell * cell)
        if ix.counts.shape[0] < 2:
            return [Region(s, 0, s.height, ix)], []
        return ([Region(s, 0, cut, ClassIndex(cell, ix.counts[:cut_cell]))],
                [Region(s, cut, s.height, ClassIndex(cell, ix.counts[cut_cell:]))])
    train, val = split_scenes([s.name for s in scenes], val_fraction, seed)
    by_name = {s.name: s for s in scenes}
    mk = [Region(by_name[n], 0, by_name[n].height, indexes[n]) for n in train]
    return mk, [Region(by_name[n], 0, by_name[n].height, indexes[n]) for n in val]


# ---- source (labelled) sampler ----------------------------------------------------------------------

class PatchSampler:
    """Random labelled patches from regions, optionally class-aware, normalised and augmented.

    class_aware: choose a class c with probability proportional to share_c ** class_power (0.5: a class with
    1/100 of another's pixels is chosen 1/10 as often, i.e. far more than its pixel share; 0: uniformly), then
    a region and a 32-px cell in proportion to that class's pixels there, and centre the patch on a random
    pixel of that class in that cell (clamped to the scene, so the patch always holds it).
    """

    def __init__(self, regions: Sequence[Region], patch: int = 512, *, stats="source",
                 class_aware: bool = False,
                 class_power: float = 0.5, augment: bool = True, seed: int = 0, min_labelled: float = 0.05,
                 max_tries: int = 10) -> None:
        if not regions:
            raise FbpError("No labelled scenes to sample patches from; give at least one image with labels.")
        self.regions = list(regions)
        self.patch = int(patch)
        self.class_aware = class_aware
        self.class_power = class_power
        self.do_augment = augment
        self.rng = np.random.default_rng(seed)
        self.min_labelled = min_labelled
        self.max_tries = max_tries
        self._stats = {}
        for r in self.regions:
            if r.scene.name not in self._stats:
                st = resolve_stats(stats, r.scene)
                self._stats[r.scene.name] = (st.mean, st.std)
        totals = np.stack([r.index.totals for r in self.regions]).astype(np.float64)  # (regions, 25)
        self.region_totals = totals
        self.class_totals = totals.sum(axis=0)
        labelled = totals[:, 1:].sum(axis=1)
        if labelled.sum() <= 0:
            names = ", ".join(r.name for r in self.regions)
            raise FbpError(f"The labels of {names} hold no class 1..24 pixel; "
                           "check the label files (and the class mapping).")
        self.region_p = labelled / labelled.sum()
        share = self.class_totals[1:] / self.class_totals[1:].sum()
        w = np.where(share > 0, np.power(np.maximum(share, 1e-12), class_power), 0.0)
        self.class_p = np.concatenate([[0.0], w / w.sum()])

    def stats(self, scene_name: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
        return self._stats[scene_name]

    def _random_window(self, rng: np.random.Generator) -> tuple[int, int, int]:
        ri = int(rng.choice(len(self.regions), p=self.region_p))
        r = self.regions[ri]
        x = int(rng.integers(0, max(0, r.scene.width - self.patch) + 1))
        y = int(rng.integers(r.y0, max(r.y0, r.y1 - self.patch) + 1))
        return ri, x, y

    def _class_window(self, rng: np.random.Generator, cls: int | None = None) -> tuple[int, int, int]:
        c = int(rng.choice(NUM_OUTPUTS, p=self.class_p)) if cls is None else cls
        pr = self.region_totals[:, c] / self.region_totals[:, c].sum()
        ri = int(rng.choice(len(self.regions), p=pr))
        r = self.regions[ri]
        cells = r.index.counts[:, :, c].ravel().astype(np.float64)
        k = int(rng.choice(cells.size, p=cells / cells.sum()))
        cy, cx = divmod(k, r.index.counts.shape[1])
        cell = r.index.cell
        cy0, cx0 = r.y0 + cy * cell, cx * cell
        ch, cw = min(cell, r.y1 - cy0, r.scene.height - cy0), min(cell, r.scene.width - cx0)
        ys, xs = np.nonzero(r.scene.label_window(cx0, cy0, cw, ch) == c)  # a pixel of that class in the cell
        if len(ys):
            j = int(rng.integers(0, len(ys)))
            yc, xc = cy0 + int(ys[j]), cx0 + int(xs[j])
        else:  # cannot happen with a consistent index; fall back to the cell's centre
            yc, xc = cy0 + ch // 2, cx0 + cw // 2
        x = _clamp(xc - self.patch // 2, r.scene.width - self.patch)
        y = _clamp(yc - self.patch // 2, r.y1 - self.patch, r.y0)
        return ri, x, y

    def window(self, rng: np.random.Generator | None = None) -> tuple[int, int, int]:
        """(region index, x, y) of a patch with at least ``min_labelled`` labelled pixels (best of a few
        tries)."""
        rng = self.rng if rng is None else rng
        best = None
        for _ in range(self.max_tries):
            win = self._class_window(rng) if self.class_aware else self._random_window(rng)
            if self.class_aware:
                return win
            frac = self._labelled_fraction(*win)
            if frac >= self.min_labelled:
                return win
            if best is None or frac > best[0]:
                best = (frac, win)
        return best[1]

    def _labelled_fraction(self, ri: int, x: int, y: int) -> float:
        r = self.regions[ri]
        lab = self._labels(r, x, y)
        return float((lab > 0).mean())

    def _labels(self, r: Region, x: int, y: int) -> np.ndarray:
        p = self.patch
        x0, y0 = max(x, 0), max(y, r.y0)
        x1, y1 = min(x + p, r.scene.width), min(y + p, r.y1)
        lab = np.zeros((p, p), np.uint8)
        if x1 > x0 and y1 > y0:
            lab[y0 - y:y1 - y, x0 - x:x1 - x] = r.scene.label_window(x0, y0, x1 - x0, y1 - y0)
        return lab

    def read(self, ri: int, x: int, y: int, augment: bool | None = None,
             rng: np.random.Generator | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Normalised float32 (4, p, p) image and uint8 (p, p) labels of a window (labels outside the region
        are 0)."""
        r = self.regions[ri]
        img, valid, lab = self.read_raw(ri, x, y)
        if self.do_augment if augment is None else augment:
            img, valid, lab = augmentation.augment(self.rng if rng is None else rng, img, valid, lab)
        mean, std = self._stats[r.scene.name]
        return normalize(img, mean, std, valid), lab

    def read_raw(self, ri: int, x: int, y: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(float32 (4, p, p) 0..1, bool valid, uint8 labels) of a window; labels outside the region are 0."""
        r = self.regions[ri]
        p = self.patch
        img, valid, lab = r.scene.read(x, y, p, p)
        rows = np.arange(y, y + p)
        lab = np.where(((rows >= r.y0) & (rows < r.y1))[:, None], lab, 0).astype(np.uint8)
        lab[~valid] = 0
        return img, valid, lab

    def batch(self, n: int):
        """(float32 tensor (n, 4, p, p), long tensor (n, p, p)) of fresh random patches."""
        from ..torch_import import import_torch

        torch = import_torch()
        imgs, labs = zip(*(self.read(*self.window()) for _ in range(n)), strict=True)
        return torch.from_numpy(np.stack(imgs)), torch.from_numpy(np.stack(labs).astype(np.int64))

    def fixed_windows(self, n: int, seed: int = 12345) -> list[tuple[int, int, int]]:
        """n deterministic random windows (validation patches)."""
        rng = np.random.default_rng(seed)
        return [self.window(rng) for _ in range(n)]



def _clamp(v: int, hi: int, lo: int = 0) -> int:
    return int(min(max(v, lo), max(hi, lo)))


PATCH_STRIDE_TARGET = 384  # the reference's stride when cutting target patches (one epoch = those patches)


# ---- target (unlabelled) sampler --------------------------------------------------------------------

class TargetSampler:
    """Unlabelled patches from one or many target rasters, read through their sensor profile at the working
    GSD and normalised with per-scene statistics (or given ones), exactly as mapping reads them."""

    def __init__(self, inputs: Sequence, stats: Sequence[tuple[Sequence[float], Sequence[float]]],
                 patch: int = 512,
                 *, augment: bool = True, seed: int = 0, min_valid: float = 0.5, max_tries: int = 20,
                 owns_inputs: bool = False) -> None:
        if not inputs:
            raise FbpError("No target image was given to adapt to; give at least one raster.")
        self.inputs = list(inputs)
        self.stats = [(tuple(m), tuple(s)) for m, s in stats]
        self.paths = [getattr(i, "path", "?") for i in self.inputs]
        self.profiles = [getattr(i, "profile", None) for i in self.inputs]
        self.patch = int(patch)
        self.do_augment = augment
        self.rng = np.random.default_rng(seed)
        self.min_valid = min_valid
        self.max_tries = max_tries
        self.owns_inputs = owns_inputs
        area = np.array([i.width * i.height for i in self.inputs], np.float64)
        self.input_p = area / area.sum()

    @classmethod
    def open(cls, images: Sequence[str | Sequence[str]], sensor: str = "auto", patch: int = 512, *,
             stats="scene",
             working_gsd: float | None = None, **kwargs) -> TargetSampler:
        """Open target rasters (each a path, or a list of Sentinel-2 band files) through their sensor
        profile."""
        from ..io import sensors
        from ..io.raster import open_input

        inputs, all_stats = [], []
        try:
            for image in images:
                image = image if isinstance(image, str) else list(image)
                inp = open_input(image, sensors.choose(image, sensor)[0], working_gsd=working_gsd)
                inputs.append(inp)
                st = resolve_stats(stats, inp)
                all_stats.append((st.mean, st.std))
        except BaseException:
            for inp in inputs:
                inp.close()
            raise
        return cls(inputs, all_stats, patch, owns_inputs=True, **kwargs)

    def read(self, k: int, x: int, y: int, augment: bool | None = None):
        """Normalised float32 (4, p, p) image and bool (p, p) validity of a window of input k."""
        img, valid = self.inputs[k].read(x, y, self.patch, self.patch)
        if self.do_augment if augment is None else augment:
            img, valid = augmentation.augment(self.rng, img, valid)
        mean, std = self.stats[k]
        return normalize(img, mean, std, valid), valid

    def window(self) -> tuple[int, int, int]:
        best = None
        for _ in range(self.max_tries):
            k = int(self.rng.choice(len(self.inputs), p=self.input_p))
            inp = self.inputs[k]
            x = int(self.rng.integers(0, max(0, inp.width - self.patch) + 1))
            y = int(self.rng.integers(0, max(0, inp.height - self.patch) + 1))
            _img, valid = inp.read(x, y, self.patch, self.patch)
            frac = float(valid.mean())
            if frac >= self.min_valid:
                return k, x, y
            if best is None or frac > best[0]:
                best = (frac, (k, x, y))
        if best[0] <= 0:
            raise FbpError("No valid pixel found "
                           f"in {len(self.inputs)} target image(s) after {self.max_tries} tries "
                           f"({', '.join(map(str, self.paths))}); check nodata, "
                           "the mask and the sensor profile.")
        return best[1]

    def batch(self, n: int):
        """(float32 tensor (n, 4, p, p), bool tensor (n, p, p))."""
        from ..torch_import import import_torch

        torch = import_torch()
        imgs, valids = zip(*(self.read(*self.window()) for _ in range(n)), strict=True)
        return torch.from_numpy(np.stack(imgs)), torch.from_numpy(np.stack(valids))

    def close(self) -> None:
        if self.owns_inputs:
            for inp in self.inputs:
                inp.close()
