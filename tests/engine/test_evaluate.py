"""Map vs reference raster / vector, regridding, legends, reports; and the real Chiapas labels."""

from __future__ import annotations

import json

import numpy as np
import pytest
from osgeo import gdal, ogr, osr

from fbp_landcover.engine.assessment import evaluate as ev
from fbp_landcover.engine.assessment.evaluate import evaluate
from fbp_landcover.engine.errors import CancelledError, FbpError
from tests.rasters import write_raster

GT = (500000.0, 4.0, 0.0, 4000000.0, 0.0, -4.0)


def _pairs(ref: np.ndarray, pred: np.ndarray, k: int = 24) -> np.ndarray:
    m = np.zeros((k + 1, k + 1), int)
    keep = ref > 0
    np.add.at(m, (ref[keep].astype(int), pred[keep].astype(int)), 1)
    return m


@pytest.fixture
def pair(tmp_path):
    rng = np.random.default_rng(5)
    ref = rng.integers(0, 25, (40, 50)).astype(np.uint8)
    pred = ref.copy()
    pred[:10] = 3
    pred[30:, 40:] = 0  # unmapped
    write_raster(tmp_path / "ref.tif", ref, geotransform=GT)
    write_raster(tmp_path / "map.tif", pred, geotransform=GT, nodata=0)
    return tmp_path, ref, pred


def test_raster_same_grid_known_confusion(pair, monkeypatch):
    tmp, ref, pred = pair
    monkeypatch.setattr(ev, "_STRIP_PIXELS", 50 * 7)  # several strips
    seen = []
    r = evaluate(tmp / "map.tif", tmp / "ref.tif", progress=lambda f, m: seen.append(f))
    assert np.array_equal(r["confusion_matrix"], _pairs(ref, pred))
    assert r["regridded"] is False and r["legend"] == "fbp"
    mapped = (ref > 0) & (pred > 0)
    assert r["pixels"] == int(mapped.sum())
    assert r["unmapped_pixels"] == int(((ref > 0) & (pred == 0)).sum())
    assert r["overall_accuracy"] == pytest.approx((ref[mapped] == pred[mapped]).mean())
    assert len(seen) == 6 and seen[-1] == 1.0


def test_raster_other_grid_is_resampled(pair):
    tmp, ref, pred = pair
    fine = np.kron(ref, np.ones((2, 2), np.uint8))  # 2 m pixels, same extent
    write_raster(tmp / "fine.tif", fine, geotransform=(GT[0], 2.0, 0.0, GT[3], 0.0, -2.0))
    r = evaluate(tmp / "map.tif", tmp / "fine.tif")
    assert r["regridded"] is True
    assert np.array_equal(r["confusion_matrix"], _pairs(ref, pred))


def test_reference_partly_outside_and_reprojected(pair):
    tmp, ref, pred = pair
    # reference covering only the left half of the map, in UTM 50N on the same grid
    write_raster(tmp / "half.tif", ref[:, :25], geotransform=GT)
    r = evaluate(tmp / "map.tif", tmp / "half.tif")
    assert np.array_equal(r["confusion_matrix"], _pairs(ref[:, :25], pred[:, :25]))


def test_collapse_and_mapping(pair):
    tmp, ref, pred = pair
    write_raster(tmp / "legend.tif", (ref.astype(np.uint16) * 10), geotransform=GT)
    mapping = {str(v * 10): v for v in range(1, 25)}
    r = evaluate(tmp / "map.tif", tmp / "legend.tif", reference_mapping={"to": "fbp", "mapping": mapping},
                 collapse="gid5")
    from fbp_landcover.engine.classes import load_collapse

    lut = np.array(load_collapse("gid5").lookup_table())
    assert r["num_classes"] == 5 and r["names"][1] == "built-up"
    assert np.array_equal(r["confusion_matrix"], _pairs(lut[ref], lut[pred], 5))


def test_outputs_and_cancel(pair):
    tmp, ref, pred = pair
    r = evaluate(tmp / "map.tif", tmp / "ref.tif", out_prefix=str(tmp / "out" / "acc"))
    data = json.loads((tmp / "out" / "acc.json").read_text())
    assert data["confusion_matrix"] == r["confusion_matrix"] and data["kappa"] == pytest.approx(r["kappa"])
    rows = (tmp / "out" / "acc.csv").read_text().splitlines()
    assert rows[0].startswith("index,name,reference_pixels") and len(rows) == 25
    md = (tmp / "out" / "acc.md").read_text()
    assert "overall accuracy" in md and "Confusion matrix" in md
    assert f"{100 * r['overall_accuracy']:.2f} %" in md
    assert not list((tmp / "out").glob("*.tmp"))
    with pytest.raises(CancelledError):
        evaluate(tmp / "map.tif", tmp / "ref.tif", out_prefix=str(tmp / "c" / "acc"),
                 is_cancelled=lambda: True)
    assert not (tmp / "c").exists()


