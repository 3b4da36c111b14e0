"""Fill the local wheel folder that stands in for PyPI when the tests prove the analyst's install offline.

    python scripts/fill_wheels.py WHEELS CONSTRAINTS REQUIREMENTS [--system-python /usr/bin/python3]

PyPI holds every release, so pip can always backtrack to versions that fit the packages a QGIS keeps as
they are (the engine installer pins the ones QGIS has imported or that have compiled code, e.g. Debian 12's
idna 3.3). A wheel folder holds only what was downloaded into it, so it gets two consistent sets:
1. the engine's packages at the developer pins (the newest that fit them);
2. the same, with every package of the system QGIS's Python that is in that set pinned to the system's
   version; pins that cannot hold (Debian's mpmath 0.0.0 is on no index; torch needs a newer sympy than
   Debian's, which QGIS does not import, so the installer would not pin it either) are dropped one by one.
Whatever subset of those packages a QGIS session pins, the installer then finds a solution in the folder.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

_LIST = ("import importlib.metadata as m, json; print(json.dumps({d.metadata['Name']: d.version "
         "for d in m.distributions() if d.metadata['Name']}))")


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def wheel_names(folder: Path) -> set[str]:
    return {normalise(p.name.split("-", 1)[0]) for p in folder.glob("*.whl")}


def download(folder: Path, constraints: list[Path], requirements: Path) -> subprocess.CompletedProcess:
    argv = [sys.executable, "-m", "pip", "download", "--progress-bar", "off", "--disable-pip-version-check",
            "-d", str(folder)]
    for c in constraints:
        argv += ["-c", str(c)]
    return subprocess.run([*argv, "-r", str(requirements), "pip"], capture_output=True, text=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("wheels", type=Path)
    parser.add_argument("constraints", type=Path)
    parser.add_argument("requirements", type=Path)
    parser.add_argument("--system-python", default="/usr/bin/python3")
    args = parser.parse_args(argv)
    args.wheels.mkdir(parents=True, exist_ok=True)
    first = download(args.wheels, [args.constraints], args.requirements)
    if first.returncode != 0:
        sys.stderr.write(first.stdout + first.stderr)
        return 1
    closure = wheel_names(args.wheels)
    listed = subprocess.run([args.system_python, "-c", _LIST], capture_output=True, text=True, check=True)
    system = {normalise(k): (k, v) for k, v in json.loads(listed.stdout).items()}
    pins = {key: value for key, value in system.items()
            if key in closure and key not in ("pip", "setuptools")}
    with tempfile.TemporaryDirectory() as tmp:
        pin_file = Path(tmp) / "system-pins.txt"
        for _attempt in range(len(pins) + 1):
            pin_file.write_text("".join(f"{name}=={version}\n" for name, version in pins.values()))
            second = download(args.wheels, [args.constraints, pin_file], args.requirements)
            if second.returncode == 0:
                print(f"wheel folder: {len(list(args.wheels.glob('*.whl')))} wheels; system pins kept: "
                      + ", ".join(f"{n}=={v}" for n, v in pins.values()))
                return 0
            said = second.stdout + second.stderr
            missing = re.findall(r"(?:requirement|found for|\(constraint\)) ([A-Za-z0-9_.\-]+)==", said)
            dropped = [normalise(m) for m in missing if normalise(m) in pins]
            if not dropped:
                sys.stderr.write(said)
                return 1
            for key in dropped:
                name, version = pins.pop(key)
                print(f"dropped the pin {name}=={version}: it cannot hold")
    return 1


if __name__ == "__main__":
    sys.exit(main())
