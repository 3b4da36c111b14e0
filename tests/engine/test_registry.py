"""The models folder: list, add (copy ours, import the authors'), resolve names."""

from __future__ import annotations

from pathlib import Path

import pytest

from fbp_landcover.engine.errors import FbpError
from fbp_landcover.engine.models import build_model, registry
from fbp_landcover.engine.models.card import ModelCard, file_sha256
from fbp_landcover.engine.models.loading import load_model
from tests.models import authors_checkpoint, tiny_checkpoint


def test_default_folder_from_environment_or_home(monkeypatch, tmp_path):
    monkeypatch.setenv("FBP_LANDCOVER_MODELS", str(tmp_path / "env_models"))
    assert registry.default_models_dir() == tmp_path / "env_models"
    monkeypatch.delenv("FBP_LANDCOVER_MODELS")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    expected = tmp_path / "home" / ".local" / "share" / "fbp_landcover" / "models"
    assert registry.default_models_dir() == expected


def test_empty_or_missing_folder_lists_nothing(tmp_path):
    assert registry.list_models(tmp_path / "none") == []
    assert registry.list_models(tmp_path) == []


def test_add_list_resolve_and_load_by_name(tmp_path):
    folder = tmp_path / "models"
    src = tiny_checkpoint(tmp_path / "tiny.fbpmodel")
    path = registry.add_model(src, folder)
    assert path == folder / "tiny.fbpmodel"
    assert file_sha256(path) == file_sha256(src)
    other = registry.add_model(src, folder, name="Second-1")
    named = registry.add_model(src, folder, name="third.fbpmodel")  # the extension given with the name
    assert named == folder / "third.fbpmodel"
    named.unlink()
    (folder / "notes.fbpmodel").write_text("not a model")  # unreadable files are skipped in the list
    listed = registry.list_models(folder)
    assert [(name, p) for name, _card, p in listed] == [("Second-1", other), ("tiny", path)]
    assert all(card.architecture == "smp" for _n, card, _p in listed)
    assert registry.resolve("tiny", folder) == path
    assert registry.resolve("second-1", folder) == other  # case-insensitive fallback
    assert registry.resolve(str(src), folder) == src
    model, card, where = load_model("tiny", folder)
    assert where == str(path) and card.name == "tiny" and not model.training


def test_add_refuses_to_overwrite_unless_asked(tmp_path):
    folder = tmp_path / "models"
    registry.add_model(tiny_checkpoint(tmp_path / "a" / "m.fbpmodel", seed=1), folder)
    newer = tiny_checkpoint(tmp_path / "b" / "m.fbpmodel", seed=2)
    with pytest.raises(FbpError, match="'m' already exists"):
        registry.add_model(newer, folder)
    path = registry.add_model(newer, folder, overwrite=True)
    assert file_sha256(path) == file_sha256(newer)


def test_add_imports_an_authors_checkpoint(tmp_path):
    folder = tmp_path / "models"
    state = build_model(ModelCard(name="u")).state_dict()
    src = authors_checkpoint(tmp_path / "unet_guangzhou.pth.tar", state, prefix="module.")
    path = registry.add_model(src, folder)
    assert path == folder / "unet_guangzhou.fbpmodel"
    [(name, card, listed)] = registry.list_models(folder)
    assert (name, listed) == ("unet_guangzhou", path)
    assert card.architecture == "fbp_unet" and card.sensor == "sentinel2" and card.stats.source == "guangzhou"
    assert card.provenance["sha256"] == file_sha256(src)


def test_add_refuses_files_that_are_not_models_and_bad_names(tmp_path):
    text = tmp_path / "readme.txt"
    text.write_text("hello")
    with pytest.raises(FbpError, match="not a model checkpoint"):
        registry.add_model(text, tmp_path / "models")
    with pytest.raises(FbpError, match="does not exist"):
        registry.add_model(tmp_path / "missing.fbpmodel", tmp_path / "models")
    src = tiny_checkpoint(tmp_path / "t.fbpmodel")
    with pytest.raises(FbpError, match="cannot be used as a file name"):
        registry.add_model(src, tmp_path / "models", name="../escape")
    assert not (tmp_path / "escape.fbpmodel").exists()


