"""A user's own source in ``sources/`` never changes what the suites load (tests/pytest/support/sources.py).

The suites start the shop's fleet and expect every loaded source to answer; a user who adds a file for a
service that is down (or elsewhere) must still see ``make test`` pass. Real processes: the loader CLI
against the session fleet, on a copy of the real ``sources/`` plus one file for a closed port."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import duckdb

from services.launcher import Fleet
from tests.pytest.extract.helpers import FAST_RETRIES, LoaderEnv, run_cli
from tests.pytest.support.ports import closed_port
from tests.pytest.support.sources import REPO, embedded_copy

TICKETS = """\
auth: none
endpoints:
  - name: tickets
    path: /api/tickets
    primary_key: id
    records: $
    paginator: none
    incremental: snapshot
    fields: {id: int, title: str}
"""


def _datasets(warehouse: Path) -> set[str]:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        rows = con.execute("select distinct schema_name from information_schema.schemata").fetchall()
    return {name for (name,) in rows if name.startswith("raw_") and not name.endswith("_staging")}


def test_an_unreachable_user_source_does_not_change_the_suites_load(
    fleet: Fleet, loader: Callable[..., LoaderEnv], tmp_path: Path
) -> None:
    user_sources = tmp_path / "sources"
    shutil.copytree(REPO / "sources", user_sources)
    shop = {p.stem for p in user_sources.glob("*.yml")}
    (user_sources / "tickets.yml").write_text(TICKETS)
    env = loader(fleet, SOURCES__TICKETS__BASE_URL=f"http://127.0.0.1:{closed_port()}", **FAST_RETRIES)

    suite = run_cli(env, extra={"SHOP_SOURCES_DIR": str(embedded_copy(user_sources, tmp_path / "suite"))})
    assert suite.returncode == 0, suite.stderr[-3000:]
    assert _datasets(env.warehouse) == {f"raw_{name}" for name in shop}

    # the same folder loaded as a user's `make elt` would: the extra source is really there and down
    everything = run_cli(env, extra={"SHOP_SOURCES_DIR": str(user_sources)})
    assert everything.returncode != 0
    assert "tickets" in everything.stderr
