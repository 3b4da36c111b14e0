"""fbp-landcover train / adapt / evaluate on tiny generated data: exit codes, files with metadata, Ctrl-C."""

from __future__ import annotations

import argparse
import json

import pytest

from fbp_landcover.engine import cli
from fbp_landcover.engine.cli import training as cli_training
from fbp_landcover.engine.demo import synthetic
from fbp_landcover.engine.models.fbpmodel import read_card
from tests.models import TINY_SMP

TINY_ARGS = ["--arch", TINY_SMP["smp_arch"], "--encoder", TINY_SMP["encoder"],
             "--encoder-depth", str(TINY_SMP["arch_kwargs"]["encoder_depth"]),
             "--decoder-channels", ",".join(map(str, TINY_SMP["arch_kwargs"]["decoder_channels"]))]


def _parser_with_training():
    """cli.build_parser with the training commands (added here until cli.py adds them itself)."""
    parser = _original_build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    if "train" not in sub.choices:
        cli_training.add_commands(sub)
    return parser


_original_build_parser = cli.build_parser


@pytest.fixture
def run(monkeypatch, capsys):
    monkeypatch.setattr(cli, "build_parser", _parser_with_training)

    def call(*argv):
        code = cli.main(["--quiet", *map(str, argv)])
        out = capsys.readouterr()
        return code, out.out, out.err

    return call


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    d = tmp_path_factory.mktemp("clitrain")
    synthetic.write_source_dataset(d / "fbp", 1, 96, seed=5)
    target, truth = synthetic.write_target_scene(d / "target.tif", d / "truth.tif", "planetscope", 96, seed=6)
    return d, target, truth


def _train_args(d, out):
    return ["train", d / "fbp", "-o", out, *TINY_ARGS, "--epochs", "1", "--iterations-per-epoch", "2",
            "--batch-size", "2", "--patch", "64", "--val-patches", "2", "--stats", "scene", "--lr", "0.01",
            "--device", "cpu"]


@pytest.mark.slow
def test_train_adapt_map_evaluate(tiny_data, run, tmp_path):
    d, target, truth = tiny_data
    model = tmp_path / "m.fbpmodel"
    code, out, err = run(*_train_args(d, model))
    assert code == 0, err
    assert model.is_file() and (tmp_path / "m.memory.npz").is_file()
    card = read_card(model)
    assert card.architecture == "smp" and card.encoder == TINY_SMP["encoder"]
    assert card.arch_kwargs["decoder_channels"] == [32, 16, 8]
    assert card.provenance["iterations"] == 2 and card.provenance["patch"] == 64
    assert "Model:" in out and "source memory" in out and "; kept epoch" in out

    again = run(*_train_args(d, model))
    assert again[0] == 1 and "already exists" in again[2]

    adapted = tmp_path / "a.fbpmodel"
    code, out, err = run("adapt", model, target, "-o", adapted, "--iterations", "2", "--patch", "64",
                         "--batch-size", "2", "--device", "cpu", "--method", "bn+kl", "--teacher", "0.9",
                         "--bn-target-share", "1")
    assert code == 0, err
    p = read_card(adapted).provenance
    assert p["method"] == "bn+kl" and p["iterations"] == 2 and p["adapted_to"] == [str(target)]
    assert p["teacher"] == 0.9 and p["bn_target_share"] == 1.0  # the default is 0.5
    assert p["source_used"].startswith("only the class counts")
    assert "Adapted model:" in out

    code, out, err = run("adapt", model, target, "-o", tmp_path / "s.fbpmodel", "--iterations", "1",
                         "--patch", "64", "--batch-size", "2", "--device", "cpu")
    assert code == 0, err
    assert read_card(tmp_path / "s.fbpmodel").provenance["source_used"].startswith("source memory")

    the_map = tmp_path / "map.tif"
    code, _out, err = run("map", target, "--model", adapted, "-o", the_map, "--backend", "torch")
    assert code == 0, err
    code, out, err = run("evaluate", the_map, truth, "-o", tmp_path / "acc", "--collapse", "coarse")
    assert code == 0, err
    result = json.loads((tmp_path / "acc.json").read_text())
    assert result["legend"] == "coarse" and result["pixels"] > 0
    assert (tmp_path / "acc.csv").is_file() and (tmp_path / "acc.md").read_text().startswith("# Accuracy")
    assert "OA" in out and "kappa" in out
    assert run("evaluate", the_map, truth, "-o", tmp_path / "acc")[0] == 1  # exists


