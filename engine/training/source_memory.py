"""The source memory: a small class-stratified sample of source patches and labels saved beside a checkpoint.

Quick adaptation uses it as the source branch when the full source dataset is not at hand. Patches are
centred on pixels of each present class in turn (round-robin over the classes), so rare classes are
over-represented compared with their pixel share. Stored as a compressed ``.npz`` of plain arrays
(uint8 images quantised from 0..1, uint8 labels, float32 normalisation per patch); loaded with
``allow_pickle=False``: nothing in it can run code.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..classes import NUM_OUTPUTS
from ..errors import FbpError
from ..io.atomic import atomic_path
from ..io.normalize import normalize
from ..models.card import MEMORY_SUFFIX, companion
from .augment import augment
from .sampler import PatchSampler, Region


def memory_path(checkpoint: str | os.PathLike) -> Path:
    """The source memory file beside a checkpoint: ``model.fbpmodel`` -> ``model.memory.npz``."""
    return companion(checkpoint, MEMORY_SUFFIX)


@dataclass
class SourceMemory:
    """Source patches: images uint8 (n, 4, s, s) = round(255 * x), labels uint8 (n, s, s), mean/std (n, 4)."""

    images: np.ndarray
    labels: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    meta: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def size(self) -> int:
        return int(self.images.shape[-1])

    def class_counts(self) -> np.ndarray:
        return np.bincount(self.labels.ravel(), minlength=NUM_OUTPUTS).astype(np.int64)

    def batch(self, n: int, rng: np.random.Generator, patch: int | None = None, augment_patches: bool = True):
        """(float32 tensor (n, 4, p, p) normalised, long tensor (n, p, p)): random patches, random crops of
        ``patch`` pixels when smaller than the stored size, with the reference augmentation."""
        from ..torch_import import import_torch

        torch = import_torch()
        s = self.size
        p = s if patch is None else min(int(patch), s)
        imgs, labs = [], []
        for _ in range(n):
            k = int(rng.integers(0, len(self)))
            y, x = int(rng.integers(0, s - p + 1)), int(rng.integers(0, s - p + 1))
            img = self.images[k, :, y:y + p, x:x + p].astype(np.float32) / 255.0
            lab = self.labels[k, y:y + p, x:x + p]
            valid = img.any(axis=0)  # zeros = outside the source scene or its padding
            if augment_patches:
                img, valid, lab = augment(rng, img, valid, lab)
            imgs.append(normalize(img, self.mean[k], self.std[k], valid))
            labs.append(lab.astype(np.int64))
        return torch.from_numpy(np.stack(imgs)), torch.from_numpy(np.stack(labs))


def build_source_memory(regions: list[Region], *, count: int = 256, size: int = 256, stats="source",
                        seed: int = 0, progress=None) -> SourceMemory:
    """A class-stratified sample of ``count`` patches of ``size`` pixels from labelled regions."""
    sampler = PatchSampler(regions, size, stats=stats, class_aware=True, class_power=0.0, augment=False,
                           seed=seed)
    rng = np.random.default_rng(seed)
    present = [c for c in range(1, NUM_OUTPUTS) if sampler.class_totals[c] > 0]
    images = np.zeros((count, 4, size, size), np.uint8)
    labels = np.zeros((count, size, size), np.uint8)
    mean = np.zeros((count, 4), np.float32)
    std = np.ones((count, 4), np.float32)
    order: list[int] = []
    for i in range(count):
        if not order:
            order = list(rng.permutation(present))
        c = int(order.pop())
        ri, x, y = sampler._class_window(rng, c)
        img, valid, lab = sampler.read_raw(ri, x, y)
        images[i] = np.clip(np.round(img * 255.0), 0, 255).astype(np.uint8)
        labels[i] = lab
        m, s = sampler.stats(sampler.regions[ri].scene.name)
        mean[i], std[i] = m, s
        if progress is not None and (i % 16 == 0 or i == count - 1):
            progress((i + 1) / count, f"Source memory: patch {i + 1} of {count}")
    meta = {"scenes": sorted({r.name for r in regions}), "size": size, "count": count,
            "stratified": "round-robin over present classes", "source_class_counts":
            [int(v) for v in sampler.class_totals]}
    return SourceMemory(images, labels, mean, std, meta)


def save_source_memory(path: str | os.PathLike, memory: SourceMemory) -> Path:
    """Write the memory as a compressed .npz atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.savez_compressed(handle, images=memory.images, labels=memory.labels, mean=memory.mean,
                            std=memory.std, meta=np.frombuffer(json.dumps(memory.meta).encode(), np.uint8))
    return path


