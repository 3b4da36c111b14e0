"""Re-creates map_and_areas.model3 (a graphical model chaining maplandcover -> classareas).

Run inside QGIS's Python with the plugin importable:
    QT_QPA_PLATFORM=offscreen .venv/bin/python tests/plugin/build_model3.py
The .model3 file is checked in; this script documents how it was made.
"""

from __future__ import annotations

import sys
from pathlib import Path

from qgis.core import (
    QgsApplication,
    QgsProcessingModelAlgorithm,
    QgsProcessingModelChildAlgorithm,
    QgsProcessingModelChildParameterSource,
    QgsProcessingModelOutput,
    QgsProcessingModelParameter,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
)
from qgis.PyQt.QtCore import QPointF

MODEL3 = Path(__file__).with_name("map_and_areas.model3")


def build() -> QgsProcessingModelAlgorithm:
    model = QgsProcessingModelAlgorithm("Map land cover and areas", "FBP Land Cover tests", "fbptests")
    for param, y in ((QgsProcessingParameterRasterLayer("image", "Image"), 60),
                     (QgsProcessingParameterString("model", "Model"), 120),
                     (QgsProcessingParameterString("sensor", "Sensor", defaultValue="auto"), 180)):
        component = QgsProcessingModelParameter(param.name())
        component.setPosition(QPointF(120, y))
        model.addModelParameter(param, component)

    mapping = QgsProcessingModelChildAlgorithm("fbplandcover:maplandcover")
    mapping.setChildId("map")
    mapping.setDescription("Map land cover")
    mapping.setPosition(QPointF(360, 120))
    mapping.addParameterSources("INPUT", [QgsProcessingModelChildParameterSource.fromModelParameter("image")])
    mapping.addParameterSources("MODEL", [QgsProcessingModelChildParameterSource.fromModelParameter("model")])
    mapping.addParameterSources("SENSOR",
                                [QgsProcessingModelChildParameterSource.fromModelParameter("sensor")])
    mapping.addParameterSources("BACKEND", [QgsProcessingModelChildParameterSource.fromStaticValue("torch")])
    out = QgsProcessingModelOutput("landcover", "Land cover")
    out.setChildId("map")
    out.setChildOutputName("OUTPUT")
    mapping.setModelOutputs({"landcover": out})
    model.addChildAlgorithm(mapping)

    areas = QgsProcessingModelChildAlgorithm("fbplandcover:classareas")
    areas.setChildId("areas")
    areas.setDescription("Class areas")
    areas.setPosition(QPointF(600, 120))
    areas.addParameterSources("INPUT", [QgsProcessingModelChildParameterSource.fromChildOutput("map",
                                                                                               "OUTPUT")])
    table = QgsProcessingModelOutput("areas", "Area table")
    table.setChildId("areas")
    table.setChildOutputName("OUTPUT")
    areas.setModelOutputs({"areas": table})
    areas.setDependencies([])
    model.addChildAlgorithm(areas)
    model.updateDestinationParameters()
    return model


if __name__ == "__main__":
    app = QgsApplication([], False)
    app.initQgis()
    import fbp_landcover

    plugin = fbp_landcover.classFactory(None)
    plugin.initProcessing()
    m = build()
    ok = m.toFile(str(MODEL3))
    print(MODEL3, ok, [p.name() for p in m.parameterDefinitions()])
    sys.stdout.flush()
    app.exitQgis()