def test_unknown_name_lists_the_known_ones(tmp_path):
    folder = tmp_path / "models"
    registry.add_model(tiny_checkpoint(tmp_path / "alpha.fbpmodel"), folder)
    registry.add_model(tiny_checkpoint(tmp_path / "beta.fbpmodel"), folder)
    with pytest.raises(FbpError, match=r"no model named 'gamma' in .*known models: alpha, beta"):
        registry.resolve("gamma", folder)
    with pytest.raises(FbpError, match=r"model file .*gamma\.fbpmodel does not exist.*alpha, beta"):
        registry.resolve(str(tmp_path / "gamma.fbpmodel"), folder)
    with pytest.raises(FbpError, match="known models: none"):
        registry.resolve("gamma", tmp_path / "empty")


def test_models_folder_from_environment(tmp_path, monkeypatch):
    folder = tmp_path / "env"
    monkeypatch.setenv("FBP_LANDCOVER_MODELS", str(folder))
    path = registry.add_model(tiny_checkpoint(tmp_path / "e.fbpmodel"))
    assert path == folder / "e.fbpmodel"
    assert registry.resolve("e") == path
    assert [n for n, _c, _p in registry.list_models()] == ["e"]
    assert isinstance(path, Path)


def test_add_carries_the_source_memory_and_drops_a_stale_one(tmp_path):
    folder = tmp_path / "models"
    src = tiny_checkpoint(tmp_path / "src" / "tiny.fbpmodel")
    memory = src.with_name("tiny.memory.npz")
    memory.write_bytes(b"source patches")  # its content is the trainer's business; it must travel as is
    path = registry.add_model(src, folder)
    assert (folder / "tiny.memory.npz").read_bytes() == b"source patches"
    assert sorted(p.name for p in folder.iterdir()) == ["tiny.fbpmodel", "tiny.memory.npz"]  # no partials
    other = tiny_checkpoint(tmp_path / "other" / "tiny.fbpmodel", seed=3)  # a model without a memory
    registry.add_model(other, folder, overwrite=True)
    assert file_sha256(path) == file_sha256(other)
    assert not (folder / "tiny.memory.npz").exists()  # the old model's memory would pair with the new one
    state = build_model(ModelCard(name="u")).state_dict()
    registry.add_model(src, folder, name="unet_wuhan")
    assert (folder / "unet_wuhan.memory.npz").exists()
    registry.add_model(authors_checkpoint(tmp_path / "unet_wuhan.pth.tar", state), folder, overwrite=True)
    assert not (folder / "unet_wuhan.memory.npz").exists()


def test_the_authors_catalog_lists_the_five_published_checkpoints():
    from fbp_landcover.engine.models.authors import AUTHORS_MODELS_PAGE, CITY_SENSORS, authors_catalog

    rows = [(e.city_title, e.sensor, e.pixel_size, e.file_name) for e in authors_catalog()]
    assert rows == [("Beijing", "sentinel2", "10 m", "unet_beijing.pth.tar"),
                    ("Guangzhou", "sentinel2", "10 m", "unet_guangzhou.pth.tar"),
                    ("Wuhan", "gaofen1", "8 m", "unet_wuhan.pth.tar"),
                    ("Chengdu", "planetscope", "3 m (mapped at 4 m)", "unet_chengdu.pth.tar"),
                    ("Shanghai", "planetscope", "3 m (mapped at 4 m)", "unet_shanghai.pth.tar")]
    assert [e.city for e in authors_catalog()] == list(CITY_SENSORS)
    assert AUTHORS_MODELS_PAGE.startswith("https://github.com/x-ytong/DPA")
