"""ModelInput: a raster (or Sentinel-2 band files, or a delivered product: delivered/) seen through a sensor
profile as NIR,R,G,B 0..1 windows, with the product's own quality masks and a user's mask as invalid pixels.

Everything is read window by window through GDAL, so memory follows the window, never the scene.
"""

from __future__ import annotations

import math
import os
import re
import uuid
from pathlib import Path

import numpy as np
from osgeo import gdal

from ..errors import FbpError
from .atomic import same_file
from .delivered import MASK_AUTO, MASK_NONE, MaskSource, Product, recognise
from .delivered.masks import user_mask
from .gdal import RasterGrid, geographic_pixel_metres, numpy_dtype, open_dataset, srs, warp_to_grid
from .sensors import SensorProfile, s2_band_files

gdal.UseExceptions()

_REL_TOL = 1e-6  # pixel sizes this close (relative) count as equal
_SAMPLE_WINDOW = 256
_SAMPLE_WINDOWS = 64


def _sample_windows(
    width: int,
    height: int,
    count: int,
    size: int,
    block: tuple[int, int] = (1, 1),
    offset: tuple[int, int] = (0, 0),
) -> list[tuple[int, int, int, int]]:
    """Up to ``count`` windows of ``size`` pixels, evenly spread over a width x height grid (deterministic).

    On a large raster, window starts are moved to the start of the file's block holding them when blocks are
    at least ``size`` wide/high (``offset`` = where the grid starts in the file), so each window decompresses
    one block instead of up to four.
    """
    nx, ny = math.ceil(width / size), math.ceil(height / size)
    if nx * ny <= count:
        xs = [i * size for i in range(nx)]
        ys = [j * size for j in range(ny)]
    else:
        kx = max(1, min(nx, round(math.sqrt(count * width / height))))
        ky = max(1, min(ny, count // kx))

        def starts(k: int, length: int, blk: int, off: int) -> list[int]:
            vals = [int(round(v)) for v in np.linspace(0, max(0, length - size), k)]
            if blk >= size:
                vals = [max(0, min(((v + off) // blk) * blk - off, length - size)) for v in vals]
            return sorted(set(vals))

        xs = starts(kx, width, block[0], offset[0])
        ys = starts(ky, height, block[1], offset[1])
    return [(x, y, min(size, width - x), min(size, height - y)) for y in ys for x in xs]


def _s2_offset(datasets: list[gdal.Dataset], bands: tuple[int, ...]) -> tuple[float, str]:
    """Sentinel-2 DN offset from metadata: BOA/RADIO_ADD_OFFSET, else PROCESSING_BASELINE >= 04.00 -> 1000."""
    texts = []
    for ds in datasets:
        objs = [ds] + [ds.GetRasterBand(b) for b in bands if b <= ds.RasterCount]
        for obj in objs:
            for domain in obj.GetMetadataDomainList() or [""]:
                md = obj.GetMetadata(domain) if domain else obj.GetMetadata()
                if isinstance(md, dict):
                    texts += [f"{k}={v}" for k, v in md.items()]
    text = "\n".join(texts).upper()
    m = re.search(r"(BOA|RADIO)_ADD_OFFSET[A-Z0-9_]*\s*=\s*(-?\d+(?:\.\d+)?)", text)
    if m:
        value = float(m.group(2))
        return -value, f"metadata {m.group(1)}_ADD_OFFSET={value:g}: DN offset {-value:g}"
    m = re.search(r"PROCESSING_BASELINE\s*=\s*N?(\d+(?:\.\d+)?)", text)
    if m:
        raw = m.group(1)
        baseline = float(raw) if "." in raw else float(raw) / 100.0
        if baseline >= 4.0:
            return 1000.0, f"processing baseline {baseline:05.2f} >= 04.00: DN offset 1000"
        return 0.0, f"processing baseline {baseline:05.2f} < 04.00: no DN offset"
    return 0.0, (
        "no processing baseline in the metadata: no DN offset "
        "(use sentinel2:offset=1000 for baseline >= 04.00)"
    )


def _snap(value: float) -> float:
    """Round pixel coordinates within 1e-6 of an integer, so on-grid extents do not grow by float error."""
    r = round(value)
    return float(r) if abs(value - r) < 1e-6 else value


class ModelInput:
    """A raster through a sensor profile: ``read`` windows of NIR,R,G,B 0..1 float32 plus validity.

    Resampling: when the working GSD differs from the native one (projected CRS only), pixels are taken with
    *nearest neighbour* through a warped VRT whose grid starts exactly at the raster's origin. The reference
    method downsampled PlanetScope 3 m -> 4 m with nearest; nearest is also used when upsampling, because it
    keeps sensor values and nodata exact (bilinear would blend nodata into valid edge pixels).
    Geographic rasters are never resampled by metres: an explicit different ``working_gsd`` is an error and a
    profile default is ignored (noted in ``notes``); reproject to a projected CRS first to change resolution.
    """

    def __init__(
        self,
        image: str | os.PathLike | list,
        profile: SensorProfile,
        *,
        working_gsd: float | None = None,
        mask: str | None = None,
        extent: tuple[float, float, float, float] | None = None,
        rpc_height: float | None = None,
        rpc_dem: str | None = None,
    ) -> None:
        self.profile = profile
        self.notes: list[str] = []
        self._vsimem: list[str] = []
        self._read_ds: gdal.Dataset | None = None
        self._masks: list[tuple[MaskSource, gdal.Dataset]] = []
        self._alpha: int | None = None
        self.product: Product | None = None
        self._rpc = (rpc_height, rpc_dem)
        try:
            self._open(image, working_gsd, mask, extent)
        except BaseException:
            self.close()
            raise

    # ------------------------------------------------------------------------------------------- opening

    def _open(self, image, working_gsd, mask, extent) -> None:
        paths = [os.fspath(p) for p in image] if isinstance(image, (list, tuple)) else [os.fspath(image)]
        if not paths:
            raise FbpError("No input raster was given; give a raster file or the Sentinel-2 band files.")
        self.paths = paths
        self.path = paths[0]
        self.product = recognise(paths[0], rpc_height=self._rpc[0], rpc_dem=self._rpc[1]) if len(paths) == 1 \
            else None
        if self.product is not None:
            ds = self.product.dataset
            src = gdal.Open(ds) if isinstance(ds, str) else ds
            meta_sources = [src]
            self.notes += self.product.notes
        elif len(paths) == 1:
            src = open_dataset(paths[0], raw=self.profile.raw_gtiff)
            meta_sources = [src]
        else:
            meta_sources = [open_dataset(p) for p in paths]
            ordered = s2_band_files(paths)
            if ordered is not None:  # B02, B03, B04, B08 in any order: stacked as B, G, R, NIR
                meta_sources = [meta_sources[paths.index(p)] for p in ordered]
                paths = self.paths = ordered
            for p, ds in zip(paths, meta_sources, strict=True):
                if ds.RasterCount != 1:
                    raise FbpError(
                        f"{p} has {ds.RasterCount} bands but band files must have one band each; "
                        "give one raster with all bands instead."
                    )
            self.notes += _check_band_files(paths, meta_sources)
            vrt = f"/vsimem/fbp_{uuid.uuid4().hex}.vrt"
            self._vsimem.append(vrt)
            gdal.BuildVRT(vrt, paths, separate=True, resolution="highest")
            src = gdal.Open(vrt)
        self._src = src
        if src.RasterXSize < 1 or src.RasterYSize < 1:
            raise FbpError(f"{self.path} is 0 pixels wide or high; give a raster with pixels.")
        if src.RasterCount < 1:
            raise FbpError(f"{self.path} has no raster bands; give a raster with NIR, R, G and B bands.")
        count = src.RasterCount
        if self.product is not None and self.product.alpha:  # a warped VRT: its last band says inside/outside
            self._alpha = count
            count -= 1
        self.bands = self.profile.bands_for(count, self.path)
        self._unique = sorted(set(self.bands))
        first = src.GetRasterBand(self._unique[0])
        self.dtype = numpy_dtype(first)
        self.nodata = {b: src.GetRasterBand(b).GetNoDataValue() for b in self._unique}
        self._float = any(
            gdal.GetDataTypeName(src.GetRasterBand(b).DataType).startswith("Float") for b in self._unique
        )
        self.native_size = (src.RasterXSize, src.RasterYSize)
        self.native_geotransform = tuple(src.GetGeoTransform(can_return_null=True) or (0, 1, 0, 0, 0, 1))
        self.projection = src.GetProjection() or ""
        self._srs_obj = srs(self.projection)
        self.georeferenced = src.GetGeoTransform(can_return_null=True) is not None
        self.geographic = bool(self._srs_obj and self._srs_obj.IsGeographic())

        self._invalid = tuple(self.product.invalid_values) if self.product else ()
        gains = self.product.band_gains if self.product else None
        self._gains = tuple(float(g) for g in gains) if gains else (1.0, 1.0, 1.0, 1.0)
        self._setup_grid(working_gsd)
        self._setup_extent(extent)
        self.mask_option = MASK_AUTO if mask in (None, "", MASK_AUTO) else os.fspath(mask)
        self.mask_path = None if self.mask_option in (MASK_AUTO, MASK_NONE) else self.mask_option
        self.mask_note = (self.product.mask_note if self.product
                          else "not a recognised product: no product mask")
        sources = list(self.product.masks) if self.product and self.mask_option != MASK_NONE else []
        if self.mask_option == MASK_NONE:
            self.mask_note = "no mask (mask option 'none')"
        if self.mask_path:
            if any(os.path.exists(p) and os.path.exists(self.mask_path) and same_file(p, self.mask_path)
                   for p in self.paths):
                raise FbpError(f"The mask raster {self.mask_path} is the input image itself: every non-zero "
                               "pixel would be left unmapped; give a mask raster of its own (non-zero = "
                               "masked).")
            sources.append(user_mask(self.mask_path))
        for source in sources:
            self._setup_mask(source)
        self._setup_scaling(meta_sources)

    def _native_metres(self) -> tuple[float, float] | None:
        gt = self.native_geotransform
        if not self.georeferenced:
            return (self.profile.gsd, self.profile.gsd) if self.profile.gsd else None
        sx, sy = abs(gt[1]), abs(gt[5])
        if self.geographic:
            return geographic_pixel_metres(gt, self.native_size[1], self._srs_obj)
        unit = self._srs_obj.GetLinearUnits() if self._srs_obj else 1.0
        return sx * unit, sy * unit

    def _setup_grid(self, working_gsd: float | None) -> None:
        gt = self.native_geotransform
        native = self._native_metres()
        explicit = working_gsd is not None
        wg = working_gsd if explicit else self.profile.working_gsd
        self._read_ds = self._src
        self._full_size = self.native_size
        self._full_gt = gt
        self.gsd = (native[0] + native[1]) / 2 if native else float("nan")
        self.resampled = False
        if wg is None:
            return
        if wg <= 0:
            raise FbpError(f"Working GSD {wg:g} m is not positive; give a pixel size in metres such as 4.")
        same = native is not None and all(abs(n - wg) <= _REL_TOL * wg for n in native)
        if same:
            return
        where = "the profile's default" if not explicit else "the requested"
        if self._alpha is not None:
            raise FbpError(f"{self.path} is orthorectified on the fly at {self.gsd:g} m and cannot also be "
                           f"resampled to {wg:g} m; leave the working GSD empty.")
        if not self.georeferenced or self.geographic:
            why = "has no georeferencing" if not self.georeferenced else "is in a geographic CRS (degrees)"
            if explicit:
                raise FbpError(
                    f"{self.path} {why}, so it cannot be resampled to a working GSD of {wg:g} m; "
                    "leave the working GSD empty, or reproject it to a projected CRS in metres first "
                    "(gdalwarp -t_srs EPSG:...)."
                )
            self.notes.append(
                f"{where} working GSD {wg:g} m was ignored: the raster {why}; read at native pixels"
            )
            return
        if gt[2] != 0 or gt[4] != 0 or gt[5] >= 0:
            raise FbpError(
                f"{self.path} has a rotated or south-up geotransform, which cannot be resampled to {wg:g} m; "
                "warp it north-up first (gdalwarp) or leave the working GSD empty."
            )
        unit = self._srs_obj.GetLinearUnits() if self._srs_obj else 1.0
        p = wg / unit  # working pixel size in CRS units
        w0, h0 = self.native_size
        w = max(1, math.ceil(w0 * gt[1] / p - 1e-9))
        h = max(1, math.ceil(h0 * -gt[5] / p - 1e-9))
        grid = (gt[0], p, 0.0, gt[3], 0.0, -p)  # starts exactly at the raster's origin
        self._read_ds = warp_to_grid(self._src, grid, w, h, dstAlpha=True, srcNodata="None", errorThreshold=0,
                                     overviewLevel="NONE")
        self._alpha = self._read_ds.RasterCount
        self._full_size = (w, h)
        self._full_gt = grid
        self.gsd = float(wg)
        self.resampled = True

    def _setup_extent(self, extent) -> None:
        fw, fh = self._full_size
        ox, sx, _, oy, _, sy = self._full_gt
        self._xoff, self._yoff = 0, 0
        self.width, self.height = fw, fh
        self.geotransform = tuple(self._full_gt)
        if extent is None:
            return
        xmin, ymin, xmax, ymax = (float(v) for v in extent)
        if not (xmin < xmax and ymin < ymax):
            raise FbpError(
                f"Extent {extent} is empty; give xmin, ymin, xmax, ymax with xmin < xmax and ymin < ymax."
            )
        if not self.georeferenced or self._full_gt[2] != 0 or self._full_gt[4] != 0:
            raise FbpError(
                f"{self.path} has no north-up georeferencing, so an extent cannot be applied; leave it out."
            )
        cols = sorted(((xmin - ox) / sx, (xmax - ox) / sx))
        rows = sorted(((ymax - oy) / sy, (ymin - oy) / sy))
        c0, c1 = math.floor(_snap(cols[0])), math.ceil(_snap(cols[1]))
        r0, r1 = math.floor(_snap(rows[0])), math.ceil(_snap(rows[1]))
        c0, r0, c1, r1 = max(c0, 0), max(r0, 0), min(c1, fw), min(r1, fh)
        if c1 <= c0 or r1 <= r0:
            bounds = (ox, oy + sy * fh, ox + sx * fw, oy) if sy < 0 else (ox, oy, ox + sx * fw, oy + sy * fh)
            raise FbpError(
                f"Extent {tuple(extent)} does not intersect {self.path} "
                f"(bounds {tuple(round(v, 6) for v in bounds)} in the raster's CRS); "
                "give an extent in the raster's CRS that overlaps it."
            )
        self._xoff, self._yoff = c0, r0
        self.width, self.height = c1 - c0, r1 - r0
        self.geotransform = (ox + c0 * sx, sx, 0.0, oy + r0 * sy, 0.0, sy)

    def _setup_mask(self, source: MaskSource) -> None:
        """One mask band seen on the working grid (nearest neighbour), kept with its rule."""
        mask = source.dataset
        mds = open_dataset(mask) if os.path.exists(mask) or mask.startswith("/vsi") else gdal.Open(mask)
        if source.band > mds.RasterCount:
            raise FbpError(f"Mask {mask} has {mds.RasterCount} band(s); band {source.band} was expected.")
        if mds.RasterCount > 1:  # warp only the band the rule reads
            mds = gdal.Translate("", mds, format="VRT", bandList=[source.band])
        fw, fh = self._full_size
        mgt = mds.GetGeoTransform(can_return_null=True)
        if not self.georeferenced or mgt is None:
            if (mds.RasterXSize, mds.RasterYSize) != (fw, fh):
                raise FbpError(
                    f"Mask {mask} is {mds.RasterXSize}x{mds.RasterYSize} pixels and it or the image has no "
                    f"georeferencing, so it must match the image's {fw}x{fh} grid; give a georeferenced mask."
                )
            self._masks.append((source, mds))
            return
        self._masks.append((source, warp_to_grid(
            mds, self._full_gt, fw, fh, self.projection,
            srcSRS=None if mds.GetProjection() else (self.projection or None),
            srcNodata="None", errorThreshold=0, overviewLevel="NONE",
        )))

    def _setup_scaling(self, meta_sources: list[gdal.Dataset]) -> None:
        max_value = None
        if self._float and self.profile.scale is None:
            seen = [
                float(np.nanmax(np.where(valid, a, -np.inf)))
                for x, y, w, h in _sample_windows(self.width, self.height, 16, _SAMPLE_WINDOW)
                for raws, valid in [self._read_raw(x, y, w, h)]
                if valid.any()
                for a in raws.values()
            ]
            max_value = max(seen) if seen else None
        np_dtype = "float32" if self._float else self.dtype
        self.scale, reason = self.profile.resolve_scale(np_dtype, max_value, self.path)
        self.offset = float(self.profile.offset)
        if self.product is not None and self.product.scaling and self.profile == self.product.profile:
            self.scaling = self.product.scaling
            return
        if self.profile.offset_from_metadata and not self._float:
            self.offset, why = _s2_offset(meta_sources, tuple(self._unique) if len(self.paths) == 1 else (1,))
            reason += f"; {why}"
        elif self.offset:
            reason += f"; DN offset {self.offset:g} subtracted first"
        self.scaling = reason

    # ------------------------------------------------------------------------------------------- reading

    def _read_raw(self, x: int, y: int, w: int, h: int) -> tuple[dict[int, np.ndarray], np.ndarray]:
        """Raw values of the used bands inside the grid (x, y, w, h must lie inside) and their validity."""
        rx, ry = x + self._xoff, y + self._yoff
        data = self._read_ds.ReadAsArray(rx, ry, w, h, band_list=self._unique)
        data = np.asarray(data).reshape(len(self._unique), h, w)
        valid = np.ones((h, w), dtype=bool)
        raws: dict[int, np.ndarray] = {}
        for i, b in enumerate(self._unique):
            arr = data[i]
            raws[b] = arr
            nd = self.nodata[b]
            if arr.dtype.kind == "f":
                valid &= np.isfinite(arr)
                if nd is not None and not math.isnan(nd):
                    valid &= arr != nd
            elif nd is not None and not math.isnan(nd):
                valid &= arr != nd
            for bad in self._invalid:
                valid &= arr != bad
        if self._alpha is not None:
            valid &= self._read_ds.GetRasterBand(self._alpha).ReadAsArray(rx, ry, w, h) > 0
        if self._masks:
            valid &= ~self._masked_raw(rx, ry, w, h)
        return raws, valid

    def _masked_raw(self, rx: int, ry: int, w: int, h: int) -> np.ndarray:
        masked = np.zeros((h, w), dtype=bool)
        for source, ds in self._masks:
            masked |= np.asarray(source.rule(ds.GetRasterBand(1).ReadAsArray(rx, ry, w, h)), dtype=bool)
        return masked

    def masked(self, x: int, y: int, w: int, h: int) -> np.ndarray:
        """Where the masks (the product's and the user's) mask a window inside the grid; no image validity."""
        if not self._masks:
            return np.zeros((h, w), dtype=bool)
        return self._masked_raw(x + self._xoff, y + self._yoff, w, h)

    def masked_share_estimate(self) -> float | None:
        """The masked share of the grid from the same evenly spread windows as the statistics (exact on a
        raster they cover), or None without masks."""
        if not self._masks:
            return None
        total = hit = 0
        for x, y, w, h in _sample_windows(self.width, self.height, _SAMPLE_WINDOWS, _SAMPLE_WINDOW):
            m = self.masked(x, y, w, h)
            total += m.size
            hit += int(m.sum())
        return hit / total if total else 0.0

    def mask_summary(self, estimate: bool = True) -> dict:
        """Which masks are used (name and rule), what was looked for, the masked share (estimated)."""
        share = self.masked_share_estimate() if estimate else None
        return {"option": self.mask_option, "found": self.mask_note,
                "used": [f"{s.name}: {s.rule_text}" for s, _ in self._masks],
                "masked_share_estimate": None if share is None else round(share, 4)}

    def read(self, x: int, y: int, w: int, h: int) -> tuple[np.ndarray, np.ndarray]:
        """A window (boundless): float32 (4, h, w) NIR,R,G,B in 0..1 and bool (h, w) validity.

        Outside the raster values are 0 and invalid; invalid also where any used band is nodata or NaN
        and where the mask is non-zero (those pixels are set to 0). Values are (DN - offset) / scale clipped
        to [0, 1]: saturated or above-range DN (clouds, 12-bit values in 10-bit products) and DN below the
        Sentinel-2 offset would otherwise fall outside the 0..1 range the models were trained on (x/255).
        """
        out = np.zeros((4, h, w), dtype=np.float32)
        valid = np.zeros((h, w), dtype=bool)
        x0, y0 = max(x, 0), max(y, 0)
        x1, y1 = min(x + w, self.width), min(y + h, self.height)
        if x1 <= x0 or y1 <= y0:
            return out, valid
        raws, v = self._read_raw(x0, y0, x1 - x0, y1 - y0)
        sl = (slice(y0 - y, y1 - y), slice(x0 - x, x1 - x))
        for k, b in enumerate(self.bands):
            vals = (raws[b].astype(np.float32) - np.float32(self.offset)) / np.float32(self.scale)
            if self._gains[k] != 1.0:
                vals *= np.float32(self._gains[k])
            np.clip(vals, 0.0, 1.0, out=vals)
            vals[~v] = 0.0
            out[k][sl] = vals
        valid[sl] = v
        return out, valid

    def sample(self, max_pixels: int) -> np.ndarray:
        """Valid pixels, float32 (4, n) with n <= max_pixels, from up to 64 evenly spread 256x256 windows.

        Deterministic and bounded (at most 64 window reads, or 256 reads of 64x64 windows more when the first
        pass found nothing valid, as on sparse rasters), never a decimated read of the whole file.
        """
        chunks: list[np.ndarray] = []
        for count, size in ((_SAMPLE_WINDOWS, _SAMPLE_WINDOW), (256, 64)):
            block = tuple(self._read_ds.GetRasterBand(self._unique[0]).GetBlockSize())
            windows = _sample_windows(self.width, self.height, count, size, block, (self._xoff, self._yoff))
            for x, y, w, h in windows:
                vals, valid = self.read(x, y, w, h)
                if valid.any():
                    chunks.append(vals[:, valid])
            if chunks or self.width * self.height <= count * size * size:
                break
        if not chunks:
            return np.zeros((4, 0), dtype=np.float32)
        allpx = np.concatenate(chunks, axis=1)
        if max_pixels > 0 and allpx.shape[1] > max_pixels:
            idx = np.linspace(0, allpx.shape[1] - 1, max_pixels).round().astype(np.int64)
            allpx = allpx[:, idx]
        return np.ascontiguousarray(allpx, dtype=np.float32)

    # ------------------------------------------------------------------------------------------- info

    @property
    def grid(self) -> RasterGrid:
        """The working grid (what ``read`` windows lie on)."""
        return RasterGrid(self.width, self.height, self.geotransform if self.georeferenced else None,
                          self.projection)

    @property
    def epsg(self) -> int | None:
        if not self._srs_obj:
            return None
        code = self._srs_obj.GetAuthorityCode(None)
        return int(code) if code and self._srs_obj.GetAuthorityName(None) == "EPSG" else None

    def describe(self) -> dict:
        """What the CLI's ``info`` prints: file, driver, bands, CRS, GSDs, working grid, profile, scaling."""
        src = self._src
        bands = []
        for i in range(src.RasterCount):
            b = src.GetRasterBand(i + 1)
            bands.append(
                {
                    "index": i + 1,
                    "dtype": gdal.GetDataTypeName(b.DataType),
                    "colour": gdal.GetColorInterpretationName(b.GetColorInterpretation()),
                    "description": b.GetDescription(),
                    "nodata": b.GetNoDataValue(),
                }
            )
        native = self._native_metres()
        return {
            "path": self.path,
            "paths": list(self.paths),
            "driver": src.GetDriver().ShortName if len(self.paths) == 1 else "VRT of band files",
            "size": list(self.native_size),
            "bands": bands,
            "crs": self._srs_obj.GetName() if self._srs_obj else None,
            "epsg": self.epsg,
            "geographic": self.geographic,
            "native_gsd": list(native) if native else None,
            "native_pixel_size": [self.native_geotransform[1], self.native_geotransform[5]],
            "working_size": [self.width, self.height],
            "working_gsd": self.gsd,
            "geotransform": list(self.geotransform),
            "resampled": "nearest" if self.resampled else None,
            "profile": self.profile.label,
            "profile_title": self.profile.title,
            "nir_r_g_b_bands": list(self.bands),
            "scale": self.scale,
            "offset": self.offset,
            "scaling": self.scaling,
            "mask": self.mask_summary(),
            "product": dict(self.product.facts, kind=self.product.kind) if self.product else None,
            "geometry": self.product.facts.get("geometry") if self.product else (
                "geotransform" if self.georeferenced else "none (pixel grid only)"),
            "notes": list(self.notes),
        }

    # ------------------------------------------------------------------------------------------- lifetime

    def close(self) -> None:
        """Release GDAL datasets and in-memory VRTs (safe to call twice)."""
        self._masks = []
        self._read_ds = None
        self.product = None
        self._src = None
        for p in self._vsimem:
            try:
                gdal.Unlink(p)
            except RuntimeError:
                pass
        self._vsimem = []

    def __enter__(self) -> ModelInput:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # whatever fails at interpreter shutdown
            pass

    def __repr__(self) -> str:
        name = Path(self.path).name
        return f"ModelInput({name!r}, {self.profile.label}, {self.width}x{self.height}, {self.gsd:g} m)"


def _check_band_files(paths: list[str], datasets: list[gdal.Dataset]) -> list[str]:
    """Band files must lie in one CRS and cover one extent (within a pixel); different pixel sizes over the
    same extent are stacked at the finest (a note says so). FbpError naming the file that differs."""
    grids = [RasterGrid.of(ds) for ds in datasets]
    first, ref = paths[0], grids[0]
    ref_srs = srs(ref.projection)
    notes = []
    for path, grid in zip(paths[1:], grids[1:], strict=True):
        other = srs(grid.projection)
        if (ref_srs is None) != (other is None) or (ref_srs is not None and not ref_srs.IsSame(other)):
            names = [s.GetName() if s is not None else "no CRS" for s in (ref_srs, other)]
            raise FbpError(f"The band files are in different coordinate systems: {first} in {names[0]}, "
                           f"{path} in {names[1]}; give the four bands of one product (one tile), or warp "
                           "them to one CRS first (gdalwarp -t_srs).")
        if (ref.geotransform is None) != (grid.geotransform is None):
            missing = path if grid.geotransform is None else first
            raise FbpError(f"{missing} has no georeferencing and the other band files have; give the four "
                           "bands of one product.")
        if ref.geotransform is None:
            if (grid.width, grid.height) != (ref.width, ref.height):
                raise FbpError(f"The band files {first} and {path} differ in size and have no "
                               "georeferencing; give the four bands of one product.")
            continue
        a, b = _bounds(ref), _bounds(grid)
        pixel = max(abs(ref.geotransform[1]), abs(grid.geotransform[1]))
        if max(abs(u - v) for u, v in zip(a, b, strict=True)) > pixel:
            raise FbpError(
                f"The band files cover different areas: {first} spans x {a[0]:.0f}..{a[2]:.0f}, "
                f"y {a[1]:.0f}..{a[3]:.0f} and {path} spans x {b[0]:.0f}..{b[2]:.0f}, "
                f"y {b[1]:.0f}..{b[3]:.0f}; give the four bands of one tile and date, or crop them alike "
                "(gdal_translate -projwin).")
        if abs(abs(grid.geotransform[1]) - abs(ref.geotransform[1])) > 1e-9 * pixel:
            notes.append(f"the band files have different pixel sizes ({abs(ref.geotransform[1]):g} and "
                         f"{abs(grid.geotransform[1]):g}); they are stacked at the finest")
    return notes


def _bounds(grid: RasterGrid) -> tuple[float, float, float, float]:
    gt = grid.geotransform
    xs = (gt[0], gt[0] + gt[1] * grid.width)
    ys = (gt[3], gt[3] + gt[5] * grid.height)
    return min(xs), min(ys), max(xs), max(ys)


def open_input(
    image: str | list[str],
    profile: SensorProfile,
    *,
    working_gsd: float | None = None,
    mask: str | None = None,
    extent: tuple[float, float, float, float] | None = None,
    rpc_height: float | None = None,
    rpc_dem: str | None = None,
) -> ModelInput:
    """Open a raster (or Sentinel-2 band files, or a delivered product) as model input; see ``ModelInput``.

    ``mask``: None or "auto" (the product's own masks), "none" (no mask at all), or a raster whose non-zero
    pixels are masked, combined with the product's own."""
    return ModelInput(image, profile, working_gsd=working_gsd, mask=mask, extent=extent,
                      rpc_height=rpc_height, rpc_dem=rpc_dem)
