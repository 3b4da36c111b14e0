"""The one atomic-write mechanism (engine.io.atomic): hidden partial names tied to their target, a set of
outputs committed together with their GDAL sidecars, and nothing left behind by a failure."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from fbp_landcover.engine.errors import FbpError
from fbp_landcover.engine.io.atomic import (
    AtomicFiles,
    atomic_path,
    check_destination,
    partial_path,
    partials_of,
    write_text_atomic,
)


def test_partial_names_are_hidden_tied_to_their_target_and_never_reused(tmp_path):
    target = tmp_path / "landcover.tif"
    a, b = partial_path(target), partial_path(target)
    assert a != b and a.is_file() and b.is_file()  # made by mkstemp: each one exists, each one is new
    for p in (a, b):
        assert p.parent == tmp_path
        assert p.name.startswith(".landcover.tif.") and p.name.endswith(".partial.tif")
    assert partials_of(target) == sorted([a, b])
    assert partials_of(tmp_path / "landcover.qml") == []  # another target of the same stem is not confused


def test_a_set_is_committed_together_with_its_sidecars(tmp_path):
    old = tmp_path / "map.tif"
    old.write_text("old")
    (tmp_path / "map.tif.ovr").write_text("stale overviews of the old map")
    with AtomicFiles() as files:
        tmp = files.temp_for(old)
        tmp.write_text("new")
        (tmp.parent / (tmp.name + ".aux.xml")).write_text("<PAMDataset/>")
        files.write_text(tmp_path / "map.qml", "<qgis/>")
        assert old.read_text() == "old" and not (tmp_path / "map.qml").exists()  # nothing shows before commit
    assert old.read_text() == "new" and (tmp_path / "map.qml").read_text() == "<qgis/>"
    assert (tmp_path / "map.tif.aux.xml").read_text() == "<PAMDataset/>"
    assert not (tmp_path / "map.tif.ovr").exists()
    assert oct(os.stat(old).st_mode & 0o777) == oct(0o644)
    assert partials_of(old) == [] and partials_of(tmp_path / "map.qml") == []


def test_a_failure_leaves_the_old_files_and_no_partial(tmp_path):
    target = tmp_path / "report.json"
    target.write_text("old")
    with pytest.raises(KeyboardInterrupt), AtomicFiles() as files:
        files.write_text(target, "half")
        files.write_text(tmp_path / "report.csv", "half")
        raise KeyboardInterrupt
    assert target.read_text() == "old" and not (tmp_path / "report.csv").exists()
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("disk trouble")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.json"]
    write_text_atomic(target, "new")
    assert target.read_text() == "new" and sorted(p.name for p in tmp_path.iterdir()) == ["report.json"]


def test_check_destination(tmp_path):
    (tmp_path / "exists.tif").write_text("x")
    with pytest.raises(FbpError, match="already exists"):
        check_destination(tmp_path / "exists.tif", False)
    assert check_destination(tmp_path / "exists.tif", True) == tmp_path / "exists.tif"
    with pytest.raises(FbpError, match="does not exist; create it"):
        check_destination(tmp_path / "missing" / "m.tif", False)
    assert check_destination(tmp_path / "made" / "m.tif", False, make_folder=True).parent.is_dir()


def test_a_discard_first_closes_what_still_writes(tmp_path):
    closed = []

    class Writer:
        def close(self):
            closed.append(True)

    with pytest.raises(ValueError), AtomicFiles() as files:
        files.closing(Writer())
        files.write_text(tmp_path / "x.tif", "half")
        raise ValueError
    assert closed == [True] and list(tmp_path.iterdir()) == []


def test_a_failure_during_the_renames_puts_every_old_file_back(tmp_path):
    """A folder where the third output should go (issue 14): the first two were already renamed in; they are
    taken back, the old map and its sidecar are restored, and nothing of the new set or any partial is
    left."""
    (tmp_path / "m.tif").write_text("old map")
    (tmp_path / "m.tif.aux.xml").write_text("old sidecar")
    (tmp_path / "areas.json").mkdir()
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(OSError), AtomicFiles() as files:
        files.write_text(tmp_path / "m.tif", "new map")
        files.write_text(tmp_path / "m.qml", "<qgis/>")
        files.write_text(tmp_path / "areas.json", "{}")
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert (tmp_path / "m.tif").read_text() == "old map"
    assert (tmp_path / "m.tif.aux.xml").read_text() == "old sidecar"
    assert (tmp_path / "areas.json").is_dir()


def test_stale_partials_of_an_output_are_removed_and_others_kept(tmp_path):
    from fbp_landcover.engine.io.atomic import check_outputs

    stale = [partial_path(tmp_path / "m.tif"), partial_path(tmp_path / "m.qml")]
    Path(str(stale[0]) + ".aux.xml").write_text("<PAMDataset/>")
    other = partial_path(tmp_path / "n.tif")  # another run's output: not ours to remove
    check_outputs([("map", tmp_path / "m.tif", (".tif",)), ("style", tmp_path / "m.qml", None)])
    assert sorted(p.name for p in tmp_path.iterdir()) == [other.name]
