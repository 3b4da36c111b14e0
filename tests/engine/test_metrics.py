"""Confusion matrix and scores against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from fbp_landcover.engine.assessment.metrics import ConfusionMatrix, kappa, scores
from fbp_landcover.engine.errors import FbpError

# Classes 1..5: class 4 is mapped but absent from the reference, class 5 is absent from both.
REF = np.array([1, 1, 1, 2, 2, 3, 3, 3, 0, 1])
PRED = np.array([1, 2, 1, 2, 4, 3, 1, 3, 2, 0])  # pixel 8: reference 0 (ignored); pixel 9: unmapped


def _filled() -> ConfusionMatrix:
    cm = ConfusionMatrix(5)
    cm.add(PRED[:4], REF[:4])  # streaming: two blocks
    cm.add(PRED[4:].reshape(2, 3), REF[4:].reshape(2, 3))
    return cm


def test_matrix_hand_computed():
    cm = _filled()
    expected = np.zeros((6, 6), int)
    expected[1, 1], expected[1, 2], expected[1, 0] = 2, 1, 1
    expected[2, 2], expected[2, 4] = 1, 1
    expected[3, 3], expected[3, 1] = 2, 1
    assert (cm.matrix == expected).all()


def test_scores_hand_computed():
    s = _filled().scores()
    assert s["pixels"] == 8 and s["unmapped_pixels"] == 1
    assert s["overall_accuracy"] == pytest.approx(5 / 8)
    # pe = (3*3 + 2*2 + 3*2 + 0*1) / 64 = 19/64 ; kappa = (40/64 - 19/64) / (45/64) = 21/45
    assert s["kappa"] == pytest.approx(21 / 45)
    pc = {c["index"]: c for c in s["per_class"]}
    assert (pc[1]["producers_accuracy"], pc[1]["users_accuracy"]) == pytest.approx((2 / 3, 2 / 3))
    assert (pc[1]["f1"], pc[1]["iou"]) == pytest.approx((2 / 3, 0.5))
    assert (pc[2]["f1"], pc[2]["iou"]) == pytest.approx((0.5, 1 / 3))
    assert (pc[3]["producers_accuracy"], pc[3]["users_accuracy"]) == pytest.approx((2 / 3, 1.0))
    assert (pc[3]["f1"], pc[3]["iou"]) == pytest.approx((0.8, 2 / 3))
    # absent from the reference, mapped once
    assert pc[4]["producers_accuracy"] is None
    assert (pc[4]["users_accuracy"], pc[4]["f1"], pc[4]["iou"]) == (0.0, 0.0, 0.0)
    # absent from both
    assert all(pc[5][k] is None for k in ("producers_accuracy", "users_accuracy", "f1", "iou"))
    assert s["classes_in_reference"] == 3
    assert s["miou_present"] == pytest.approx((0.5 + 1 / 3 + 2 / 3) / 3)
    assert s["mf1_present"] == pytest.approx((2 / 3 + 0.5 + 0.8) / 3)
    assert s["miou_all"] == pytest.approx((0.5 + 1 / 3 + 2 / 3 + 0) / 4)
    assert s["mf1_all"] == pytest.approx((2 / 3 + 0.5 + 0.8 + 0) / 4)


def test_kappa_textbook_example():
    # Cohen (1960)-style 2x2: po = 0.7, pe = 0.5*0.6 + 0.5*0.4 = 0.5 -> kappa 0.4
    m = np.array([[20, 5], [10, 15]])
    assert kappa(m) == pytest.approx(0.4)
    assert kappa(np.zeros((3, 3))) is None


def test_empty_and_names():
    s = scores(np.zeros((3, 3), int), ["u", "a", "b"])
    assert s["overall_accuracy"] is None and s["miou_present"] is None
    assert [c["name"] for c in s["per_class"]] == ["a", "b"]


def test_out_of_legend_value_is_an_error():
    cm = ConfusionMatrix(5)
    with pytest.raises(FbpError, match="value 7"):
        cm.add(np.array([7]), np.array([1]))
    with pytest.raises(FbpError, match="reference holds the value 9"):
        cm.add(np.array([1]), np.array([9]))
    cm.add(np.array([9]), np.array([0]))  # reference 0: not counted, not checked
    assert cm.matrix.sum() == 0


def test_large_random_matches_pairwise_count():
    rng = np.random.default_rng(3)
    ref, pred = rng.integers(0, 25, 10_000), rng.integers(0, 25, 10_000)
    cm = ConfusionMatrix(24)
    for i in range(0, 10_000, 999):
        cm.add(pred[i:i + 999], ref[i:i + 999])
    expected = np.zeros((25, 25), int)
    np.add.at(expected, (ref[ref > 0], pred[ref > 0]), 1)
    assert (cm.matrix == expected).all()
