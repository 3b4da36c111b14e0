"""The Processing provider ``fbplandcover``."""

from __future__ import annotations

from qgis.core import QgsProcessingProvider
from qgis.PyQt.QtGui import QIcon

from .alg_base import ICON


def algorithm_classes() -> list[type]:
    from .alg_admin import AddModel, Diagnostics
    from .alg_install import InstallEngine, RemoveEngine
    from .alg_many import MapLandCoverMany
    from .alg_map import MapLandCover
    from .alg_tools import ClassAreas, CollapseClasses
    from .alg_training import AdaptModel, AssessAccuracy, TrainSourceModel

    return [MapLandCover, MapLandCoverMany, ClassAreas, CollapseClasses, AddModel, Diagnostics,
            TrainSourceModel, AdaptModel, AssessAccuracy, InstallEngine, RemoveEngine]


class FbpProvider(QgsProcessingProvider):
    def id(self) -> str:
        return "fbplandcover"

    def name(self) -> str:
        return "FBP Land Cover"

    def longName(self) -> str:  # noqa: N802
        from ..engine import __version__

        return f"FBP Land Cover {__version__}"

    def icon(self) -> QIcon:
        return QIcon(str(ICON))

    def loadAlgorithms(self) -> None:  # noqa: N802
        for cls in algorithm_classes():
            self.addAlgorithm(cls())

    def supportedOutputRasterLayerExtensions(self) -> list[str]:  # noqa: N802
        return ["tif"]

    def defaultRasterFileExtension(self) -> str:  # noqa: N802
        return "tif"
