"""The Five-Billion-Pixels class scheme: the one home of the 24 classes, their names, colours and groups.

Index = label pixel value = network output channel. Index 0 is "unlabeled": ignored in losses and
metrics, and never predicted. Everything else (GDAL colour table, category names, QML style, legend
files, coarse legends) is generated from ``CLASSES`` here.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from xml.sax.saxutils import quoteattr


@dataclass(frozen=True)
class LandCoverClass:
    index: int
    name: str
    rgb: tuple[int, int, int]
    group: str  # artificial | agricultural | natural | "" for unlabeled

    @property
    def hex(self) -> str:
        return "#{:02x}{:02x}{:02x}".format(*self.rgb)


_A, _G, _N = "artificial", "agricultural", "natural"
CLASSES: tuple[LandCoverClass, ...] = tuple(
    LandCoverClass(i, n, rgb, g)
    for i, (n, rgb, g) in enumerate(
        [
            ("unlabeled", (0, 0, 0), ""),
            ("industrial area", (200, 0, 0), _A),
            ("paddy field", (0, 200, 0), _G),
            ("irrigated field", (150, 250, 0), _G),
            ("dry cropland", (150, 200, 150), _G),
            ("garden land", (200, 0, 200), _G),
            ("arbor forest", (150, 0, 250), _N),
            ("shrub forest", (150, 150, 250), _N),
            ("park", (200, 150, 200), _N),
            ("natural meadow", (250, 200, 0), _N),
            ("artificial meadow", (200, 200, 0), _N),
            ("river", (0, 0, 200), _N),
            ("urban residential", (250, 0, 150), _A),
            ("lake", (0, 150, 200), _N),
            ("pond", (0, 200, 250), _N),
            ("fish pond", (150, 200, 250), _N),
            ("snow", (250, 250, 250), _N),
            ("bareland", (200, 200, 200), _N),
            ("rural residential", (200, 150, 150), _A),
            ("stadium", (250, 200, 150), _A),
            ("square", (150, 150, 0), _A),
            ("road", (250, 150, 150), _A),
            ("overpass", (250, 150, 0), _A),
            ("railway station", (250, 200, 250), _A),
            ("airport", (200, 150, 0), _A),
        ]
    )
)
NUM_OUTPUTS = len(CLASSES)  # 25 network output channels (0 = unlabeled, never predicted)
NUM_CLASSES = NUM_OUTPUTS - 1  # 24 land-cover classes
UNLABELED = 0

# Class pixel shares in FBP, inferred from the reference code's fixed class weights.
FBP_PIXEL_SHARE: dict[int, float] = {
    3: 0.339, 4: 0.062, 13: 0.051, 6: 0.048, 12: 0.046, 18: 0.040, 11: 0.032, 21: 0.026,
    1: 0.025, 2: 0.021, 7: 0.018, 15: 0.009, 14: 0.008, 5: 0.007, 9: 0.007, 17: 0.0024,
    10: 0.0023, 22: 0.0016, 23: 0.0007, 24: 0.0007, 8: 0.0003, 16: 0.0003, 19: 0.0001, 20: 0.0001,
}


def class_weights(shares: dict[int, float] | None = None) -> list[float]:
    """Class weights w_c = 1/ln(1.02 + p_c) for indices 0..24, with w_0 = 0 (as the reference code)."""
    import math

    shares = FBP_PIXEL_SHARE if shares is None else shares
    return [0.0] + [1.0 / math.log(1.02 + shares.get(c.index, 0.0)) for c in CLASSES[1:]]


def names() -> list[str]:
    """Category names indexed by pixel value (0..24)."""
    return [c.name for c in CLASSES]


def color_table_entries() -> list[tuple[int, int, int, int]]:
    """RGBA entries for a GDAL colour table, indexed by pixel value; unlabeled is transparent."""
    return [(*c.rgb, 0 if c.index == UNLABELED else 255) for c in CLASSES]


def gdal_color_table():
    """A ``gdal.ColorTable`` with the official palette."""
    from osgeo import gdal

    table = gdal.ColorTable()
    for i, rgba in enumerate(color_table_entries()):
        table.SetColorEntry(i, rgba)
    return table


def gdal_attribute_table():
    """A ``gdal.RasterAttributeTable`` with value, class name, colour and group."""
    from osgeo import gdal

    rat = gdal.RasterAttributeTable()
    rat.CreateColumn("Value", gdal.GFT_Integer, gdal.GFU_MinMax)
    rat.CreateColumn("Class", gdal.GFT_String, gdal.GFU_Name)
    rat.CreateColumn("Red", gdal.GFT_Integer, gdal.GFU_Red)
    rat.CreateColumn("Green", gdal.GFT_Integer, gdal.GFU_Green)
    rat.CreateColumn("Blue", gdal.GFT_Integer, gdal.GFU_Blue)
    rat.CreateColumn("Group", gdal.GFT_String, gdal.GFU_Generic)
    rat.SetRowCount(len(CLASSES))
    for row, c in enumerate(CLASSES):
        rat.SetValueAsInt(row, 0, c.index)
        rat.SetValueAsString(row, 1, c.name)
        for k in range(3):
            rat.SetValueAsInt(row, 2 + k, c.rgb[k])
        rat.SetValueAsString(row, 5, c.group)
    return rat


def qml(opacity: float = 1.0) -> str:
    """A QGIS QML style: paletted renderer with the 24 class names and colours (0 is nodata)."""
    entries = "\n".join(
        f'        <paletteEntry value="{c.index}" color="{c.hex}" alpha="255" label={quoteattr(c.name)}/>'
        for c in CLASSES[1:]
    )
    return f"""<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>
