"""The engine folder: replaced only by a complete install, tidied at start, removed without a trace."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from fbp_landcover.plugin.installer.folder import (
    RECORD,
    REMOVE_MARK,
    EngineFolder,
    activate,
    commit,
    deactivate,
    discard_new,
    first_missing,
    remove,
)


def _listing(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def _built(folder: EngineFolder, marker: str):
    work = folder.work_dir()
    (work / "pkg_marker").mkdir()
    (work / "pkg_marker" / "__init__.py").write_text(f"WHICH = {marker!r}\n")
    created = str(folder.profile / "python" / "dependencies")
    (work / RECORD).write_text(json.dumps({"created_folder": created}))
    return work


def test_layout_is_per_python_version_inside_the_profile(tmp_path):
    folder = EngineFolder(tmp_path, (3, 12))
    assert folder.site == tmp_path / "python" / "dependencies" / "fbp_landcover" / "py3.12"
    assert folder.log == tmp_path / "fbp_landcover" / "logs" / "engine-install.log"


def test_commit_activate_and_replace(tmp_path):
    folder = EngineFolder(tmp_path)
    assert activate(folder) is None  # nothing installed: sys.path unchanged
    assert str(folder.site) not in sys.path
    assert commit(folder, _built(folder, "first")) == "installed"
    try:
        assert activate(folder) == folder.site and sys.path[0] == str(folder.site)
        import pkg_marker

        assert pkg_marker.WHICH == "first"
        assert commit(folder, _built(folder, "second")) == "replaced the previous engine"
        assert (folder.site / "pkg_marker" / "__init__.py").read_text() == "WHICH = 'second'\n"
        site_name = "py{}.{}".format(*sys.version_info[:2])
        assert [p.name for p in folder.base.iterdir()] == [site_name]  # no debris
    finally:
        deactivate(folder)
        sys.modules.pop("pkg_marker", None)
    assert str(folder.site) not in sys.path


def test_start_removes_what_a_killed_install_left_and_finishes_a_pending_swap(tmp_path):
    folder = EngineFolder(tmp_path)
    commit(folder, _built(folder, "old"))
    folder.work_dir()  # an install killed mid-way (SIGKILL: no cleanup ran)
    pending = _built(folder, "new")
    pending.rename(folder.pending)  # a repair that had to wait for a restart (Windows)
    activate(folder)
    deactivate(folder)
    assert (folder.site / "pkg_marker" / "__init__.py").read_text() == "WHICH = 'new'\n"
    assert sorted(p.name for p in folder.base.iterdir()) == [folder.site.name]


def test_a_failed_first_install_leaves_no_folder(tmp_path):
    folder = EngineFolder(tmp_path)
    before = _listing(tmp_path)
    created = first_missing(folder.base)
    assert created == tmp_path / "python"
    folder.work_dir()
    discard_new(folder, created)
    assert _listing(tmp_path) == before


def test_a_failed_repair_keeps_the_installed_engine(tmp_path):
    folder = EngineFolder(tmp_path)
    commit(folder, _built(folder, "good"))
    work = folder.work_dir()
    discard_new(folder, tmp_path / "python")
    assert folder.site.is_dir() and work.is_dir()  # the caller removes its own work folder


def test_remove_leaves_the_profile_as_before(tmp_path):
    (tmp_path / "python" / "plugins").mkdir(parents=True)
    (tmp_path / "fbp_landcover" / "models").mkdir(parents=True)
    before = _listing(tmp_path)
    folder = EngineFolder(tmp_path)
    commit(folder, _built(folder, "x"))
    folder.log.parent.mkdir(parents=True, exist_ok=True)
    folder.log.write_text("log\n")
    assert remove(folder) == "removed"
    assert _listing(tmp_path) == before
    assert remove(folder) == "no engine was installed in this profile"


def test_remove_mark_is_honoured_at_start(tmp_path):
    folder = EngineFolder(tmp_path)
    commit(folder, _built(folder, "x"))
    (folder.base / REMOVE_MARK).write_text("")
    assert not folder.installed()
    assert activate(folder) is None
    assert not folder.base.exists()


def test_a_package_already_loaded_from_elsewhere_is_named(tmp_path):
    from fbp_landcover.plugin.installer.install import loaded_elsewhere

    site = tmp_path / "site"
    site.mkdir()
    expected = [f"json ({Path(json.__file__).parent})"]
    assert loaded_elsewhere(site, ["json", "not_imported_anywhere"]) == expected
