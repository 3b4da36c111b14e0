"""A user's own labelled data: image rasters with label rasters, read by window.

The image is read through its sensor profile at the working GSD (``raster.ModelInput``), exactly as
mapping reads it. The label raster is used as is when it lies on the same grid, otherwise it is
reprojected on the fly (nearest neighbour) by a warped VRT onto the image's grid. An optional class
mapping (JSON ``{"their value": FBP index}``) turns the user's codes into FBP indices; unmapped values
become 0 (unlabeled).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from osgeo import gdal

from ..classes import NUM_CLASSES, NUM_OUTPUTS
from ..errors import FbpError
from ..io.gdal import RasterGrid, same_grid, warp_to_grid

gdal.UseExceptions()


def load_class_mapping(mapping: str | Path | Mapping | None) -> dict[int, int] | None:
    """{their value: FBP index 0..24} from a dict or a JSON file; None = labels already hold FBP indices."""
    if mapping is None:
        return None
    source = "the class mapping"
    if not isinstance(mapping, Mapping):
        source = str(mapping)
        try:
            mapping = json.loads(Path(mapping).read_text())
        except FileNotFoundError:
            raise FbpError(f"The class mapping file {source} does not exist; "
                           'give a JSON file {"their value": FBP index}.') from None
        except json.JSONDecodeError as exc:
            raise FbpError(f"The class mapping file {source} is not valid JSON ({exc}); "
                           'expected {"their value": FBP index}, e.g. {"10": 6, "80": 13}.') from None
        if not isinstance(mapping, Mapping):
            raise FbpError(f"The class mapping file {source} holds a JSON {type(mapping).__name__}; "
                           'expected an object {"their value": FBP index}.')
    out: dict[int, int] = {}
    for key, value in mapping.items():
        try:
            k, v = int(float(key)), int(value)
        except (TypeError, ValueError):
            raise FbpError(f"In {source} the entry {key!r}: {value!r} is not a pair of integers; "
                           'expected {"their value": FBP index}.') from None
        if not 0 <= v <= NUM_CLASSES:
            raise FbpError(f"In {source} the value {key} maps to {v}, outside the FBP indices 0..24; "
                           "use an index from the FBP legend (0 = ignore).")
        out[k] = v
    return out


class LabelledRaster:
    """An image + label raster pair with the scene interface the sampler uses."""

    def __init__(self, image: str | list[str], label: str, *, sensor: str = "auto",
                 class_mapping: str | Path | Mapping | None = None, working_gsd: float | None = None,
                 name: str | None = None) -> None:
        from ..io import sensors
        from ..io.raster import open_input

        self.profile, self.sensor_reason = sensors.choose(image, sensor)
        self.image = image
        self.path = image if isinstance(image, str) else image[0]
        self.label_path = str(label)
        self.inp = open_input(image, self.profile, working_gsd=working_gsd)
        self.width, self.height = self.inp.width, self.inp.height
        self.name = name or Path(image if isinstance(image, str) else image[0]).stem
        self.mapping = load_class_mapping(class_mapping)
        try:
            src = gdal.Open(self.label_path)
        except RuntimeError as exc:
            raise FbpError(f"The label raster {label} cannot be opened ({exc}); "
                           "give a single-band raster.") from None
        if src.RasterCount < 1:
            raise FbpError(f"The label raster {label} has no band; give a single-band class raster.")
        self.reprojected = not same_grid(RasterGrid.of(src), self.inp.grid)
        self._lab = _warped(src, self.inp) if self.reprojected else src

    def label_window(self, x: int, y: int, w: int, h: int) -> np.ndarray:
        """uint8 FBP labels (0..24) of a window inside the image grid."""
        band = self._lab.GetRasterBand(1)
        raw = band.ReadAsArray(x, y, w, h)
        nodata = band.GetNoDataValue()
        if self.mapping is not None:
            out = np.zeros(raw.shape, np.uint8)
            for value, idx in self.mapping.items():
                out[raw == value] = idx
        else:
            if raw.max(initial=0) >= NUM_OUTPUTS or raw.min(initial=0) < 0:
                bad = int(raw.max()) if raw.max() >= NUM_OUTPUTS else int(raw.min())
                raise FbpError(
                    f"The label raster {self.label_path} holds the value {bad}, "
                    "outside the FBP indices 0..24; "
                    'give a class mapping JSON {"their value": FBP index}.'
                )
            out = raw.astype(np.uint8)
        if nodata is not None:
            out[raw == nodata] = 0
        return out

    def read(self, x: int, y: int, w: int, h: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(float32 (4,h,w) NIR,R,G,B 0..1, bool (h,w) valid, uint8 (h,w) labels), zeros outside."""
        img, valid = self.inp.read(x, y, w, h)
        label = np.zeros((h, w), np.uint8)
        x0, y0 = max(x, 0), max(y, 0)
        x1, y1 = min(x + w, self.width), min(y + h, self.height)
        if x1 > x0 and y1 > y0:
            label[y0 - y:y1 - y, x0 - x:x1 - x] = self.label_window(x0, y0, x1 - x0, y1 - y0)
        label[~valid] = 0
        return img, valid, label

    def sample(self, max_pixels: int = 1_000_000) -> np.ndarray:
        return self.inp.sample(max_pixels)

    def close(self) -> None:
        self._lab = None
        close = getattr(self.inp, "close", None)
        if close is not None:
            close()


def _warped(src: gdal.Dataset, inp) -> gdal.Dataset:
    """A warped VRT of the label raster on the image's grid (nearest neighbour, read on the fly)."""
    if src.GetGeoTransform(can_return_null=True) is None or not src.GetProjection():
        raise FbpError(
            f"The label raster {src.GetDescription()} is not on the image grid "
            f"({src.RasterXSize}x{src.RasterYSize} vs {inp.width}x{inp.height}) "
            "and has no georeferencing to reproject it; give labels on the image's grid."
        )
    nodata = src.GetRasterBand(1).GetNoDataValue()
    return warp_to_grid(src, inp.geotransform, inp.width, inp.height, inp.projection,
                        dstNodata=nodata if nodata is not None else 0)
