"""How a run is configured: ``TrainConfig`` for source training, ``AdaptOptions`` for adaptation.

The CLI, the Processing algorithms, the demo and the benchmarks build one of these and hand it to
``train.train_source`` or ``adapt.adapt`` (``MapRequest.adapt`` holds an ``AdaptOptions`` for quick adaptation
before mapping). Both functions also take keyword overrides of the fields; unknown names are refused.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, TypeVar

DEFAULT_ITERATIONS = 100  # adaptation iterations when neither iterations, epochs nor seconds are given
METHODS = ("auto", "siamese", "bn+kl", "bn", "pseudo", "bn+pseudo", "dpa-reference", "tent")  # new ones last:
# Processing stores an enum by its number
MIXES = ("none", "classmix")  # how source pixels are mixed into target patches (training/mixing.py)
TRAIN_STATS = ("source", "scene")  # the fixed FBP statistics (as the reference code), or each scene's own
# (the default since issue 15, as mapping: bench/bench_stats.py); this order stays, scripts give the number


@dataclass
class TrainConfig:
    """Settings of one source training run; the defaults are the reference recipe (SGD Nesterov 0.9, lr 0.005
    poly 0.9 per iteration, weight decay 1e-5, batch 16 of 512 px patches, mixed precision on a GPU) except
    the normalisation: each scene's own statistics (``stats="source"`` for the reference's fixed ones)."""

    architecture: str = "fbp_unet"  # "fbp_unet" or "smp" (with smp_arch and encoder); see models.presets
    smp_arch: str | None = None
    encoder: str | None = None
    arch_kwargs: dict[str, Any] = field(default_factory=dict)
    name: str | None = None  # the model's name (default: the output file's stem)
    epochs: int = 120
    iterations_per_epoch: int | None = None  # None: one pass over the training scenes' patch grid
    batch_size: int = 16
    patch: int = 512
    lr: float = 0.005
    momentum: float = 0.9
    weight_decay: float = 1e-5
    poly_power: float = 0.9
    val_fraction: float = 0.1  # of the scenes (of the rows, with a single scene) kept for validation
    val_patches: int = 500
    class_aware: bool = False  # draw patches around rarer classes more often
    class_power: float = 0.5
    stats: str = "scene"  # one of TRAIN_STATS
    image: str = "8bit"  # FBP folders: the 8-bit NIR,R,G,B or the 16-bit B,G,R,NIR images
    sensor: str = "auto"  # labelled rasters: their sensor profile
    class_mapping: str | dict | None = None  # labelled rasters: their label values -> FBP classes
    working_gsd: float | None = None  # labelled rasters: None = the profile's
    device: str = "auto"
    amp: bool = True  # mixed precision on a GPU
    resume: bool = True  # continue from <model>.resume.pt when it is there
    memory_count: int = 256  # patches in the source memory saved beside the model
    memory_size: int = 256
    seed: int = 0


@dataclass
class AdaptOptions:
    """Settings of one adaptation run (see ``adapt.adapt``); a budget of iterations, epochs or seconds."""

    iterations: int | None = None
    epochs: int | None = None
    seconds: float | None = None
    factor: float = 0.5
    class_quota: float | bool = False
    # virtual epochs the schedule is cut into (None: the share grows every iteration)
    steps: int | None = None
    batch_size: int = 4  # target patches per iteration
    source_batch_size: int | None = None  # None: same as batch_size (the reference: 16 + 16)
    patch: int | None = None  # None: the source memory's patch size, else 512 on a GPU and 256 on a CPU
    lr: float = 0.001
    momentum: float = 0.9
    weight_decay: float = 1e-5
    poly_power: float = 0.9
    method: str = "auto"  # one of METHODS ("dpa-reference": siamese with teacher 0, mix none, no quota)
    teacher: float = 0.0  # EMA momentum of a mean teacher that gives the pseudo-labels (0: the student's own)
    mix: str = "none"  # one of MIXES (siamese only)
    kl_weight: float = 1.0
    bn_batches: int = 8
    bn_target_share: float = 0.5  # of the re-estimated BatchNorm statistics; the rest stays the source's
    # (0.5: the benchmark's worst case across domains, bench/README.md; 1.0 = target statistics only)
    augment: bool = True
    amp: bool = True
    seed: int = 0
    device: str = "auto"
    guard: bool = True  # check the adapted model against the source model and fall back (training/guard.py)

    def changed(self) -> dict[str, Any]:
        """The fields that differ from the defaults (what a user asked for), e.g. {"iterations": 50}."""
        default = asdict(AdaptOptions())
        return {k: v for k, v in asdict(self).items() if v != default[k]}


Config = TypeVar("Config", TrainConfig, AdaptOptions)


def configured(cls: type[Config], config: Config | None, overrides: dict[str, Any], what: str) -> Config:
    """``config`` (or the defaults) with keyword ``overrides`` of its fields; TypeError for unknown names."""
    unknown = set(overrides) - {f.name for f in fields(cls)}
    if unknown:
        raise TypeError(f"unknown {what} option(s): {', '.join(sorted(unknown))}")
    return replace(config if config is not None else cls(), **overrides)
