"""Finding QGIS's real Python: the candidates per platform, and the checks before one is used."""

from __future__ import annotations

import sys
import sysconfig
from pathlib import Path

import pytest

from fbp_landcover.plugin.installer import InstallError
from fbp_landcover.plugin.installer.interpreter import Running, candidates, find


def test_windows_candidates_are_beside_qgis_python_not_the_qgis_program():
    running = Running(platform="win32", executable=r"C:\OSGeo4W\bin\qgis-bin.exe",
                      base_exec_prefix=r"C:\OSGeo4W\apps\Python312", base_prefix=r"C:\OSGeo4W\apps\Python312",
                      version=(3, 12, 7), ext_suffix=".cp312-win_amd64.pyd")
    paths = [str(p) for p, _ in candidates(running)]
    assert paths[0] == str(Path(r"C:\OSGeo4W\apps\Python312") / "python.exe")
    assert all("qgis-bin" not in p for p in paths)


def test_macos_candidates_are_inside_the_app_bundle():
    running = Running(platform="darwin", executable="/Applications/QGIS.app/Contents/MacOS/QGIS",
                      base_exec_prefix="/Applications/QGIS.app/Contents/Frameworks/Python.framework/Versions/3.12",
                      base_prefix="/x", version=(3, 12, 1), ext_suffix=".cpython-312-darwin.so")
    paths = [str(p) for p, _ in candidates(running)]
    assert paths[0].endswith("Versions/3.12/bin/python3.12")
    assert "/Applications/QGIS.app/Contents/MacOS/bin/python3" in paths
    assert "/Applications/QGIS.app/Contents/MacOS/QGIS" not in paths


def test_linux_prefers_the_prefix_python_over_a_python3_first_on_path():
    running = Running(platform="linux", executable="/root/.pyenv/shims/python3", base_exec_prefix="/usr",
                      base_prefix="/usr", version=(3, 11, 2), ext_suffix=".cpython-311-x86_64-linux-gnu.so")
    paths = [str(p) for p, _ in candidates(running)]
    assert paths[:2] == ["/usr/bin/python3.11", "/usr/bin/python3"]
    assert "/root/.pyenv/shims/python3" in paths


def test_find_accepts_this_python_and_reports_its_pip():
    here = Running()
    found = find(override=sys.executable, running=here)
    assert found.version == "{}.{}.{}".format(*sys.version_info[:3])
    assert found.pip is not None and found.pip[0].isdigit()


def test_find_refuses_an_interpreter_of_another_version():
    other = Running(version=(2, 7, 18), ext_suffix=sysconfig.get_config_var("EXT_SUFFIX"))
    with pytest.raises(InstallError) as info:
        find(override=sys.executable, running=other)
    text = str(info.value)
    assert sys.executable in text and "not QGIS's 2.7" in text and "\n" not in text


def test_find_says_what_it_tried_when_nothing_runs(tmp_path):
    missing = Running(platform="win32", executable=str(tmp_path / "bin" / "qgis-bin.exe"),
                      base_exec_prefix=str(tmp_path / "apps" / "Python312"), base_prefix=str(tmp_path),
                      version=(3, 12, 7))
    with pytest.raises(InstallError) as info:
        find(running=missing)
    text = str(info.value)
    assert text.startswith("QGIS's own Python 3.12 interpreter was not found")
    assert str(tmp_path / "apps" / "Python312" / "python.exe") in text and "does not exist" in text
    assert "installer's Python setting" in text
