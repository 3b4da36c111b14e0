"""Class areas per zone: a polygon layer rasterised onto the mosaic grid block by block.

Each zone gets an id (its position in the layer, 1..n); the ids are burnt with gdal.RasterizeLayer
(pixel centres inside a polygon; GDAL reprojects the layer to the mosaic CRS), so every mosaic pixel
is counted once, in at most one zone (where zones overlap, the later feature wins). Areas are the true
pixel areas of products.areas (geodesic on a geographic grid).
"""

from __future__ import annotations

import csv
import io
import json

import numpy as np
from osgeo import gdal, ogr

from .. import classes
from ..errors import FbpError
from ..io.gdal import srs
from ..products.areas import PixelArea
from .mosaic import Grid

gdal.UseExceptions()
ogr.UseExceptions()

ZID = "fbp_zone_id"


class ZoneCounter:
    """Per-zone, per-class pixel counts and areas; ``add`` is a mosaic sink (x, y, classes, confidence)."""

    def __init__(self, grid: Grid, path: str, field: str | None = None) -> None:
        try:
            src = ogr.Open(str(path))
        except RuntimeError:
            src = None
        if src is None or src.GetLayerCount() == 0:
            raise FbpError(f"The zones file {path} could not be opened as a vector layer; "
                           "give a GeoPackage or shapefile of polygons.")
        layer = src.GetLayer(0)
        defn = layer.GetLayerDefn()
        if field and defn.GetFieldIndex(field) < 0:
            names = [defn.GetFieldDefn(i).GetName() for i in range(defn.GetFieldCount())]
            raise FbpError(f"The zones layer {path} has no field {field!r}; "
                           f"choose one of {', '.join(names)}.")
        self.grid = grid
        self.area = PixelArea(grid.geotransform, grid.projection)
        self.mem = ogr.GetDriverByName("Memory").CreateDataSource("zones")
        ref = layer.GetSpatialRef() or srs(grid.projection)
        self.layer = self.mem.CreateLayer("zones", ref, ogr.wkbUnknown)
        self.layer.CreateField(ogr.FieldDefn(ZID, ogr.OFTInteger))
        self.names: list[str] = [""]
        self.fids: list[int] = [0]
        for k, feat in enumerate(layer, start=1):
            geom = feat.GetGeometryRef()
            out = ogr.Feature(self.layer.GetLayerDefn())
            out.SetField(ZID, k)
            if geom is not None:
                out.SetGeometry(geom.Clone())
            self.layer.CreateFeature(out)
            self.names.append(str(feat.GetField(field)) if field else str(feat.GetFID()))
            self.fids.append(feat.GetFID())
        n = len(self.names)
        self.pixels = np.zeros((n, 256), np.int64)
        self.area_m2 = np.zeros((n, 256), np.float64)
        self.source = str(path)

    def zone_ids(self, x: int, y: int, w: int, h: int) -> np.ndarray:
        """int32 (h, w) zone ids of a window of the grid (0 = in no zone)."""
        ds = gdal.GetDriverByName("MEM").Create("", w, h, 1, gdal.GDT_Int32)
        g = self.grid
        ds.SetGeoTransform((g.x0 + x * g.res, g.res, 0.0, g.y0 - y * g.res, 0.0, -g.res))
        ds.SetProjection(g.projection)
        gdal.RasterizeLayer(ds, [1], self.layer, options=[f"ATTRIBUTE={ZID}"])
        return ds.GetRasterBand(1).ReadAsArray()

    def add(self, x: int, y: int, cls: np.ndarray, _conf=None) -> None:
        h, w = cls.shape
        zid = self.zone_ids(x, y, w, h)
        key = (zid.astype(np.int64) * 256 + cls).ravel()
        size = self.pixels.size
        self.pixels += np.bincount(key, minlength=size).reshape(self.pixels.shape)
        rows = np.broadcast_to(self.area.rows_area(y, h)[:, None], (h, w)).ravel()
        self.area_m2 += np.bincount(key, weights=rows, minlength=size).reshape(self.area_m2.shape)

    def rows(self) -> list[dict]:
        """zone_id (feature id), zone, class index, class name, pixels, km2 — classes present only."""
        out = []
        for z in range(1, len(self.names)):
            for c in classes.CLASSES[1:]:
                n = int(self.pixels[z, c.index])
                if n:
                    out.append({"zone_id": self.fids[z], "zone": self.names[z], "class": c.index,
                                "name": c.name, "pixels": n,
                                "km2": round(float(self.area_m2[z, c.index]) / 1e6, 6)})
        return out


def zones_csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    fields = ["zone_id", "zone", "class", "name", "pixels", "km2"]
    writer = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def zones_json(rows: list[dict], source: str, mosaic: str) -> str:
    return json.dumps({"zones": source, "map": mosaic, "rows": rows}, indent=2)