def test_errors(pair, tmp_path):
    tmp, ref, pred = pair
    write_raster(tmp / "bad.tif", np.full((40, 50), 30, np.uint8), geotransform=GT)
    with pytest.raises(FbpError, match="bad.tif holds the value 30"):
        evaluate(tmp / "bad.tif", tmp / "ref.tif")
    with pytest.raises(FbpError, match="not an FBP class"):
        evaluate(tmp / "map.tif", tmp / "bad.tif")
    with pytest.raises(FbpError, match="does not exist"):
        evaluate(tmp / "map.tif", tmp / "missing.tif")


def _vector(path, geoms_values, field_type, epsg=32650):
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(epsg)
    ds = ogr.GetDriverByName("GPKG").CreateDataSource(str(path))
    lyr = ds.CreateLayer("ref", srs=srs)
    lyr.CreateField(ogr.FieldDefn("lc", field_type))
    lyr.CreateField(ogr.FieldDefn("note", ogr.OFTString))
    for wkt, value in geoms_values:
        f = ogr.Feature(lyr.GetLayerDefn())
        f.SetGeometry(ogr.CreateGeometryFromWkt(wkt))
        f.SetField("lc", value)
        lyr.CreateFeature(f)
    ds = None
    return path


def _square(col0, row0, col1, row1):
    x0, x1 = GT[0] + 4 * col0, GT[0] + 4 * col1
    y0, y1 = GT[3] - 4 * row0, GT[3] - 4 * row1
    return f"POLYGON(({x0} {y0},{x1} {y0},{x1} {y1},{x0} {y1},{x0} {y0}))"


def _point(col, row):
    return f"POINT({GT[0] + 4 * col + 2} {GT[3] - 4 * row - 2})"


def test_vector_polygons_and_points(pair):
    tmp, ref, pred = pair
    polys = _vector(tmp / "polys.gpkg", [(_square(2, 12, 6, 16), "forest"), (_square(10, 20, 15, 22),
                                                                             "water"),
                                         (_square(45, 35, 50, 40), "forest")], ogr.OFTString)
    r = evaluate(tmp / "map.tif", polys, reference_field="lc", reference_mapping={"forest": 6,
                                                                                  "water": "lake"})
    expected = np.zeros_like(ref)
    expected[12:16, 2:6] = 6
    expected[20:22, 10:15] = 13
    expected[35:40, 45:50] = 6  # lies where the map is unmapped
    assert np.array_equal(r["confusion_matrix"], _pairs(expected, pred))
    assert r["pixels"] == 16 + 10 and r["unmapped_pixels"] == 25

    pts = [(4, 11), (7, 33), (20, 5), (20, 6)]  # (row, col): one in the pred[:10] = 3 band
    points = _vector(tmp / "pts.gpkg", [(_point(c, rr), int(ref[rr, c]) or 1) for rr, c in pts],
                     ogr.OFTInteger)
    r = evaluate(tmp / "map.tif", points, reference_field="lc")
    expected = np.zeros_like(ref)
    for rr, c in pts:
        expected[rr, c] = int(ref[rr, c]) or 1
    assert np.array_equal(r["confusion_matrix"], _pairs(expected, pred))
    assert r["pixels"] + r["unmapped_pixels"] == 4 and r["unmapped_pixels"] == sum(pred[p] == 0 for p in pts)
    with pytest.raises(FbpError, match="say which one holds the class"):
        evaluate(tmp / "map.tif", points)


def test_vector_in_another_crs_is_reprojected(pair):
    tmp, ref, pred = pair
    src, dst = osr.SpatialReference(), osr.SpatialReference()
    src.ImportFromEPSG(32650)
    dst.ImportFromEPSG(4326)
    dst.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    src.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    g = ogr.CreateGeometryFromWkt(_point(8, 30))
    g.Transform(osr.CoordinateTransformation(src, dst))
    vec = _vector(tmp / "ll.gpkg", [(g.ExportToWkt(), 7)], ogr.OFTInteger, epsg=4326)
    r = evaluate(tmp / "map.tif", vec, reference_field="lc")
    m = np.array(r["confusion_matrix"])
    assert m.sum() == 1 and m[7, pred[30, 8]] == 1


