"""Controlled domain shifts built on the real labelled rasters in ../shared/data, for bench_adaptation.py.

Each domain is one real image with its real labels, split in two: a model is trained on the labels of one part
(the *train* labels) and scored on the labels of the other part (the *truth*). The scene it is scored on comes
twice: the image as it is (the no-shift **control**) and the same image seen by a different instrument (the
**shifted** target): band mixing (cross-talk between bands), a non-linear response (gamma), per-band gains and
offsets, a point-spread blur and noise, drawn per seed (engine.demo.synthetic.instruments.SyntheticSensor).
Per-scene normalisation removes the gains and offsets; the mixing, gamma, blur and noise are what adaptation
has to undo. The images are upsampled (bilinear; labels nearest) so that the model's 128-pixel patches fit.

- ``slovenia``: Sentinel-2 L1C (B08, B04, B03, B02 as NIR, R, G, B; TOA reflectance), 1 × 1 km, with the
  Slovenian land-use register RABA; upsampled ×4 to 400 × 404; train = the left half, truth = the right half.
  RABA → FBP: cultivated 4 (dry cropland), forest 6, grassland 9 (natural meadow), shrubland 7, artificial 12.
- ``chiapas``: Landsat 7 ETM+ surface reflectance ×10000 (TM 4, 3, 2, 1 as NIR, R, G, B), 7.5 × 7.5 km, with
  hand-drawn training areas; upsampled ×2 to 500 × 500; the labels are sparse polygons, so train and truth
  are the two colours of a checkerboard of 50-pixel cells (each polygon mostly in one cell). Labels → FBP:
  forest 6, water 13 (lake), herbaceous 9, barren 17, urban 12.

The images are written as 4-band uint16 NIR, R, G, B reflectance ×10000 and read with SENSOR.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from osgeo import gdal

gdal.UseExceptions()

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
SENSOR = "custom:nir=1,r=2,g=3,b=4,scale=10000"
DOMAINS = ("slovenia", "chiapas")


@dataclass(frozen=True)
class RealDomain:
    name: str
    train_pairs: list  # [(image, train labels)]
    target_image: Path  # the shifted scene
    control_image: Path  # the same scene, unshifted
    truth: Path  # labels of the scored part, FBP indices, 0 elsewhere
    sensor: str = SENSOR


def available(name: str) -> str | None:
    """None when the domain's files are there, else why not."""
    need = {"slovenia": ["slovenia_s2l1c_scene2_13band_10m.tif", "slovenia_raba_lulc_10m.tif"],
            "chiapas": ["chiapas_landsat7_1999_8band_30m.tif", "chiapas_landsat7_labels_30m.tif"]}[name]
    missing = [n for n in need if not (DATA / n).is_file()]
    return f"{', '.join(missing)} not in {DATA}" if missing else None


def _read(name: str) -> tuple[np.ndarray, np.ndarray, tuple, str, int, dict]:
    """(NIR,R,G,B reflectance float32 (4, h, w), labels, geotransform, projection, upsampling, legend)."""
    if name == "slovenia":
        img_ds = gdal.Open(str(DATA / "slovenia_s2l1c_scene2_13band_10m.tif"))
        img = img_ds.ReadAsArray()[[7, 3, 2, 1]].astype(np.float32)
        lab = gdal.Open(str(DATA / "slovenia_raba_lulc_10m.tif")).ReadAsArray()
        return img, lab, img_ds.GetGeoTransform(), img_ds.GetProjection(), 4, {1: 4, 2: 6, 3: 9, 4: 7, 8: 12}
    img_ds = gdal.Open(str(DATA / "chiapas_landsat7_1999_8band_30m.tif"))
    raw = img_ds.ReadAsArray()[[3, 2, 1, 0]].astype(np.float32)
    img = np.clip(np.where(raw < 0, 0, raw) / 10000.0, 0, 1)
    lab = gdal.Open(str(DATA / "chiapas_landsat7_labels_30m.tif")).ReadAsArray()
    return img, lab, img_ds.GetGeoTransform(), img_ds.GetProjection(), 2, {1: 6, 2: 13, 3: 9, 4: 17, 5: 12}


