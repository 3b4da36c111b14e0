"""Our .fbpmodel format, the ModelCard, smp models, and the authors' checkpoint import with its errors."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from fbp_landcover.engine.classes import CLASSES
from fbp_landcover.engine.errors import FbpError
from fbp_landcover.engine.io.normalize import CITY_STATS, Stats
from fbp_landcover.engine.models import build_model, fbpmodel
from fbp_landcover.engine.models.authors import import_authors_checkpoint
from fbp_landcover.engine.models.card import ModelCard, file_sha256
from fbp_landcover.engine.models.fbpmodel import load_checkpoint, save_checkpoint
from fbp_landcover.engine.models.loading import load_model
from fbp_landcover.engine.torch_import import import_torch
from tests.models import UNTRAINED, authors_checkpoint, tiny_checkpoint, tiny_model

torch = import_torch()


def _x(h=64, w=64, seed=0):
    return torch.randn(1, 4, h, w, generator=torch.Generator().manual_seed(seed))


def _logits(model, x):
    with torch.inference_mode():
        return model(x)


# --- our format -------------------------------------------------------------------------------


def test_tiny_checkpoint_round_trips_weights_card_and_logits(tmp_path):
    model, card = tiny_model("smp", seed=5)
    path = tmp_path / "tiny.fbpmodel"
    written = save_checkpoint(path, model, card)
    state, loaded_card = load_checkpoint(path)
    assert loaded_card == written
    assert loaded_card.provenance["trained_on"] == UNTRAINED
    assert loaded_card.provenance["software"].startswith("fbp_landcover ")
    assert loaded_card.class_names == [c.name for c in CLASSES] and loaded_card.num_outputs == 25
    assert loaded_card.in_bands == ["nir", "r", "g", "b"] and loaded_card.gsd == 4.0
    assert loaded_card.arch_kwargs == {"decoder_channels": [32, 16, 8], "encoder_depth": 3}
    assert state.keys() == model.state_dict().keys()
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
    rebuilt, _, _ = load_model(str(path))
    x = _x()
    assert torch.equal(_logits(rebuilt, x), _logits(model, x))
    assert [p.name for p in tmp_path.iterdir()] == ["tiny.fbpmodel"]  # no temp file left behind


def test_file_is_safetensors_with_the_card_as_json_metadata(tmp_path):
    from safetensors import safe_open

    path = tiny_checkpoint(tmp_path / "m.fbpmodel")
    with safe_open(str(path), framework="pt") as handle:
        card = json.loads(handle.metadata()["fbp_landcover"])
    assert card["format_version"] == 1 and card["architecture"] == "smp" and card["smp_arch"] == "Unet"
    assert card["encoder"] == "tu-mobilenetv3_small_050" and card["name"] == "m"


@pytest.mark.parametrize(
    ("arch", "kwargs"),
    [("DeepLabV3Plus", {"encoder_depth": 3, "decoder_channels": 32}), ("Linknet", {"encoder_depth": 3})],
)
def test_other_smp_architectures_round_trip(tmp_path, arch, kwargs):
    model, card = tiny_model("smp", smp_arch=arch, arch_kwargs=kwargs)
    save_checkpoint(tmp_path / "a.fbpmodel", model, card)
    rebuilt, card2, _ = load_model(str(tmp_path / "a.fbpmodel"))
    assert card2.smp_arch == arch and card2.arch_kwargs == kwargs
    x = _x()
    out = _logits(rebuilt, x)
    assert tuple(out.shape) == (1, 25, 64, 64)
    assert torch.equal(out, _logits(model, x))


def test_a_model_that_changes_the_output_size_is_refused(tmp_path):
    # smp's FPN always upsamples by 4, so with encoder_depth=3 its output is 4x the input size
    model, card = tiny_model("smp", smp_arch="FPN", arch_kwargs={"encoder_depth": 3})
    save_checkpoint(tmp_path / "fpn.fbpmodel", model, card)
    with pytest.raises(FbpError, match=r"output of shape \(25, 256, 256\) instead of \(25, 64, 64\)"):
        load_model(str(tmp_path / "fpn.fbpmodel"))


def test_card_stats_round_trip_as_stats(tmp_path):
    stats = Stats((0.5, 0.4, 0.3, 0.2), (0.25, 0.24, 0.23, 0.22), "scene: test")
    path = tiny_checkpoint(tmp_path / "s.fbpmodel", stats=stats, sensor="planetscope")
    _, card = load_checkpoint(path)
    assert card.stats == stats and card.sensor == "planetscope"


def test_unknown_architecture_and_smp_arch_are_refused():
    with pytest.raises(FbpError, match="architecture 'resnet_magic'"):
        build_model(ModelCard(name="x", architecture="resnet_magic"))
    with pytest.raises(FbpError, match="NoSuchNet"):
        build_model(ModelCard(name="x", architecture="smp", smp_arch="NoSuchNet", encoder="resnet18"))


def test_newer_format_is_refused(tmp_path):
    model, card = tiny_model()
    card.format_version = 99
    path = tmp_path / "new.fbpmodel"
    save_checkpoint(path, model, card)
    with pytest.raises(FbpError, match=r"newer fbp_landcover \(model format 99"):
        load_checkpoint(path)


def test_failed_write_leaves_the_old_file_and_no_temp(tmp_path, monkeypatch):
    path = tiny_checkpoint(tmp_path / "keep.fbpmodel", seed=1)
    before = file_sha256(path)
    import safetensors.torch

    def boom(*_a, **_k):
        raise OSError("disk full")

    monkeypatch.setattr(safetensors.torch, "save_file", boom)
    model, card = tiny_model(seed=2)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, model, card)
    assert file_sha256(path) == before
    assert [p.name for p in tmp_path.iterdir()] == ["keep.fbpmodel"]


# --- errors, each naming the file ---------------------------------------------------------------


def test_missing_file(tmp_path):
    missing = tmp_path / "nothere.fbpmodel"
    with pytest.raises(FbpError, match="does not exist") as info:
        load_model(str(missing))
    assert str(missing) in str(info.value)
    with pytest.raises(FbpError, match="does not exist"):
        import_authors_checkpoint(tmp_path / "unet_beijing.pth.tar", tmp_path / "b.fbpmodel")


def test_truncated_fbpmodel(tmp_path):
    path = tiny_checkpoint(tmp_path / "cut.fbpmodel")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(FbpError, match="damaged or truncated") as info:
        load_model(str(path))
    assert str(path) in str(info.value)


@pytest.mark.parametrize("zip_format", [True, False])
def test_truncated_authors_checkpoint(tmp_path, zip_format):
    state = {k: v for k, v in build_model(ModelCard(name="u")).state_dict().items() if k.startswith("inc.")}
    path = tmp_path / "unet_beijing.pth.tar"
    torch.save({"epoch": 1, "state_dict": state, "best_pred": np.float64(0.5)}, path,
               _use_new_zipfile_serialization=zip_format)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(FbpError, match="damaged or truncated") as info:
        load_model(str(path))
    assert str(path) in str(info.value)


def test_text_file_and_geotiff_are_not_checkpoints(tmp_path):
    from tests.rasters import write_raster

    text = tmp_path / "notes.fbpmodel"
    text.write_text("these are not weights\n")
    with pytest.raises(FbpError, match=r"not a model checkpoint \(it looks like a text file\)"):
        load_model(str(text))
    tif = write_raster(tmp_path / "unet_beijing.pth.tar", np.zeros((4, 8, 8), np.uint8))
    with pytest.raises(FbpError, match=r"not a model checkpoint \(it looks like a GeoTIFF raster\)") as info:
        load_model(str(tif))
    assert str(tif) in str(info.value)


def test_pickle_of_something_else_is_not_a_checkpoint(tmp_path):
    path = tmp_path / "unet_beijing.pth.tar"
    torch.save({"epoch": 3, "notes": "hello"}, path)
    with pytest.raises(FbpError, match="holds no model weights"):
        load_model(str(path))


def _head(classes: int = 25, bands: int = 4) -> dict:
    return {
        "inc.double_conv.0.weight": torch.zeros(64, bands, 3, 3),
        "outc.conv.weight": torch.zeros(classes, 64, 1, 1),
        "outc.conv.bias": torch.zeros(classes),
    }


def test_wrong_class_count(tmp_path):
    path = authors_checkpoint(tmp_path / "unet_beijing.pth.tar", _head(classes=16), prefix="module.")
    with pytest.raises(FbpError, match="predicts 16 classes.*25 outputs") as info:
        import_authors_checkpoint(path, tmp_path / "x.fbpmodel")
    assert str(path) in str(info.value)
    assert not (tmp_path / "x.fbpmodel").exists()


def test_wrong_band_count(tmp_path):
    path = authors_checkpoint(tmp_path / "unet_beijing.pth.tar", _head(bands=3))
    with pytest.raises(FbpError, match="takes 3 input bands.*takes 4") as info:
        load_model(str(path))
    assert str(path) in str(info.value)


def test_missing_and_unexpected_keys_are_named(tmp_path):
    state = dict(_head())
    state["extra.layer.weight"] = torch.zeros(3)
    path = authors_checkpoint(tmp_path / "unet_beijing.pth.tar", state)
    expected = r"missing \(inc\.double_conv\.0\.bias.*1 unexpected \(extra\.layer\.weight\)"
    with pytest.raises(FbpError, match=expected):
        load_model(str(path))


class _Exploit:
    """Pickles as a call that would create a marker file when unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class _OpenExploit(_Exploit):
    def __reduce__(self):
        return (open, (str(self.marker), "w"))


