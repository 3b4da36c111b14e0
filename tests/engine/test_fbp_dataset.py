"""The FBP reader on a small fixture in the official layout that the test builds, and the patch sampler."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal

from fbp_landcover.engine.errors import FbpError
from fbp_landcover.engine.training import augment, fbp_dataset, sampler

gdal.UseExceptions()

# class -> NIR, R, G, B (8-bit) of the fixture's spectra
@pytest.fixture
def opened():
    """Collects opened scenes and closes them at teardown (GDAL datasets alive when pytest-qgis shuts QGIS
    down crash the interpreter)."""
    scenes: list = []
    yield scenes
    for scene in scenes:
        scene.close()


def open_fbp(opened: list, *args, **kwargs) -> list:
    scenes = fbp_dataset.open_fbp(*args, **kwargs)
    opened.extend(scenes)
    return scenes


SPECTRA = {3: (200, 60, 120, 50), 11: (30, 40, 60, 110), 12: (120, 150, 140, 150), 19: (90, 200, 40, 200)}


def fixture_labels(h: int, w: int, seed: int) -> np.ndarray:
    """Blocks of classes 3 (most), 11 and 12, and two small squares of 19 (rare)."""
    rng = np.random.default_rng(seed)
    lab = np.full((h, w), 3, np.uint8)
    lab[: h // 3, w // 2:] = 11
    lab[h // 2:, : w // 3] = 12
    for _ in range(2):
        y, x = int(rng.integers(8, h - 12)), int(rng.integers(8, w - 12))
        lab[y:y + 4, x:x + 4] = 19
    return lab


def write_fbp_scene(root: Path, name: str, lab: np.ndarray, *, pad_rows: int = 4, pad_cols: int = 4,
                    seed: int = 0) -> np.ndarray:
    """Write one scene in the official layout; returns the stored NIR,R,G,B uint8 image."""
    h, w = lab.shape
    rng = np.random.default_rng(seed)
    img = np.zeros((4, h, w), np.uint8)
    for c, rgbn in SPECTRA.items():
        for b in range(4):
            img[b][lab == c] = rgbn[b]
    img = np.clip(img.astype(np.int16) + rng.integers(-8, 9, img.shape), 1, 254).astype(np.uint8)
    lab = lab.copy()
    img[:, :pad_rows, :] = 255  # white padding on top (8-bit images are padded white)
    img[:, :, w - pad_cols:] = 0  # and black at the right
    lab[:pad_rows, :] = 0
    lab[:, w - pad_cols:] = 0
    for sub in (fbp_dataset.IMAGE8_DIR, fbp_dataset.IMAGE16_DIR, fbp_dataset.LABEL_DIR):
        (root / sub).mkdir(parents=True, exist_ok=True)
    ds = gdal.GetDriverByName("GTiff").Create(str(root / fbp_dataset.IMAGE8_DIR / f"{name}.tif"), w, h, 4,
                                               gdal.GDT_Byte, ["PHOTOMETRIC=CMYK"])  # photometric "separated"
    for b in range(4):
        ds.GetRasterBand(b + 1).WriteArray(img[b])
    ds = None
    img16 = (img.astype(np.uint16) * 4)[[3, 2, 1, 0]]  # B, G, R, NIR, 10-bit
    img16[:, :pad_rows, :] = 0
    ds = gdal.GetDriverByName("GTiff").Create(str(root / fbp_dataset.IMAGE16_DIR / f"{name}.tiff"), w, h, 4,
                                               gdal.GDT_UInt16)
    for b in range(4):
        ds.GetRasterBand(b + 1).WriteArray(img16[b])
    ds = None
    mem = gdal.GetDriverByName("MEM").Create("", w, h, 1, gdal.GDT_Byte)
    mem.GetRasterBand(1).WriteArray(lab)
    gdal.GetDriverByName("PNG").CreateCopy(str(root / fbp_dataset.LABEL_DIR / f"{name}_24label.png"), mem)
    return img


def make_fbp_root(root: Path, names=("GF2_PMS1__L1A0000189089-MSS1", "GF2_PMS2__L1A0001118839-MSS2",
                                      "GF2_PMS1__L1A0000564539-MSS1"), h: int = 96, w: int = 80) -> Path:
    for i, name in enumerate(names):
        write_fbp_scene(root, name, fixture_labels(h, w, i), seed=i)
    return root


def test_naive_gdal_read_of_cmyk_tiff_is_wrong_and_raw_read_is_right(tmp_path, opened):
    root = make_fbp_root(tmp_path, names=("GF2_A",))
    path = str(root / fbp_dataset.IMAGE8_DIR / "GF2_A.tif")
    assert gdal.Open(path).GetRasterBand(4).ReadAsArray().min() == 255  # converted to RGBA: alpha
    scene = open_fbp(opened, root)[0]
    img, valid, label = scene.read(0, 0, 80, 96)
    raw = gdal.Open("GTIFF_RAW:" + path).ReadAsArray()
    np.testing.assert_array_equal(np.round(img[:, valid] * 255).astype(np.uint8), raw[:, valid])
    assert valid[:4].sum() == 0 and valid[:, -4:].sum() == 0  # white and black padding
    assert valid[4:, :-4].all()
    expected = fixture_labels(96, 80, 0)
    expected[:4] = 0
    expected[:, -4:] = 0
    np.testing.assert_array_equal(label, expected)
    # NIR of class 3 is band 1 as stored (no reordering for the 8-bit files)
    assert abs(img[0][label == 3].mean() * 255 - 200) < 2


def test_scenes_listed_and_matched_by_name(tmp_path, opened):
    root = make_fbp_root(tmp_path, names=("GF2_B", "GF2_A"))
    (root / fbp_dataset.LABEL_DIR / "GF2_C_24label.png").write_bytes(
        (root / fbp_dataset.LABEL_DIR / "GF2_A_24label.png").read_bytes())  # a label without an image
    names = [s.name for s in fbp_dataset.list_scenes(root)]
    assert names == ["GF2_A", "GF2_B"]
    with pytest.raises(FbpError, match="Annotation__index"):
        fbp_dataset.list_scenes(tmp_path / fbp_dataset.IMAGE8_DIR)


def test_16bit_images_reordered_to_nir_r_g_b(tmp_path, opened):
    root = make_fbp_root(tmp_path, names=("GF2_A",))
    s8 = open_fbp(opened, root)[0]
    s16 = open_fbp(opened, root, image="16bit")[0]
    a, va, la = s8.read(10, 10, 40, 40)
    b, vb, lb = s16.read(10, 10, 40, 40)
    np.testing.assert_allclose(b[:, vb], (np.round(a[:, vb] * 255) * 4) / 1023.0, atol=1e-6)
    np.testing.assert_array_equal(la[vb & va], lb[vb & va])


def test_windows_outside_the_scene_are_zero_and_invalid(tmp_path, opened):
    root = make_fbp_root(tmp_path, names=("GF2_A",))
    scene = open_fbp(opened, root)[0]
    img, valid, label = scene.read(60, 80, 40, 40)  # hangs over the right and bottom edges
    assert img.shape == (4, 40, 40) and not valid[16:].any() and not valid[:, 20:].any()
    assert (label[16:] == 0).all()


def test_label_cache_gives_identical_windows(tmp_path, opened):
    root = make_fbp_root(tmp_path / "fbp", names=("GF2_A",))
    plain = open_fbp(opened, root)[0]
    cached = open_fbp(opened, root, label_cache=tmp_path / "cache")[0]
    assert cached.label_path.endswith(".tif")
    np.testing.assert_array_equal(plain.read(5, 7, 50, 60)[2], cached.read(5, 7, 50, 60)[2])


def test_class_index_counts_and_scene_split(tmp_path, opened):
    root = make_fbp_root(tmp_path)
    scenes = open_fbp(opened, root)
    ix = sampler.build_class_index(scenes[0], cell=32, rows_per_read=64)
    lab = scenes[0].read(0, 0, 80, 96)[2]
    np.testing.assert_array_equal(ix.totals, np.bincount(lab.ravel(), minlength=25))
    assert ix.counts.shape == (3, 3, 25)
    assert ix.counts[0, 0].sum() == 32 * 32
    train, val = sampler.split_scenes([s.name for s in scenes], 0.34)
    assert len(val) == 1 and sorted(train + val) == sorted(s.name for s in scenes)
    assert sampler.split_scenes(list(reversed([s.name for s in scenes])), 0.34) == (train, val)


def test_single_scene_split_by_rows_keeps_labels_apart(tmp_path, opened):
    root = make_fbp_root(tmp_path, names=("GF2_A",), h=160, w=80)
    scenes = open_fbp(opened, root)
    train, val = sampler.make_regions(scenes, 0.2)
    assert (train[0].y0, train[0].y1, val[0].y0, val[0].y1) == (0, 128, 128, 160)
    s = sampler.PatchSampler(val, 64, augment=False)
    for _ in range(5):
        ri, x, y = s.window()
        _img, lab = s.read(ri, x, y)
        rows = np.arange(y, y + 64)
        assert (lab[rows < 128] == 0).all()


def test_class_aware_sampling_over_represents_the_rare_class(tmp_path, opened):
    root = make_fbp_root(tmp_path, names=("GF2_A",), h=256, w=256)
    regions, _ = sampler.make_regions(open_fbp(opened, root), 0.0, cell=16)
    plain = sampler.PatchSampler(regions, 32, augment=False, seed=0)
    aware = sampler.PatchSampler(regions, 32, augment=False, class_aware=True, class_power=0.0, seed=0)
    assert list(np.nonzero(aware.class_p)[0]) == [3, 11, 12, 19]
    np.testing.assert_allclose(aware.class_p[[3, 11, 12, 19]], 0.25)

    def patches_with_rare(s):
        return np.mean([(s.read(*s.window())[1] == 19).any() for _ in range(80)])

    rare = patches_with_rare(aware)
    assert rare >= 0.2  # every patch centred on a class-19 cell holds it; that class is drawn 1 time in 4
    assert rare > 3 * patches_with_rare(plain)


def test_patch_normalisation_and_augmentation_shapes(tmp_path, opened):
    root = make_fbp_root(tmp_path)
    regions, _ = sampler.make_regions(open_fbp(opened, root), 0.0)
    s = sampler.PatchSampler(regions, 64, augment=True, seed=3)
    x, y = s.batch(4)
    assert tuple(x.shape) == (4, 4, 64, 64) and tuple(y.shape) == (4, 64, 64)
    assert str(x.dtype) == "torch.float32" and str(y.dtype) == "torch.int64"
    img = np.random.default_rng(0).random((4, 8, 8)).astype(np.float32)
    blurred = augment.gaussian_blur(img, 1.0)
    assert blurred.shape == img.shape and blurred.std() < img.std()
    assert np.allclose(blurred.mean(), img.mean(), atol=0.05)
