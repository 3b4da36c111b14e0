"""classFactory imports nothing heavy; initGui/unload add and remove everything; load -> unload -> load."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_classfactory_and_init_processing_import_no_torch(tmp_path):
    code = (
        "import sys\nfrom qgis.core import QgsApplication\napp = QgsApplication([], False); "
        "app.initQgis()\nimport fbp_landcover\nplugin = "
        "fbp_landcover.classFactory(None)\nplugin.initProcessing()\nreg = "
        "QgsApplication.processingRegistry()\nprint(sorted(a.name() for a "
        "in reg.providerById('fbplandcover').algorithms()))\nprint('torch' in sys.modules, "
        "'segmentation_models_pytorch' "
        "in sys.modules)\nplugin.unload()\nprint(reg.providerById('fbplandcover') is None)\n"
    )
    env = {"QT_QPA_PLATFORM": "offscreen", "QGIS_CUSTOM_CONFIG_PATH": str(tmp_path), "HOME": str(tmp_path),
           "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert lines[-3] == ("['adaptmodel', 'addmodel', 'assessaccuracy', 'classareas', 'collapseclasses', "
                         "'diagnostics', 'installengine', 'maplandcover', 'maplandcovermany', "
                         "'removeengine', "
                         "'trainsourcemodel']")
    assert lines[-2] == "False False"
    assert lines[-1] == "True"


@pytest.fixture
def free_provider_slot(qgis_processing):
    """Remove a provider registered by other tests, so that the plugin registers its own."""
    from qgis.core import QgsApplication

    QgsApplication.processingRegistry().removeProvider("fbplandcover")
    yield
    QgsApplication.processingRegistry().removeProvider("fbplandcover")


def _load(iface):
    from fbp_landcover import classFactory

    plugin = classFactory(iface)
    plugin.initGui()
    return plugin


def test_init_gui_and_unload_remove_everything(qgis_iface, free_provider_slot):
    from qgis.core import QgsApplication
    from qgis.PyQt import sip
    from qgis.PyQt.QtCore import QCoreApplication, QEvent

    registry = QgsApplication.processingRegistry()
    for mock in ("addRasterToolBarIcon", "addPluginToRasterMenu", "removeRasterToolBarIcon",
                 "removePluginRasterMenu"):
        getattr(qgis_iface, mock).reset_mock()
    plugin = _load(qgis_iface)
    assert registry.providerById("fbplandcover") is plugin.provider
    assert len(plugin.provider.algorithms()) == 11
    actions = list(plugin.actions)
    assert [a.text() for a in actions] == ["Map land cover", "Diagnostics…"]
    qgis_iface.addRasterToolBarIcon.assert_called_once_with(plugin.map_action)
    assert [c.args for c in qgis_iface.addPluginToRasterMenu.call_args_list] == [
        ("FBP Land Cover", a) for a in actions]
    dock = plugin.dock
    assert dock.parent() is qgis_iface.mainWindow() and not dock.isVisible()
    plugin.map_action.setChecked(True)
    assert not dock.isHidden()

    plugin.unload()
    QCoreApplication.sendPostedEvents(None, QEvent.DeferredDelete)
    assert registry.providerById("fbplandcover") is None
    qgis_iface.removeRasterToolBarIcon.assert_called_once_with(actions[0])
    assert [c.args for c in qgis_iface.removePluginRasterMenu.call_args_list] == [
        ("FBP Land Cover", a) for a in actions]
    assert sip.isdeleted(dock)
    assert all(sip.isdeleted(a) for a in actions)
    assert plugin.dock is None and plugin.provider is None and plugin.actions == []
    assert not qgis_iface.mainWindow().findChildren(type(dock))


def test_load_unload_load(qgis_iface, free_provider_slot):
    from qgis.core import QgsApplication

    registry = QgsApplication.processingRegistry()
    first = _load(qgis_iface)
    first.unload()
    second = _load(qgis_iface)
    assert registry.providerById("fbplandcover") is second.provider
    assert registry.algorithmById("fbplandcover:maplandcover") is not None
    second.map_action.setChecked(True)
    assert not second.dock.isHidden()
    second.unload()
    assert registry.providerById("fbplandcover") is None


def test_a_second_instance_does_not_remove_the_registered_provider(qgis_iface, free_provider_slot):
    from qgis.core import QgsApplication

    registry = QgsApplication.processingRegistry()
    first = _load(qgis_iface)
    second = _load(qgis_iface)  # addProvider refuses the duplicate id
    assert second.provider is None
    second.unload()
    assert registry.providerById("fbplandcover") is first.provider
    first.unload()
    assert registry.providerById("fbplandcover") is None
