"""Personal data and secrets are owner-only; the exports keep a shareable mode of their own.

A real ``python -m elt export`` over a warehouse made with the usual 0644 (the fake project), and the
session's fleet as the launcher left it: every file under the warehouse folder, the run folder and the
services' data is 0600 (folders 0700); the exports follow ``SHOP_EXPORTS_MODE`` (default 0644)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from services.launcher import Fleet
from tests.pytest.elt.helpers import EltPaths
from tests.pytest.elt.test_cli import elt


def _modes(root: Path) -> dict[str, int]:
    """Permission bits of ``root`` and everything under it (symlinks excluded)."""
    found = {str(root): stat.S_IMODE(root.stat().st_mode)}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(folder) / name
            if not path.is_symlink():
                found[str(path)] = stat.S_IMODE(path.stat().st_mode)
    return found


def _readable_by_others(root: Path) -> dict[str, str]:
    return {path: oct(mode) for path, mode in _modes(root).items() if mode & 0o077}


@pytest.mark.parametrize(("setting", "file_mode", "dir_mode"), [(None, 0o644, 0o755), ("0640", 0o640, 0o750)])
def test_private_files_and_exports_mode(
    fake_project: EltPaths,
    monkeypatch: pytest.MonkeyPatch,
    setting: str | None,
    file_mode: int,
    dir_mode: int,
) -> None:
    if setting is None:
        monkeypatch.delenv("SHOP_EXPORTS_MODE", raising=False)
    else:
        monkeypatch.setenv("SHOP_EXPORTS_MODE", setting)
    (fake_project.warehouse.with_name("shop.duckdb.tmp")).mkdir()  # a spill folder dbt left
    fake_project.run.mkdir()  # a run folder of an older checkout, made with the usual umask
    (fake_project.run / "fleet.env").write_text("# none\n")
    os.chmod(fake_project.run, 0o755)
    os.chmod(fake_project.run / "fleet.env", 0o644)
    result = elt("export")
    assert result.returncode == 0, result.stderr

    assert _readable_by_others(fake_project.warehouse.parent / "shop.duckdb") == {}
    assert _readable_by_others(fake_project.warehouse.with_name("shop.duckdb.tmp")) == {}
    assert _readable_by_others(fake_project.run) == {}

    exports = _modes(fake_project.exports)
    files = {p: m for p, m in exports.items() if Path(p).is_file()}
    folders = {p: m for p, m in exports.items() if Path(p).is_dir()}
    assert any(p.endswith(".parquet") for p in files) and any(p.endswith("manifest.json") for p in files)
    assert set(files.values()) == {file_mode}, files
    assert set(folders.values()) == {dir_mode}, folders


def test_services_data_is_owner_only(fleet: Fleet) -> None:
    assert any(fleet.data_dir.glob("*.sqlite"))
    assert _readable_by_others(fleet.data_dir) == {}
    assert _readable_by_others(fleet.run_dir) == {}
