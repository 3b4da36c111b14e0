"""pip's output turned into stages, and each failure into its sentence."""

from __future__ import annotations

from pathlib import Path

from fbp_landcover.plugin.installer.pip import PipRun, PipStages, failure

LOG = Path("/profile/fbp_landcover/logs/engine-install.log")


def test_stages_count_packages_and_name_downloads():
    stages = PipStages(total=4)
    assert stages.feed("Looking in indexes: https://pypi.org/simple") is None
    f, m = stages.feed("Collecting torch==2.13.0+cpu")
    assert f == 0.0 and m == "Getting torch — package 1 of 4"
    f, m = stages.feed("  Downloading https://download.pytorch.org/whl/cpu/torch-2.13.0%2Bcpu-cp311-cp311-"
                       "manylinux_2_28_x86_64.whl (198.4 MB)")
    assert m == "Downloading torch (198.4 MB) — package 1 of 4"
    f, m = stages.feed("Processing /wheels/onnx-1.23.2-cp311-cp311-manylinux_2_28_x86_64.whl")
    assert f == 0.2 and m == "Getting onnx — package 2 of 4"
    f, m = stages.feed("Installing collected packages: torch, onnx, tqdm, timm")
    assert f == 0.8 and m.startswith("Installing 4 packages")
    assert stages.feed("Successfully installed onnx-1.23.2 timm-1.0.31 torch-2.13.0+cpu tqdm-4.70.1") == (
        1.0, "Packages installed")


def _sentence(*lines, code=1):
    return str(failure(PipRun(code, list(lines)), Path("/profile/python/dependencies/fbp_landcover"),
                       "https://pypi.org/simple", LOG))


def test_unreachable_index_is_one_sentence():
    text = _sentence(
        "WARNING: Retrying (Retry(total=0, connect=None, read=None, redirect=None, status=None)) after "
        "connection "
        "broken by 'NewConnectionError('<pip._vendor.urllib3.connection.HTTPConnection object at 0x7f>: "
        "Failed to "
        "establish a new connection: [Errno 111] Connection refused')': /simple/torch/",
        "ERROR: Could not find a version that satisfies the requirement torch<3,>=2.5 (from versions: none)",
        "ERROR: No matching distribution found for torch<3,>=2.5")
    assert text.startswith("The package index (https://pypi.org/simple) could not be reached")
    assert str(LOG) in text and "\n" not in text


def test_disk_full_names_the_folder_and_free_space():
    text = _sentence("ERROR: Could not install packages due to an OSError: [Errno 28] No space left on "
                     "device")
    assert text.startswith("The disk holding /profile/python/dependencies/fbp_landcover is full:")
    assert " MB free" in text


def test_conflict_quotes_pip():
    text = _sentence("ERROR: Cannot install torch because these package versions have conflicting "
                     "dependencies.",
                     "The conflict is caused by:", "    torch 2.13.0 depends on sympy>=1.13.3",
                     "    The user requested (constraint) sympy==1.11.1",
                     "ERROR: ResolutionImpossible: for help visit https://pip.pypa.io/")
    assert text.startswith("The engine's packages conflict with a package of this QGIS")
    assert "torch 2.13.0 depends on sympy>=1.13.3" in text and "sympy==1.11.1" in text


def test_missing_release_in_a_wheel_folder():
    text = _sentence("ERROR: Could not find a version that satisfies the requirement onnx>=1.17 (from "
                     "versions: none)",
                     "ERROR: No matching distribution found for onnx>=1.17")
    assert "has no release of onnx>=1.17" in text


def test_unknown_failure_quotes_the_last_error():
    text = _sentence("ERROR: something new went wrong", code=2)
    assert text == f"pip failed (exit code 2): ERROR: something new went wrong. The full log is {LOG}."
