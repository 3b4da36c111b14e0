"""The analyst's path, end to end, with the system QGIS and no venv anywhere on PATH.

The plugin ZIP is built, unzipped into a clean QGIS profile by QGIS's own installer code, enabled; the engine
is installed from inside QGIS (the Processing algorithm, headless) against the local wheel folder that
scripts/setup.sh fills (so no network is needed, and pip's machine-wide configuration is switched off); a
styled map is made with qgis_process; Remove leaves the profile as before. Also: an unreachable index and a
cancelled install leave nothing behind, and the engine runs on QGIS's own numpy.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal

ROOT = Path(__file__).resolve().parents[2]
WHEELS = ROOT / ".wheels"
SYSTEM_PYTHON = Path("/usr/bin/python3")
SYSTEM_QGIS_PROCESS = Path("/usr/bin/qgis_process")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not SYSTEM_QGIS_PROCESS.exists(), reason="no system QGIS (/usr/bin/qgis_process)"),
]


def system_env(profile: Path, home: Path) -> dict[str, str]:
    """An analyst's environment: the system QGIS, no venv, no pip configuration of this machine."""
    env = {
        "HOME": str(home), "PATH": "/usr/bin:/bin", "LANG": os.environ.get("LANG", "C.UTF-8"),
        "QGIS_CUSTOM_CONFIG_PATH": str(profile), "QT_QPA_PLATFORM": "offscreen",
        # pip: no machine-wide find-links, index or constraints; only what the installer passes
        "PIP_CONFIG_FILE": os.devnull, "PIP_RETRIES": "0", "PIP_TIMEOUT": "5",
    }
    for key in ("SSL_CERT_FILE", "SSL_CERT_DIR", "TMPDIR"):
        if key in os.environ:
            env[key] = os.environ[key]
    return env


def qgis_process(env, *args, check=True, timeout=900) -> subprocess.CompletedProcess:
    out = subprocess.run([str(SYSTEM_QGIS_PROCESS), *args], env=env, capture_output=True, text=True,
                         timeout=timeout)
    if check:
        assert out.returncode == 0, (out.stdout[-3000:] + out.stderr[-3000:])
    return out


def run_json(env, *args, timeout=900) -> dict:
    out = qgis_process(env, "--json", "run", *args, timeout=timeout)
    return json.loads(out.stdout[out.stdout.index("{"):])


def listing(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if "__pycache__" not in p.parts)


