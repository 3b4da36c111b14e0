"""Write generated scenes to disk: the official Five-Billion-Pixels layout and georeferenced target scenes."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from osgeo import gdal, osr

from ...classes import gdal_color_table
from ...io.atomic import AtomicFiles
from ...training.fbp_dataset import IMAGE8_DIR, IMAGE16_DIR, LABEL_DIR, scene_files
from .instruments import NO_SHIFT, SOURCE, TARGET, SyntheticSensor, get_sensor
from .landscape import ClassMix, make_labels
from .spectra import reflectance

gdal.UseExceptions()

TARGET_EPSG = 32650  # WGS 84 / UTM zone 50N (eastern China)


@dataclass
class DomainShiftData:
    """Paths written by :func:`domain_shift_dataset`."""

    root: Path
    source_root: Path
    source_scenes: list[str]
    target_image: Path
    target_truth: Path
    target_sensor: str  # the engine sensor profile to read target_image with
    control_image: Path | None = None  # the no-shift control scene (source sensor, target class mix)
    control_truth: Path | None = None
    extra: dict = field(default_factory=dict)


def scene(seed: int, size: int | tuple[int, int], sensor: SyntheticSensor, class_mix: str | ClassMix):
    """(labels uint8, stored DN uint16 in the sensor's band order) of one generated scene."""
    rng = np.random.default_rng(seed)
    labels = make_labels(rng, size, class_mix, gsd=sensor.gsd)
    refl = reflectance(rng, labels, gsd=sensor.gsd, region=sensor.region)
    return labels, sensor.observe(rng, refl)


def scene_names(rng: np.random.Generator, n: int) -> list[str]:
    """Deterministic, unique Gaofen-2 style scene names such as ``GF2_PMS1__L1A0000189089-MSS1``."""
    names: list[str] = []
    while len(names) < n:
        cam = int(rng.integers(1, 3))
        name = f"GF2_PMS{cam}__L1A{int(rng.integers(100_000, 5_000_000)):010d}-MSS{cam}"
        if name not in names:
            names.append(name)
    return names


def to_8bit(nirrgb_dn: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Per-band linear stretch of DN (4, rows, cols) between the 0.5 and 99.5 percentiles to 1..254."""
    out = np.empty(nirrgb_dn.shape, np.uint8)
    for b in range(nirrgb_dn.shape[0]):
        lo, hi = np.percentile(nirrgb_dn[b][valid], (0.5, 99.5))
        out[b] = np.clip(np.rint(1 + 253 * (nirrgb_dn[b] - lo) / max(hi - lo, 1.0)), 1, 254)
    return out


def _mem(array: np.ndarray, gdal_type: int) -> gdal.Dataset:
    array = array[None] if array.ndim == 2 else array
    ds = gdal.GetDriverByName("MEM").Create("", array.shape[2], array.shape[1], array.shape[0], gdal_type)
    for b in range(array.shape[0]):
        ds.GetRasterBand(b + 1).WriteArray(array[b])
    return ds


def _create_copy(files: AtomicFiles, driver: str, path: Path, src: gdal.Dataset,
                 options: list[str] | None = None):
    """Copy an in-memory dataset into ``path``'s temporary file of ``files``."""
    ds = gdal.GetDriverByName(driver).CreateCopy(str(files.temp_for(path)), src, options=options or [])
    del ds  # closing the dataset writes it


def write_source_dataset(root: str | Path, n_scenes: int = 2, size: int = 512, seed: int = 0, *,
                         pad: int = 0, class_mix: str | ClassMix = "source",
                         sensor: SyntheticSensor = SOURCE) -> list[str]:
    """Write labelled source scenes in the official FBP layout under ``root``; return the scene names.

    ``size`` is the annotated area; ``pad`` adds a white (8-bit), zero (16-bit), unlabelled (0) border.
    """
    root = Path(root)
    for sub in (IMAGE8_DIR, IMAGE16_DIR, LABEL_DIR):
        (root / sub).mkdir(parents=True, exist_ok=True)
    names = scene_names(np.random.default_rng([seed, 7]), n_scenes)
    for k, name in enumerate(names):
        labels, dn = scene(int(np.random.default_rng([seed, k]).integers(2**31)), size, sensor, class_mix)
        nirrgb = dn[[sensor.bands.index(r) for r in ("NIR", "R", "G", "B")]]
        img8 = to_8bit(nirrgb, np.ones(labels.shape, bool))
        if pad:
            labels = np.pad(labels, pad)
            dn = np.pad(dn, ((0, 0), (pad, pad), (pad, pad)))
            img8 = np.pad(img8, ((0, 0), (pad, pad), (pad, pad)), constant_values=255)
        src16 = _mem(dn, gdal.GDT_UInt16)
        src16.SetMetadataItem("SATELLITE_ID", "GF2")
        where = scene_files(root, name)
        with AtomicFiles() as files:  # a scene's three files appear together
            _create_copy(files, "GTiff", where.image8, _mem(img8, gdal.GDT_Byte), ["PHOTOMETRIC=CMYK",
                                                                                   "INTERLEAVE=PIXEL"])
            _create_copy(files, "GTiff", where.image16, src16, ["INTERLEAVE=PIXEL"])
            _create_copy(files, "PNG", where.label, _mem(labels, gdal.GDT_Byte))
    return names


def target_geotransform(sensor: SyntheticSensor, seed: int) -> tuple[float, ...]:
    """The target scene's geotransform in EPSG:32650: north-up, ``sensor.gsd`` pixels, origin from the
    seed."""
    x0 = 400_000.0 + 4096.0 * (seed % 25)
    y0 = 3_400_000.0 + 4096.0 * (seed // 25 % 25)
    return (x0, sensor.gsd, 0.0, y0, 0.0, -sensor.gsd)


def write_target_scene(path: str | Path, truth_path: str | Path, sensor: str | SyntheticSensor = TARGET,
                       size: int | tuple[int, int] = 512, seed: int = 0,
                       class_mix: str | ClassMix = "target") -> tuple[Path, Path]:
    """Write a georeferenced target GeoTIFF in the sensor's own format, and its truth labels on the same
    grid."""
    sensor = get_sensor(sensor)
    path, truth_path = Path(path), Path(truth_path)
    labels, dn = scene(seed, size, sensor, class_mix)
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(TARGET_EPSG)
    gt = target_geotransform(sensor, seed)

    img = _mem(dn, gdal.GDT_UInt16)
    img.SetGeoTransform(gt)
    img.SetProjection(srs.ExportToWkt())
    names = {"B": "blue", "G": "green", "R": "red", "NIR": "nir"}
    s2 = {"B": "B02", "G": "B03", "R": "B04", "NIR": "B08"}
    for i, role in enumerate(sensor.bands):
        band = img.GetRasterBand(i + 1)
        band.SetDescription(s2[role] if sensor.profile == "sentinel2" else names[role])
        band.SetColorInterpretation({"B": gdal.GCI_BlueBand, "G": gdal.GCI_GreenBand,
                                     "R": gdal.GCI_RedBand, "NIR": gdal.GCI_Undefined}[role])
    if sensor.profile == "planetscope":
        img.SetMetadataItem("SENSOR", "PlanetScope (synthetic)")
    elif sensor.profile == "sentinel2":
        img.SetMetadata({"SPACECRAFT_NAME": "Sentinel-2B (synthetic)", "PROCESSING_BASELINE": "05.09",
                         "BOA_ADD_OFFSET": "-1000", "BOA_QUANTIFICATION_VALUE": "10000"})
    elif sensor.profile == "gaofen2":
        img.SetMetadataItem("SATELLITE_ID", "GF2")
    img.SetMetadataItem("SYNTHETIC_SENSOR", sensor.name)

    lab = _mem(labels, gdal.GDT_Byte)
    lab.SetGeoTransform(gt)
    lab.SetProjection(srs.ExportToWkt())
    lab.GetRasterBand(1).SetColorTable(gdal_color_table())
    with AtomicFiles() as files:  # the image and its truth appear together
        _create_copy(files, "GTiff", path, img, ["INTERLEAVE=PIXEL", "TILED=YES", "COMPRESS=DEFLATE"])
        _create_copy(files, "GTiff", truth_path, lab, ["COMPRESS=DEFLATE"])
    return path, truth_path


def domain_shift_dataset(root: str | Path, seed: int = 0, *, n_source: int = 2, source_size: int = 512,
                         target_size: int = 512, target: str | SyntheticSensor = TARGET,
                         target_mix: str | ClassMix = "target", control: bool = True) -> DomainShiftData:
    """Write a source dataset (FBP layout), a shifted target scene with truth, and a no-shift control
    scene."""
    root = Path(root)
    target = get_sensor(target)
    src = root / "source"
    scenes = write_source_dataset(src, n_source, source_size, seed)
    (root / "target").mkdir(parents=True, exist_ok=True)
    timg, ttruth = write_target_scene(root / "target" / f"{target.name}.tif",
                                      root / "target" / f"{target.name}_truth.tif",
                                      target, target_size, seed + 1000, target_mix)
    data = DomainShiftData(root, src, scenes, timg, ttruth, target.profile)
    if control:
        data.control_image, data.control_truth = write_target_scene(
            root / "target" / "no_shift.tif", root / "target" / "no_shift_truth.tif", NO_SHIFT, target_size,
            seed + 1000, target_mix)
    return data
