"""Install the engine from inside QGIS: the dock's box, the algorithm's cancel, the refreshed panel."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.plugin.conftest import wait_for

ROOT = Path(__file__).resolve().parents[2]
WHEELS = ROOT / ".wheels"


@pytest.fixture
def profile(tmp_path, monkeypatch):
    """A QGIS profile folder of the test's own (the engine folder goes there)."""
    from fbp_landcover.plugin import engine_folder

    monkeypatch.setattr(engine_folder, "profile_dir", lambda: tmp_path)
    return tmp_path


def _listing(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def test_a_cancelled_install_leaves_nothing(fbp_provider, profile, monkeypatch):
    """Cancelled while pip is getting the first package: pip is stopped, the hidden folder removed."""
    import processing
    from qgis.core import QgsProcessingException, QgsProcessingFeedback

    from fbp_landcover.plugin.installer import install as install_module
    from fbp_landcover.plugin.installer.pip import subprocess_env

    # pip sees the system QGIS's packages only (this test runs in the developer's venv, which has the engine)
    system_path = [p for p in sys.path if p.startswith("/usr/lib/python3")]
    monkeypatch.setattr(install_module, "subprocess_env",
                        lambda exclude: subprocess_env(exclude=exclude, qgis_path=system_path))

    class CancelWhenPipStarts(QgsProcessingFeedback):
        def setProgressText(self, text):  # noqa: N802
            super().setProgressText(text)
            if text.startswith("Getting "):
                self.cancel()

    if not WHEELS.is_dir():
        pytest.fail(f"{WHEELS} is missing: run scripts/setup.sh")
    feedback = CancelWhenPipStarts()
    with pytest.raises(QgsProcessingException) as info:
        processing.run("fbplandcover:installengine", {"WHEEL_FOLDER": str(WHEELS)}, feedback=feedback)
    assert str(info.value) == "The installation was cancelled; nothing was changed."
    assert _listing(profile) == ["fbp_landcover", "fbp_landcover/logs",
                                 "fbp_landcover/logs/engine-install.log"]


def test_pip_runs_from_its_wheel_when_qgis_python_has_none(tmp_path):
    import subprocess

    from fbp_landcover.plugin.installer.install import pip_command
    from fbp_landcover.plugin.installer.interpreter import Interpreter

    python = Interpreter(Path(sys.executable), "3.11.2", "test", pip=None)
    argv = pip_command(python, str(WHEELS))
    assert argv[0] == sys.executable and argv[1].endswith(".whl/pip")
    out = subprocess.run([*argv, "--version"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.startswith("pip ")
    from fbp_landcover.plugin.installer import InstallError

    with pytest.raises(InstallError) as info:
        pip_command(python, str(tmp_path))
    assert "has no pip" in str(info.value) and "sudo apt install python3-pip" in str(info.value)


def test_the_box_runs_the_algorithm_and_the_panel_turns_usable(qgis_iface, qgis_new_project, fbp_provider,
                                                               models_folder, profile, monkeypatch):
    """The button starts fbplandcover:installengine as a task with the saved settings; when it succeeds and
    torch loads, the box goes and the panel is usable, without restarting QGIS."""
    from fbp_landcover.engine import torch_import
    from fbp_landcover.plugin import engine_check
    from fbp_landcover.plugin.dock import LandCoverDock
    from fbp_landcover.plugin.installer import install as install_module
    from fbp_landcover.plugin.installer.interpreter import Interpreter

    real_import = torch_import.import_torch
    state = {"installed": False, "settings": None}

    def torch_if_installed():
        if not state["installed"]:
            raise ModuleNotFoundError("No module named 'torch'")
        return real_import()

    def fake_install(profile_dir, settings, progress, is_cancelled):
        state["settings"] = settings
        progress(0.5, "Downloading torch (198.4 MB) — package 1 of 29")
        state["installed"] = True
        site = Path(profile_dir) / "python" / "dependencies" / "fbp_landcover" / "py3.11"
        return install_module.InstallResult(site, Path(profile_dir) / "log",
                                            Interpreter(Path(sys.executable), "3.11.2", "test", "23.0"),
                                            outcome="installed", seconds=1.0)

    monkeypatch.setattr(torch_import, "import_torch", torch_if_installed)
    monkeypatch.setattr(install_module, "install", fake_install)
    engine_check.reset()
    from qgis.core import QgsSettings

    QgsSettings().setValue("fbp_landcover/installer/wheel_folder", str(WHEELS))
    try:
        widget = LandCoverDock(qgis_iface)
        widget.show()
        box = widget.engine_box
        assert box.isVisible() and not widget.run_button.isEnabled()
        texts = []
        box.install_button.click()
        box.run.text.connect(texts.append)
        assert box.install_button.text() == "Cancel the installation"
        wait_for(lambda: box.run is not None and not box.run.running, timeout=60)
        assert state["settings"].wheel_folder == str(WHEELS) and state["settings"].torch_build == "cpu"
        site = profile / "python" / "dependencies" / "fbp_landcover" / "py3.11"
        assert box.stage_label.text() == (f"Ready: the engine was installed with QGIS's Python "
                                          f"{sys.executable} "
                                          f"into {site}.")
        assert box.title() == "The engine is installed"
        assert not box.install_button.isVisible() and not box.problem_label.isVisible()
        assert str(profile / "fbp_landcover" / "logs" / "engine-install.log") in box.log_label.text()
        assert widget.run_button.isEnabled() and widget.add_model_button.isEnabled()
        assert widget.device_label.text().startswith(("CPU", "CUDA"))
        widget.shutdown()
        widget.deleteLater()
    finally:
        QgsSettings().remove("fbp_landcover/installer/wheel_folder")
        engine_check.reset()
