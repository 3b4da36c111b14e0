"""The plugin ZIP: exactly the layout QGIS's plugin manager and the official plugin repository expect."""

from __future__ import annotations

import configparser
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# The keys the plugin repository refuses a plugin without (Plugin Builder's "mandatory" block).
REQUIRED_KEYS = ("name", "qgisMinimumVersion", "description", "about", "version", "author", "email",
                 "tracker", "repository")


def _expected_files() -> set[str]:
    """What the ZIP must hold, worked out from the checkout independently of scripts/package.py."""
    top = ("metadata.txt", "__init__.py", "LICENSE", "requirements.txt")
    files = {f"fbp_landcover/{name}" for name in top}
    for folder in ("plugin", "engine", "resources"):
        for path in (ROOT / folder).rglob("*"):
            rel = path.relative_to(ROOT)
            if path.is_file() and "__pycache__" not in rel.parts and not path.name.startswith(".") \
                    and path.suffix not in (".pyc", ".onnx"):
                files.add(f"fbp_landcover/{rel.as_posix()}")
    return files


def test_zip_holds_exactly_the_plugin(tmp_path):
    out = subprocess.run([sys.executable, str(ROOT / "scripts" / "package.py"), "--out", str(tmp_path)],
                         capture_output=True, text=True, check=True)
    meta = configparser.ConfigParser(interpolation=None)
    meta.read(ROOT / "metadata.txt", encoding="utf-8")
    version = meta.get("general", "version")
    zip_path = Path(out.stdout.strip())
    assert zip_path == tmp_path / f"fbp_landcover-{version}.zip"
    with zipfile.ZipFile(zip_path) as zf:
        names = [n for n in zf.namelist() if not n.endswith("/")]
        assert len(names) == len(set(names))
        assert set(names) == _expected_files()
        assert {n.split("/")[1] for n in names} == {"metadata.txt", "__init__.py", "LICENSE",
                                                   "requirements.txt", "plugin", "engine", "resources"}
        for bad in ("tests/", "bench/", "scripts/", ".venv", "__pycache__", ".pyc", ".git", ".wheels",
                    "docs/"):
            assert not [n for n in names if bad in n], bad
        assert {n for n in names if n.startswith("fbp_landcover/engine/legends/")} >= {
            "fbp_landcover/engine/legends/gid5.json", "fbp_landcover/engine/legends/coarse.json"}
        assert zf.read("fbp_landcover/requirements.txt") == (ROOT / "requirements.txt").read_bytes()
        zipped = configparser.ConfigParser(interpolation=None)
        zipped.read_string(zf.read("fbp_landcover/metadata.txt").decode("utf-8"))
        for key in REQUIRED_KEYS:
            assert zipped.get("general", key, fallback="").strip(), key
        assert zipped.get("general", "hasProcessingProvider") == "yes"
        assert f"fbp_landcover/{zipped.get('general', 'icon')}" in names
        assert zf.read("fbp_landcover/LICENSE").startswith(b"                    GNU GENERAL PUBLIC LICENSE")


def test_the_version_has_one_home():
    from fbp_landcover.engine import __version__

    meta = configparser.ConfigParser(interpolation=None)
    meta.read(ROOT / "metadata.txt", encoding="utf-8")
    assert __version__ == meta.get("general", "version")
    hits = subprocess.run(["git", "grep", "-n", f'"{__version__}"', "--", "*.py"], cwd=ROOT,
                          capture_output=True, text=True).stdout
    assert hits == "", f"the version literal is repeated in code:\n{hits}"


def test_the_zip_is_reproducible(tmp_path):
    a = subprocess.run([sys.executable, str(ROOT / "scripts" / "package.py"), "--out", str(tmp_path / "a")],
                       capture_output=True, text=True, check=True).stdout.strip()
    b = subprocess.run([sys.executable, str(ROOT / "scripts" / "package.py"), "--out", str(tmp_path / "b")],
                       capture_output=True, text=True, check=True).stdout.strip()
    assert Path(a).read_bytes() == Path(b).read_bytes()
