"""The Processing provider: every algorithm, stable ids, help, parameters; metadata.txt."""

from __future__ import annotations

import configparser
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ALGORITHMS = {"maplandcover", "maplandcovermany", "classareas", "collapseclasses", "addmodel", "diagnostics",
              "trainsourcemodel", "adaptmodel", "assessaccuracy", "installengine", "removeengine"}


def test_provider_registers_every_algorithm_with_help(fbp_provider):
    algs = {a.name(): a for a in fbp_provider.algorithms()}
    assert set(algs) == ALGORITHMS
    for name, alg in algs.items():
        assert alg.id() == f"fbplandcover:{name}"
        assert name == name.lower() and " " not in name
        assert len(alg.shortHelpString()) > 80, name
        assert alg.displayName() and alg.group()


def test_maplandcover_parameters(fbp_provider):
    from qgis.core import QgsProcessingParameterDefinition

    from fbp_landcover.engine.io.sensors import PROFILES

    alg = fbp_provider.algorithm("maplandcover")
    params = {p.name(): p for p in alg.parameterDefinitions()}
    assert list(params) == ["INPUT", "SENSOR", "CUSTOM_MAPPING", "MODEL", "MODEL_FILE", "ADAPT_ITERATIONS",
                            "EXTENT", "QUALITY_MASK", "MASK", "STATS", "STITCH",
                            "DEVICE", "BACKEND", "OUTPUT", "CONFIDENCE", "AREAS"]
    # ids with their names, so the dialog says "sentinel2 — Sentinel-2 L1C/L2A", not a bare id
    options = params["SENSOR"].options()
    assert [o.split(" — ")[0] for o in options] == ["auto", *[p for p in PROFILES if p != "custom"], "custom"]
    assert "rgbn — Generic 4-band R/G/B/NIR" in options and "gaofen2 — Gaofen-2 PMS multispectral" in options
    assert params["SENSOR"].usesStaticStrings() and params["SENSOR"].defaultValue() == options[0]
    assert options[0] == "auto — detect from the file"
    assert params["STITCH"].options() == ["blend", "centre-crop"]
    for name in ("STATS", "STITCH", "DEVICE", "BACKEND"):
        assert params[name].flags() & QgsProcessingParameterDefinition.FlagAdvanced, name
    for name in ("CUSTOM_MAPPING", "MODEL", "ADAPT_ITERATIONS", "EXTENT", "MASK", "CONFIDENCE", "AREAS"):
        assert params[name].flags() & QgsProcessingParameterDefinition.FlagOptional, name
    assert not params["CONFIDENCE"].createByDefault() and not params["AREAS"].createByDefault()
    assert params["ADAPT_ITERATIONS"].defaultValue() == 0 and params["ADAPT_ITERATIONS"].minimum() == 0


def test_metadata_is_complete_for_the_plugin_repository():
    meta = configparser.ConfigParser()
    meta.read(ROOT / "metadata.txt")
    general = meta["general"]
    for key in ("name", "qgisMinimumVersion", "description", "about", "version", "author", "email",
                "homepage", "tracker", "repository", "tags", "icon", "category", "hasProcessingProvider",
                "experimental"):
        assert general.get(key), key
    assert general["name"] == "FBP Land Cover"
    assert general["qgisMinimumVersion"] == "3.34"
    from fbp_landcover.engine import __version__

    assert general["version"] == __version__
    assert general["hasProcessingProvider"] == "yes"
    assert general["category"] == "Raster"
    assert general["experimental"] == "True"
    for words in ("PyTorch", "segmentation-models-pytorch", "onnxruntime", "Install the engine",
                  "python/dependencies/fbp_landcover", "never replacing QGIS's own packages"):
        assert words in general["about"], words
    assert (ROOT / general["icon"]).is_file()


@pytest.mark.parametrize("module", sorted(p.relative_to(ROOT / "plugin").as_posix()
                                           for p in (ROOT / "plugin").rglob("*.py")))
def test_plugin_imports_qt_only_through_qgis_pyqt(module):
    text = (ROOT / "plugin" / module).read_text()
    assert "import PyQt5" not in text and "from PyQt5" not in text


@pytest.mark.parametrize("module", sorted(p.name for p in (ROOT / "plugin" / "installer").glob("*.py")))
def test_the_installer_needs_neither_qgis_nor_torch(module):
    """It must work exactly when the engine's packages are missing, and outside QGIS: it imports the
    standard library, itself, and the engine's progress helper and atomic moves (standard library only)."""
    import ast
    import sys

    tree = ast.parse((ROOT / "plugin" / "installer" / module).read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add("." * node.level + (node.module or ""))
    allowed = {name for name in imported if name.split(".")[0] in sys.stdlib_module_names}
    allowed |= {name for name in imported if name.startswith(".") and not name.startswith("..")}
    allowed |= {"...engine.progress", "...engine.io.atomic"} & imported
    assert imported - allowed == set()
