"""Normalisation statistics (mean/std per NIR,R,G,B on 0..1 values): the FBP source, the authors' cities,
per-scene statistics from a bounded sample, and parsing of ``--stats``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import FbpError

STD_FLOOR = 1e-3  # a constant band would otherwise divide by zero; on 0..1 values this is 1/4 of a DN step


@dataclass(frozen=True)
class Stats:
    """Per-channel mean and std in NIR, R, G, B order, on 0..1 values (x/255 for 8-bit)."""

    mean: tuple[float, float, float, float]
    std: tuple[float, float, float, float]
    source: str

    def to_dict(self) -> dict:
        """A JSON-ready dict for checkpoint and output metadata."""
        mean, std = [float(v) for v in self.mean], [float(v) for v in self.std]
        return {"mean": mean, "std": std, "source": self.source}

    @classmethod
    def from_dict(cls, data: dict) -> Stats:
        """The inverse of ``to_dict``; FbpError when it is not 4 means and 4 positive stds."""
        try:
            mean = tuple(float(v) for v in data["mean"])
            std = tuple(float(v) for v in data["std"])
        except (KeyError, TypeError, ValueError) as exc:
            raise FbpError(
                f"Normalisation statistics {data!r} are not a dict of 'mean' and 'std' lists of numbers "
                f"({exc})."
            ) from None
        if len(mean) != 4 or len(std) != 4 or any(not s > 0 for s in std):
            raise FbpError(
                f"Normalisation statistics {data!r} must hold 4 means and 4 positive stds (NIR, R, G, B)."
            )
        return cls(mean, std, str(data.get("source", "metadata")))  # type: ignore[arg-type]


FBP_SOURCE_STATS = Stats((0.506, 0.371, 0.390, 0.363), (0.254, 0.244, 0.231, 0.231), "fbp")

CITY_STATS: dict[str, Stats] = {
    "wuhan": Stats((0.537, 0.375, 0.374, 0.370), (0.239, 0.237, 0.230, 0.229), "wuhan"),
    "chengdu": Stats((0.582, 0.359, 0.411, 0.372), (0.233, 0.244, 0.229, 0.229), "chengdu"),
    "shanghai": Stats((0.527, 0.430, 0.432, 0.406), (0.284, 0.269, 0.263, 0.260), "shanghai"),
    "beijing": Stats((0.520, 0.391, 0.416, 0.385), (0.247, 0.255, 0.241, 0.236), "beijing"),
    "guangzhou": Stats((0.590, 0.286, 0.323, 0.308), (0.238, 0.238, 0.226, 0.225), "guangzhou"),
}


def normalize(img: np.ndarray, mean, std, valid: np.ndarray | None = None) -> np.ndarray:
    """(x - mean) / std per NIR,R,G,B channel of a float32 (4, h, w) image, a division (as the reference code,
    not a multiplication by 1/std); pixels where ``valid`` is False become 0 (the scene's mean)."""
    m = np.asarray(mean, np.float32)[:, None, None]
    s = np.asarray(std, np.float32)[:, None, None]
    out = (img - m) / s
    if valid is not None:
        out[:, ~valid] = 0.0
    return out.astype(np.float32, copy=False)


def resolve_stats(policy: str | Stats | None, inp, checkpoint: Stats | None = None) -> Stats:
    """The statistics to normalise ``inp`` (a ModelInput or a labelled scene) with: "scene" (or empty) from
    its own sample; "checkpoint" the model's (``checkpoint``; the FBP source statistics when it has none);
    a Stats as it is; anything else as ``parse_stats`` reads it ("source"/"fbp", a city, 8 numbers)."""
    if isinstance(policy, Stats):
        return policy
    if policy in (None, "", "scene"):
        return scene_stats(inp)
    if policy == "checkpoint":
        return checkpoint if checkpoint is not None else FBP_SOURCE_STATS
    return parse_stats(str(policy))


def scene_stats(inp, max_pixels: int = 1_000_000) -> Stats:
    """Mean/std of a ModelInput's valid pixels from its bounded, deterministic ``sample``.

    The std is floored at ``STD_FLOOR``; FbpError when the sample holds no valid pixel (all nodata or masked).
    """
    px = inp.sample(max_pixels)
    if px.shape[1] == 0:
        raise FbpError(
            f"{inp.path} is all nodata or masked where it was sampled, "
            "so no scene statistics can be computed; check its nodata value, mask and extent, "
            "or give --stats (e.g. 'fbp' or 8 numbers)."
        )
    px64 = px.astype(np.float64)
    mean = px64.mean(axis=1)
    std = np.maximum(px64.std(axis=1), STD_FLOOR)
    return Stats(
        tuple(float(v) for v in mean), tuple(float(v) for v in std), f"scene ({px.shape[1]} pixels)"
    )  # type: ignore[arg-type]


def parse_stats(text: str) -> Stats:
    """``"m1,m2,m3,m4,s1,s2,s3,s4"`` (NIR,R,G,B on 0..1 values), a city name, or ``fbp`` (the source)."""
    t = text.strip()
    key = t.lower()
    if key in CITY_STATS:
        return CITY_STATS[key]
    if key in ("fbp", "source"):
        return FBP_SOURCE_STATS
    names = ", ".join(["fbp", *CITY_STATS])
    parts = [p.strip() for p in t.split(",")]
    if len(parts) == 1 and not _is_number(parts[0]):
        raise FbpError(
            f"Statistics '{text}' are neither a known name ({names}) nor 8 numbers; give e.g. "
            "0.506,0.371,0.390,0.363,0.254,0.244,0.231,0.231 (NIR,R,G,B means then stds on 0..1 values)."
        )
    if len(parts) != 8:
        raise FbpError(
            f"Statistics '{text}' have {len(parts)} value(s) but 8 are needed: "
            "4 means then 4 stds in NIR,R,G,B order."
        )
    bad = [p for p in parts if not _is_number(p)]
    if bad:
        listed = ", ".join(repr(b) for b in bad)
        raise FbpError(f"Statistics '{text}': {listed} not a number; give 8 numbers.")
    vals = [float(p) for p in parts]
    mean, std = tuple(vals[:4]), tuple(vals[4:])
    if any(not 0.0 <= m <= 1.0 for m in mean) or any(not 0.0 < s <= 1.0 for s in std):
        raise FbpError(
            f"Statistics '{text}' must be on 0..1 values (means in 0..1, stds in (0, 1]); "
            "values on a 0..255 scale must be divided by 255 first."
        )
    return Stats(mean, std, "given")  # type: ignore[arg-type]


def _is_number(s: str) -> bool:
    try:
        float(s)
    except ValueError:
        return False
    return s.lower() not in ("nan", "inf", "-inf", "+inf", "infinity")
