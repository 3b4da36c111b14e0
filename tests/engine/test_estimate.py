"""The estimate of a large run said before it starts (engine.mapping.estimate)."""

from __future__ import annotations

import numpy as np
from osgeo import gdal

from fbp_landcover.engine.mapping.estimate import LARGE_MPX, planned_size, size_warning
from tests.rasters import write_raster


def test_size_warning_only_above_the_threshold_with_the_rate_used():
    side = int((LARGE_MPX * 1e6) ** 0.5)
    assert size_warning(side, side) is None
    text = size_warning(200_000, 200_000)
    assert text.startswith("the raster to map is 200000 × 200000 pixels (40,000 Mpx): at 2.0 Mpx/s (a nom")
    assert "about 5.6 h" in text
    assert "at 0.5 Mpx/s (measured here) that takes about 22.2 h" in size_warning(200_000, 200_000, 0.5)


def test_planned_size_is_the_working_grid_after_resampling(tmp_path):
    img = write_raster(tmp_path / "ps.tif", np.full((4, 30, 40), 1000, np.uint16),
                       geotransform=(500000.0, 3.0, 0.0, 4000000.0, 0.0, -3.0))
    assert planned_size(str(img), "planetscope") == (30, 23)  # 3 m on the profile's 4 m working grid
    assert planned_size(str(img), "rgbn") == (40, 30)
    assert planned_size(str(tmp_path / "missing.tif"), "rgbn") is None


def test_the_cli_says_so_on_stderr_and_can_be_stopped(tmp_path):
    import signal
    import subprocess
    import time

    from tests.engine.test_cli import CLI
    from tests.models import tiny_checkpoint

    model = tiny_checkpoint(tmp_path / "tiny.fbpmodel")
    small = write_raster(tmp_path / "s.tif", np.full((4, 16, 16), 100, np.uint8))
    big = tmp_path / "big.vrt"
    gdal.BuildVRT(str(big), [str(small)], outputBounds=(500000.0, 4000000.0 - 4 * 60_000,
                                                        500000.0 + 4 * 60_000, 4000000.0))
    proc = subprocess.Popen([CLI, "--quiet", "map", str(big), "--sensor", "rgbn", "--model", str(model), "-o",
                             str(tmp_path / "lc.tif")], stderr=subprocess.PIPE, text=True)
    line = proc.stderr.readline()
    while line.startswith("warning: check the sensor"):
        line = proc.stderr.readline()
    time.sleep(1.0)
    proc.send_signal(signal.SIGTERM)
    rest = proc.communicate(timeout=60)[1]
    assert line.startswith("note: the raster to map is 60000 × 60000 pixels (3,600 Mpx): at 2.0 Mpx/s"), line
    assert proc.returncode != 0 and "no output was written" in rest
    assert not [p.name for p in tmp_path.iterdir() if "lc" in p.name]  # no output, no partial
