"""The adaptation guard: exact verdicts on constructed probabilities, and the fallback to the source model
when an adaptation collapses a class."""

from __future__ import annotations

import numpy as np
import pytest

from fbp_landcover.engine import classes
from fbp_landcover.engine.demo import synthetic
from fbp_landcover.engine.io import sensors
from fbp_landcover.engine.io.normalize import resolve_stats
from fbp_landcover.engine.io.raster import open_input
from fbp_landcover.engine.models.loading import load_model
from fbp_landcover.engine.progress import Progress
from fbp_landcover.engine.torch_import import import_torch
from fbp_landcover.engine.training import adapt as adapt_mod
from fbp_landcover.engine.training import guard
from fbp_landcover.engine.training.config import AdaptOptions
from tests.models import tiny_checkpoint

torch = import_torch()
C = classes.NUM_OUTPUTS


def _probs(labels: np.ndarray, confidence: float = 0.9) -> np.ndarray:
    """(1, C, H, W) probabilities whose argmax is ``labels`` (H, W) with the given top probability."""
    h, w = labels.shape
    p = np.full((1, C, h, w), (1 - confidence) / (C - 1))
    for c in np.unique(labels):
        p[0, c][labels == c] = confidence
    return p


def test_unchanged_predictions_pass_with_exact_figures():
    src = np.array([[1, 1, 2, 2], [3, 3, 3, 3]])
    v = guard.judge(_probs(src), _probs(src), np.ones((1, 2, 4), bool), final_loss=0.5)
    assert v.passed and v.problems == [] and v.agreement == 1.0
    assert v.shares_source == {classes.CLASSES[1].name: 0.25, classes.CLASSES[2].name: 0.25,
                               classes.CLASSES[3].name: 0.5}
    assert v.confidence_source == v.confidence_adapted == 0.9
    assert v.sentence.startswith("The adaptation guard passed")


def test_a_collapsed_class_is_named_with_its_shares():
    src = np.array([[1] * 10, [2] * 10])  # class 1: 50 %, class 2: 50 %
    ada = np.array([[1] * 10, [2] * 9 + [1]])  # agreement 95 %, class 2 keeps 45 %: fine
    assert guard.judge(_probs(src), _probs(ada), np.ones((1, 2, 10), bool)).passed
    ada = np.array([[1] * 10, [1] * 9 + [2]])  # class 2 keeps 5 % of 50 %: < 20 % of its share
    v = guard.judge(_probs(src), _probs(ada), np.ones((1, 2, 10), bool))
    name1, name2 = classes.CLASSES[1].name, classes.CLASSES[2].name
    assert not v.passed
    assert f"{name2} fell from 50% to 5% of the pixels" in v.problems
    assert f"{name1} grew from 50% to 95% of the pixels" not in v.problems  # +45 points but not doubled
    assert v.agreement == 0.55
    assert v.sentence.startswith(
        "Adaptation was rejected by the guard and the source model was used instead: ")


def test_explosion_agreement_confidence_loss_and_invalid_pixels():
    src = np.array([[1] * 8 + [2] * 2])
    ada = np.array([[3] * 6 + [1] * 2 + [2] * 2])  # class 1 keeps 20 of 80 % (not below a fifth): passes
    assert guard.judge(_probs(src), _probs(ada), np.ones((1, 1, 10), bool)).problems == [
        f"{classes.CLASSES[3].name} grew from 0% to 60% of the pixels"]
    ada = np.array([[3] * 7 + [1] * 1 + [2] * 2])
    v = guard.judge(_probs(src), _probs(ada, 0.5), np.ones((1, 1, 10), bool), final_loss=float("nan"))
    assert v.problems == [
        f"{classes.CLASSES[1].name} fell from 80% to 10% of the pixels",
        f"{classes.CLASSES[3].name} grew from 0% to 70% of the pixels",
        "the adapted model agrees with the source model on only 30% of the pixels",
        "its mean confidence fell from 90% to 50%",
        "its training loss was not a finite number",
    ]
    valid = np.zeros((1, 1, 10), bool)
    valid[0, 0, :9] = True  # 2 of these 9 pixels agree
    v = guard.judge(_probs(src), _probs(ada), valid)
    assert "the adapted model agrees with the source model on only 22% of the pixels" in v.problems
    assert not guard.judge(_probs(src), _probs(ada), np.zeros((1, 1, 10), bool)).passed


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    d = tmp_path_factory.mktemp("guard")
    model = tiny_checkpoint(d / "tiny.fbpmodel")
    target, _truth = synthetic.write_target_scene(d / "target.tif", d / "truth.tif", "planetscope", size=96,
                                                  seed=3)
    return model, target


def _collapse(model, target, source, weights, opts, prog, device):
    """A constructed adaptation that turns every pixel into class 7: the last layer's bias pushed there."""
    last = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)][-1]
    with torch.no_grad():
        last.bias[7] += 1e4
    return {"method": opts.method, "iterations": 1, "final_pseudo_label_share": 0.5, "final_loss": 0.1}


def _quick(scene, **opts):
    model_path, target = scene
    model, card, _ = load_model(str(model_path))
    with open_input(str(target), sensors.choose(str(target), "planetscope")[0]) as inp:
        stats = resolve_stats("scene", inp, card.stats)
        x = torch.from_numpy(inp.read(0, 0, 64, 64)[0][None].astype(np.float32))
        adapted, new_card = adapt_mod.quick_adapt_for_mapping(
            model, card, inp, stats,
            AdaptOptions(iterations=1, patch=64, batch_size=2, method="bn+kl", **opts),
            Progress(None, None), model_path=str(model_path), source=False)
    return adapted, new_card.provenance["quick_adaptation"], x


def test_a_collapsing_adaptation_falls_back_to_the_source_model(scene, monkeypatch):
    model_path, _ = scene
    source, _, _ = load_model(str(model_path))
    monkeypatch.setattr(adapt_mod, "run_adaptation", _collapse)
    adapted, info, x = _quick(scene)
    assert info["used"] == adapt_mod.REJECTED and info["guard_verdict"]["passed"] is False
    problems = info["guard_verdict"]["problems"]
    assert any(p.startswith(f"{classes.CLASSES[7].name} grew from") for p in problems)
    with torch.no_grad():  # the weights are the source model's again, exactly
        assert torch.equal(adapted.eval()(x), source.eval()(x))
    assert ("Adaptation was rejected by the guard and the source model was used instead"
            in adapt_mod.describe(info))
    # the same constructed collapse with the guard switched off is kept, and nothing says it was rejected
    adapted, info, x = _quick(scene, guard=False)
    assert info["guard"] is False
    assert "guard_verdict" not in info and "used" not in info
    with torch.no_grad():
        assert int((adapted.eval()(x)[:, 1:].argmax(1) + 1 == 7).float().mean() * 100) == 100