# ------------------------------------------------------------------- real data: Chiapas (Landsat 7, 30 m)

CHIAPAS_TO_FBP = np.array([0, 6, 13, 9, 17, 12], np.uint8)  # forest, water, herbaceous, barren, urban
CHIAPAS_TO_COARSE = {"1": "forest", "2": "water", "3": "grass/meadow", "4": "bare", "5": "built-up"}


@pytest.fixture
def chiapas(shared_data, tmp_path):
    src = gdal.Open(str(shared_data / "chiapas_landsat7_labels_30m.tif"))
    labels = src.ReadAsArray()
    map_path = write_raster(tmp_path / "map.tif", CHIAPAS_TO_FBP[labels], geotransform=src.GetGeoTransform(),
                            epsg=32615, nodata=0)
    return shared_data, tmp_path, labels, map_path


def test_chiapas_raster_reference(chiapas):
    data, tmp, labels, map_path = chiapas
    (tmp / "mapping.json").write_text(json.dumps(CHIAPAS_TO_COARSE))
    r = evaluate(map_path, data / "chiapas_landsat7_labels_30m.tif", reference_mapping=tmp / "mapping.json",
                 collapse="coarse", out_prefix=str(tmp / "acc"))
    counts = np.bincount(labels.ravel(), minlength=6)
    pc = {c["name"]: c for c in r["per_class"]}
    for value, name in CHIAPAS_TO_COARSE.items():
        assert pc[name]["reference_pixels"] == pc[name]["correct"] == counts[int(value)]
    assert r["pixels"] == counts[1:].sum() and r["overall_accuracy"] == 1.0 and r["kappa"] == 1.0

    # perturb: forest in the top 100 rows mapped as urban
    moved = (labels == 1) & (np.arange(labels.shape[0])[:, None] < 100)
    pert = CHIAPAS_TO_FBP[labels]
    pert[moved] = 12
    write_raster(tmp / "pert.tif", pert, geotransform=gdal.Open(str(map_path)).GetGeoTransform(), epsg=32615)
    r = evaluate(tmp / "pert.tif", data / "chiapas_landsat7_labels_30m.tif",
                 reference_mapping=tmp / "mapping.json",
                 collapse="coarse")
    m = np.array(r["confusion_matrix"])
    assert moved.sum() > 0 and m[3, 1] == moved.sum() and m[3, 3] == counts[1] - moved.sum()
    assert r["overall_accuracy"] == pytest.approx(1 - moved.sum() / counts[1:].sum())


def test_chiapas_polygons_through_vsizip(chiapas):
    data, tmp, labels, map_path = chiapas
    zipped = "/vsizip/" + str(data / "chiapas_landsat7_label_polygons.zip")
    by_id = evaluate(map_path, zipped, reference_field="id", reference_mapping=CHIAPAS_TO_COARSE,
                     collapse="coarse")
    assert by_id["overall_accuracy"] == 1.0 and by_id["pixels"] == int((labels > 0).sum())

    # The 'class' text field has one barren and one urban polygon swapped at the source (data README):
    names = {"forest": "forest", "water": "water", "herbaceous": "grass/meadow", "barren": "bare",
             "urban": "built-up"}
    by_name = evaluate(map_path, str(data / "chiapas_landsat7_label_polygons.zip"), reference_field="class",
                       reference_mapping=names, collapse="coarse")
    m = np.array(by_name["confusion_matrix"])
    vec = gdal.OpenEx(zipped, gdal.OF_VECTOR)
    swapped = {}
    for where in ("id = 5 AND class = 'barren'", "id = 4 AND class = 'urban'"):
        mem = gdal.GetDriverByName("MEM").Create("", labels.shape[1], labels.shape[0], 1, gdal.GDT_Byte)
        mem.SetGeoTransform(gdal.Open(str(map_path)).GetGeoTransform())
        mem.SetProjection(gdal.Open(str(map_path)).GetProjection())
        gdal.Rasterize(mem, vec, burnValues=[1], where=where)
        swapped[where] = int(mem.ReadAsArray().sum())
    assert m[8, 1] == swapped["id = 5 AND class = 'barren'"] > 0  # reference bare, map built-up
    assert m[1, 8] == swapped["id = 4 AND class = 'urban'"] > 0
    assert by_name["pixels"] == by_id["pixels"]
    assert np.trace(m[1:, 1:]) == by_id["pixels"] - m[8, 1] - m[1, 8]