@pytest.mark.parametrize("exploit", [_Exploit, _OpenExploit])
@pytest.mark.parametrize("container", ["torch-zip", "raw-pickle"])
def test_pickle_that_would_run_code_is_refused_and_does_not_run(tmp_path, exploit, container):
    marker = tmp_path / "pwned"
    path = tmp_path / "unet_beijing.pth.tar"
    payload = {"epoch": 1, "state_dict": {"outc.conv.weight": exploit(marker)}, "best_pred": 0.5}
    if container == "torch-zip":
        torch.save(payload, path)
    else:
        path.write_bytes(pickle.dumps(payload, protocol=2))
    assert not marker.exists()
    with pytest.raises(FbpError, match="refused as unsafe") as info:
        load_model(str(path))
    assert str(path) in str(info.value)
    with pytest.raises(FbpError, match="refused as unsafe"):
        import_authors_checkpoint(path, tmp_path / "x.fbpmodel")
    assert not marker.exists()
    assert not (tmp_path / "x.fbpmodel").exists()


def test_fbpmodel_holding_a_pickle_is_never_unpickled(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.fbpmodel"
    path.write_bytes(pickle.dumps(_Exploit(marker), protocol=2))
    with pytest.raises(FbpError):
        fbpmodel.load_checkpoint(path)
    assert not marker.exists()


# --- import of the authors' files ---------------------------------------------------------------


@pytest.fixture(scope="module")
def fbp_state():
    return build_model(ModelCard(name="u")).state_dict()


@pytest.mark.parametrize(
    ("file_name", "city", "sensor"),
    [
        ("unet_beijing.pth.tar", "beijing", "sentinel2"),
        ("unet_guangzhou.pth.tar", "guangzhou", "sentinel2"),
        ("unet_wuhan.pth.tar", "wuhan", "gaofen1"),
        ("unet_chengdu.pth.tar", "chengdu", "planetscope"),
        ("unet_shanghai.pth.tar", "shanghai", "planetscope"),
    ],
)
def test_import_takes_city_stats_and_sensor_from_the_file_name(tmp_path, fbp_state, file_name, city, sensor):
    src = authors_checkpoint(tmp_path / file_name, fbp_state, prefix="module.")
    dst = tmp_path / "models" / f"{city}.fbpmodel"
    card = import_authors_checkpoint(src, dst)
    assert card.stats == CITY_STATS[city] and card.sensor == sensor
    assert card.architecture == "fbp_unet" and card.gsd == 4.0 and card.num_outputs == 25
    assert card.provenance["sha256"] == file_sha256(src)
    assert card.provenance["imported_from"] == file_name and card.provenance["city"] == city
    assert isinstance(card.provenance["best_pred"], float) and card.provenance["epoch"] == 119
    _, stored = load_checkpoint(dst)
    assert stored == card


def test_import_with_explicit_city_sensor_and_stats(tmp_path, fbp_state):
    src = authors_checkpoint(tmp_path / "my_model.pth.tar", fbp_state)
    card = import_authors_checkpoint(src, tmp_path / "a.fbpmodel")
    assert card.stats is None and card.sensor is None and "city" not in card.provenance
    stats = Stats((0.1, 0.2, 0.3, 0.4), (0.2, 0.2, 0.2, 0.2), "given")
    card = import_authors_checkpoint(src, tmp_path / "b.fbpmodel", city="Wuhan", sensor="gaofen2",
                                     stats=stats)
    assert card.stats == stats and card.sensor == "gaofen2" and card.provenance["city"] == "wuhan"
    card = import_authors_checkpoint(src, tmp_path / "c.fbpmodel", city="shanghai")
    assert card.stats == CITY_STATS["shanghai"] and card.sensor == "planetscope"