def test_bad_inputs_exit_1_with_one_sentence(tiny_data, run, tmp_path):
    d, target, truth = tiny_data
    code, _out, err = run("train", tmp_path / "missing", "-o", tmp_path / "m.fbpmodel")
    assert code == 1 and "does not exist" in err and "Traceback" not in err
    code, _out, err = run("train", d / "fbp", "-o", tmp_path / "m.fbpmodel", "--arch", "Unet",
                          "--encoder-depth", "3", "--decoder-channels", "8,8")
    assert code == 1 and "one value per decoder stage" in err
    code, _out, err = run("adapt", tmp_path / "nope.fbpmodel", target, "-o", tmp_path / "a.fbpmodel")
    assert code == 1 and "Traceback" not in err
    code, _out, err = run("evaluate", tmp_path / "nomap.tif", truth, "-o", tmp_path / "acc")
    assert code == 1 and "does not exist" in err
    assert not list(tmp_path.glob("*.fbpmodel")) and not list(tmp_path.glob("acc*"))


def test_usage_errors_exit_2(run):
    with pytest.raises(SystemExit) as exc:
        run("adapt", "model.fbpmodel")  # no target, no -o
    assert exc.value.code == 2


@pytest.mark.slow
def test_ctrl_c_during_training_leaves_no_model(tiny_data, run, tmp_path, monkeypatch):
    d, _target, _truth = tiny_data

    class Interrupting(cli.TqdmProgress):
        calls = 0

        def __call__(self, fraction, message):
            Interrupting.calls += 1
            if "iteration 1/" in message:
                raise KeyboardInterrupt

    monkeypatch.setattr(cli, "TqdmProgress", Interrupting)
    model = tmp_path / "m.fbpmodel"
    code, _out, err = run(*_train_args(d, model))
    assert code == 130 and "cancelled" in err
    assert Interrupting.calls > 0
    assert not model.exists() and not (tmp_path / "m.memory.npz").exists()
    assert not list(tmp_path.glob("*.fbpmodel")) and not list(tmp_path.glob("*.tmp"))


@pytest.mark.parametrize("name", ["compact", "mobile_unet", "standard"])
def test_train_arch_accepts_the_preset_names(name):
    """`train --arch compact` trains the preset's network, whatever --encoder says."""
    import argparse

    from fbp_landcover.engine.cli.training import _smp_spec
    from fbp_landcover.engine.models.presets import PRESETS

    args = argparse.Namespace(arch=name, encoder="resnet18", encoder_depth=None, decoder_channels=None)
    spec = _smp_spec(args)
    assert spec == {k: PRESETS[name][k] for k in ("architecture", "smp_arch", "encoder", "arch_kwargs")}
    assert _smp_spec(argparse.Namespace(arch="fbp_unet")) == {"architecture": "fbp_unet"}
    assert PRESETS["compact"]["smp_arch"] == "FPN" and PRESETS["mobile_unet"]["smp_arch"] == "Unet"