def copy_memory(model: str | os.PathLike, copied_model: str | os.PathLike) -> Path | None:
    """Copy the source memory beside ``model`` (if there is one) beside its copy ``copied_model``."""
    src, dst = memory_path(model), memory_path(copied_model)
    if not src.is_file() or src.resolve() == dst.resolve():
        return None
    with atomic_path(dst) as tmp:
        shutil.copyfile(src, tmp)
    return dst


def load_source_memory(path: str | os.PathLike) -> SourceMemory:
    """Read a source memory file (no pickles)."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            images, labels = data["images"], data["labels"]
            mean, std = data["mean"], data["std"]
            meta = json.loads(bytes(data["meta"]).decode()) if "meta" in data else {}
    except FileNotFoundError:
        raise FbpError(f"The source memory {path} does not exist; "
                       "train with a source memory or give a source dataset.") from None
    except (ValueError, KeyError, OSError) as exc:
        raise FbpError(f"The source memory {path} is damaged or not a source memory ({exc}); "
                       "re-create it by training again, or adapt without it.") from None
    if images.ndim != 4 or images.shape[1] != 4 or labels.shape != (images.shape[0],) + images.shape[2:]:
        raise FbpError(f"The source memory {path} holds arrays of unexpected shapes "
                       f"{images.shape} / {labels.shape}; re-create it.")
    return SourceMemory(images, labels, mean.astype(np.float32), std.astype(np.float32), meta)


def build_memory_for_model(model_spec: str | os.PathLike, source, *, models_dir: str | None = None,
                           count: int = 256, size: int = 256, image: str = "8bit", sensor: str = "auto",
                           class_mapping=None, working_gsd: float | None = None, seed: int = 0,
                           overwrite: bool = False, progress=None) -> tuple[Path, SourceMemory]:
    """Build the class-stratified source memory of any model (an imported authors' checkpoint included) from
    labelled data (an FBP root or (image, label) raster pairs) and save it beside the model, where Siamese
    adaptation finds it. The patches are normalised as the model expects: its own statistics when its card
    has them, each scene's own when it was trained on per-scene statistics, else the FBP source ones."""
    from ..io.atomic import check_destination
    from ..models.loading import load_model
    from .sampler import make_regions
    from .train import open_labelled_source

    _, card, found = load_model(model_spec, models_dir)
    path = Path(found)
    target = check_destination(memory_path(path), overwrite, "source memory")
    scenes = open_labelled_source(source, image=image, sensor=sensor, class_mapping=class_mapping,
                                  working_gsd=working_gsd)
    try:
        regions, _ = make_regions(scenes, 0.0, seed)
        trained = (card.provenance or {}).get("normalisation")
        stats = card.stats if card.stats is not None else ("scene" if trained == "scene" else "source")
        memory = build_source_memory(regions, count=count, size=size, stats=stats, seed=seed,
                                     progress=progress)
    finally:
        for scene in scenes:
            close = getattr(scene, "close", None)
            if close is not None:
                close()
    memory.meta.update(built_for=path.name, built_from=str(source) if isinstance(source, (str, os.PathLike))
                       else [list(map(str, pair)) for pair in source])
    return save_source_memory(target, memory), memory
