"""Per-class areas with true pixel areas, projected and geographic."""

import math

import numpy as np
import pytest
from osgeo import osr

from fbp_landcover.engine.products.areas import AreaCounter, PixelArea, count_raster, table_csv
from tests.rasters import write_raster


def wkt(epsg):
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(epsg)
    return srs.ExportToWkt()


def test_projected_areas_are_exact():
    counter = AreaCounter((500000, 4, 0, 4000000, 0, -4), wkt(32650))
    block = np.array([[1, 1, 3, 0], [3, 3, 3, 24]], np.uint8)
    counter.add(0, block)
    rows = {r["index"]: r for r in counter.table()}
    assert rows[1]["pixels"] == 2 and rows[1]["hectares"] == pytest.approx(32 / 1e4)
    assert rows[3]["pixels"] == 4 and rows[3]["km2"] == pytest.approx(64 / 1e6)
    assert rows[24]["percent"] == pytest.approx(100 / 7, abs=1e-3)  # nodata (0) is not part of the total
    assert sum(r["percent"] for r in rows.values()) == pytest.approx(100)


def test_feet_are_converted_to_square_metres():
    area = PixelArea((0, 10, 0, 0, 0, -10), wkt(2263))  # NY State Plane, US survey feet
    assert area.row_area(0) == pytest.approx(100 * 0.3048006096**2, rel=1e-6)


def test_geographic_pixel_area_matches_the_ellipsoid():
    # One 1x1 degree cell at the equator on WGS84: 12,308.78 km² (known value of the ellipsoidal area).
    area = PixelArea((0, 1, 0, 1, 0, -1), wkt(4326))
    assert area.row_area(0) / 1e6 == pytest.approx(12308.78, rel=1e-4)
    # The whole WGS84 ellipsoid, 180 rows of 1-degree cells x 360 columns: 510,065,621.7 km².
    total = PixelArea((0, 1, 0, 90, 0, -1), wkt(4326)).rows_area(0, 180).sum() * 360 / 1e6
    assert total == pytest.approx(510065621.7, rel=1e-6)


def test_geographic_pixel_area_on_a_sphere():
    sphere = osr.SpatialReference()
    sphere.ImportFromProj4("+proj=longlat +R=6371000 +no_defs")
    area = PixelArea((0, 0.5, 0, 61, 0, -1), sphere.ExportToWkt())
    expected = math.radians(0.5) * 6371000**2 * (math.sin(math.radians(61)) - math.sin(math.radians(60)))
    assert area.row_area(0) == pytest.approx(expected, rel=1e-12)


def test_count_raster_and_csv(tmp_path):
    data = np.zeros((10, 20), np.uint8)
    data[:5] = 12
    data[5:, :4] = 21
    path = write_raster(tmp_path / "m.tif", data, geotransform=(0, 2, 0, 0, 0, -2), epsg=32633)
    rows = count_raster(str(path), block_rows=3).table()
    by = {r["index"]: r for r in rows}
    assert by[12]["pixels"] == 100 and by[21]["pixels"] == 20 and by[12]["hectares"] == pytest.approx(0.04)
    csv = table_csv(rows).splitlines()
    assert csv[0] == "index,name,hex,pixels,hectares,km2,percent" and len(csv) == 25