def _upsample(img: np.ndarray, lab: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    from fbp_landcover.engine.torch_import import import_torch

    torch = import_torch()
    t = torch.from_numpy(img)[None]
    up = torch.nn.functional.interpolate(t, scale_factor=k, mode="bilinear", align_corners=False)[0].numpy()
    return up, np.repeat(np.repeat(lab, k, axis=0), k, axis=1)


def _split(name: str, lab: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(train mask, truth mask) over the upsampled grid."""
    h, w = lab.shape
    if name == "slovenia":
        left = np.zeros((h, w), bool)
        left[:, : w // 2] = True
        return left, ~left
    yy, xx = np.mgrid[0:h, 0:w]
    black = ((yy // 50) + (xx // 50)) % 2 == 0
    return black, ~black


def _write(path: Path, array: np.ndarray, gt: tuple, proj: str, gdal_type: int) -> Path:
    bands = array if array.ndim == 3 else array[None]
    ds = gdal.GetDriverByName("GTiff").Create(str(path), bands.shape[2], bands.shape[1], bands.shape[0],
                                              gdal_type, ["COMPRESS=DEFLATE"])
    ds.SetGeoTransform(gt)
    ds.SetProjection(proj)
    for i, b in enumerate(bands, 1):
        ds.GetRasterBand(i).WriteArray(b)
    ds = None
    return path


def instrument(seed: int):
    """The seed's shifted instrument (engine.demo.synthetic.instruments.SyntheticSensor)."""
    from fbp_landcover.engine.demo.synthetic.instruments import SyntheticSensor

    rng = np.random.default_rng(1000 + seed)
    cross = rng.uniform(0.0, 1.0, (4, 4))
    cross /= cross.sum(1, keepdims=True)
    mixing = 0.3 * np.eye(4) + 0.7 * cross
    return SyntheticSensor(name=f"shifted{seed}", profile="custom", title="a shifted instrument", gsd=0.0,
                           bands=("NIR", "R", "G", "B"), mixing=tuple(map(tuple, mixing)),
                           gamma=float(rng.uniform(0.5, 0.6)),
                           gain=tuple(float(g) for g in 10000 * rng.uniform(0.7, 1.3, 4)),
                           offset=tuple(float(o) for o in rng.uniform(0, 300, 4)), noise=0.02, blur=2.0,
                           scale=10000.0)


def build(name: str, root: Path, seed: int) -> RealDomain:
    """Write the domain's files under ``root`` for ``seed`` (the shifted instrument depends on it)."""
    root.mkdir(parents=True, exist_ok=True)
    img, lab, gt, proj, k, legend = _read(name)
    img, lab = _upsample(img, lab, k)
    fbp = np.zeros(lab.shape, np.uint8)
    for theirs, ours in legend.items():
        fbp[lab == theirs] = ours
    gt = (gt[0], gt[1] / k, gt[2], gt[3], gt[4], gt[5] / k)
    train_mask, truth_mask = _split(name, fbp)
    control = np.clip(np.rint(img * 10000), 0, 65535).astype(np.uint16)
    shifted = instrument(seed).observe(np.random.default_rng(seed), img)
    image = _write(root / "control.tif", control, gt, proj, gdal.GDT_UInt16)
    return RealDomain(
        name=name,
        train_pairs=[(str(image), str(_write(root / "train_labels.tif", np.where(train_mask, fbp, 0), gt,
                                             proj, gdal.GDT_Byte)))],
        target_image=_write(root / "shifted.tif", shifted, gt, proj, gdal.GDT_UInt16),
        control_image=image,
        truth=_write(root / "truth.tif", np.where(truth_mask, fbp, 0).astype(np.uint8), gt, proj,
                     gdal.GDT_Byte),
    )


def domain_data(domain: str, seed: int, d: Path, recipe):
    """What a benchmark trains on and scores, for ``generated`` (the demo's generated shift with ``recipe``'s
    sizes) or a real domain: (training source for train_with_recipe, sensor, [(scene, image, truth)] with the
    scenes "target" and "control"), the data written under ``d``."""
    if domain == "generated":
        from fbp_landcover.engine.demo import synthetic

        data = synthetic.domain_shift_dataset(d / "data", seed, n_source=recipe.n_source,
                                              source_size=recipe.source_size, target_size=recipe.target_size)
        return data.source_root, "auto", [("target", data.target_image, data.target_truth),
                                          ("control", data.control_image, data.control_truth)]
    data = build(domain, d / "data", seed)
    return data.train_pairs, data.sensor, [("target", data.target_image, data.truth),
                                           ("control", data.control_image, data.truth)]
