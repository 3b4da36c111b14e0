"""engine.io.gdal: one same-grid check with one tolerance, a grid's pixels in metres on the ellipsoid, dtypes;
and a user's label raster read on its image's grid whether or not it lies on it."""

from __future__ import annotations

import numpy as np
import pytest
from osgeo import gdal, osr

from fbp_landcover.engine.io.gdal import (
    GRID_TOLERANCE,
    RasterGrid,
    geographic_pixel_metres,
    numpy_dtype,
    same_grid,
    warnings_kept_unless_failed,
)
from fbp_landcover.engine.training.labelled_data import LabelledRaster
from tests.rasters import random_scene, write_raster

GT = (500000.0, 4.0, 0.0, 4000000.0, 0.0, -4.0)


def _wkt(epsg: int) -> str:
    ref = osr.SpatialReference()
    ref.ImportFromEPSG(epsg)
    return ref.ExportToWkt()


def test_same_grid_has_one_tolerance_in_pixels():
    a = RasterGrid(100, 80, GT, _wkt(32650))
    near = (GT[0] + 0.5 * GRID_TOLERANCE * 4, *GT[1:])
    far = (GT[0] + 2 * GRID_TOLERANCE * 4, *GT[1:])
    assert same_grid(a, a) and same_grid(a, a._replace(geotransform=near))
    assert not same_grid(a, a._replace(geotransform=far))
    assert not same_grid(a, a._replace(width=101))
    assert not same_grid(a, a._replace(geotransform=(GT[0], 4.0001, 0.0, GT[3], 0.0,
                                                     -4.0)))  # far corner moves
    assert not same_grid(a, a._replace(projection=_wkt(32651)))
    # without georeferencing (or a CRS) a raster lies on the grid of any raster of its size
    assert same_grid(a, RasterGrid(100, 80, None, "")) and same_grid(a, a._replace(projection=""))


def test_geographic_pixel_size_is_ellipsoidal():
    wgs84 = osr.SpatialReference()
    wgs84.ImportFromEPSG(4326)
    x, y = geographic_pixel_metres((10.0, 1.0, 0.0, 45.5, 0.0, -1.0), 1, wgs84)  # one degree, centred at 45°
    assert x == pytest.approx(78_846.8, abs=1.0) and y == pytest.approx(111_131.8,
                                                                        abs=1.0)  # N cos φ, M at 45°
    x, y = geographic_pixel_metres((0.0, 1.0, 0.0, 0.5, 0.0, -1.0), 1, wgs84)  # at the equator
    assert x == pytest.approx(111_319.5, abs=1.0) and y == pytest.approx(110_574.3, abs=1.0)


def test_numpy_dtype(tmp_path):
    ds = gdal.Open(str(write_raster(tmp_path / "u16.tif", np.zeros((2, 3), np.uint16))))
    assert numpy_dtype(ds.GetRasterBand(1)) == "uint16"


def test_labels_on_the_image_grid_or_reprojected_onto_it(tmp_path):
    labels = np.random.default_rng(1).integers(1, 25, (20, 30)).astype(np.uint8)
    image = write_raster(tmp_path / "img.tif", random_scene(20, 30), geotransform=GT)
    same = LabelledRaster(str(image), str(write_raster(tmp_path / "lab.tif", labels, geotransform=GT)),
                          sensor="rgbn")
    fine = np.kron(labels, np.ones((2, 2), np.uint8))  # 2 m pixels over the same extent
    other = LabelledRaster(str(image), str(write_raster(tmp_path / "fine.tif", fine,
                                                         geotransform=(GT[0], 2.0, 0.0, GT[3], 0.0, -2.0))),
                           sensor="rgbn")
    try:
        assert not same.reprojected and other.reprojected
        assert np.array_equal(same.label_window(0, 0, 30, 20), labels)
        assert np.array_equal(other.label_window(0, 0, 30, 20), labels)
    finally:
        same.close()
        other.close()


def test_warnings_are_kept_after_success_and_dropped_with_a_failure():
    seen: list[str] = []
    gdal.PushErrorHandler(lambda _cls, _no, message: seen.append(message))
    try:
        with warnings_kept_unless_failed():
            gdal.Error(gdal.CE_Warning, 1, "a warning of a write that succeeded")
            assert seen == []  # held back while the block runs
        assert seen == ["a warning of a write that succeeded"]
        with pytest.raises(RuntimeError, match="the disk is full"):
            with warnings_kept_unless_failed():
                gdal.Error(gdal.CE_Warning, 1, "libtiff noise before the failure")
                raise RuntimeError("the disk is full")
        assert seen == ["a warning of a write that succeeded"]
    finally:
        gdal.PopErrorHandler()
