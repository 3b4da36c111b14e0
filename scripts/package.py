"""Build the plugin ZIP that QGIS's plugin manager (Install from ZIP) and the official plugin repository take.

    python3 scripts/package.py [--out dist]      ->  dist/fbp_landcover-<version>.zip

One top folder, ``fbp_landcover/``, holding exactly: metadata.txt, __init__.py, LICENSE, requirements.txt
(the engine's runtime packages; the engine installer and qpip read it), plugin/, engine/ (with its legends)
and resources/. No tests, benchmarks, scripts, caches or virtual environments. The version is metadata.txt's
(its one home; the engine reads it from there too). The archive is reproducible: sorted names, fixed times.
"""

from __future__ import annotations

import argparse
import configparser
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PLUGIN = "fbp_landcover"
TOP_FILES = ("metadata.txt", "__init__.py", "LICENSE", "requirements.txt")
FOLDERS = ("plugin", "engine", "resources")
SUFFIXES = {".py", ".json", ".png", ".svg", ".qml", ".txt", ".ui"}
_FIXED_TIME = (2020, 1, 1, 0, 0, 0)


def version(root: Path = ROOT) -> str:
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(root / "metadata.txt", encoding="utf-8")
    return parser.get("general", "version")


def members(root: Path = ROOT) -> list[tuple[Path, str]]:
    """(file on disk, name in the archive) for everything the plugin ZIP holds, sorted by name."""
    out = []
    for name in TOP_FILES:
        path = root / name
        if not path.is_file():
            raise SystemExit(f"package: {path} is missing")
        out.append((path, f"{PLUGIN}/{name}"))
    for folder in FOLDERS:
        for path in sorted((root / folder).rglob("*")):
            rel = path.relative_to(root)
            if not path.is_file() or path.suffix not in SUFFIXES:
                continue
            if any(part.startswith(".") or part == "__pycache__" for part in rel.parts):
                continue
            out.append((path, f"{PLUGIN}/{rel.as_posix()}"))
    return sorted(out, key=lambda item: item[1])


def build(out_dir: Path, root: Path = ROOT) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"{PLUGIN}-{version(root)}.zip"
    partial = target.with_name(f".{target.name}.partial")
    with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for path, name in members(root):
            info = zipfile.ZipInfo(name, date_time=_FIXED_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, path.read_bytes())
    partial.replace(target)
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "dist"), help="folder for the ZIP (default: dist/)")
    args = parser.parse_args(argv)
    print(build(Path(args.out)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
