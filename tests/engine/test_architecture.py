"""The house rules: the engine never imports QGIS or Qt, and loading the plugin imports nothing heavy."""

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN = ("qgis", "PyQt5", "PyQt6", "PySide2", "PySide6", "sip")


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level >= 2 and (node.module or "").startswith("plugin"):
                names.add("plugin")
            names.add(node.module or "")
    return names


def test_engine_never_imports_qgis_qt_or_the_plugin():
    offenders = []
    files = sorted((ROOT / "engine").rglob("*.py"))
    assert len(files) > 10
    for path in files:
        for name in imported_modules(path):
            top = name.split(".")[0]
            if top in FORBIDDEN or name.startswith("fbp_landcover.plugin") or top == "plugin":
                offenders.append(f"{path.relative_to(ROOT)}: {name}")
    assert offenders == []


# The engine's rooms, left to right: a module imports only from its own room and the rooms to its left
# ("" = the top-level modules errors, progress, classes).
ROOMS = ["", "io", "models", "inference", "products", "assessment", "training", "mapping", "many", "demo",
         "cli"]


def engine_imports(path: Path) -> list[str]:
    """The engine modules ``path`` imports (relative imports resolved; names that are modules included)."""
    rel = path.relative_to(ROOT).with_suffix("").parts
    package = list(rel[:-1])  # a module's package; an __init__'s own package (the same parts)
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package[: len(package) - (node.level - 1)]
            if node.module:
                found.append(".".join([*base, node.module]))
            else:
                found += [".".join([*base, a.name]) for a in node.names]
    return found


def room_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in ROOMS else ""


def test_a_room_imports_only_from_rooms_to_its_left():
    offenders = []
    for path in sorted((ROOT / "engine").rglob("*.py")):
        here = room_of(".".join(path.relative_to(ROOT).with_suffix("").parts))
        offenders += [f"{path.relative_to(ROOT)} imports {target}" for target in engine_imports(path)
                      if ROOMS.index(room_of(target)) > ROOMS.index(here)]
    assert offenders == []


def test_docs_engine_md_lists_every_engine_module():
    listed = (ROOT / "docs" / "engine.md").read_text()
    def has_code(path: Path) -> bool:  # an __init__ that only re-exports names is its package
        return any(isinstance(n, (ast.FunctionDef, ast.ClassDef)) for n in ast.parse(path.read_text()).body)

    modules = [p for p in sorted((ROOT / "engine").rglob("*.py")) if p.name != "__init__.py" or has_code(p)]
    missing = [str(p.relative_to(ROOT / "engine")) for p in modules
               if f"`{p.relative_to(ROOT / 'engine')}`" not in listed]
    assert len(modules) > 40 and missing == []


RENAMES = {("os", "replace"), ("os", "rename"), ("os", "renames"), ("shutil", "move")}


def renames(path: Path) -> list[str]:
    """Calls in ``path`` that rename or move a file (os.replace/rename, shutil.move, Path.rename/.replace)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.ImportFrom) and node.module in ("os", "shutil"):
            found += [f"line {node.lineno}: from {node.module} import {a.name}" for a in node.names
                      if (node.module, a.name) in RENAMES]
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        owner = node.func.value.id if isinstance(node.func.value, ast.Name) else None
        attr = node.func.attr
        path_replace = (attr == "replace" and len(node.args) == 1 and not node.keywords  # str.replace takes 2
                        and owner != "dataclasses")
        if (owner, attr) in RENAMES or attr == "rename" or path_replace:
            found.append(f"line {node.lineno}: {ast.unparse(node.func)}(...)")
    return found


def test_one_atomic_write_mechanism():
    """Every file is written through engine/io/atomic.py: no rename or move anywhere else."""
    mechanism = ROOT / "engine" / "io" / "atomic.py"
    assert renames(mechanism)  # the check does see the mechanism's own os.replace
    offenders = [f"{path.relative_to(ROOT)} {hit}"
                 for path in sorted([*(ROOT / "engine").rglob("*.py"), *(ROOT / "plugin").rglob("*.py")])
                 if path != mechanism for hit in renames(path)]
    assert offenders == []


def test_importing_the_engine_cli_and_mapping_loads_no_qt_and_no_torch():
    code = ("import sys, fbp_landcover, fbp_landcover.engine.mapping, "
            "fbp_landcover.engine.cli;print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('qgis','PyQt5','torch')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
