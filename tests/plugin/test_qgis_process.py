"""End to end through the qgis_process command, with a clean QGIS profile and the plugin enabled."""

from __future__ import annotations

import csv
import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal

ROOT = Path(__file__).resolve().parents[2]
QGIS_PROCESS = ROOT / ".venv" / "bin" / "qgis_process"
MODEL3 = Path(__file__).with_name("map_and_areas.model3")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not QGIS_PROCESS.exists(), reason=f"{QGIS_PROCESS} missing: run scripts/setup.sh"),
]


@pytest.fixture(scope="module")
def qgis_env(tmp_path_factory) -> dict:
    profile = tmp_path_factory.mktemp("qgis-profile")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("QGIS_", "PYTEST"))}
    env.update(QGIS_CUSTOM_CONFIG_PATH=str(profile), QT_QPA_PLATFORM="offscreen")
    out = subprocess.run([str(QGIS_PROCESS), "plugins", "enable", "fbp_landcover"], env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "* fbp_landcover" in out.stdout
    return env


def _run(env, *args) -> dict:
    out = subprocess.run([str(QGIS_PROCESS), "--json", "run", *args], env=env, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    return json.loads(out.stdout[out.stdout.index("{"):])


def _classes(path) -> np.ndarray:
    ds = gdal.Open(str(path))
    return ds.GetRasterBand(1).ReadAsArray()


def test_qgis_process_runs_maplandcover(qgis_env, tiny_model_path, naip_crop, tmp_path):
    out = tmp_path / "lc.tif"
    res = _run(qgis_env, "fbplandcover:maplandcover", "--", f"INPUT={naip_crop}", "SENSOR=rgbn",
               f"MODEL={tiny_model_path}", "BACKEND=torch", f"OUTPUT={out}")
    assert res["results"]["OUTPUT"] == str(out)
    arr = _classes(out)
    assert arr.shape == (128, 160) and arr.min() >= 1 and arr.max() <= 24


def test_qgis_process_fails_with_the_sentence(qgis_env, tiny_model_path, naip_crop, tmp_path):
    out = subprocess.run([str(QGIS_PROCESS), "run", "fbplandcover:maplandcover", "--", f"INPUT={naip_crop}",
                          "SENSOR=auto", f"MODEL={tiny_model_path}", f"OUTPUT={tmp_path / 'x.tif'}"],
                         env=qgis_env, capture_output=True, text=True, timeout=300)
    assert out.returncode != 0
    assert "Cannot tell which sensor made" in out.stdout + out.stderr
    assert not (tmp_path / "x.tif").exists()


def test_graphical_model_chains_map_and_areas(qgis_env, tiny_model_path, naip_crop, tmp_path):
    lc, table = tmp_path / "lc.tif", tmp_path / "areas.csv"
    _run(qgis_env, str(MODEL3), "--", f"image={naip_crop}", f"model={tiny_model_path}", "sensor=rgbn",
         f"land_cover={lc}", f"area_table={table}")
    arr = _classes(lc)
    assert arr.shape == (128, 160) and arr.min() >= 1 and arr.max() <= 24
    rows = list(csv.DictReader(table.open()))
    counts = np.bincount(arr.ravel(), minlength=25)
    assert [int(r["pixels"]) for r in rows] == counts[1:].tolist()


def _fails(env, *args) -> str:
    out = subprocess.run([str(QGIS_PROCESS), "run", *args], env=env, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode != 0
    return out.stdout + out.stderr


def test_enum_parameters_take_option_numbers_and_names(qgis_env, tiny_model_path, naip_crop, tmp_path):
    """What `qgis_process help` lists (0: auto, 1: torch, ...) works, and so do the names."""
    from fbp_landcover.engine.io.sensors import PROFILES

    rgbn = 1 + list(PROFILES).index("rgbn")  # the option number of "rgbn — Generic 4-band R/G/B/NIR"
    res = _run(qgis_env, "fbplandcover:maplandcover", "--", f"INPUT={naip_crop}", f"SENSOR={rgbn}",
               f"MODEL={tiny_model_path}", "BACKEND=1", f"OUTPUT={tmp_path / 'n.tif'}")
    assert res["results"]["BACKEND_USED"] == "torch" and res["results"]["SENSOR_USED"] == "rgbn"
    res = _run(qgis_env, "fbplandcover:maplandcover", "--", f"INPUT={naip_crop}",
               "SENSOR=rgbn — Generic 4-band R/G/B/NIR", f"MODEL={tiny_model_path}", "BACKEND=torch",
               f"OUTPUT={tmp_path / 'l.tif'}")
    assert res["results"]["SENSOR_USED"] == "rgbn"
    missing = tmp_path / "no_such_folder"
    for architecture in ("2", "mobile_unet"):  # both pass the parameter check; the folder is what fails
        text = _fails(qgis_env, "fbplandcover:trainsourcemodel", "--", f"SOURCE={missing}",
                      f"ARCHITECTURE={architecture}", f"OUTPUT={tmp_path / 'm.fbpmodel'}")
        assert "Incorrect parameter value for ARCHITECTURE" not in text, text
    text = _fails(qgis_env, "fbplandcover:trainsourcemodel", "--", f"SOURCE={missing}", "ARCHITECTURE=9",
                  f"OUTPUT={tmp_path / 'm.fbpmodel'}")
    assert "Incorrect parameter value for ARCHITECTURE" in text
