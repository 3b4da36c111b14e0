"""Accuracy of a land-cover map against a reference raster or reference points/polygons.

The map holds FBP classes (uint8, 0 = nodata). The reference may use any legend: a JSON mapping file
takes its values (or attribute values) to FBP classes or to the classes of a coarse legend. A raster
reference on another grid is resampled onto the map's grid (nearest, through a warped VRT); a vector
reference is rasterised onto it from an attribute field. Both are read in strips of rows, so whole
maps are never in memory. Optionally both are collapsed to a coarser legend (``gid5``, ``coarse``,
or a legend JSON file). Results go to ``<out_prefix>.json``, ``.csv`` and ``.md``.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
from osgeo import gdal, ogr

from .. import classes
from ..errors import FbpError
from ..io.atomic import AtomicFiles
from ..io.gdal import RasterGrid, same_grid, warp_to_grid
from ..progress import Progress
from .metrics import ConfusionMatrix
from .reports import report_csv, report_markdown

gdal.UseExceptions()
ogr.UseExceptions()

_STRIP_PIXELS = 4_000_000


# ---------------------------------------------------------------------------------------------- legend


class _Legend:
    """The legend scores are computed in: FBP classes, or a collapse of them."""

    def __init__(self, collapse: str | None) -> None:
        self.collapse = classes.load_collapse(collapse) if collapse else None
        if self.collapse is None:
            self.name = "fbp"
            self.k = classes.NUM_CLASSES
            self.names = classes.names()
            self.map_lut = np.arange(256, dtype=np.int64)
        else:
            self.name = self.collapse.name
            self.k = max(self.collapse.targets)
            self.names = ["unlabeled"] + [self.collapse.targets.get(v, (f"class {v}",))[0]
                                          for v in range(1, self.k + 1)]
            self.map_lut = np.array(self.collapse.lookup_table(), np.int64)

    def fbp_value(self, value) -> int:
        """An FBP index from an int or a class name."""
        if isinstance(value, str) and not value.strip().lstrip("-").isdigit():
            lookup = {n.lower(): i for i, n in enumerate(classes.names())}
            if value.strip().lower() not in lookup:
                raise FbpError(f"Reference mapping: {value!r} is not an FBP class name; "
                               "use an index 0..24 or a name such as 'arbor forest'.")
            return lookup[value.strip().lower()]
        v = int(value)
        if not 0 <= v <= classes.NUM_CLASSES:
            raise FbpError(f"Reference mapping: FBP class {v} is outside 0..24; fix the mapping file.")
        return v

    def target_value(self, value) -> int:
        """A value of the collapsed legend from an int or one of its class names."""
        assert self.collapse is not None
        if isinstance(value, str) and not value.strip().lstrip("-").isdigit():
            lookup = {n.lower(): v for v, (n, _rgb) in self.collapse.targets.items()}
            if value.strip().lower() not in lookup:
                raise FbpError(f"Reference mapping: {value!r} is not a class of the '{self.name}' legend "
                               f"({', '.join(n for n, _ in self.collapse.targets.values())}); "
                               "fix the mapping file.")
            return lookup[value.strip().lower()]
        v = int(value)
        if not 0 <= v <= self.k:
            raise FbpError("Reference mapping: "
                           f"{v} is outside the '{self.name}' legend's classes 0..{self.k}.")
        return v


def _key(value) -> str:
    """The mapping key of a reference value: integral numbers without decimals, strings as they are."""
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    return str(value).strip()


# reference mappings by name: the reference holds FBP classes / the collapsed legend's codes
MAPPING_WORDS = ("fbp", "collapsed")


def load_reference_mapping(mapping: str | os.PathLike | dict, legend: _Legend) -> dict[str, int]:
    """{reference value as text: value in the scoring legend} from a JSON file or a dict.

    The JSON is ``{"<reference value>": <FBP class or coarse target>, ...}`` or
    ``{"to": "fbp" | "collapsed", "mapping": {...}}``; values are indices or class names (null = excluded).
    Without ``to``, values are FBP classes, or the collapsed legend's classes when a collapse is used.
    The words ``fbp`` and ``collapsed`` (MAPPING_WORDS) say the reference already holds FBP classes 1..24, or
    the codes of the collapse's legend.
    """
    if isinstance(mapping, str) and mapping in MAPPING_WORDS and not Path(mapping).exists():
        if mapping == "fbp":
            mapping = {"to": "fbp", "mapping": {str(i): i for i in range(1, classes.NUM_CLASSES + 1)}}
        elif legend.collapse is None:
            raise FbpError("The reference mapping 'collapsed' needs a coarse legend: give --collapse too.")
        else:
            mapping = {"to": "collapsed", "mapping": {str(i): i for i in range(1, legend.k + 1)}}
    if isinstance(mapping, dict):
        data, where = mapping, "the reference mapping"
    else:
        where = os.fspath(mapping)
        try:
            data = json.loads(Path(where).read_text())
        except (OSError, ValueError) as exc:
            raise FbpError(f"Reference mapping {where} could not be read as JSON ({exc}); "
                           'give a file like {"1": "arbor forest", "2": 13}.') from None
    if not isinstance(data, dict):
        raise FbpError(f"Reference mapping {where} must be a JSON object of reference value -> class.")
    to = data.get("to", "collapsed" if legend.collapse else "fbp") if "mapping" in data else (
        "collapsed" if legend.collapse else "fbp")
    table = data["mapping"] if "mapping" in data else data
    if to not in ("fbp", "collapsed") or (to == "collapsed" and legend.collapse is None):
        raise FbpError(f"Reference mapping {where}: 'to' is {to!r}; use 'fbp', "
                       "or 'collapsed' together with a coarse legend (collapse).")
    out: dict[str, int] = {}
    for key, value in table.items():
        if value is None:
            out[_key(key)] = 0
        elif to == "fbp":
            out[_key(key)] = int(legend.map_lut[legend.fbp_value(value)])
        else:
            out[_key(key)] = legend.target_value(value)
    return out


class _Remapper:
    """Turns blocks of raw reference values into scoring-legend values (0 = no reference)."""

    def __init__(self, legend: _Legend, mapping: dict[str, int] | None, source: str,
                 nodata: float | None = None, codes: list | None = None) -> None:
        self.legend, self.mapping, self.source = legend, mapping, source
        self.nodata, self.codes = nodata, codes
        self.seen: set[int] = set()  # the FBP class values read without a mapping (legend detection)

    def value(self, raw) -> int:
        if self.codes is not None:  # rasterised vector: 0 = no feature, code i = attribute value codes[i-1]
            if raw == 0:
                return 0
            raw = self.codes[int(raw) - 1]
            if raw is None:
                return 0
        elif self.nodata is not None and (raw == self.nodata
                                          or (math.isnan(self.nodata) and math.isnan(raw))):
            return 0
        if self.mapping is not None:
            return self.mapping.get(_key(raw), 0)
        try:
            v = float(raw)
        except ValueError:
            v = float("nan")
        if not (v.is_integer() and 0 <= v <= classes.NUM_CLASSES):
            raise FbpError(
                f"The reference {self.source} holds the value {raw!r}, which is not an FBP class 0..24; "
                "give a reference mapping JSON (reference value -> FBP class or coarse class)."
            )
        if v > 0:
            self.seen.add(int(v))
        return int(self.legend.map_lut[int(v)])

    def __call__(self, block: np.ndarray) -> np.ndarray:
        uniq, inv = np.unique(block, return_inverse=True)
        table = np.array([self.value(u.item()) for u in uniq], np.int64)
        return table[inv].reshape(block.shape)


# ---------------------------------------------------------------------------------------------- grids


def _check_reference_was_usable(cm: ConfusionMatrix, remap: _Remapper, legend: _Legend, map_path: str,
                                reference: str) -> None:
    """FbpError when no map pixel got a reference label (no overlap, an empty layer), or when, under a
    collapse and without a mapping, every reference value is a code of the collapsed legend (1..k): such a
    reference is most likely in that legend already, and reading it as FBP classes scores nonsense."""
    if not cm.matrix[1:].sum():
        raise FbpError(f"No pixel of the map {map_path} has a reference label: the reference {reference} "
                       "does not overlap the map, or it is empty (no features, or only no-data and unmapped "
                       "values); check that both cover the same place and that the reference has labels.")
    if remap.mapping is None and legend.collapse is not None and remap.seen and max(remap.seen) <= legend.k:
        values = ", ".join(map(str, sorted(remap.seen)))
        raise FbpError(
            f"The reference {reference} holds only the values {values}, which look like codes of the "
            f"'{legend.name}' legend (1..{legend.k}) rather than FBP classes (1..24); give --mapping "
            f"collapsed if it is in the '{legend.name}' legend, --mapping fbp if these really are FBP "
            "classes, or a mapping JSON file.")


def _map_grid(map_ds: gdal.Dataset, map_path: str, reference: str) -> tuple[tuple, str]:
    gt, wkt = map_ds.GetGeoTransform(can_return_null=True), map_ds.GetProjection()
    if gt is None or not wkt:
        raise FbpError(f"{map_path} has no georeferencing, "
                       f"so the reference {reference} cannot be placed on it; "
                       "use a georeferenced map or a reference raster of exactly the same size.")
    if gt[2] or gt[4]:
        raise FbpError(f"{map_path} has a rotated geotransform; warp it north-up "
                       "(gdalwarp) before evaluating.")
    return gt, wkt


def _warped_reference(ref_ds: gdal.Dataset, map_ds: gdal.Dataset, map_path: str,
                      reference: str) -> gdal.Dataset:
    gt, wkt = _map_grid(map_ds, map_path, reference)
    if not ref_ds.GetProjection() or ref_ds.GetGeoTransform(can_return_null=True) is None:
        raise FbpError(f"The reference {reference} has no georeferencing "
                       f"and a different size from {map_path}; "
                       "georeference it or give one on the map's grid.")
    if ref_ds.RasterCount > 1:
        ref_ds = gdal.Translate("", ref_ds, format="VRT", bandList=[1])
    return warp_to_grid(ref_ds, gt, map_ds.RasterXSize, map_ds.RasterYSize, wkt, dstAlpha=True,
                        multithread=False)


# ---------------------------------------------------------------------------------------------- vector


def _open_reference(reference: str) -> tuple[gdal.Dataset, str]:
    path = os.fspath(reference)
    candidates = [path]
    if path.lower().endswith(".zip") and not path.startswith("/vsi"):
        candidates.append("/vsizip/" + path)
    if not path.startswith("/vsi") and not os.path.exists(path):
        raise FbpError(f"The reference {path} does not exist; check the path.")
    for cand in candidates:
        try:
            ds = gdal.OpenEx(cand, gdal.OF_RASTER | gdal.OF_VECTOR)
        except RuntimeError:
            continue
        if ds is not None and ds.RasterCount > 0:
            return ds, "raster"
        if ds is not None and ds.GetLayerCount() > 0:
            return ds, "vector"
    raise FbpError(f"The reference {path} is neither a raster nor a vector GDAL can read; give a GeoTIFF, "
                   "a GeoPackage, a shapefile (or a zip of one) or another GDAL/OGR format.")


def _coded_layer(ds: gdal.Dataset, field: str | None, reference: str,
                 layer_name: str | None = None) -> tuple[gdal.Dataset, list]:
    """An in-memory copy of a layer (the named one, else the first) with integer codes 1..n for the field's
    distinct values."""
    layer = ds.GetLayerByName(layer_name) if layer_name else ds.GetLayer(0)
    if layer is None:
        names = ", ".join(ds.GetLayer(i).GetName() for i in range(ds.GetLayerCount()))
        raise FbpError(f"The reference {reference} has no layer {layer_name!r}; its layers are {names}.")
    defn = layer.GetLayerDefn()
    fields = [defn.GetFieldDefn(i).GetName() for i in range(defn.GetFieldCount())]
    if field is None:
        if len(fields) != 1:
            raise FbpError(f"The reference {reference} has "
                           f"the attribute fields {', '.join(fields) or 'none'}; "
                           "say which one holds the class (reference_field).")
        field = fields[0]
    if field not in fields:
        raise FbpError(f"The reference {reference} has no field {field!r}; "
                       f"its fields are {', '.join(fields)}.")
    mem = ogr.GetDriverByName("Memory").CreateDataSource("ref")
    out = mem.CreateLayer("ref", srs=layer.GetSpatialRef(), geom_type=ogr.wkbUnknown)
    out.CreateField(ogr.FieldDefn("_code", ogr.OFTInteger))
    codes: dict = {}
    layer.ResetReading()
    for feat in layer:
        geom = feat.GetGeometryRef()
        if geom is None:
            continue
        value = feat.GetField(field) if feat.IsFieldSetAndNotNull(field) else None
        code = codes.setdefault(value, len(codes) + 1)
        f = ogr.Feature(out.GetLayerDefn())
        f.SetGeometry(geom)
        f.SetField("_code", code)
        out.CreateFeature(f)
    return mem, [v for v, _c in sorted(codes.items(), key=lambda kv: kv[1])]


def _rasterise_strip(vec, wkt: str, gt: tuple, y: int, w: int, h: int) -> np.ndarray:
    dst = gdal.GetDriverByName("MEM").Create("", w, h, 1, gdal.GDT_Int32)
    dst.SetGeoTransform((gt[0], gt[1], 0.0, gt[3] + y * gt[5], 0.0, gt[5]))
    dst.SetProjection(wkt)
    gdal.RasterizeLayer(dst, [1], vec.GetLayer(0), options=["ATTRIBUTE=_code"])
    return dst.GetRasterBand(1).ReadAsArray()


# ---------------------------------------------------------------------------------------------- evaluate


def evaluate(map_path: str, reference: str, *, reference_mapping: str | dict | None = None,
             collapse: str | None = None, out_prefix: str | None = None, reference_field: str | None = None,
             reference_layer: str | None = None, progress: Callable[[float, str], None] | None = None,
             is_cancelled: Callable[[], bool] | None = None) -> dict:
    """Score a class map against a reference raster or vector; see the module docstring. Returns the
    scores."""
    prog = Progress(progress, is_cancelled)
    map_path, reference = os.fspath(map_path), os.fspath(reference)
    map_ds = _open_map(map_path)
    band, map_nodata = map_ds.GetRasterBand(1), map_ds.GetRasterBand(1).GetNoDataValue()
    legend = _Legend(collapse)
    mapping = load_reference_mapping(reference_mapping, legend) if reference_mapping is not None else None
    ref = _ReferenceOnMapGrid(reference, map_ds, map_path, legend, mapping, reference_field, reference_layer)
    w, h = map_ds.RasterXSize, map_ds.RasterYSize
    cm = ConfusionMatrix(legend.k, legend.names)
    step = max(1, min(h, _STRIP_PIXELS // max(w, 1)))
    for y in range(0, h, step):
        n = min(step, h - y)
        raw_map = band.ReadAsArray(0, y, w, n).astype(np.int64)
        if map_nodata is not None:
            raw_map[raw_map == map_nodata] = 0
        if raw_map.size and (raw_map.min() < 0 or raw_map.max() > classes.NUM_CLASSES):
            bad = int(raw_map.max() if raw_map.max() > classes.NUM_CLASSES else raw_map.min())
            raise FbpError(f"The map {map_path} holds the value {bad}, which is not an FBP class 0..24; "
                           "evaluate a class map written by this plugin (or one with FBP class values).")
        cm.add(legend.map_lut[raw_map], ref.strip(y, n))
        prog((y + n) / h, "Comparing the map with the reference")
    _check_reference_was_usable(cm, ref.remap, legend, map_path, reference)
    result = cm.scores()
    result.update(map=map_path, reference=reference, reference_kind=ref.kind, legend=legend.name,
                  regridded=ref.regridded)
    if out_prefix:
        result["outputs"] = _write_reports(result, Path(out_prefix))
    return result


def _open_map(map_path: str) -> gdal.Dataset:
    """The class map: one band of integer classes, or FbpError."""
    if not os.path.exists(map_path) and not map_path.startswith("/vsi"):
        raise FbpError(f"The map {map_path} does not exist; check the path.")
    try:
        map_ds = gdal.Open(map_path)
    except RuntimeError as exc:
        raise FbpError(f"The map {map_path} is not a raster GDAL can read ({exc}).") from None
    band = map_ds.GetRasterBand(1)
    if map_ds.RasterCount != 1 or band.DataType not in (gdal.GDT_Byte, gdal.GDT_UInt16, gdal.GDT_Int16,
                                                        gdal.GDT_Int32, gdal.GDT_UInt32):
        raise FbpError(f"The map {map_path} should be one band of integer classes (an FBP class map), "
                       f"but it has {map_ds.RasterCount} band(s) of {gdal.GetDataTypeName(band.DataType)}.")
    return map_ds


class _ReferenceOnMapGrid:
    """The reference read in strips of the map's rows, in the scoring legend (0 = no reference): a raster as
    it is when it lies on the map's grid, else warped onto it; a vector layer rasterised onto it."""

    def __init__(self, reference: str, map_ds: gdal.Dataset, map_path: str, legend: _Legend,
                 mapping: dict[str, int] | None, field: str | None, layer: str | None) -> None:
        ref_ds, self.kind = _open_reference(reference)
        self.width = map_ds.RasterXSize
        self.vec = self.alpha = None
        if self.kind == "raster":
            self.regridded = not same_grid(RasterGrid.of(map_ds), RasterGrid.of(ref_ds))
            src = _warped_reference(ref_ds, map_ds, map_path, reference) if self.regridded else ref_ds
            self.alpha = src.GetRasterBand(2) if self.regridded else None
            self.band = src.GetRasterBand(1)
            self._src = src  # keeps the (warped) dataset of the bands alive
            self.remap = _Remapper(legend, mapping, reference, nodata=self.band.GetNoDataValue())
        else:
            self.gt, self.wkt = _map_grid(map_ds, map_path, reference)
            self.vec, codes = _coded_layer(ref_ds, field, reference, layer)
            self.remap = _Remapper(legend, mapping, reference, codes=codes)
            self.regridded = True

    def strip(self, y: int, n: int) -> np.ndarray:
        """Rows [y, y + n) of the reference on the map's grid."""
        if self.vec is not None:
            return self.remap(_rasterise_strip(self.vec, self.wkt, self.gt, y, self.width, n))
        ref = self.remap(self.band.ReadAsArray(0, y, self.width, n))
        if self.alpha is not None:
            ref[self.alpha.ReadAsArray(0, y, self.width, n) == 0] = 0
        return ref


def _write_reports(result: dict, prefix: Path) -> dict[str, str]:
    """PREFIX.json, .csv and .md, written together; returns their paths."""
    prefix.parent.mkdir(parents=True, exist_ok=True)
    outputs = {ext: str(prefix.with_name(prefix.name + "." + ext)) for ext in ("json", "csv", "md")}
    result["outputs"] = outputs
    with AtomicFiles() as files:
        files.write_text(outputs["json"], json.dumps(result, indent=2))
        files.write_text(outputs["csv"], report_csv(result))
        files.write_text(outputs["md"], report_markdown(result))
    return outputs
