"""DPA pseudo-label rule and class-weighted losses against direct computations on small tensors."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fbp_landcover.engine.torch_import import import_torch
from fbp_landcover.engine.training import dpa, losses

torch = import_torch()


def _direct_entropy(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, p * np.log2(p), 0.0)
    return -terms.sum(axis=1) / math.log2(logits.shape[1])


def test_entropy_matches_direct_computation_and_bounds():
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 3, (2, 25, 5, 4)).astype(np.float32)
    logits[0, :, 0, 0] = 0.0  # uniform -> 1
    logits[0, :, 0, 1] = -50.0
    logits[0, 7, 0, 1] = 50.0  # one-hot -> 0
    h = dpa.normalized_entropy(torch.from_numpy(logits)).numpy()
    assert h.shape == (2, 5, 4)
    np.testing.assert_allclose(h, _direct_entropy(logits.astype(np.float64)), atol=1e-5)
    assert h[0, 0, 0] == pytest.approx(1.0, abs=1e-6)
    assert h[0, 0, 1] == pytest.approx(0.0, abs=1e-6)


def test_pseudo_labels_keep_exact_share_lowest_entropy_argmax_over_all_channels():
    rng = np.random.default_rng(1)
    n, hh, ww = 3, 6, 7
    logits = rng.normal(0, 2, (n, 25, hh, ww)).astype(np.float32)
    logits[0, 0, 0, 0] = 40.0  # a confident pixel whose argmax is channel 0: selected, label 0
    ratio = 0.3
    labels = dpa.assign_pseudo_labels(torch.from_numpy(logits), ratio).numpy()
    total = n * hh * ww
    k = math.floor(total * ratio)
    ent = _direct_entropy(logits.astype(np.float64)).reshape(-1)
    chosen = np.argsort(ent, kind="stable")[:k]
    expected = np.zeros(total, np.int64)
    expected[chosen] = logits.transpose(0, 2, 3, 1).reshape(-1, 25).argmax(axis=1)[chosen]
    np.testing.assert_array_equal(labels.reshape(-1), expected)
    # the share is over the whole batch, not per image, and everything else is ignored (0)
    selected = np.zeros(total, bool)
    selected[chosen] = True
    assert (labels.reshape(-1)[~selected] == 0).all()
    assert labels[0, 0, 0] == 0 and 0 in chosen


def test_pseudo_label_ties_are_deterministic_by_pixel_index():
    logits = torch.zeros(2, 25, 2, 2)
    logits[:, 5] = 3.0  # every pixel has the same entropy and argmax 5
    labels = dpa.assign_pseudo_labels(logits, 0.5)
    flat = labels.reshape(-1).tolist()
    assert flat == [5, 5, 5, 5, 0, 0, 0, 0]


def test_ratio_schedules():
    assert dpa.ratio_at(0, 120) == pytest.approx(1 / 120 * 0.5)
    assert dpa.ratio_at(119, 120) == pytest.approx(0.5)
    assert dpa.ratio_at(4, 10, factor=0.4) == pytest.approx(0.2)
    shares = [dpa.ratio_at_iteration(i, 8) for i in range(8)]
    assert shares == pytest.approx([(i + 1) / 8 * 0.5 for i in range(8)])
    stepped = [dpa.ratio_at_iteration(i, 8, steps=4) for i in range(8)]
    assert stepped == pytest.approx([0.125, 0.125, 0.25, 0.25, 0.375, 0.375, 0.5, 0.5])


def test_zero_share_ignores_everything_and_valid_mask_limits_selection():
    logits = torch.randn(1, 25, 4, 4, generator=torch.Generator().manual_seed(0))
    assert int((dpa.assign_pseudo_labels(logits, 0.0) != 0).sum()) == 0
    valid = torch.zeros(1, 4, 4, dtype=torch.bool)
    valid[0, :2] = True  # 8 valid pixels
    labels = dpa.assign_pseudo_labels(logits, 0.5, valid=valid)
    assert int((labels != 0).sum()) == 4
    assert int((labels[0, 2:] != 0).sum()) == 0


def test_class_quota_keeps_a_rare_class_the_reference_rule_drops():
    # 95 confident pixels of class 3, 5 less confident pixels of class 19 (stadium)
    logits = torch.zeros(1, 25, 10, 10)
    logits[0, 3] = 8.0
    logits[0, 19, 9, 5:] = 4.0
    logits[0, 3, 9, 5:] = 0.0
    ref = dpa.assign_pseudo_labels(logits, 0.2)
    assert int((ref != 0).sum()) == 20 and int((ref == 19).sum()) == 0
    quota = dpa.assign_pseudo_labels(logits, 0.2, class_quota=0.5)
    assert int((quota != 0).sum()) == 20  # the same budget
    assert int((quota == 19).sum()) == 5  # min(0.5 * 20 / 2 classes, its 5 pixels)
    # off = the reference exactly
    assert torch.equal(dpa.assign_pseudo_labels(logits, 0.2, class_quota=False), ref)


def test_class_weights_from_known_counts_exact():
    counts = np.zeros(25, np.int64)
    counts[0] = 1000  # unlabeled pixels do not enter p_c
    counts[3] = 600
    counts[19] = 400
    w = losses.weights_from_counts(counts)
    assert w[0] == 0.0
    assert w[3] == pytest.approx(1 / math.log(1.02 + 0.6), rel=1e-12)
    assert w[19] == pytest.approx(1 / math.log(1.02 + 0.4), rel=1e-12)
    assert w[5] == pytest.approx(1 / math.log(1.02), rel=1e-12)  # absent class
    assert len(w) == 25


def test_weighted_ce_matches_direct_formula_and_ignores_zero():
    rng = np.random.default_rng(2)
    logits = rng.normal(0, 1, (1, 25, 2, 2)).astype(np.float32)
    labels = np.array([[[3, 0], [19, 3]]])
    w = np.array(losses.weights_from_counts(np.bincount(labels.ravel(), minlength=25)), np.float32)
    got = float(losses.weighted_ce(torch.from_numpy(logits), torch.from_numpy(labels), torch.from_numpy(w)))
    z = logits[0].reshape(25, -1).T.astype(np.float64)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    lab = labels.reshape(-1)
    keep = lab > 0
    expected = -(w[lab[keep]] * logp[keep, lab[keep]]).sum() / w[lab[keep]].sum()
    assert got == pytest.approx(expected, rel=1e-5)
    total, ls, lt = losses.dpa_loss(torch.from_numpy(logits), torch.from_numpy(labels),
                                    torch.from_numpy(logits),
                                    torch.zeros(1, 2, 2, dtype=torch.long), torch.from_numpy(w))
    assert float(lt) == 0.0 and float(total) == pytest.approx(float(ls))


def test_kl_anchor_is_zero_for_identical_predictions():
    z = torch.randn(2, 25, 3, 3)
    assert float(losses.kl_anchor(z, z)) == pytest.approx(0.0, abs=1e-6)
    assert float(losses.kl_anchor(z, torch.zeros_like(z))) > 0.0
