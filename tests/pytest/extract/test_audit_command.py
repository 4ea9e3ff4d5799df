"""The run log says which run wiped a table: ``ops.runs.command`` of a ``python -m extract`` process
holds the flags that change what it does (``--full-refresh``) and the services it loaded
(``ops_log.new_run`` scrubs it of secrets: tests/pytest/elt/test_ops_log.py)."""

from __future__ import annotations

from collections.abc import Callable

from services.launcher import Fleet
from tests.pytest.extract.helpers import LoaderEnv, run_cli


def _commands(env: LoaderEnv) -> list[str]:
    con = env.con()
    try:
        query = "select command from ops.runs where step = 'extract' order by started_at"
        rows = con.execute(query).fetchall()
    finally:
        con.close()
    return [command for (command,) in rows]


def test_full_refresh_is_in_the_recorded_command(fleet: Fleet, loader: Callable[..., LoaderEnv]) -> None:
    env = loader(fleet)
    plain = run_cli(env, "customers")
    assert plain.returncode == 0, plain.stderr[-2000:]
    refresh = run_cli(env, "customers", "--full-refresh")
    assert refresh.returncode == 0, refresh.stderr[-2000:]

    first, second = _commands(env)
    assert "--full-refresh" not in first and "customers" in first
    assert "--full-refresh" in second.split() and "customers" in second.split()
