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


def _model_with(path: Path, **card_changes) -> Path:
    """A tiny model whose card says something a hostile file might say."""
    import dataclasses

    from fbp_landcover.engine.models.fbpmodel import save_checkpoint
    from tests.models import tiny_model

    net, card = tiny_model()
    save_checkpoint(path, net, dataclasses.replace(card, **card_changes))
    return path


@pytest.mark.parametrize(("extra", "sentence"), [
    (["--gsd", "nan"], "--gsd (working pixel size) is nan; give a finite number above 0"),
    (["--gsd", "inf"], "--gsd (working pixel size) is inf; give a finite number above 0"),
    (["--batch-size", "-1"], "--batch-size is -1; give a finite number of at least 1"),
    (["--overlap", "-5"], "--overlap is -5; give a finite number of at least 0"),
    (["--extent=-inf,0,1,1"], "is not xmin,ymin,xmax,ymax (finite numbers)"),
])
def test_bad_numbers_are_one_sentence(tmp_path, scene, model, extra, sentence):
    refused(tmp_path, scene, *MAP, scene, "--model", model, "-o", tmp_path / "m.tif", *extra,
            sentence=sentence)


def test_hostile_model_files_are_one_sentence(tmp_path, scene):
    import pickle

    abc = _model_with(tmp_path / "abc.fbpmodel", format_version="abc")
    refused(tmp_path, scene, *MAP, scene, "--model", abc, "-o", tmp_path / "m.tif",
            sentence="has the format version 'abc', which is not a number")
    three = _model_with(tmp_path / "three.fbpmodel", in_bands=["r", "g", "b"])
    refused(tmp_path, scene, *MAP, scene, "--model", three, "-o", tmp_path / "m.tif",
            sentence="takes 3 band(s) (r, g, b), but the engine gives every model the 4 bands NIR, R, G, B")

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path / 'PWNED'}",))

    bad = tmp_path / "unet_x.pth.tar"
    bad.write_bytes(pickle.dumps({"state_dict": Payload()}, protocol=4))
    err = refused(tmp_path, scene, *MAP, scene, "--model", bad, "-o", tmp_path / "m.tif",
                  sentence=f"The checkpoint {bad} is refused as unsafe")
    assert "weights_only" not in err and not (tmp_path / "PWNED").exists()


def test_a_model_naming_a_hub_encoder_never_reaches_the_network(tmp_path, scene, monkeypatch, capsys):
    """A card with encoder tu-hf-hub:timm/...: refused before anything connects (a socket guard fails the
    test on any connection), and the hubs are offline inside the engine."""
    import socket

    from fbp_landcover.engine.cli import main

    def no_network(*args, **kw):
        raise AssertionError(f"a network connection was attempted: {args}")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    hub = _model_with(tmp_path / "hub.fbpmodel", encoder="tu-hf-hub:timm/mobilenetv3_small_050.lamb_in1k")
    for argv in (["models", "info", str(hub)],
                 ["map", str(scene), "--sensor", "rgbn", "--model", str(hub), "-o", str(tmp_path / "m.tif")]):
        assert main(["--quiet", *argv]) == 1
        err = capsys.readouterr().err
        assert ("The model names the encoder 'tu-hf-hub:timm/mobilenetv3_small_050.lamb_in1k', which is not "
                "one installed here (a hub or web address is never fetched)") in err, err
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    assert not (tmp_path / "m.tif").exists()


def test_damaged_rasters_and_manifests_are_the_users_problem(tmp_path, model):
    truncated = write_raster(tmp_path / "cut.tif", random_scene(300, 300))
    with open(truncated, "r+b") as handle:
        handle.truncate(truncated.stat().st_size // 2)
    err = refused(tmp_path, truncated, *MAP, truncated, "--model", model, "-o", tmp_path / "m.tif",
                  sentence="GDAL could not read a raster (")
    assert "the file may be truncated or damaged" in err and "internal error" not in err
    out = tmp_path / "job"
    out.mkdir()
    (out / "manifest.json").write_text("[1, 2]")
    (out / ".fbp-job.lock").write_text("")  # what the job that wrote it left (released)
    good = write_raster(tmp_path / "good.tif", random_scene(40, 48))
    refused(tmp_path, good, "map-many", good, "--model", model, "-o", out, "--sensor", "rgbn",
            sentence="is not a manifest this version can read (it holds a JSON list, not an object)")


def test_a_closed_pipe_on_stdout_is_a_quiet_exit(tmp_path, scene):
    run = subprocess.run(f"{CLI} info {scene} --sensor rgbn --json | head -c 20", shell=True,
                         capture_output=True, text=True)
    assert len(run.stdout) == 20
    assert "internal error" not in run.stderr and "Exception ignored" not in run.stderr, run.stderr


def test_stats_checkpoint_never_falls_back_silently(tmp_path, scene):
    """--stats checkpoint with a model trained on per-scene statistics is refused (the FBP ones would misread
    the image: OA 8 % before); with a model that carries none and says nothing, the fallback is said."""
    scene_model = tiny_checkpoint(tmp_path / "scene.fbpmodel",
                                  provenance={"trained_on": "test", "normalisation": "scene"})
    refused(tmp_path, scene, *MAP, scene, "--model", scene_model, "-o", tmp_path / "m.tif", "--stats",
            "checkpoint", sentence="was trained with per-scene statistics and carries none of its own, so "
                                   "--stats checkpoint has nothing to use; map with --stats scene")
    plain = tiny_checkpoint(tmp_path / "plain.fbpmodel")
    run = cli(*MAP, scene, "--model", plain, "-o", tmp_path / "p.tif", "--stats", "checkpoint")
    assert run.returncode == 0, run.stderr
    assert ("normalisation statistics: fbp (the model carries no statistics of its own: the FBP source "
            "statistics are used)") in run.stdout
    assert "normalisation statistics: scene (" in cli(*MAP, scene, "--model", plain, "-o",
                                                      tmp_path / "q.tif").stdout


@pytest.fixture
def small_disk(tmp_path):
    """A 256 KiB tmpfs (where this machine lets the tests mount one), unmounted afterwards."""
    folder = tmp_path / "small_disk"
    folder.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(folder)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({mounted.stderr.strip() or 'not permitted'})")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], capture_output=True)


def test_a_full_disk_is_a_sentence_and_leaves_nothing(tmp_path, model, small_disk):
    big = write_raster(tmp_path / "big.tif", random_scene(400, 400, seed=3))
    digest = file_digest(big)
    run = cli(*MAP, big, "--model", model, "-o", small_disk / "lc.tif", "--confidence",
              small_disk / "conf.tif", "--areas", small_disk / "a.csv")
    assert run.returncode == 1, (run.returncode, run.stderr)
    assert run.stderr.startswith(f"fbp-landcover: The disk holding {small_disk}") and " is full" in \
        run.stderr, run.stderr
    assert len(run.stderr.strip().splitlines()) == 1 and "Exception ignored" not in run.stderr
    assert listing(small_disk) == []  # no output, no partial
    assert file_digest(big) == digest
