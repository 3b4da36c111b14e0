"""The adaptation guard: unsupervised checks, after an adaptation, that it did not go wrong.

Nothing here sees a label. On target windows drawn after the adaptation (independently of its training
batches) the source model and the adapted model both predict; the guard compares them:

- **class collapse**: a class the source model gives at least ``COLLAPSE_MIN_SHARE`` of the pixels keeps less
  than ``COLLAPSE_KEEP`` of that share after adaptation (self-training's known failure: a class is absorbed);
- **class explosion**: a class gains more than ``EXPLOSION_GAIN`` of all pixels and at least doubles;
- **agreement**: the adapted model agrees with the source model on fewer than ``MIN_AGREEMENT`` of the pixels
  (adaptation corrects a shift; it does not redraw the map);
- **confidence**: the adapted model's mean confidence falls by more than ``CONFIDENCE_DROP`` (self-training
  sharpens predictions; a drop means it is fighting itself);
- **loss**: the last adaptation loss is not a finite number.

Any failed check rejects the adaptation: the caller maps with the source model and says so in one sentence
(``Verdict.sentence``). The thresholds are wide on purpose: the guard catches failures, it does not tune.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

from .. import classes
from ..torch_import import import_torch

COLLAPSE_MIN_SHARE = 0.05
COLLAPSE_KEEP = 0.2
EXPLOSION_GAIN = 0.25
MIN_AGREEMENT = 0.4
CONFIDENCE_DROP = 0.15
GUARD_WINDOWS = 8  # target windows the guard predicts on (two batches of four)


@dataclass
class Verdict:
    """What the guard found: ``passed``, the failed checks' sentences, and the figures it judged."""

    passed: bool
    problems: list[str] = field(default_factory=list)
    agreement: float = 1.0
    confidence_source: float = 0.0
    confidence_adapted: float = 0.0
    shares_source: dict[str, float] = field(default_factory=dict)
    shares_adapted: dict[str, float] = field(default_factory=dict)

    @property
    def sentence(self) -> str:
        if self.passed:
            return (f"The adaptation guard passed: the adapted model agrees with the source model on "
                    f"{self.agreement:.0%} of the checked pixels, and no class collapsed or exploded.")
        return ("Adaptation was rejected by the guard and the source model was used instead: "
                + "; ".join(self.problems) + ".")

    def to_dict(self) -> dict:
        return {**asdict(self), "sentence": self.sentence}


def _name(c: int) -> str:
    return classes.CLASSES[c].name


def judge(source_probs: np.ndarray, adapted_probs: np.ndarray, valid: np.ndarray,
          final_loss: float | None = None) -> Verdict:
    """The verdict from the two models' class probabilities (N, C, H, W) over the same windows and their
    validity (N, H, W). Channel 0 (unlabeled) is never a prediction, as in mapping."""
    valid = np.asarray(valid, bool)
    n = int(valid.sum())
    if n == 0:
        return Verdict(False, ["no valid pixel was left to check the adaptation on"])
    src = np.asarray(source_probs, np.float64)
    ada = np.asarray(adapted_probs, np.float64)
    ps = src[:, 1:].argmax(1)[valid] + 1
    pa = ada[:, 1:].argmax(1)[valid] + 1
    k = classes.NUM_OUTPUTS
    share_s = np.bincount(ps, minlength=k) / n
    share_a = np.bincount(pa, minlength=k) / n
    agreement = float((ps == pa).mean())
    conf_s = float(src[:, 1:].max(1)[valid].mean())
    conf_a = float(ada[:, 1:].max(1)[valid].mean())
    problems = []
    for c in range(1, k):
        if share_s[c] >= COLLAPSE_MIN_SHARE and share_a[c] < COLLAPSE_KEEP * share_s[c]:
            problems.append(f"{_name(c)} fell from {share_s[c]:.0%} to {share_a[c]:.0%} of the pixels")
        if share_a[c] - share_s[c] > EXPLOSION_GAIN and share_a[c] >= 2 * share_s[c]:
            problems.append(f"{_name(c)} grew from {share_s[c]:.0%} to {share_a[c]:.0%} of the pixels")
    if agreement < MIN_AGREEMENT:
        problems.append(f"the adapted model agrees with the source model on only {agreement:.0%} "
                        "of the pixels")
    if conf_s - conf_a > CONFIDENCE_DROP:
        problems.append(f"its mean confidence fell from {conf_s:.0%} to {conf_a:.0%}")
    if final_loss is not None and not math.isfinite(float(final_loss)):
        problems.append("its training loss was not a finite number")
    shares = lambda s: {_name(c): round(float(s[c]), 4) for c in range(1, k) if s[c] > 0}  # noqa: E731
    return Verdict(not problems, problems, round(agreement, 4), round(conf_s, 4), round(conf_a, 4),
                   shares(share_s), shares(share_a))


def probabilities(model, batches, device: str) -> np.ndarray:
    """Softmax probabilities (N, C, H, W) of ``model`` in eval mode over the image batches."""
    torch = import_torch()
    model.eval()
    out = []
    with torch.no_grad():
        for x in batches:
            out.append(torch.softmax(model(x.to(device)).float(), dim=1).cpu().numpy())
    return np.concatenate(out)


def check(source_model, adapted_model, target, device: str, final_loss: float | None = None,
          windows: int = GUARD_WINDOWS, batch: int = 4) -> Verdict:
    """Draw ``windows`` target windows (without augmentation) and judge the adaptation on them."""
    torch = import_torch()
    augment, target.do_augment = target.do_augment, False
    try:
        drawn = [target.batch(min(batch, windows - i)) for i in range(0, windows, batch)]
    finally:
        target.do_augment = augment
    xs = [x for x, _ in drawn]
    valid = torch.cat([v for _, v in drawn]).numpy()
    return judge(probabilities(source_model, xs, device), probabilities(adapted_model, xs, device), valid,
                 final_loss)
