"""DPA adaptation with a tiny model: the share schedule, provenance, source memory use, source-free,
cancel."""

from __future__ import annotations

import re

import numpy as np
import pytest

from fbp_landcover.engine.demo import synthetic
from fbp_landcover.engine.errors import CancelledError
from fbp_landcover.engine.models.fbpmodel import read_card
from fbp_landcover.engine.models.loading import load_model
from fbp_landcover.engine.torch_import import import_torch
from fbp_landcover.engine.training import adapt as adapt_mod
from fbp_landcover.engine.training import dpa, fbp_dataset, sampler, source_memory
from fbp_landcover.engine.training.config import AdaptOptions
from tests.engine.test_fbp_dataset import make_fbp_root
from tests.models import tiny_checkpoint

torch = import_torch()
SHARE = re.compile(r"iteration (\d+) of (\d+), pseudo-label share ([\d.]+)%")


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A tiny checkpoint with a source memory beside it, and a synthetic PlanetScope-like target scene."""
    d = tmp_path_factory.mktemp("adapt")
    model = tiny_checkpoint(d / "tiny.fbpmodel")
    root = make_fbp_root(d / "fbp", names=("GF2_A",), h=128, w=128)
    scenes = fbp_dataset.open_fbp(root)
    try:
        regions, _ = sampler.make_regions(scenes, 0.0)
        mem = source_memory.build_source_memory(regions, count=8, size=64)
    finally:
        for s in scenes:
            s.close()
    source_memory.save_source_memory(source_memory.memory_path(model), mem)
    target, _truth = synthetic.write_target_scene(d / "target.tif", d / "truth.tif", "planetscope", size=96,
                                                  seed=3)
    return d, model, target


def _run(setup, out_name, **kw):
    """adapt() with the guard off unless asked: these tests check the mechanism on an untrained random model,
    whose changed predictions the guard rightly rejects (the guard has its own tests, test_guard.py)."""
    kw.setdefault("guard", False)
    d, model, target = setup
    messages: list[str] = []
    card = adapt_mod.adapt(str(model), str(target), out=d / out_name, patch=64, batch_size=2,
                           progress=lambda f, m: messages.append(m), **kw)
    return card, messages


@pytest.mark.slow
def test_siamese_share_grows_per_schedule_and_card_records_provenance(setup):
    d, model, target = setup
    card, messages = _run(setup, "a.fbpmodel", iterations=4)  # auto: Siamese, the model has a source memory
    seen = [(int(i), int(n), float(s)) for m in messages for i, n, s in SHARE.findall(m)]
    assert [i for i, _n, _s in seen] == [1, 2, 3, 4] and {n for _i, n, _s in seen} == {4}
    for i, _n, s in seen:
        assert s == pytest.approx(100 * dpa.ratio_at_iteration(i - 1, 4, 0.5), abs=0.05)
    p = card.provenance
    assert p["method"] == "siamese" and p["iterations"] == 4
    assert p["final_pseudo_label_share"] == pytest.approx(0.5)
    assert p["source_used"].startswith("source memory") and "tiny.memory.npz" in p["source_used"]
    assert p["adapted_to"] == [str(target)] and p["target_sensors"] == ["planetscope"]
    assert p["adapted_from"] == str(model) and p["base_provenance"]["trained_on"].startswith("untrained")
    assert card.sensor == "planetscope" and card.stats is not None
    on_disk = read_card(d / "a.fbpmodel")
    assert on_disk.provenance["iterations"] == 4
    adapted, _c, _p = load_model(str(d / "a.fbpmodel"))
    base, _c, _p = load_model(str(model))
    x = torch.randn(1, 4, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert not torch.equal(adapted(x), base(x))  # it learned something


@pytest.mark.slow
def test_factor_and_steps_compress_the_schedule(setup):
    card, messages = _run(setup, "b.fbpmodel", iterations=4, factor=0.4, steps=2, class_quota=True)
    shares = [float(s) for m in messages for _i, _n, s in SHARE.findall(m)]
    assert shares == pytest.approx([20.0, 20.0, 40.0, 40.0])
    assert card.provenance["class_quota"] is True


@pytest.mark.slow
def test_source_free_bn_kl_and_bn_only(setup):
    d, model, _target = setup
    card, messages = _run(setup, "c.fbpmodel", source=False, iterations=2, bn_batches=2)
    p = card.provenance
    assert p["method"] == "bn+kl" and p["source_used"].startswith("none") and p["bn_batches"] == 2
    assert any("BatchNorm" in m for m in messages)
    card, _m = _run(setup, "d.fbpmodel", source=False, method="bn", bn_batches=2)
    assert card.provenance["iterations"] == 0 and card.provenance["method"] == "bn"
    base, _c, _p = load_model(str(model))
    bn_only, _c, _p = load_model(str(d / "d.fbpmodel"))
    bns = [m for m in bn_only.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    base_bns = [m for m in base.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert not torch.equal(bns[0].running_mean, base_bns[0].running_mean)
    assert torch.equal(next(bn_only.parameters()), next(base.parameters()))  # weights untouched


def test_seconds_budget_stops_in_time(setup, monkeypatch):
    """A seconds budget stops the loop by the clock, not by an iteration count (a fake clock, no timing)."""
    import fbp_landcover.engine.training.adapt as adapt_module

    class FakeClock:
        now = 0.0

        def monotonic(self):
            self.now += 0.5  # every reading is half a second later
            return self.now

    monkeypatch.setattr(adapt_module, "time", FakeClock())
    card, _messages = _run(setup, "e.fbpmodel", source=False, method="pseudo", seconds=1.5)
    p = card.provenance
    # readings: t0 = 0.5; before iteration 0: 1.0 (0.5 s); before 1: 1.5 (1.0 s) -> plan 2 in all; stop.
    assert p["iterations"] == 2
    assert 0.0 < p["final_pseudo_label_share"] <= 0.5


def test_cancel_leaves_no_file(setup):
    d, model, target = setup
    calls = {"n": 0}

    def cancelled() -> bool:
        calls["n"] += 1
        return calls["n"] > 1

    before = set(d.iterdir())
    with pytest.raises(CancelledError):
        adapt_mod.adapt(str(model), str(target), out=d / "cancelled.fbpmodel", patch=64, batch_size=2,
                        iterations=50, is_cancelled=cancelled)
    assert set(d.iterdir()) == before


def test_quick_adapt_for_mapping_uses_the_open_input(setup):
    from fbp_landcover.engine.io.normalize import scene_stats
    from fbp_landcover.engine.io.raster import open_input
    from fbp_landcover.engine.io.sensors import get_profile
    from fbp_landcover.engine.progress import Progress

    d, model, target = setup
    net, card, path = load_model(str(model))
    with open_input(str(target), get_profile("planetscope")) as inp:
        stats = scene_stats(inp)
        net2, card2 = adapt_mod.quick_adapt_for_mapping(
            net, card, inp, stats, AdaptOptions(iterations=2, batch_size=2, patch=64), Progress(),
            model_path=path)
    q = card2.provenance["quick_adaptation"]
    assert q["iterations"] == 2 and q["source_used"].startswith("source memory") and not net2.training


def test_mapping_with_quick_adaptation_runs_small_rasters_in_torch_and_says_what_it_prepares(setup,
                                                                                             monkeypatch):
    """Adapted weights live only in memory: below ADAPTED_ONNX_MIN_PIXELS 'auto' runs them in torch instead of
    exporting them to ONNX; an explicit backend is honoured; the preparation step is announced."""
    from fbp_landcover.engine import mapping
    from fbp_landcover.engine.mapping import run as mapping_run
    from fbp_landcover.engine.models import devices

    monkeypatch.setattr(devices, "cuda_device_name", lambda: None)
    d, model, target = setup
    messages: list[str] = []
    req = dict(image=str(target), model=str(model), sensor="planetscope", overwrite=True,
               adapt=AdaptOptions(iterations=1, batch_size=2, patch=64))
    res = mapping.map_landcover(mapping.MapRequest(output=str(d / "qa_auto.tif"), **req),
                                lambda f, m: messages.append(m))
    assert res.backend == "torch" and "Loading the model" in messages
    assert not any("ONNX" in m for m in messages)  # torch: no export to announce
    monkeypatch.setattr(mapping_run, "ADAPTED_ONNX_MIN_PIXELS", 0)
    messages.clear()
    res = mapping.map_landcover(mapping.MapRequest(output=str(d / "qa_big.tif"), **req),
                                lambda f, m: messages.append(m))
    assert res.backend == "onnx"
    # the adapted weights' export: announced as to come, or as cached by an earlier run of the same weights
    assert any(m in messages for m in ("Preparing the model to run (its first use on the CPU exports it to "
                                       "ONNX once, 10-60 s)",
                                       "Loading the model's fast CPU form (ONNX, exported earlier)"))
    plain = {k: v for k, v in req.items() if k != "adapt"}
    for _ in range(2):  # a file's export is cached beside it: the second run says so
        messages.clear()
        mapping.map_landcover(mapping.MapRequest(output=str(d / "qa_file.tif"), backend="onnx", **plain),
                              lambda f, m: messages.append(m))
    assert "Loading the model's fast CPU form (ONNX, exported earlier)" in messages
    res = mapping.map_landcover(mapping.MapRequest(output=str(d / "qa_onnx.tif"), backend="torch", **req))
    assert res.backend == "torch"


def test_unknown_option_and_missing_source_are_refused(setup):
    d, model, target = setup
    with pytest.raises(TypeError, match="unknown adaptation option"):
        adapt_mod.adapt(str(model), str(target), out=d / "x.fbpmodel", iterationz=3)
    with pytest.raises(Exception, match="Siamese adaptation needs source data"):
        adapt_mod.adapt(str(model), str(target), out=d / "x.fbpmodel", source=False, method="siamese",
                        iterations=1, patch=64, batch_size=1)
    assert not (d / "x.fbpmodel").exists()
    assert np.isfinite(dpa.ratio_at_iteration(0, 1))
