"""Generated landscapes: determinism, class variety, spectra, the FBP layout, georeferencing, the shift."""

from __future__ import annotations

import time

import numpy as np
import pytest
from osgeo import gdal, osr

from fbp_landcover.engine.demo.synthetic import (
    NO_SHIFT,
    SENTINEL2,
    SOURCE,
    TARGET,
    domain_shift_dataset,
    make_labels,
    measure_shift,
    write_source_dataset,
    write_target_scene,
)
from fbp_landcover.engine.demo.synthetic.writers import scene
from fbp_landcover.engine.training.fbp_dataset import IMAGE8_DIR, IMAGE16_DIR, LABEL_DIR

VEGETATION = [2, 3, 4, 5, 6, 7, 10]
WATER = [11, 13, 14, 15]


def _files(root):
    return {p.relative_to(root): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_same_bytes(tmp_path):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    names_a = write_source_dataset(a, 2, 128, seed=3, pad=8)
    names_b = write_source_dataset(b, 2, 128, seed=3, pad=8)
    write_source_dataset(c, 2, 128, seed=4, pad=8)
    assert names_a == names_b and len(set(names_a)) == 2
    fa, fb, fc = _files(a), _files(b), _files(c)
    assert len(fa) == 6 and fa == fb
    assert fa != fc
    write_target_scene(a / "t.tif", a / "t_truth.tif", TARGET, 96, seed=1)
    write_target_scene(b / "t.tif", b / "t_truth.tif", TARGET, 96, seed=1)
    assert (a / "t.tif").read_bytes() == (b / "t.tif").read_bytes()
    assert (a / "t_truth.tif").read_bytes() == (b / "t_truth.tif").read_bytes()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_many_classes_in_a_512_scene(seed):
    t0 = time.perf_counter()
    labels, dn = scene(seed, 512, SOURCE, "source")
    seconds = time.perf_counter() - t0
    assert labels.dtype == np.uint8 and labels.shape == (512, 512) and labels.max() <= 24
    present = set(np.unique(labels).tolist()) - {0}
    assert len(present) >= 15, sorted(present)
    assert {3, 11, 21, 12}.issubset(present)  # irrigated field, river, road, urban residential
    assert (labels == 3).mean() > 0.2  # the source is an agricultural plain
    assert dn.shape == (4, 512, 512) and dn.dtype == np.uint16 and dn.max() <= 1023
    assert seconds < 2.0  # about 0.15 s here; generous for a busy machine


def test_class_mix_changes_proportions():
    src = np.stack([make_labels(np.random.default_rng(s), 256, "source") for s in range(3)])
    tgt = np.stack([make_labels(np.random.default_rng(s), 256, "target") for s in range(3)])
    def share(a, cls):
        return np.isin(a, cls).mean()

    assert share(tgt, [1, 12]) > 1.5 * share(src, [1, 12])  # more town
    assert share(tgt, [6, 7]) > 1.5 * share(src, [6, 7])  # more forest
    assert share(tgt, [3]) < share(src, [3])  # fewer irrigated fields


def test_official_layout_and_spectra(tmp_path):
    names = write_source_dataset(tmp_path, 1, 256, seed=0, pad=10)
    name = names[0]
    assert name.startswith("GF2_PMS") and "__L1A" in name and name[-5:-1] == "-MSS"
    p8 = tmp_path / IMAGE8_DIR / f"{name}.tif"
    p16 = tmp_path / IMAGE16_DIR / f"{name}.tiff"
    plab = tmp_path / LABEL_DIR / f"{name}_24label.png"
    assert p8.is_file() and p16.is_file() and plab.is_file()

    naive = gdal.Open(str(p8))
    assert naive.GetMetadataItem("SOURCE_COLOR_SPACE", "IMAGE_STRUCTURE") == "CMYK"
    assert naive.GetGeoTransform(can_return_null=True) is None
    assert (naive.GetRasterBand(4).ReadAsArray() == 255).all()  # opened naively: RGBA, alpha 255
    raw = gdal.Open("GTIFF_RAW:" + str(p8)).ReadAsArray()
    assert raw.shape == (4, 276, 276) and raw.dtype == np.uint8 and (raw[3] != 255).any()

    lab_ds = gdal.Open(str(plab))
    assert lab_ds.GetDriver().ShortName == "PNG" and lab_ds.RasterCount == 1
    labels = lab_ds.ReadAsArray()
    assert labels.dtype == np.uint8 and labels.max() <= 24
    # white padding, unlabelled
    assert (labels[:10] == 0).all() and (labels[:, -10:] == 0).all()
    assert (raw[:, :10] == 255).all() and (raw[:, :, -10:] == 255).all()

    img16 = gdal.Open(str(p16)).ReadAsArray()
    assert img16.dtype == np.uint16 and img16.shape == (4, 276, 276)
    # stored NIR,R,G,B (8-bit) vs B,G,R,NIR (16-bit): the same scene, so NIR correlates with band 4 of 16-bit
    inner = (slice(10, -10), slice(10, -10))
    assert np.corrcoef(raw[0][inner].ravel(), img16[3][inner].ravel())[0, 1] > 0.95
    assert np.corrcoef(raw[3][inner].ravel(), img16[0][inner].ravel())[0, 1] > 0.95

    nir = raw[0].astype(float)
    veg, water = nir[np.isin(labels, VEGETATION)].mean(), nir[np.isin(labels, WATER)].mean()
    assert veg > water + 60
    red = raw[1].astype(float)
    assert nir[np.isin(labels, VEGETATION)].mean() - red[np.isin(labels, VEGETATION)].mean() > 50  # red edge
    assert red[labels == 17].mean() > red[np.isin(labels, [3, 6])].mean()  # bareland brighter than crops


@pytest.mark.parametrize("sensor", [TARGET, SENTINEL2, NO_SHIFT])
def test_target_georeferencing_exact(tmp_path, sensor):
    img, truth = write_target_scene(tmp_path / "t.tif", tmp_path / "t_truth.tif", sensor, (256, 192), seed=27)
    ds, tds = gdal.Open(str(img)), gdal.Open(str(truth))
    gt = (400000.0 + 4096.0 * 2, sensor.gsd, 0.0, 3400000.0 + 4096.0 * 1, 0.0, -sensor.gsd)
    assert ds.GetGeoTransform() == gt and tds.GetGeoTransform() == gt
    for d in (ds, tds):
        srs = osr.SpatialReference(wkt=d.GetProjection())
        assert srs.GetAuthorityCode(None) == "32650"
        assert (d.RasterXSize, d.RasterYSize) == (192, 256)
    assert ds.RasterCount == 4 and ds.GetRasterBand(1).DataType == gdal.GDT_UInt16
    assert tds.GetRasterBand(1).DataType == gdal.GDT_Byte and tds.ReadAsArray().max() <= 24
    stored = ds.ReadAsArray()
    labels = tds.ReadAsArray()
    nirrgb = sensor.to_nirrgb(stored)
    assert nirrgb[0][np.isin(labels, VEGETATION)].mean() > nirrgb[0][np.isin(labels, WATER)].mean()
    if sensor is SENTINEL2:
        assert stored.min() >= 1000  # processing baseline 04.00 offset


def test_written_scenes_are_recognised_by_the_sensor_profiles(tmp_path):
    from fbp_landcover.engine.io.sensors import detect

    name = write_source_dataset(tmp_path, 1, 64, seed=0)[0]
    assert detect(str(tmp_path / IMAGE8_DIR / f"{name}.tif"))[0].name == "fbp8bit"
    assert detect(str(tmp_path / IMAGE16_DIR / f"{name}.tiff"))[0].name == "gaofen2"
    for sensor in (TARGET, SENTINEL2):
        img, _ = write_target_scene(tmp_path / f"{sensor.name}.tif", tmp_path / "truth.tif", sensor, 64, 0)
        assert detect(str(img))[0].name == sensor.profile


def test_shift_is_measurable(tmp_path):
    data = domain_shift_dataset(tmp_path, seed=0, source_size=256, target_size=256)
    assert data.target_sensor == "planetscope" and len(data.source_scenes) == 2
    r = measure_shift(data)
    gauss = {k: v["gaussian"]["coarse_oa"] for k, v in r.items()}
    # trained on source scene 0: another source scene and the no-shift control keep their accuracy,
    # the shifted target loses it
    assert gauss["target"] < gauss["control"] - 0.1
    assert gauss["target"] < gauss["source"] - 0.1
    assert r["target"]["ncm"]["oa"] < r["source"]["ncm"]["oa"]
