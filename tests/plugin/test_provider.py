"""The Processing provider: every algorithm, stable ids, help, parameters; metadata.txt."""

from __future__ import annotations

import configparser
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ALGORITHMS = {"maplandcover", "maplandcovermany", "classareas", "collapseclasses", "addmodel", "diagnostics",
              "trainsourcemodel", "adaptmodel", "assessaccuracy"}


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
    assert list(params) == ["INPUT", "SENSOR", "CUSTOM_MAPPING", "MODEL", "ADAPT_ITERATIONS", "EXTENT",
                            "MASK", "STATS", "STITCH",
                            "DEVICE", "BACKEND", "OUTPUT", "CONFIDENCE", "AREAS"]
    assert params["SENSOR"].options() == ["auto", *PROFILES, "custom"]
    assert params["SENSOR"].usesStaticStrings() and params["SENSOR"].defaultValue() == "auto"
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
    assert general["version"] == "0.1.0"
    assert general["hasProcessingProvider"] == "yes"
    assert general["category"] == "Raster"
    assert general["experimental"] == "True"
    for dep in ("torch", "segmentation-models-pytorch", "onnxruntime", "GDAL"):
        assert dep in general["about"], dep
    assert (ROOT / general["icon"]).is_file()


@pytest.mark.parametrize("module", ["main", "dock", "styling", "alg_map", "alg_tools", "alg_admin",
                                    "alg_training",
                                    "provider", "engine_check", "models_folder", "diagnostics_dialog",
                                    "alg_base"])
def test_plugin_imports_qt_only_through_qgis_pyqt(module):
    text = (ROOT / "plugin" / f"{module}.py").read_text()
    assert "import PyQt5" not in text and "from PyQt5" not in text