def test_a_named_layer_of_a_multi_layer_reference(pair):
    """The layer of a GeoPackage with several is chosen by name (the plugin passes the layer it was given)."""
    tmp, ref, pred = pair
    row, col = next((r, c) for r in range(10, 30) for c in range(40) if ref[r,
                                                                            c] > 0)  # the map is right there
    path = tmp / "two.gpkg"
    ds = ogr.GetDriverByName("GPKG").CreateDataSource(str(path))
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(32650)
    for name, value in (("first", 1), ("points", int(ref[row, col]))):
        layer = ds.CreateLayer(name, srs, ogr.wkbPoint)
        layer.CreateField(ogr.FieldDefn("cls", ogr.OFTInteger))
        feat = ogr.Feature(layer.GetLayerDefn())
        feat.SetGeometry(ogr.CreateGeometryFromWkt(f"POINT ({GT[0] + 4 * col + 2} {GT[3] - 4 * row - 2})"))
        feat.SetField("cls", value)
        layer.CreateFeature(feat)
    ds = None
    r = evaluate(tmp / "map.tif", path, reference_layer="points")
    assert r["pixels"] == 1 and r["overall_accuracy"] == 1.0
    with pytest.raises(FbpError, match="has no layer 'nope'; its layers are first, points"):
        evaluate(tmp / "map.tif", path, reference_layer="nope")


def test_a_reference_that_labels_nothing_is_refused(pair):
    """No overlap, or an empty polygon layer: a sentence, not a 0-pixel report; no report is written."""
    tmp, ref, _ = pair
    write_raster(tmp / "far.tif", ref, geotransform=(GT[0] + 100_000, *GT[1:]))
    with pytest.raises(FbpError, match="No pixel of the map .* has a reference label: the reference .*far"):
        evaluate(tmp / "map.tif", tmp / "far.tif", out_prefix=str(tmp / "far_report"))
    _vector(tmp / "empty.gpkg", [], ogr.OFTInteger)
    with pytest.raises(FbpError, match="does not overlap the map, or it is empty"):
        evaluate(tmp / "map.tif", tmp / "empty.gpkg", reference_field="lc", out_prefix=str(tmp / "empty_rep"))
    assert not list(tmp.glob("far_report*")) and not list(tmp.glob("empty_rep*"))


def test_a_reference_in_the_collapsed_legend_is_recognised(pair):
    """Coarse codes 1..6 read as FBP classes would score nonsense: refused with the way out; 'collapsed'
    reads them as the legend's codes and 'fbp' as FBP classes."""
    from fbp_landcover.engine.classes import load_collapse

    tmp, ref, pred = pair
    lut = np.array(load_collapse("coarse").lookup_table())
    coarse = lut[ref].astype(np.uint8)  # the reference made in the coarse legend (0 stays 0)
    assert coarse.max() <= max(load_collapse("coarse").targets)
    write_raster(tmp / "coarse.tif", coarse, geotransform=GT)
    with pytest.raises(FbpError, match=r"holds only the values 1, 2, .* 'coarse' legend .*mapping collapsed"):
        evaluate(tmp / "map.tif", tmp / "coarse.tif", collapse="coarse")
    r = evaluate(tmp / "map.tif", tmp / "coarse.tif", collapse="coarse", reference_mapping="collapsed")
    assert np.array_equal(r["confusion_matrix"], _pairs(coarse, lut[pred], r["num_classes"]))
    as_fbp = evaluate(tmp / "map.tif", tmp / "coarse.tif", collapse="coarse", reference_mapping="fbp")
    assert np.array_equal(as_fbp["confusion_matrix"], _pairs(lut[coarse], lut[pred], r["num_classes"]))
    with pytest.raises(FbpError, match="'collapsed' needs a coarse legend"):
        evaluate(tmp / "map.tif", tmp / "coarse.tif", reference_mapping="collapsed")
    # a reference with FBP classes above the legend's codes is read as FBP classes, as before
    assert evaluate(tmp / "map.tif", tmp / "ref.tif", collapse="coarse")["pixels"] > 0
