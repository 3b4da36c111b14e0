"""Measure the generated domain shift with simple per-pixel classifiers on normalised pixels.

Each scene is normalised with its own per-band mean and standard deviation, as the engine does for
``--stats scene``; class means are learned on a source scene and applied to the others.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from osgeo import gdal

from ...training.fbp_dataset import scene_files
from .instruments import SyntheticSensor, get_sensor
from .writers import DomainShiftData

gdal.UseExceptions()


def read_source_8bit(root: str | Path, scene: str) -> tuple[np.ndarray, np.ndarray]:
    """(NIR,R,G,B float32 0..1, labels) of a source scene, reading the CMYK-tagged bytes raw."""
    where = scene_files(root, scene)
    ds = gdal.Open("GTIFF_RAW:" + str(where.image8))
    img = ds.ReadAsArray().astype(np.float32) / 255.0
    labels = gdal.Open(str(where.label)).ReadAsArray()
    return img, labels


def read_target(image: str | Path, truth: str | Path, sensor: str | SyntheticSensor) -> tuple[np.ndarray,
                                                                                              np.ndarray]:
    """(NIR,R,G,B float32 0..1, labels) of a target scene written by ``write_target_scene``."""
    stored = gdal.Open(str(image)).ReadAsArray()
    return get_sensor(sensor).to_nirrgb(stored), gdal.Open(str(truth)).ReadAsArray()


def normalise(img: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """(n, 4) pixels of ``valid`` normalised with the scene's own per-band mean and std."""
    x = img[:, valid].T.astype(np.float64)
    return (x - x.mean(0)) / np.maximum(x.std(0), 1e-6)


class NearestMean:
    """Nearest class mean classifier."""

    def fit(self, x: np.ndarray, y: np.ndarray) -> NearestMean:
        self.classes = np.unique(y)
        self.means = np.stack([x[y == c].mean(0) for c in self.classes])
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        d = ((x[:, None, :] - self.means[None]) ** 2).sum(-1)
        return self.classes[np.argmin(d, 1)]


class Gaussian:
    """Gaussian maximum-likelihood classifier (one full-covariance normal per class, equal priors)."""

    def fit(self, x: np.ndarray, y: np.ndarray) -> Gaussian:
        self.classes = np.unique(y)
        self.params = []
        for c in self.classes:
            xc = x[y == c]
            cov = np.cov(xc.T) + 1e-3 * np.eye(x.shape[1])
            self.params.append((xc.mean(0), np.linalg.inv(cov), np.linalg.slogdet(cov)[1]))
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        d = np.stack([(((x - m) @ icov) * (x - m)).sum(1) + logdet for m, icov, logdet in self.params], 1)
        return self.classes[np.argmin(d, 1)]


def _scores(clf, x: np.ndarray, ref: np.ndarray, coarse: np.ndarray) -> dict:
    pred = clf.predict(x)
    return {"oa": float((pred == ref).mean()), "coarse_oa": float((coarse[pred] == coarse[ref]).mean())}


def measure_shift(data: DomainShiftData, max_pixels: int = 100_000) -> dict:
    """Accuracies of classifiers trained on source scene 0 (``ncm`` nearest class mean, ``gaussian``), on
    another source scene, the no-shift control (source sensor, target class mix) and the shifted target.

    Returns ``{test: {classifier: {"oa": 24-class OA, "coarse_oa": OA on the 'coarse' legend}}}``.
    """
    from ...classes import load_collapse

    coarse = np.array(load_collapse("coarse").lookup_table())
    rng = np.random.default_rng(0)

    def pixels(img, lab):
        valid = lab > 0
        x, y = normalise(img, valid), lab[valid]
        keep = rng.permutation(len(y))[:max_pixels]
        return x[keep], y[keep]

    train = pixels(*read_source_8bit(data.source_root, data.source_scenes[0]))
    classifiers = {"ncm": NearestMean().fit(*train), "gaussian": Gaussian().fit(*train)}
    out = {}
    tests = {"target": read_target(data.target_image, data.target_truth, data.target_sensor)}
    if len(data.source_scenes) > 1:
        tests["source"] = read_source_8bit(data.source_root, data.source_scenes[1])
    if data.control_image is not None:
        tests["control"] = read_target(data.control_image, data.control_truth, "no_shift")
    for key, (img, lab) in tests.items():
        x, y = pixels(img, lab)
        out[key] = {name: _scores(clf, x, y, coarse) for name, clf in classifiers.items()}
    return out
