"""fbplandcover:maplandcovermany through processing: a folder and a layer, a styled mosaic, a failed scene."""

from __future__ import annotations

import json

import numpy as np
from osgeo import gdal

from tests.plugin.test_map_algorithm import assert_fbp_palette
from tests.rasters import random_scene, write_raster

gdal.UseExceptions()


def test_maplandcovermany_mosaic_styled_and_resumable(fbp_provider, tiny_model_path, tmp_path,
                                                       qgis_new_project):
    import processing
    from qgis.core import QgsProcessingContext, QgsProject

    folder = tmp_path / "scenes_in"
    folder.mkdir()
    write_raster(folder / "a.tif", random_scene(40, 48, seed=1))
    write_raster(folder / "broken.tif", random_scene(4, 4))
    (folder / "broken.tif").write_text("not a raster")  # fails alone
    extra = write_raster(tmp_path / "b.tif", random_scene(40, 48, seed=2),
                         geotransform=(500120.0, 4.0, 0.0, 3999900.0, 0.0, -4.0))
    out = tmp_path / "job"
    params = {"INPUTS": [str(extra)], "FOLDER": str(folder), "SENSOR": "rgbn", "MODEL": str(tiny_model_path),
              "OVERLAP": "first", "BACKEND": "torch", "OUTPUT_FOLDER": str(out)}
    context = QgsProcessingContext()
    context.setProject(QgsProject.instance())
    results = processing.runAndLoadResults("fbplandcover:maplandcovermany", params, context=context)
    assert results["OUTPUT"] == str(out / "mosaic.tif") and results["FAILED"] == 1
    ds = gdal.Open(results["OUTPUT"])
    assert ds.GetGeoTransform() == (500000.0, 4.0, 0.0, 4000000.0, 0.0, -4.0)
    assert (ds.RasterXSize, ds.RasterYSize) == (78, 65)
    mosaic = ds.GetRasterBand(1).ReadAsArray()
    b_ds = gdal.Open(str(out / "scenes" / "b.tif"))
    b_only = b_ds.GetRasterBand(1).ReadAsArray()
    assert np.array_equal(mosaic[40:65, 30:78], b_only[15:, :])  # below A: B only
    layers = [layer for layer in QgsProject.instance().mapLayers().values()
              if layer.source() == results["OUTPUT"]]
    assert len(layers) == 1
    assert_fbp_palette(layers[0])
    man = json.loads((out / "manifest.json").read_text())
    assert sorted(s["state"] for s in man["scenes"]) == ["done", "done", "failed"]

    again = processing.run("fbplandcover:maplandcovermany", params)  # resumes: only the failed scene again
    assert again["FAILED"] == 1
    man2 = json.loads((out / "manifest.json").read_text())
    assert [s["finished"] for s in man2["scenes"] if s["state"] == "done"] == \
        [s["finished"] for s in man["scenes"] if s["state"] == "done"]
