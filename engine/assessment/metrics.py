"""Confusion matrix and accuracy scores, accumulated block by block.

Rows are the reference, columns the map; labels 0..K. Pixels whose reference is 0 (unlabelled) are
never counted. Pixels the map leaves at 0 (nodata, masked) are counted in column 0 and reported as
``unmapped_pixels``, but the scores use mapped pixels only (the sub-matrix 1..K x 1..K).
Per class: producer's accuracy (recall, per reference class), user's accuracy (precision, per mapped
class), F1 and IoU; a score whose denominator is 0 is None (a class absent from the reference has no
producer's accuracy; a class absent from both has no F1 or IoU and is left out of every mean).
Means "present" average over the classes present in the reference (as the authors' code does);
means "all" over every class present in the reference or the map.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..errors import FbpError


class ConfusionMatrix:
    """A (K+1) x (K+1) int64 confusion matrix filled with :meth:`add`."""

    def __init__(self, num_classes: int, names: Sequence[str] | None = None) -> None:
        self.k = int(num_classes)
        self.names = list(names) if names is not None else [str(i) for i in range(self.k + 1)]
        if len(self.names) != self.k + 1:
            raise ValueError(f"names must have {self.k + 1} entries (0..{self.k}), got {len(self.names)}")
        self.matrix = np.zeros((self.k + 1, self.k + 1), np.int64)

    def add(self, pred: np.ndarray, ref: np.ndarray) -> None:
        """Count one block of map values ``pred`` against reference values ``ref`` (same shape, 0..K)."""
        pred = np.asarray(pred).ravel()
        ref = np.asarray(ref).ravel()
        if pred.shape != ref.shape:
            raise ValueError(f"map block has {pred.size} pixels, reference block {ref.size}")
        keep = ref > 0
        pred, ref = pred[keep].astype(np.int64), ref[keep].astype(np.int64)
        for what, arr in (("map", pred), ("reference", ref)):
            if arr.size and (arr.min() < 0 or arr.max() > self.k):
                bad = int(arr.max() if arr.max() > self.k else arr.min())
                raise FbpError(
                    f"The {what} holds the value {bad}, outside the legend's classes 0..{self.k}; "
                    "give a mapping of its values to the legend or choose the matching legend."
                )
        n = self.k + 1
        self.matrix += np.bincount(ref * n + pred, minlength=n * n).reshape(n, n)

    def scores(self) -> dict:
        """Overall accuracy, kappa, per-class table and means (see the module docstring)."""
        return scores(self.matrix, self.names)


def _ratio(num: float, den: float) -> float | None:
    return float(num) / float(den) if den > 0 else None


def _mean(values: list[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return float(np.mean(vals)) if vals else None


def kappa(m: np.ndarray) -> float | None:
    """Cohen's kappa of a square confusion matrix (None for an empty matrix or chance agreement of 1)."""
    m = np.asarray(m, np.float64)
    n = m.sum()
    if n == 0:
        return None
    po = np.trace(m) / n
    pe = float((m.sum(1) * m.sum(0)).sum()) / (n * n)
    return float((po - pe) / (1 - pe)) if pe < 1 else None


def scores(matrix: np.ndarray, names: Sequence[str] | None = None) -> dict:
    """Scores of a (K+1) x (K+1) confusion matrix (row 0 ignored, column 0 = unmapped)."""
    matrix = np.asarray(matrix, np.int64)
    k = matrix.shape[0] - 1
    names = list(names) if names is not None else [str(i) for i in range(k + 1)]
    m = matrix[1:, 1:]
    n = int(m.sum())
    ref_tot, map_tot, tp = m.sum(1), m.sum(0), np.diag(m)
    per_class = []
    for i in range(k):
        r, p, t = int(ref_tot[i]), int(map_tot[i]), int(tp[i])
        per_class.append({
            "index": i + 1,
            "name": names[i + 1],
            "reference_pixels": r,
            "map_pixels": p,
            "correct": t,
            "producers_accuracy": _ratio(t, r),
            "users_accuracy": _ratio(t, p),
            "f1": _ratio(2 * t, r + p),
            "iou": _ratio(t, r + p - t),
        })
    present = [c for c in per_class if c["reference_pixels"] > 0]
    return {
        "num_classes": k,
        "pixels": n,
        "unmapped_pixels": int(matrix[1:, 0].sum()),
        "overall_accuracy": _ratio(int(tp.sum()), n),
        "kappa": kappa(m),
        "miou_present": _mean([c["iou"] for c in present]),
        "mf1_present": _mean([c["f1"] for c in present]),
        "miou_all": _mean([c["iou"] for c in per_class]),
        "mf1_all": _mean([c["f1"] for c in per_class]),
        "classes_in_reference": len(present),
        "per_class": per_class,
        "confusion_matrix": matrix.tolist(),
        "names": names,
    }
