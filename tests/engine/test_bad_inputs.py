"""A hostile user's cases (issue 14): each one is refused with one sentence and exit 1 before any work, the
folder holds exactly what it held before, and the input's bytes are unchanged."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.models import tiny_checkpoint
from tests.rasters import file_digest, random_scene, write_raster

CLI = str(Path(__file__).resolve().parents[2] / ".venv" / "bin" / "fbp-landcover")


def cli(*args, env=None, **kw):
    return subprocess.run([CLI, "--quiet", *map(str, args)], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, **kw)


def listing(folder: Path) -> list[str]:
    """Every file and folder under ``folder`` (hidden ones included), relative and sorted."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    return tiny_checkpoint(tmp_path_factory.mktemp("model") / "tiny.fbpmodel")


@pytest.fixture
def scene(tmp_path) -> Path:
    return write_raster(tmp_path / "in.tif", random_scene(40, 50))


def refused(tmp_path: Path, scene: Path, *args, sentence: str, env=None) -> str:
    """Run the CLI; assert exit 1, one line on stderr holding ``sentence``, no file added or removed, the
    input unchanged. Returns stderr."""
    before, digest = listing(tmp_path), file_digest(scene)
    run = cli(*args, env=env)
    assert run.returncode == 1, (run.returncode, run.stderr)
    assert run.stderr.startswith("fbp-landcover: ") and len(run.stderr.strip().splitlines()) == 1, run.stderr
    assert sentence in run.stderr, run.stderr
    assert listing(tmp_path) == before
    assert file_digest(scene) == digest
    return run.stderr


MAP = ("map", "--sensor", "rgbn")


@pytest.mark.parametrize(("extra", "sentence"), [
    (["-o", "{in}", "--overwrite"], "is the input image of this run"),
    (["-o", "{hardlink}", "--overwrite"], "is the input image of this run"),
    (["-o", "{symlink}", "--overwrite"], "is the input image of this run"),
    (["-o", "a.tif", "--confidence", "a.tif"], "The output map and the confidence raster would both be "
                                               "written to"),
    (["-o", "c.tif", "--areas", "c.csv", "--confidence", "c.tif"], "would both be written to"),
    (["-o", "c.tif", "--areas", "c.tif"], "The area table {tmp}/c.tif must end in .csv"),
    (["-o", "c.tif", "--areas", "b.json"], "must end in .csv"),
    (["-o", "x.qml"], "The output map {tmp}/x.qml must end in .tif or .tiff"),
    (["-o", "d.tif", "--quicklook", "d.qml"], "The quicklook {tmp}/d.qml must end in .png"),
    (["-o", "e.tif", "--quicklook", "e.png", "--areas", "e.csv", "--confidence", "f.TIF", "--mask", "e.png"],
     "The quicklook {tmp}/e.png is the mask of this run"),
    (["-o", "g.tif", "--model", "{model_copy}"], "is the model of this run"),
])
def test_an_output_set_that_would_destroy_something_is_refused(tmp_path, scene, model, extra, sentence):
    os.link(scene, tmp_path / "hard.tif")
    (tmp_path / "soft.tif").symlink_to(scene)
    (tmp_path / "e.png").write_bytes(b"a mask given as a png")
    model_copy = tmp_path / "g.tif"  # a model file named like the output: still an input
    model_copy.write_bytes(model.read_bytes())
    fill = {"{in}": scene, "{hardlink}": tmp_path / "hard.tif", "{symlink}": tmp_path / "soft.tif",
            "{model_copy}": model_copy}
    args = [a if a.startswith("-") else str(fill.get(a, tmp_path / a)) for a in extra]
    if "--model" not in args:
        args += ["--model", str(model)]
    refused(tmp_path, scene, *MAP, scene, *args, sentence=sentence.replace("{tmp}", str(tmp_path)))


def test_collapse_and_evaluate_never_write_over_their_inputs(tmp_path):
    import numpy as np

    classes = write_raster(tmp_path / "classes.tif", np.arange(1, 25, dtype=np.uint8).reshape(4, 6), nodata=0)
    refused(tmp_path, classes, "collapse", classes, "gid5", "-o", classes, "--overwrite",
            sentence=f"The collapsed map {classes} is the class map of this run")
    refused(tmp_path, classes, "collapse", classes, "gid5", "-o", tmp_path / "g.png",
            sentence=f"The collapsed map {tmp_path / 'g.png'} must end in .tif or .tiff")
    mapping = tmp_path / "ref.json"
    mapping.write_text("{}")
    refused(tmp_path, classes, "evaluate", classes, classes, "-o", tmp_path / "ref", "--mapping", mapping,
            "--overwrite", sentence=f"The JSON report {mapping} is the reference mapping of this run")
