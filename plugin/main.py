"""FbpLandcoverPlugin: registers the Processing provider and adds the panel, a toolbar button and menu
entries.

Importing this module imports no torch: the engine is imported when the panel is first shown or an
algorithm runs.
"""

from __future__ import annotations

from qgis.core import QgsApplication
from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtGui import QIcon
from qgis.PyQt.QtWidgets import QAction

MENU = "FBP Land Cover"


class FbpLandcoverPlugin:
    def __init__(self, iface) -> None:
        self.iface = iface
        self.provider = None
        self.dock = None
        self.actions: list[QAction] = []
        self.map_action: QAction | None = None
        self.diagnostics_action: QAction | None = None
        self._diagnostics = None

    # ---- Processing (also called by qgis_process, with no GUI) ---------------------------------
    def initProcessing(self) -> None:  # noqa: N802
        if self.provider is not None:
            return
        from .provider import FbpProvider

        provider = FbpProvider()
        # addProvider refuses a second provider with the same id; then this instance owns none and
        # unload() must not remove the one that is registered.
        if QgsApplication.processingRegistry().addProvider(provider):
            self.provider = provider

    # ---- GUI ---------------------------------------------------------------------------------
    def initGui(self) -> None:  # noqa: N802
        self.initProcessing()
        from .alg_base import ICON
        from .dock import LandCoverDock

        self.dock = LandCoverDock(self.iface, self.iface.mainWindow())
        self.iface.addDockWidget(Qt.RightDockWidgetArea, self.dock)
        self.dock.hide()

        self.map_action = QAction(QIcon(str(ICON)), "Map land cover", self.iface.mainWindow())
        self.map_action.setObjectName("FbpMapLandCoverAction")
        self.map_action.setCheckable(True)
        self.map_action.setToolTip("Show the FBP Land Cover panel")
        self.map_action.toggled.connect(self._toggle_dock)
        self.dock.visibilityChanged.connect(self._dock_visibility)

        self.diagnostics_action = QAction("Diagnostics…", self.iface.mainWindow())
        self.diagnostics_action.setObjectName("FbpDiagnosticsAction")
        self.diagnostics_action.triggered.connect(self.show_diagnostics)

        self.iface.addRasterToolBarIcon(self.map_action)
        for action in (self.map_action, self.diagnostics_action):
            self.iface.addPluginToRasterMenu(MENU, action)
            self.actions.append(action)

    def _toggle_dock(self, checked: bool) -> None:
        if self.dock is not None:
            self.dock.setVisible(checked)
            if checked:
                self.dock.raise_()

    def _dock_visibility(self, visible: bool) -> None:
        if self.map_action is not None and self.map_action.isChecked() != visible:
            self.map_action.blockSignals(True)
            self.map_action.setChecked(visible)
            self.map_action.blockSignals(False)

    def show_diagnostics(self) -> None:
        from .diagnostics_dialog import DiagnosticsDialog
        from .engine_check import diagnostics_text
        from .models_folder import models_dir

        folder = models_dir()
        self._diagnostics = DiagnosticsDialog(diagnostics_text(folder), self.iface.mainWindow(), folder)
        if self.dock is not None:
            self._diagnostics.engine_changed.connect(self.dock.on_engine_changed)
        self._diagnostics.show()

    def unload(self) -> None:
        """Remove every action, menu entry, the panel and the provider; disconnect what was connected."""
        if self.map_action is not None:
            self.map_action.toggled.disconnect(self._toggle_dock)
            self.iface.removeRasterToolBarIcon(self.map_action)
        if self.diagnostics_action is not None:
            self.diagnostics_action.triggered.disconnect(self.show_diagnostics)
        for action in self.actions:
            self.iface.removePluginRasterMenu(MENU, action)
            action.deleteLater()
        self.actions = []
        self.map_action = self.diagnostics_action = None
        if self.dock is not None:
            self.dock.visibilityChanged.disconnect(self._dock_visibility)
            self.dock.shutdown()
            self.iface.removeDockWidget(self.dock)
            self.dock.deleteLater()
            self.dock = None
        if self._diagnostics is not None:
            self._diagnostics.close()
            self._diagnostics.deleteLater()
            self._diagnostics = None
        if self.provider is not None:
            QgsApplication.processingRegistry().removeProvider(self.provider)
            self.provider = None
