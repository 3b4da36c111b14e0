"""Generated label maps: field parcels, roads, a river, lakes, settlements and the rare FBP classes.

Sizes are given in metres and converted with the ground sampling distance, so a 3 m scene of the
same landscape shows the same objects larger in pixels. Pure numpy; deterministic for a generator.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .noise import smooth_noise

# FBP indices used below (engine/classes.py holds the names).
INDUSTRIAL, PADDY, IRRIGATED, DRY, GARDEN, ARBOR, SHRUB, PARK, MEADOW, ART_MEADOW = range(1, 11)
RIVER, URBAN, LAKE, POND, FISH_POND, SNOW, BARE, RURAL, STADIUM, SQUARE = range(11, 21)
ROAD, OVERPASS, STATION, AIRPORT = range(21, 25)


@dataclass(frozen=True)
class ClassMix:
    """Proportions of a generated landscape."""

    name: str
    urban: float  # share of the scene in the urban zone
    forest: float  # share in the forest zone (hills)
    crops: dict[int, float] = field(default_factory=dict)  # parcel classes of the farmland -> weight
    urban_blocks: dict[int, float] = field(default_factory=dict)  # block classes of the urban zone
    lakes: float = 1.0  # expected number of lakes
    ponds: int = 3
    fish_ponds: float = 0.8  # probability of a fish-pond grid
    rural: int = 4  # rural residential clusters along roads
    airport: float = 0.3  # probabilities of the occasional classes
    snow: float = 0.2
    bare: float = 0.03  # share of bareland patches
    meadow: float = 0.04  # share of natural meadow patches


MIXES: dict[str, ClassMix] = {
    # An agricultural plain, like most of Five-Billion-Pixels.
    "source": ClassMix(
        "source", urban=0.12, forest=0.10,
        crops={IRRIGATED: 0.62, DRY: 0.16, PADDY: 0.13, GARDEN: 0.09},
        urban_blocks={URBAN: 0.55, INDUSTRIAL: 0.3, ART_MEADOW: 0.15},
    ),
    # A different region: more city, more forest, fewer irrigated fields, more paddy.
    "target": ClassMix(
        "target", urban=0.30, forest=0.25,
        crops={IRRIGATED: 0.3, DRY: 0.2, PADDY: 0.35, GARDEN: 0.15},
        urban_blocks={URBAN: 0.65, INDUSTRIAL: 0.2, ART_MEADOW: 0.15},
        lakes=0.7, fish_ponds=0.5, rural=3, airport=0.2, snow=0.1,
    ),
}


def get_mix(class_mix: str | ClassMix) -> ClassMix:
    if isinstance(class_mix, ClassMix):
        return class_mix
    try:
        return MIXES[class_mix]
    except KeyError:
        raise ValueError(f"unknown class mix {class_mix!r}; expected one of {sorted(MIXES)}") from None


def _choice(rng: np.random.Generator, weights: dict[int, float]) -> int:
    keys = list(weights)
    p = np.array([weights[k] for k in keys], dtype=float)
    return int(keys[rng.choice(len(keys), p=p / p.sum())])


def _ellipse(lab: np.ndarray, cy: float, cx: float, ry: float, rx: float, value: int,
             rng: np.random.Generator | None = None, wobble: float = 0.0, angle: float = 0.0) -> None:
    """Paint an (optionally rotated, wobbly-edged) ellipse, computing only its bounding box."""
    r = max(ry, rx) * (1 + wobble)
    y0, y1 = max(int(cy - r), 0), min(int(cy + r) + 1, lab.shape[0])
    x0, x1 = max(int(cx - r), 0), min(int(cx + r) + 1, lab.shape[1])
    if y0 >= y1 or x0 >= x1:
        return
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    dy, dx = yy - cy, xx - cx
    c, s = np.cos(angle), np.sin(angle)
    u, v = c * dx + s * dy, -s * dx + c * dy
    d = (u / rx) ** 2 + (v / ry) ** 2
    if rng is not None and wobble > 0:
        d = d - wobble * smooth_noise(rng, d.shape, max(4.0, r / 3))
    lab[y0:y1, x0:x1][d < 1] = value


def _line_distance(shape: tuple[int, int], p0: tuple[float, float], p1: tuple[float, float]) -> np.ndarray:
    """Distance (pixels) of every pixel to the infinite line through p0, p1 (row, col)."""
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]].astype(np.float32)
    dy, dx = p1[0] - p0[0], p1[1] - p0[1]
    n = float(np.hypot(dy, dx)) or 1.0
    return np.abs((yy - p0[0]) * dx - (xx - p0[1]) * dy) / n


def _cuts(rng: np.random.Generator, length: int, lo: int, hi: int) -> list[int]:
    """Positions of block edges along an axis, spaced lo..hi pixels, starting before 0."""
    pos, out = -int(rng.integers(0, hi)), []
    while pos < length:
        out.append(pos)
        pos += int(rng.integers(lo, hi + 1))
    out.append(pos)
    return out


def make_labels(rng: np.random.Generator, size: int | tuple[int, int],
                class_mix: str | ClassMix = "source", gsd: float = 4.0) -> np.ndarray:
    """A uint8 FBP label map (0..24) of ``size`` pixels at ``gsd`` metres for a landscape of ``class_mix``.

    Drawn in layers, each from the same generator in turn: zones, blocks and parcels, hills, water, the
    railway, roads, point features and snow."""
    rows, cols = (size, size) if isinstance(size, int) else size
    shape = (rows, cols)
    mix = get_mix(class_mix)

    def m(metres: float) -> int:
        return max(1, int(round(metres / gsd)))

    lab = np.zeros(shape, np.uint8)
    zone_u = smooth_noise(rng, shape, m(900)) + 0.25 * smooth_noise(rng, shape, m(250))
    zone_f = smooth_noise(rng, shape, m(700)) + 0.35 * smooth_noise(rng, shape, m(150))
    urban = zone_u > np.quantile(zone_u, 1 - mix.urban)
    forest = (zone_f > np.quantile(zone_f, 1 - mix.forest)) & ~urban
    ys, xs = _cuts(rng, rows, m(240), m(560)), _cuts(rng, cols, m(240), m(560))
    blocks = _blocks(rng, lab, ys, xs, urban, mix, m)
    _hills(rng, lab, zone_f, urban, forest, mix, m)
    _water(rng, lab, blocks, mix, m)
    rail = _line_distance(shape, (rng.uniform(0, rows), 0), (rng.uniform(0, rows), cols)) < max(1, m(5))
    lab[rail] = 0  # unlabelled ballast
    _station(rng, lab, rail, m)
    _roads(rng, lab, ys, xs, m)
    _features(rng, lab, blocks, mix, m)
    if rng.random() < mix.snow:
        hill = np.argwhere(forest)
        if len(hill):
            cy, cx = hill[int(np.argmax(zone_f[forest]))]
            _ellipse(lab, cy, cx, m(rng.uniform(40, 90)), m(rng.uniform(40, 90)), SNOW, rng, wobble=0.4)
    return lab


def _blocks(rng, lab: np.ndarray, ys: list[int], xs: list[int], urban: np.ndarray, mix: ClassMix,
            m) -> list[tuple[int, int, int, int, bool]]:
    """Blocks between roads: urban ones of one kind, farmland ones split into parcels (strips) of one crop
    each; every town gets housing. Returns the blocks (y0, y1, x0, x1, urban)."""
    rows, cols = lab.shape
    blocks: list[tuple[int, int, int, int, bool]] = []
    for a, b in zip(ys[:-1], ys[1:], strict=True):
        for c, d in zip(xs[:-1], xs[1:], strict=True):
            y0, y1, x0, x1 = max(a, 0), min(b, rows), max(c, 0), min(d, cols)
            if y0 >= y1 or x0 >= x1:
                continue
            is_urban = bool(urban[(y0 + y1) // 2, (x0 + x1) // 2])
            blocks.append((y0, y1, x0, x1, is_urban))
            if is_urban:
                lab[y0:y1, x0:x1] = _choice(rng, mix.urban_blocks)
                continue
            vertical = rng.random() < 0.5
            span = (x0, x1) if vertical else (y0, y1)
            pos = span[0]
            while pos < span[1]:
                step = int(rng.integers(m(60), m(200)))
                sl = (slice(y0, y1), slice(pos, pos + step)) if vertical else (slice(pos, pos + step),
                                                                               slice(x0, x1))
                lab[sl] = _choice(rng, mix.crops)
                pos += step
    town = [bk for bk in blocks if bk[4]]
    if town and not any((lab[y0:y1, x0:x1] == URBAN).any() for y0, y1, x0, x1, _ in town):
        y0, y1, x0, x1, _ = max(town, key=lambda bk: (bk[1] - bk[0]) * (bk[3] - bk[2]))
        lab[y0:y1, x0:x1] = URBAN  # every town has housing
    lab[urban & (lab == 0)] = URBAN
    return blocks


def _hills(rng, lab: np.ndarray, zone_f: np.ndarray, urban: np.ndarray, forest: np.ndarray, mix: ClassMix,
           m) -> None:
    """Hills: arbor forest, shrub at the edges, meadow clearings; bareland and meadow patches elsewhere."""
    edge = zone_f < np.quantile(zone_f, 1 - mix.forest * 0.55)
    lab[forest] = ARBOR
    lab[forest & edge] = SHRUB
    patches = smooth_noise(rng, lab.shape, m(120))
    lab[(patches > np.quantile(patches, 1 - mix.meadow)) & ~urban] = MEADOW
    bare = smooth_noise(rng, lab.shape, m(90))
    lab[(bare > np.quantile(bare, 1 - mix.bare)) & ~urban & ~forest] = BARE


def _water(rng, lab: np.ndarray, blocks: list, mix: ClassMix, m) -> None:
    """Water: lakes, ponds, a fish-pond grid in one farmland block, a meandering river."""
    rows, cols = lab.shape
    for _ in range(int(rng.poisson(mix.lakes)) or (1 if rng.random() < mix.lakes else 0)):
        _ellipse(lab, rng.uniform(0, rows), rng.uniform(0, cols), m(rng.uniform(120, 320)),
                 m(rng.uniform(160, 420)), LAKE, rng, wobble=0.35, angle=rng.uniform(0, np.pi))
    for _ in range(mix.ponds):
        _ellipse(lab, rng.uniform(0, rows), rng.uniform(0, cols), m(rng.uniform(18, 45)),
                 m(rng.uniform(18, 60)), POND, rng, wobble=0.3)
    farm = [bk for bk in blocks if not bk[4]] or blocks
    if rng.random() < mix.fish_ponds:
        y0, y1, x0, x1, _ = farm[int(rng.integers(len(farm)))]
        lab[y0:y1, x0:x1] = MEADOW  # dykes
        ph, pw, dyke = m(70), m(50), max(1, m(6))
        for py in range(y0 + dyke, y1 - ph // 2, ph + dyke):
            for px in range(x0 + dyke, x1 - pw // 2, pw + dyke):
                lab[py:min(py + ph, y1 - dyke), px:min(px + pw, x1 - dyke)] = FISH_POND
    _river(rng, lab, m)


def _roads(rng, lab: np.ndarray, ys: list[int], xs: list[int], m) -> None:
    """Roads on every block edge (some wide), one diagonal road, an overpass where it crosses a main road."""
    rows, cols = lab.shape
    road = np.zeros(lab.shape, bool)
    for cuts, axis in ((ys, 0), (xs, 1)):
        for k, pos in enumerate(cuts):
            w = m(14) if k % 3 == 1 else m(7)
            lo, hi = max(pos - w // 2, 0), max(pos - w // 2 + w, 0)
            if axis == 0:
                road[lo:hi, :] = True
            else:
                road[:, lo:hi] = True
    p0, p1 = (rng.uniform(0, rows * 0.3), 0.0), (rng.uniform(rows * 0.7, rows), float(cols))
    diag = _line_distance(lab.shape, p0, p1) < m(8)
    lab[road | diag] = ROAD
    main = [p for k, p in enumerate(xs) if k % 3 == 1 and 0 < p < cols] or [cols // 2]
    cx = main[int(rng.integers(len(main)))]
    cy = p0[0] + (p1[0] - p0[0]) * cx / cols
    _ellipse(lab, cy, cx, m(20), m(70), OVERPASS, angle=np.arctan2(p1[0] - p0[0], cols))


def _river(rng: np.random.Generator, lab: np.ndarray, m) -> None:
    """A meandering river across the scene (along rows or columns)."""
    t = lab if rng.random() < 0.5 else lab.T
    n, across = t.shape
    s = np.arange(n, dtype=np.float32)
    centre = (rng.uniform(0.25, 0.75) * across
              + m(rng.uniform(80, 200)) * np.sin(2 * np.pi * s / m(rng.uniform(900, 1600)) + rng.uniform(0,
                                                                                                         6.3))
              + m(rng.uniform(20, 60)) * np.sin(2 * np.pi * s / m(rng.uniform(250, 450)) + rng.uniform(0,
                                                                                                       6.3)))
    half = m(rng.uniform(14, 28)) * (1 + 0.3 * np.sin(s / m(300)))
    xx = np.arange(across, dtype=np.float32)[None, :]
    t[np.abs(xx - centre[:, None]) < half[:, None]] = RIVER


def _station(rng: np.random.Generator, lab: np.ndarray, rail: np.ndarray, m) -> None:
    """A railway station along the railway, and a square in front of it."""
    cols = lab.shape[1]
    cx = int(rng.uniform(0.2, 0.8) * cols)
    rail_rows = np.flatnonzero(rail[:, cx])
    if not len(rail_rows):
        return
    top = int(rail_rows.min())
    h, w = m(45), m(160)
    lab[max(top - h, 0):top, max(cx - w // 2, 0):cx + w // 2] = STATION
    lab[max(top - h - m(40), 0):max(top - h, 0), max(cx - m(30), 0):cx + m(30)] = SQUARE


def _features(rng: np.random.Generator, lab: np.ndarray, blocks: list, mix: ClassMix, m) -> None:
    """Park with a pond, stadium, square, rural clusters along roads, and occasionally an airport."""
    rows, cols = lab.shape
    inner = [(y0 + m(10), y1 - m(10), x0 + m(10), x1 - m(10), u) for y0, y1, x0, x1, u in blocks
             if y1 - y0 > m(160) and x1 - x0 > m(160)] or [(0, rows, 0, cols, False)]
    town = [b for b in inner if b[4]] or inner
    order = rng.permutation(len(town))
    park = town[order[0]]
    y0, y1, x0, x1, _ = park
    lab[y0:y1, x0:x1] = PARK
    _ellipse(lab, (y0 + y1) / 2, (x0 + x1) / 2, (y1 - y0) / 5, (x1 - x0) / 4, POND, rng, wobble=0.2)
    y0, y1, x0, x1, _ = town[order[1 % len(town)]]
    cy, cx = (y0 + y1) / 2, (x0 + x1) / 2
    _ellipse(lab, cy, cx, min(m(55), (y1 - y0) / 2), min(m(85), (x1 - x0) / 2), STADIUM)
    y0, y1, x0, x1, _ = town[order[2 % len(town)]]
    lab[y0:y0 + m(50), x0:x0 + m(60)] = SQUARE

    # Rural residential clusters beside roads outside the town.
    road_px = np.argwhere(lab == ROAD)
    for _ in range(mix.rural if len(road_px) else 0):
        ry, rx = road_px[int(rng.integers(len(road_px)))]
        h, w = m(rng.uniform(40, 90)), m(rng.uniform(60, 160))
        y0, x0 = ry + m(10), rx - w // 2
        window = lab[max(y0, 0):y0 + h, max(x0, 0):x0 + w]
        window[(window != ROAD) & (window != RIVER)] = RURAL

    if rng.random() < mix.airport:
        cy = rng.uniform(0.2, 0.8) * rows
        length, width = min(m(1600), int(cols * 0.8)), m(45)
        x0 = int(rng.uniform(0, cols - length))
        lab[int(cy):int(cy) + width, x0:x0 + length] = AIRPORT
        lab[int(cy) + width:int(cy) + width + m(60), x0 + length // 3:x0 + length // 2] = AIRPORT
