"""Reader for the official Five-Billion-Pixels dataset layout, one window at a time.

    <root>/Image__8bit_NirRGB/<scene>.tif          4 x uint8 NIR,R,G,B, tagged CMYK -> read raw (GTIFF_RAW:)
    <root>/Image_16bit_BGRNir/<scene>.tiff         4 x uint16 B,G,R,NIR (10-bit DN)
    <root>/Annotation__index/<scene>_24label.png   1 x uint8, 0..24

Scenes are listed from the label folder and matched to images by name. White (8-bit: all four bands
255) and black (all 0) padding is unlabeled and invalid. PNG labels cannot be read by window without
decoding from the top, so with ``label_cache`` each label is converted once into a tiled, compressed
GeoTIFF there and windows are read from that.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from osgeo import gdal

from ..classes import NUM_OUTPUTS
from ..errors import FbpError
from ..io.atomic import atomic_path

gdal.UseExceptions()

IMAGE8_DIR = "Image__8bit_NirRGB"
IMAGE16_DIR = "Image_16bit_BGRNir"
LABEL_DIR = "Annotation__index"
LABEL_SUFFIX = "_24label.png"
IMAGE_KINDS = ("8bit", "16bit")  # the 8-bit NIR,R,G,B files or the 16-bit B,G,R,NIR ones
# A root whose scenes this project generated (engine/demo/synthetic) holds this file saying so; a model
# trained on it then says "generated data" wherever its provenance is shown, never "Five-Billion-Pixels".
GENERATED_MARK = "GENERATED_BY_FBP_LANDCOVER.txt"
SCALE16 = 1023.0  # Gaofen-2 PMS 16-bit files hold 10-bit DN


@dataclass(frozen=True)
class FbpSceneFiles:
    """The files of one scene (an image path may be None when that folder lacks the scene)."""

    name: str
    label: Path
    image8: Path | None
    image16: Path | None


def scene_files(root: str | Path, name: str) -> FbpSceneFiles:
    """Where the files of scene ``name`` lie (or would lie) under an FBP root; the images may be missing."""
    root = Path(root)
    return FbpSceneFiles(name, root / LABEL_DIR / f"{name}{LABEL_SUFFIX}", root / IMAGE8_DIR / f"{name}.tif",
                         root / IMAGE16_DIR / f"{name}.tiff")


def list_scenes(root: str | Path, image: str = "8bit") -> list[FbpSceneFiles]:
    """The scenes under an FBP root that have a label and the requested image ("8bit" or "16bit"), by name."""
    root = Path(root)
    if image not in IMAGE_KINDS:
        raise FbpError(f"FBP image kind {image!r} is not known; use '8bit' (NIR,R,G,B) or '16bit' "
                       "(B,G,R,NIR).")
    label_dir = root / LABEL_DIR
    if not label_dir.is_dir():
        raise FbpError(
            f"{root} is not a Five-Billion-Pixels folder: "
            f"expected {LABEL_DIR}/ with <scene>{LABEL_SUFFIX} files beside {IMAGE8_DIR}/; "
            f"found {sorted(p.name for p in root.iterdir())[:6] if root.is_dir() else 'no folder'}; "
            "point to the folder that holds them."
        )
    scenes = []
    for label in sorted(label_dir.glob("*" + LABEL_SUFFIX)):
        where = scene_files(root, label.name[: -len(LABEL_SUFFIX)])
        files = FbpSceneFiles(where.name, label, where.image8 if where.image8.is_file() else None,
                              where.image16 if where.image16.is_file() else None)
        if (files.image8 if image == "8bit" else files.image16) is not None:
            scenes.append(files)
    if not scenes:
        folder = IMAGE8_DIR if image == "8bit" else IMAGE16_DIR
        raise FbpError(
            f"No scene under {root} has both a label in {LABEL_DIR}/ and an image in {folder}/ "
            "with the same name; "
            "check the folder names and that images are named <scene>.tif(f) and labels <scene>_24label.png."
        )
    return scenes


class FbpScene:
    """One FBP scene read by window: NIR,R,G,B in 0..1, validity, and labels (0 on padding)."""

    def __init__(self, files: FbpSceneFiles, image: str = "8bit",
                 label_cache: str | Path | None = None) -> None:
        self.files = files
        self.name = files.name
        self.kind = image
        path = files.image8 if image == "8bit" else files.image16
        if path is None:
            raise FbpError(f"FBP scene {files.name}: no {image} image was found; use the other image kind.")
        self.path = str(path)
        self._img = gdal.Open(("GTIFF_RAW:" if image == "8bit" else "") + self.path)
        if self._img.RasterCount != 4:
            raise FbpError(f"{path}: expected 4 bands (FBP layout), found {self._img.RasterCount}; "
                           "use the official Five-Billion-Pixels files.")
        self.width, self.height = self._img.RasterXSize, self._img.RasterYSize
        self.label_path = str(files.label)
        if label_cache is not None:
            self.label_path = _cached_label(files.label, Path(label_cache))
        self._lab = gdal.Open(self.label_path)
        if (self._lab.RasterXSize, self._lab.RasterYSize) != (self.width, self.height):
            raise FbpError(
                f"{files.label}: expected the size of its image {path} ({self.width}x{self.height}), "
                f"found {self._lab.RasterXSize}x{self._lab.RasterYSize}; "
                "labels and images must be on the same grid."
            )

    def read(self, x: int, y: int, w: int, h: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(float32 (4,h,w) NIR,R,G,B 0..1, bool (h,w) valid, uint8 (h,w) labels); zeros outside the scene."""
        img = np.zeros((4, h, w), np.float32)
        valid = np.zeros((h, w), bool)
        label = np.zeros((h, w), np.uint8)
        x0, y0 = max(x, 0), max(y, 0)
        x1, y1 = min(x + w, self.width), min(y + h, self.height)
        if x1 <= x0 or y1 <= y0:
            return img, valid, label
        raw = self._img.ReadAsArray(x0, y0, x1 - x0, y1 - y0)
        if self.kind == "8bit":
            bands = raw.astype(np.float32) / 255.0
            pad = np.all(raw == 255, axis=0) | np.all(raw == 0, axis=0)
        else:
            bands = np.clip(raw[[3, 2, 1, 0]].astype(np.float32) / SCALE16, 0.0, 1.0)
            pad = np.all(raw == 0, axis=0)
        lab = self.label_window(x0, y0, x1 - x0, y1 - y0)
        lab[pad] = 0
        sl = (slice(y0 - y, y1 - y), slice(x0 - x, x1 - x))
        img[(slice(None),) + sl] = np.where(pad, 0.0, bands)
        valid[sl] = ~pad
        label[sl] = lab
        return img, valid, label

    def label_window(self, x: int, y: int, w: int, h: int) -> np.ndarray:
        """uint8 labels of a window inside the scene (padding not yet masked)."""
        lab = self._lab.GetRasterBand(1).ReadAsArray(x, y, w, h).astype(np.uint8)
        if lab.max(initial=0) >= NUM_OUTPUTS:
            raise FbpError(f"{self.files.label}: expected label values 0..24, found {int(lab.max())}; "
                           "use the Annotation__index PNGs, not the colour labels.")
        return lab

    def sample(self, max_pixels: int = 1_000_000) -> np.ndarray:
        """float32 (4, n) valid pixels from a regular decimated read (bounded, deterministic)."""
        step = max(1, int(np.ceil(np.sqrt(self.width * self.height / max(1, max_pixels)))))
        bw, bh = max(1, self.width // step), max(1, self.height // step)
        raw = self._img.ReadAsArray(0, 0, self.width, self.height, buf_xsize=bw, buf_ysize=bh,
                                    resample_alg=gdal.GRIORA_NearestNeighbour)
        if self.kind == "8bit":
            pad = np.all(raw == 255, axis=0) | np.all(raw == 0, axis=0)
            vals = raw.astype(np.float32) / 255.0
        else:
            pad = np.all(raw == 0, axis=0)
            vals = np.clip(raw[[3, 2, 1, 0]].astype(np.float32) / SCALE16, 0.0, 1.0)
        return vals[:, ~pad]

    def close(self) -> None:
        self._img = None
        self._lab = None


def open_fbp(root: str | Path, image: str = "8bit", label_cache: str | Path | None = None,
             names: list[str] | None = None) -> list[FbpScene]:
    """Open the scenes of an FBP root (optionally only ``names``)."""
    files = list_scenes(root, image)
    if names is not None:
        wanted = set(names)
        files = [f for f in files if f.name in wanted]
    return [FbpScene(f, image, label_cache) for f in files]


def is_fbp_root(path: str | Path) -> bool:
    """True when ``path`` looks like an FBP root (has the index-label folder)."""
    return (Path(path) / LABEL_DIR).is_dir()


def generated_note(root: str | Path) -> str | None:
    """What the generated-data mark of an FBP-layout root says, or None for real data."""
    mark = Path(root) / GENERATED_MARK
    return mark.read_text(encoding="utf-8").strip() if mark.is_file() else None


def _cached_label(png: Path, cache: Path) -> str:
    """A tiled DEFLATE GeoTIFF copy of a label PNG in ``cache`` (made once, atomically)."""
    cache.mkdir(parents=True, exist_ok=True)
    dst = cache / (png.stem + ".tif")
    if dst.is_file() and dst.stat().st_mtime >= png.stat().st_mtime:
        return str(dst)
    with atomic_path(dst) as tmp:
        ds = gdal.Translate(str(tmp), str(png), format="GTiff", bandList=[1],
                            creationOptions=["TILED=YES", "COMPRESS=DEFLATE", "BLOCKXSIZE=256",
                                             "BLOCKYSIZE=256"])
        del ds  # closing the dataset writes it
    return str(dst)