def test_train_on_own_image_and_label_rasters(tiny_data, run, tmp_path):
    """train --images/--labels with --sensor and --class-mapping, as the Processing algorithm takes them."""
    import numpy as np
    from osgeo import gdal

    from tests.rasters import write_raster

    d, target, truth = tiny_data
    src = gdal.Open(str(truth))
    codes = src.ReadAsArray().astype(np.uint16) * 10  # the user's own codes: 10, 20, ...
    labels = write_raster(tmp_path / "labels.tif", codes, geotransform=src.GetGeoTransform(), epsg=None)
    gdal.Open(str(labels), gdal.GA_Update).SetProjection(src.GetProjection())
    mapping = tmp_path / "mapping.json"
    mapping.write_text(json.dumps({str(v * 10): int(v) for v in range(1, 25)}))
    common = [*TINY_ARGS, "--epochs", "1", "--iterations-per-epoch", "2", "--batch-size", "2",
              "--patch", "64", "--val-patches", "2", "--stats", "scene", "--device", "cpu",
              "--sensor", "planetscope"]
    code, _out, err = run("train", "--images", target, "--labels", labels, "-o", tmp_path / "no.fbpmodel",
                          *common)
    assert code == 1 and "give a class mapping JSON" in err, err
    code, out, err = run("train", "--images", target, "--labels", labels, "--class-mapping", mapping,
                         "-o", tmp_path / "own.fbpmodel", *common)
    assert code == 0, err
    assert "Model: " in out and (tmp_path / "own.fbpmodel").is_file()
    card = read_card(tmp_path / "own.fbpmodel")
    assert card.provenance["train_scenes"] and "1 training scene" in card.provenance["trained_on"]
    code, _out, err = run("train", "--images", target, target, "--labels", labels, "-o",
                          tmp_path / "x.fbpmodel", *common)
    assert code == 1 and "2 image raster(s) but 1 label raster(s)" in err
    code, _out, err = run("train", "-o", tmp_path / "x.fbpmodel", *common)
    assert code == 1 and "No training data was given" in err


def test_models_memory_gives_a_registered_model_its_source_data(tiny_data, run, tmp_path):
    """A model imported without a source memory (as the authors' checkpoints are) gets one from labelled
    data; adaptation then runs Siamese DPA with it instead of the source-free fallback."""
    from fbp_landcover.engine.training.source_memory import load_source_memory
    from tests.models import tiny_checkpoint

    d, target, _truth = tiny_data
    models = tmp_path / "models"
    bare = tiny_checkpoint(tmp_path / "bare.fbpmodel")
    assert run("models", "--models-dir", models, "import", bare, "--name", "bare", "--no-prepare")[0] == 0
    assert not (models / "bare.memory.npz").exists()
    code, out, err = run("models", "--models-dir", models, "memory", "bare", d / "fbp", "--count", "8",
                         "--size", "64")
    assert code == 0, err
    assert out.startswith(f"Source memory: {models / 'bare.memory.npz'} (8 patches of 64 px, ")
    memory = load_source_memory(models / "bare.memory.npz")
    assert len(memory) == 8 and memory.size == 64 and memory.meta["built_for"] == "bare.fbpmodel"
    assert (memory.class_counts()[1:] > 0).sum() >= 2
    code, _out, err = run("models", "--models-dir", models, "memory", "bare", d / "fbp")
    assert code == 1 and "already exists" in err  # never replaced without --overwrite
    code, _out, err = run("adapt", models / "bare.fbpmodel", target, "-o", tmp_path / "a.fbpmodel",
                          "--iterations", "1", "--batch-size", "2", "--patch", "64", "--device", "cpu",
                          "--no-guard")
    assert code == 0, err
    prov = read_card(tmp_path / "a.fbpmodel").provenance
    assert prov["method"] == "siamese" and "memory" in prov["source_used"], prov


def test_models_memory_for_an_imported_authors_checkpoint(tiny_data, run, tmp_path):
    from fbp_landcover.engine.training.source_memory import load_source_memory
    from tests.models import authors_checkpoint

    d, _target, _truth = tiny_data
    models = tmp_path / "models"
    authors = authors_checkpoint(tmp_path / "unet_wuhan.pth.tar")
    assert run("models", "--models-dir", models, "import", authors, "--no-prepare")[0] == 0
    (registered,) = [p for p in models.glob("*.fbpmodel")]
    code, out, err = run("models", "--models-dir", models, "memory", registered.stem, d / "fbp",
                         "--count", "4", "--size", "64")
    assert code == 0, err
    memory = load_source_memory(registered.with_name(registered.stem + ".memory.npz"))
    assert len(memory) == 4 and memory.meta["built_for"] == registered.name
