"""The panel's area table read from the engine's own area files: the masked row, from JSON and CSV alike."""

from __future__ import annotations

import pytest

from fbp_landcover.engine.products.areas import table_csv, table_json
from fbp_landcover.plugin.area_table import AreaTable, read_rows

ROWS = [{"index": i, "name": f"class {i}", "hex": "#102030", "pixels": p, "hectares": round(p * 0.16, 4),
         "km2": round(p * 0.0016, 6), "percent": round(100 * p / 300, 4)}
        for i, p in ((1, 100), (2, 200), (3, 0))]
MASKED = {"option": "auto", "found": "UDM2", "used": ["UDM2 clear"], "masked_pixels": 50,
          "masked_km2": 0.08, "masked_share": 0.1429}


@pytest.mark.parametrize("kind", ["json", "csv"])
def test_masked_km2_is_a_row_of_its_own_outside_the_total(kind, tmp_path):
    csv_path, json_path = tmp_path / "a.csv", tmp_path / "a.json"
    csv_path.write_text(table_csv(ROWS, MASKED))
    json_path.write_text(table_json(ROWS, "map.tif", MASKED))
    rows, masked, warning = read_rows(str(json_path) if kind == "json" else None, str(csv_path))
    assert [int(r["index"]) for r in rows] == [2, 1] and masked == pytest.approx(0.08) and warning == ""
    table = AreaTable()
    table.show_rows((rows, masked, warning), str(csv_path), "map")
    assert table.warning.isHidden()
    for unit, total, masked_text in (("km2", "0.4800", "0.0800"), ("ha", "48.00", "8.00")):
        table.set_unit(unit)
        lines = table.lines()
        assert lines[-2] == ["", "Total", total, "100.0"]
        assert lines[-1] == ["", "Masked (not classified)", masked_text, ""]
        assert table.table.rowCount() == 4 and table.table.item(3, 2).text() == masked_text
        assert table.table.item(2, 0).font().bold() and not table.table.item(3, 0).font().bold()


def test_no_mask_no_masked_row(tmp_path):
    csv_path = tmp_path / "a.csv"
    csv_path.write_text(table_csv(ROWS))
    rows, masked, warning = read_rows(None, str(csv_path))
    assert masked is None and len(rows) == 2
    table = AreaTable()
    table.show_rows((rows, masked, warning), str(csv_path), "map")
    assert table.lines()[-1][1] == "Total" and table.table.rowCount() == 3


def test_areas_without_georeferencing_are_flagged(tmp_path):
    json_path = tmp_path / "a.json"
    json_path.write_text(table_json(ROWS, "map.tif", None, "the raster has no georeferencing, so …"))
    rows, masked, warning = read_rows(str(json_path), None)
    table = AreaTable()
    table.show_rows((rows, masked, warning), "", "map")
    assert not table.warning.isHidden()
    assert table.warning.text() == "Not real areas: the raster has no georeferencing, so …"
