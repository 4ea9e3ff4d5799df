"""``ops.runs.command`` of ``python -m elt export`` holds the flags that change what it publishes
(``--force`` publishes after a failed build), so the log shows which run did."""

from __future__ import annotations

import duckdb

from tests.pytest.elt.helpers import EltPaths, write_dbt_artifacts
from tests.pytest.elt.test_cli import elt


def test_forced_export_is_recorded_as_forced(fake_project: EltPaths) -> None:
    write_dbt_artifacts(fake_project.target, failed=True)
    forced = elt("export", "--force")
    assert forced.returncode == 0, forced.stderr
    write_dbt_artifacts(fake_project.target)
    plain = elt("export")
    assert plain.returncode == 0, plain.stderr
    with duckdb.connect(str(fake_project.warehouse), read_only=True) as con:
        rows = con.execute("select command from ops.runs where step = 'export' order by started_at")
        commands = [command for (command,) in rows.fetchall()]
    assert commands == ["python -m elt export --force", "python -m elt export"]
