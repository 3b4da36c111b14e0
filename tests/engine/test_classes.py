"""The class scheme: exact names, colours, groups, and everything generated from it."""

import json
import math
import xml.etree.ElementTree as ET

import pytest

from fbp_landcover.engine import classes
from fbp_landcover.engine.errors import FbpError


def test_the_24_classes_with_official_colours():
    assert len(classes.CLASSES) == 25 and classes.NUM_CLASSES == 24
    assert [c.index for c in classes.CLASSES] == list(range(25))
    by_name = {c.name: c for c in classes.CLASSES}
    assert by_name["industrial area"].index == 1 and by_name["industrial area"].rgb == (200, 0, 0)
    assert by_name["irrigated field"].rgb == (150, 250, 0)
    assert by_name["river"].index == 11 and by_name["river"].rgb == (0, 0, 200)
    assert by_name["snow"].rgb == (250, 250, 250)
    assert by_name["airport"].index == 24 and by_name["airport"].rgb == (200, 150, 0)
    groups = {g: sorted(c.index for c in classes.CLASSES if c.group == g)
              for g in ("artificial", "agricultural", "natural")}
    assert groups["artificial"] == [1, 12, 18, 19, 20, 21, 22, 23, 24]
    assert groups["agricultural"] == [2, 3, 4, 5]
    assert len(groups["natural"]) == 11


def test_class_weights_follow_the_reference_formula():
    w = classes.class_weights()
    assert w[0] == 0.0
    assert w[3] == pytest.approx(1 / math.log(1.02 + 0.339))
    assert w[19] == pytest.approx(1 / math.log(1.02 + 0.0001))
    assert w[19] / w[3] > 15  # rare-class weights ~15x the irrigated-field weight


def test_gdal_colour_table_and_attribute_table():
    table = classes.gdal_color_table()
    assert table.GetCount() == 25
    assert table.GetColorEntry(12) == (250, 0, 150, 255)
    assert table.GetColorEntry(0)[3] == 0  # unlabeled is transparent
    rat = classes.gdal_attribute_table()
    assert rat.GetRowCount() == 25
    assert rat.GetValueAsString(21, 1) == "road" and rat.GetValueAsInt(21, 2) == 250


def test_qml_is_a_paletted_style_with_24_names():
    root = ET.fromstring(classes.qml().split("\n", 1)[1])
    renderer = root.find("pipe/rasterrenderer")
    assert renderer.get("type") == "paletted"
    entries = renderer.findall("colorPalette/paletteEntry")
    assert [int(e.get("value")) for e in entries] == list(range(1, 25))
    assert entries[0].get("label") == "industrial area" and entries[0].get("color") == "#c80000"


def test_legend_files():
    rows = classes.legend_csv().splitlines()
    assert rows[0] == "index,name,red,green,blue,hex,group"
    assert rows[2] == "2,paddy field,0,200,0,#00c800,agricultural"
    assert len(json.loads(classes.legend_json())["classes"]) == 24


def test_coarse_legends_are_data():
    gid5 = classes.load_collapse("gid5")
    table = gid5.lookup_table()
    assert [table[i] for i in (1, 2, 6, 8, 11, 16, 17)] == [1, 2, 3, 4, 5, 0, 0]
    coarse = classes.load_collapse("coarse")
    assert coarse.mapping[7] == 4 and coarse.mapping[16] == 7
    assert set(classes.available_collapses()) >= {"gid5", "coarse"}
    with pytest.raises(FbpError, match="not found"):
        classes.load_collapse("nope")