<qgis version="3.40" styleCategories="AllStyleCategories">
  <pipe>
    <rasterrenderer type="paletted" band="1" opacity="{opacity}" alphaBand="-1" nodataColor="">
      <rasterTransparency/>
      <colorPalette>
{entries}
      </colorPalette>
    </rasterrenderer>
    <brightnesscontrast brightness="0" contrast="0" gamma="1"/>
    <huesaturation saturation="0" colorizeOn="0" grayscaleMode="0" invertColors="0"/>
    <rasterresampler maxOversampling="2"/>
  </pipe>
  <blendMode>0</blendMode>
</qgis>
"""


def legend_records() -> list[dict]:
    """The legend as records: index, name, red, green, blue, hex, group (classes 1..24)."""
    return [
        {"index": c.index, "name": c.name, "red": c.rgb[0], "green": c.rgb[1], "blue": c.rgb[2],
         "hex": c.hex, "group": c.group}
        for c in CLASSES[1:]
    ]


def legend_csv() -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(legend_records()[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(legend_records())
    return buf.getvalue()


def legend_json() -> str:
    return json.dumps({"scheme": "Five-Billion-Pixels 24 classes", "classes": legend_records()}, indent=2)


# ---- coarser legends: stored as data in engine/legends/*.json ----------------------------------

LEGEND_DIR = Path(__file__).with_name("legends")


@dataclass(frozen=True)
class Collapse:
    """A mapping of FBP indices to a coarser legend (target value 0 = no equivalent)."""

    name: str
    description: str
    targets: dict[int, tuple[str, tuple[int, int, int]]]  # value -> (name, rgb)
    mapping: dict[int, int]  # FBP index -> target value

    def lookup_table(self) -> list[int]:
        """A 256-entry table to apply with numpy fancy indexing (unmapped values -> 0)."""
        table = [0] * 256
        for src, dst in self.mapping.items():
            table[src] = dst
        return table

    def names(self) -> list[str]:
        """Category names indexed by target value (0 = "no data"; values without a class are empty)."""
        names = ["no data"] + [""] * max(self.targets, default=0)
        for value, (name, _rgb) in self.targets.items():
            names[value] = name
        return names

    def gdal_color_table(self):
        """A ``gdal.ColorTable`` with the legend's colours; 0 is transparent."""
        from osgeo import gdal

        table = gdal.ColorTable()
        table.SetColorEntry(0, (0, 0, 0, 0))
        for value, (_name, rgb) in self.targets.items():
            table.SetColorEntry(value, (*rgb, 255))
        return table


def available_collapses() -> list[str]:
    return sorted(p.stem for p in LEGEND_DIR.glob("*.json"))


@cache
def load_collapse(name_or_path: str) -> Collapse:
    """Load a coarse legend by name (``gid5``, ``coarse``) or from a JSON file of the same form."""
    from .errors import FbpError

    path = Path(name_or_path)
    if not path.suffix:
        path = LEGEND_DIR / f"{name_or_path}.json"
    if not path.is_file():
        raise FbpError(
            f"Legend mapping {name_or_path!r} not found: "
            f"expected one of {', '.join(available_collapses())} or a JSON mapping file."
        )
    data = json.loads(path.read_text())
    targets = {int(t["value"]): (t["name"], tuple(t["rgb"])) for t in data["classes"]}
    mapping: dict[int, int] = {}
    for t in data["classes"]:
        for src in t["fbp"]:
            if not 1 <= int(src) <= NUM_CLASSES:
                raise FbpError(f"Legend mapping {path}: FBP index {src} is outside 1..24.")
            mapping[int(src)] = int(t["value"])
    return Collapse(data["name"], data.get("description", ""), targets, mapping)