@pytest.fixture(scope="module")
def analyst(tmp_path_factory):
    """A clean profile with the plugin installed from its ZIP by QGIS's own installer code and enabled."""
    if not (WHEELS / ".fbp-wheels.sha256").is_file():
        pytest.fail(f"{WHEELS} is not filled: run scripts/setup.sh (the analyst's path is proven from it)")
    base = tmp_path_factory.mktemp("analyst")
    profile, home = base / "profile", base / "home"
    home.mkdir()
    package = [sys.executable, str(ROOT / "scripts" / "package.py"), "--out", str(base / "dist")]
    zip_path = subprocess.run(package,
                              capture_output=True, text=True, check=True).stdout.strip()
    env = system_env(profile, home)
    unzip = (
        "import sys\n"
        "from qgis.core import QgsApplication\n"
        "app = QgsApplication([], False); app.initQgis()\n"
        "sys.path.insert(0, '/usr/share/qgis/python')\n"
        "from pyplugin_installer.unzip import unzip\n"
        "plugins = QgsApplication.qgisSettingsDirPath() + 'python/plugins'  # QGIS's home plugin path\n"
        f"unzip({zip_path!r}, plugins)\n"
        "print(plugins)\n"
    )
    out = subprocess.run([str(SYSTEM_PYTHON), "-c", unzip], env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    plugins = Path(out.stdout.strip().splitlines()[-1])
    assert plugins == profile / "profiles" / "default" / "python" / "plugins"
    assert (plugins / "fbp_landcover" / "metadata.txt").is_file()
    enabled = qgis_process(env, "plugins", "enable", "fbp_landcover")
    assert "* fbp_landcover" in enabled.stdout
    qgis_process(env, "run", "fbplandcover:diagnostics")  # the plugin's first start (creates its own folders)
    return {"env": env, "profile": profile / "profiles" / "default", "zip": Path(zip_path), "base": base}


def test_before_the_install_the_message_names_qgis_python_the_folder_and_the_button(analyst):
    res = run_json(analyst["env"], "fbplandcover:diagnostics")
    text = res["results"]["TEXT"]
    engine = next(line for line in text.splitlines() if line.startswith("Engine: NOT USABLE: "))
    assert "The FBP Land Cover engine is not installed for this QGIS yet" in engine
    assert "QGIS's Python /usr/bin/python3.11 (Python 3.11" in engine
    assert "'Install the engine'" in engine and "fbplandcover:installengine" in engine
    assert str(analyst["profile"] / "python" / "dependencies" / "fbp_landcover" / "py3.11") in engine
    assert "QGIS's Python interpreter (for pip): /usr/bin/python3.11" in text


def test_unreachable_index_fails_with_the_sentence_and_leaves_nothing(analyst):
    profile = analyst["profile"]
    before = listing(profile)
    out = qgis_process(analyst["env"], "run", "fbplandcover:installengine", "--",
                       "INDEX_URL=http://127.0.0.1:9/simple", check=False, timeout=300)
    assert out.returncode != 0
    said = out.stdout + out.stderr
    assert "The package index could not be reached: http://127.0.0.1:9/simple (Connection refused)" in said
    log = profile / "fbp_landcover" / "logs" / "engine-install.log"
    assert [p for p in listing(profile) if p not in before] == ["fbp_landcover/logs",
                                                               "fbp_landcover/logs/engine-install.log"]
    assert "No matching distribution found for torch" in log.read_text()
    assert not (profile / "python" / "dependencies").exists()


def test_install_map_and_remove(analyst, tmp_path, shared_data_or_none):
    env, profile = analyst["env"], analyst["profile"]
    (profile / "fbp_landcover" / "logs" / "engine-install.log").unlink(missing_ok=True)
    try:
        (profile / "fbp_landcover" / "logs").rmdir()
    except OSError:
        pass
    before = listing(profile)
    res = run_json(env, "fbplandcover:installengine", "--", f"WHEEL_FOLDER={WHEELS}")["results"]
    site = profile / "python" / "dependencies" / "fbp_landcover" / "py3.11"
    assert res["FOLDER"] == str(site) and res["OUTCOME"] == "installed" and res["RESTART_NEEDED"] is False
    assert res["PYTHON_USED"] == "/usr/bin/python3.11"
    record = json.loads((site / "fbp-engine-install.json").read_text())
    assert record["torch_build"] == "cpu" and record["verified"]["torch"].endswith("+cpu")
    assert record["verified"]["numpy_file"].startswith("/usr/lib/python3/dist-packages/")
    assert not (site / "numpy").exists() and not list(site.glob("numpy-*"))  # never a second numpy
    assert any(p.startswith("torch==") for p in record["packages"])

    diag = run_json(env, "fbplandcover:diagnostics")["results"]["TEXT"]
    assert "Engine: NOT USABLE" not in diag and "torch: 2." in diag
    check_engine_runs_on_qgis_own_numpy(env, site)

    from tests.models import tiny_checkpoint

    model = tiny_checkpoint(tmp_path / "tiny.fbpmodel")
    raster = shared_data_or_none
    if raster is None:  # no ../shared/data: a generated 4-band raster stands in for the real one
        raster = tmp_path / "generated.tif"
        ds = gdal.GetDriverByName("GTiff").Create(str(raster), 160, 128, 4, gdal.GDT_Byte)
        ds.SetGeoTransform((500000, 5, 0, 5200000, 0, -5))
        ds.SetProjection("EPSG:26914")
        pixels = np.random.default_rng(0).integers(1, 255, (4, 128, 160), np.uint8)
        ds.WriteRaster(0, 0, 160, 128, pixels.tobytes())
        ds = None
    out = tmp_path / "landcover.tif"
    res = run_json(env, "fbplandcover:maplandcover", "--", f"INPUT={raster}", "SENSOR=rgbn", f"MODEL={model}",
                   f"OUTPUT={out}", f"AREAS={tmp_path / 'areas.csv'}")["results"]
    assert res["OUTPUT"] == str(out) and res["BACKEND_USED"] == "onnx"
    ds = gdal.Open(str(out))
    band = ds.GetRasterBand(1)
    assert band.GetColorTable().GetCount() >= 25 and band.GetCategoryNames()[2] == "paddy field"
    classes = band.ReadAsArray()
    assert classes.min() >= 1 and classes.max() <= 24
    assert out.with_suffix(".qml").is_file() and (tmp_path / "areas.csv").is_file()

    res = run_json(env, "fbplandcover:removeengine")["results"]
    assert res["OUTCOME"] == "removed"
    assert listing(profile) == before


def check_engine_runs_on_qgis_own_numpy(env, site: Path) -> None:
    """With the engine folder on sys.path (as the plugin puts it at start), torch, smp, onnxruntime and a
    model run, and there is only QGIS's numpy: no second copy imported or installed."""
    code = (
        "import importlib.metadata as md, sys\n"
        "from qgis.core import QgsApplication\n"
        "app = QgsApplication([], False); app.initQgis()\n"
        "sys.path.insert(0, QgsApplication.qgisSettingsDirPath() + 'python/plugins')\n"
        "import fbp_landcover\n"
        "fbp_landcover.classFactory(None)\n"
        "from fbp_landcover.engine.torch_import import import_smp\n"
        "smp = import_smp()\n"
        "import numpy, onnxruntime, torch\n"
        "x = torch.from_numpy(numpy.ones((1, 4, 32, 32), numpy.float32))\n"
        "model = smp.Unet('tu-mobilenetv3_small_050', encoder_weights=None, in_channels=4, classes=25,\n"
        "                 encoder_depth=3, decoder_channels=[32, 16, 8]).eval()\n"
        "assert model(x).shape == (1, 25, 32, 32)\n"
        "print(numpy.__file__)\n"
        "print(sorted({str(d.locate_file('')) for d in md.distributions() if d.metadata['Name'] == "
        "'numpy'}))\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'numpy' and\n"
        "      not (getattr(sys.modules[m], '__file__', None) or "
        "'/usr/lib/python3/').startswith('/usr/lib/python3/')))\n"
        "print(sys.path[0])\n"
    )
    out = subprocess.run([str(SYSTEM_PYTHON), "-c", code], env=env, capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    numpy_file, numpy_dists, foreign, first = out.stdout.strip().splitlines()[-4:]
    assert numpy_file == "/usr/lib/python3/dist-packages/numpy/__init__.py"
    assert numpy_dists == "['/usr/lib/python3/dist-packages']"
    assert foreign == "[]"
    assert first == str(site)


@pytest.fixture
def shared_data_or_none(request):
    from tests.conftest import SHARED_DATA

    naip = SHARED_DATA / "naip_nd_2020_rgbn_5m.tif"
    if not naip.is_file():
        return None
    crop = request.getfixturevalue("tmp_path") / "naip_crop.tif"
    gdal.Translate(str(crop), str(naip), srcWin=[300, 200, 160, 128])
    return crop
