"""What the installer asks pip for: requirements, the torch build's index, and the pins on QGIS's packages."""

from __future__ import annotations

import importlib.metadata as metadata
from pathlib import Path

import pytest

from fbp_landcover.plugin.installer.plan import (
    REQUIREMENTS,
    TORCH_INDEX,
    Settings,
    index_args,
    make_plan,
    pins,
    requirements,
    shipped_distributions,
)

ROOT = Path(__file__).resolve().parents[2]


def test_requirements_are_the_plugin_file_without_comments():
    assert REQUIREMENTS == ROOT / "requirements.txt"
    reqs = requirements()
    names = [r.split(">")[0].split("<")[0].split("=")[0] for r in reqs]
    assert names == ["torch", "torchvision", "segmentation-models-pytorch", "timm", "safetensors",
                     "onnxruntime", "onnx", "onnxscript", "tqdm", "Pillow"]
    assert not any("#" in r or r != r.strip() for r in reqs)
    assert "numpy" not in names  # QGIS's own: never asked for


@pytest.mark.parametrize("platform, build, expected", [
    ("linux", "cpu", ["--extra-index-url", TORCH_INDEX["cpu"]]),  # PyPI's Linux torch is the CUDA build
    ("linux", "cuda", ["--extra-index-url", TORCH_INDEX["cuda"]]),
    ("win32", "cpu", []),  # PyPI's Windows and macOS torch are CPU builds already
    ("win32", "cuda", ["--extra-index-url", TORCH_INDEX["cuda"]]),
    ("darwin", "cpu", []),
    ("darwin", "cuda", []),  # no CUDA on macOS
])
def test_index_follows_platform_and_build(platform, build, expected):
    assert index_args(Settings(torch_build=build), platform) == expected


def test_a_mirror_and_a_wheel_folder_replace_the_index(tmp_path):
    assert index_args(Settings(index_url="https://mirror.example/simple"), "win32") == [
        "--index-url", "https://mirror.example/simple"]
    assert index_args(Settings(wheel_folder=str(tmp_path)), "linux") == [
        "--no-index", "--find-links", str(tmp_path)]


def test_numpy_compiled_and_imported_packages_are_pinned_and_others_are_not():
    shipped = shipped_distributions()
    by_name = {p.name.lower(): p for p in pins(shipped, imported=["json", "certifi"])}
    assert by_name["numpy"].version == metadata.version("numpy")
    assert by_name["numpy"].why.startswith("numpy")
    assert by_name["gdal"].why == "has compiled code"
    assert by_name["certifi"].why == "imported by QGIS"  # pure Python, but in use
    assert "pyqt5" in by_name  # a dist-info without RECORD or top_level.txt is still recognised
    if "six" in shipped:  # pure Python and not imported: may be installed newer for the engine
        assert "six" not in by_name
    for name in ("pip", "setuptools", "wheel"):
        assert name not in by_name


def test_our_own_folder_is_never_counted_as_qgis(tmp_path):
    fake = tmp_path / "fake-1.0.dist-info"
    fake.mkdir()
    (fake / "METADATA").write_text("Metadata-Version: 2.1\nName: fake-engine-dep\nVersion: 1.0\n")
    import sys

    sys.path.insert(0, str(tmp_path))
    try:
        assert "fake-engine-dep" in shipped_distributions()
        assert "fake-engine-dep" not in shipped_distributions(exclude=[tmp_path])
    finally:
        sys.path.remove(str(tmp_path))


def test_constraints_text_lists_every_pin_once():
    plan = make_plan(Settings(), imported=["numpy"])
    lines = [line for line in plan.constraints_text().splitlines() if not line.startswith("#")]
    assert len(lines) == len(plan.pins) == len({line.split("==")[0] for line in lines})
    assert any(line.startswith(f"numpy=={metadata.version('numpy')}  #") for line in lines)


def test_a_pytorch_index_setting_replaces_the_default_one():
    custom = "https://download.pytorch.org/whl/cu126"
    assert index_args(Settings(torch_build="cuda", torch_index_url=custom), "win32") == [
        "--extra-index-url", custom]
    assert index_args(Settings(torch_build="cpu", torch_index_url="https://mirror.example/torch-cpu"),
                      "darwin") == ["--extra-index-url", "https://mirror.example/torch-cpu"]
