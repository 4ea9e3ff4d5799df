"""Messages that say what to do, and the run log of the commands people run by hand (issue 13):

- a warehouse file that is not a readable DuckDB database (random bytes, a truncated copy, a damaged
  block, a directory, another user's file) is one line naming the file and the remedy, from every entry
  point, exit 1, no traceback, and the file is left exactly as it was;
- such a file is never confused with a warehouse another process holds, or with a storage fault;
- ``dbt run`` before any load says "no raw data yet: run make elt (or make extract) first", not one
  catalog error per model, while ``dbt seed`` still runs;
- ``python -m elt dbt ...`` (commands that open the warehouse) and ``python -m extract --recover`` are
  in ``ops.runs``, with the whole command line, scrubbed.

Real DuckDB files, real dbt runs, real subprocesses; no fleet (none of these reaches a service).
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import duckdb
import pytest

from core import warehouse_check
from tests.pytest.elt.helpers import EltPaths, fill_marts, write_dbt_artifacts
from tests.pytest.support.paths import REPO

UNREADABLE = "is not a readable DuckDB database"
REBUILD = "re-run make elt to rebuild it from the services"
NOBODY = 65534
# a root process without the capabilities that let root read, and chmod, any file: a plain user's view
AS_PLAIN_USER = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search,-fowner"]


def _run(
    args: list[str], *, plain_user: bool = False, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    cmd = [*(AS_PLAIN_USER if plain_user else []), sys.executable, *args]
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout)


def _real_warehouse(tmp: Path) -> bytes:
    """The bytes of a real (small) warehouse made by DuckDB itself."""
    path = tmp / "real.duckdb"
    fill_marts(path)
    return path.read_bytes()


def _random_bytes(wh: Path, tmp: Path) -> None:
    wh.write_bytes(os.urandom(64 * 1024))


def _truncated_copy(wh: Path, tmp: Path) -> None:
    data = _real_warehouse(tmp)
    wh.write_bytes(data[: len(data) // 4])  # a copy cut short (the tail of this file is free blocks)


def _damaged_block(wh: Path, tmp: Path) -> None:
    data = _real_warehouse(tmp)
    wh.write_bytes(data[:4096] + os.urandom(8192) + data[12288:])  # both database headers overwritten


def _directory(wh: Path, tmp: Path) -> None:
    wh.mkdir()


def _another_users_file(wh: Path, tmp: Path) -> None:
    wh.write_bytes(_real_warehouse(tmp))
    os.chown(wh, NOBODY, NOBODY)
    wh.chmod(0o600)


def _can_act_as_plain_user() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("setpriv") is not None


# (id, how to damage the file, the reason the line gives, run as a plain user)
DAMAGE: list[tuple[str, Callable[[Path, Path], None], str, bool]] = [
    ("random-bytes", _random_bytes, "not a DuckDB database file", False),
    ("truncated-copy", _truncated_copy, "truncated", False),
    ("damaged-block", _damaged_block, "damaged: a block does not match its checksum", False),
    ("directory", _directory, "a directory, not a file", False),
    (
        "another-users-file",
        _another_users_file,
        f"no read permission for this user: owned by uid {NOBODY}",
        True,
    ),
]
ENTRY_POINTS = {
    "run": ["-m", "elt", "run", "--no-services"],
    "export": ["-m", "elt", "export"],
    "shell": ["-m", "elt", "shell", "-c", "select 1"],
    "dbt": ["-m", "elt", "dbt", "build"],
    "extract": ["-m", "extract", "customers"],
    "recover": ["-m", "extract", "--recover", "customers"],
}


def _fingerprint(path: Path) -> str:
    if path.is_dir():
        return "dir:" + ",".join(sorted(p.name for p in path.iterdir()))
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("entry", list(ENTRY_POINTS))
@pytest.mark.parametrize(
    ("damage", "reason", "plain_user"), [d[1:] for d in DAMAGE], ids=[d[0] for d in DAMAGE]
)
def test_unreadable_warehouse_is_one_line_naming_the_file(
    elt_env: EltPaths,
    tmp_path: Path,
    entry: str,
    damage: Callable[[Path, Path], None],
    reason: str,
    plain_user: bool,
) -> None:
    """Old code: a traceback (another user's file, at the chmod to owner-only), DuckDB's bare
    ``IOException`` text, or (dbt) a build that retried the connection for many minutes."""
    if plain_user and not _can_act_as_plain_user():
        pytest.skip("needs root and setpriv to make a file of another user and act as a plain user")
    write_dbt_artifacts(elt_env.target)  # a build happened before the file was damaged: export gets as far
    damage(elt_env.warehouse, tmp_path)
    before = _fingerprint(elt_env.warehouse)

    started = time.monotonic()
    result = _run(ENTRY_POINTS[entry], plain_user=plain_user, timeout=90)
    output = result.stdout + result.stderr

    assert result.returncode == 1, output
    assert "Traceback" not in output, output
    last = result.stderr.strip().splitlines()[-1]  # the line a user reads last (after dbt's or the summary)
    assert f"warehouse {elt_env.warehouse} {UNREADABLE} ({reason}" in last, output
    if plain_user:
        assert f"chown {_user()} {elt_env.warehouse}" in last, last
    else:
        assert REBUILD in last, last
    assert time.monotonic() - started < 60, "took as long as dbt's connection retries"
    assert _fingerprint(elt_env.warehouse) == before, "the damaged file was changed: nothing may be lost"


def _user() -> str:
    import getpass

    return getpass.getuser()


def _hold_read_write(path: Path) -> subprocess.Popen[str]:
    """Another process with the warehouse open read-write (not through our lock: DuckDB's own)."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import duckdb, time; c = duckdb.connect({str(path)!r}); "
            "print('holding', flush=True); time.sleep(120)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "holding"
    return proc


def test_a_warehouse_held_by_another_process_is_not_called_damaged(elt_env: EltPaths) -> None:
    """DuckDB's lock conflict is an IOException too: it keeps its own message, and the check before dbt
    lets it through (dbt then waits for the file as configured)."""
    fill_marts(elt_env.warehouse)
    holder = _hold_read_write(elt_env.warehouse)
    try:
        with pytest.raises(duckdb.IOException) as raised:
            duckdb.connect(str(elt_env.warehouse), read_only=True)
        assert warehouse_check.explain(raised.value) is None
        warehouse_check.check()  # does not raise
        shell = _run(["-m", "elt", "shell", "-c", "select 1"])
    finally:
        holder.kill()
        holder.wait()
    assert shell.returncode == 1
    assert "the warehouse is being written" in shell.stderr and UNREADABLE not in shell.stderr, shell.stderr


def test_storage_faults_are_not_called_damaged(elt_env: EltPaths) -> None:
    """A full disk or a read-only folder has its own message (tests/pytest/faults/test_storage.py): the
    errors they raise, as OSError or as DuckDB's text, are never explained as a damaged file."""
    wh = elt_env.warehouse
    fill_marts(wh)
    for code in (errno.ENOSPC, errno.EROFS, errno.EDQUOT):
        assert warehouse_check.explain(OSError(code, os.strerror(code), str(wh))) is None
    for text in (
        f'IO Error: Cannot open file "{wh}": Read-only file system',
        f'IO Error: Could not write file "{wh}": No space left on device',
        "Out of Memory Error: failed to allocate block: could not free up space (out of disk)",
    ):
        assert warehouse_check.explain(text) is None, text
    # a damaged file that is not the warehouse (a full refresh's own database) is not "the warehouse"
    other = wh.with_name("refresh.duckdb")
    assert (
        warehouse_check.explain(
            f'IO Error: The file "{other}" exists, but it is not a valid DuckDB database file!'
        )
        is None
    )
    assert UNREADABLE in (
        warehouse_check.explain(
            f'IO Error: The file "{wh}" exists, but it is not a valid DuckDB database file!'
        )
        or ""
    )


def test_a_readable_but_not_writable_warehouse_is_not_called_unreadable(elt_env: EltPaths) -> None:
    """Another user's warehouse that this user may read: the shell works (owner-only could not be set:
    a warning), and a writer's ``Permission denied`` keeps its own message."""
    if not _can_act_as_plain_user():
        pytest.skip("needs root and setpriv to make a file of another user and act as a plain user")
    fill_marts(elt_env.warehouse)
    os.chown(elt_env.warehouse, NOBODY, NOBODY)
    elt_env.warehouse.chmod(0o644)
    shell = _run(
        ["-m", "elt", "shell", "-c", "select count(*) as n from main_marts.fct_orders"], plain_user=True
    )
    assert shell.returncode == 0, shell.stderr
    assert "500" in shell.stdout and "could not make" in shell.stderr, shell.stderr
    loader = _run(["-m", "extract", "customers"], plain_user=True)
    assert loader.returncode == 1
    assert "Traceback" not in loader.stderr and UNREADABLE not in loader.stderr, loader.stderr
    assert "Permission denied" in loader.stderr.strip().splitlines()[-1], loader.stderr


def _ops_runs(warehouse: Path) -> list[tuple[str, str, str, str | None]]:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return con.execute("select command, step, status, error from ops.runs order by started_at").fetchall()


def test_dbt_before_any_load_says_what_to_run_first(elt_env: EltPaths) -> None:
    """A fresh clone: ``dbt run`` used to fail with one "Catalog Error: ... does not exist" per model.
    The on-run-start check (macros/require_raw_data.sql) stops it with one line; the run is logged."""
    result = _run(["-m", "elt", "dbt", "run"], timeout=300)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "no raw data yet: run make elt (or make extract) first" in output, output
    assert "raw_orders" in output and "Catalog Error" not in output, output
    assert "Traceback" not in output, output
    assert _ops_runs(elt_env.warehouse) == [("python -m elt dbt run", "dbt", "failed", "dbt exited 2")]


@pytest.mark.slow  # make test: test_dbt_before_any_load_says_what_to_run_first
def test_the_raw_data_check_looks_only_at_the_selected_lineage(elt_env: EltPaths) -> None:
    """Only events and orders loaded (the stream's world): the stream's bootstrap `build -s +tag:realtime`
    passes the check (its relationship tests to other services' models are not followed), while a
    selection that reads the catalog is refused naming raw_catalog alone."""
    with duckdb.connect(str(elt_env.warehouse)) as con:
        for schema in ("raw_events", "raw_orders"):  # what a first load creates first: dlt's load log
            con.execute(f"create schema {schema}")
            con.execute(
                f"create table {schema}._dlt_loads "
                "(load_id varchar, schema_name varchar, status bigint, inserted_at timestamptz)"
            )
    realtime = _run(["-m", "elt", "dbt", "build", "-s", "+tag:realtime"], timeout=300)
    output = realtime.stdout + realtime.stderr
    assert "no raw data yet" not in output, output
    results = json.loads((elt_env.target / "run_results.json").read_text())["results"]
    hook = [r["status"] for r in results if r["unique_id"] == "operation.shop.shop-on-run-start-0"]
    assert hook == ["success"], output  # the check ran and passed (the models then miss their columns)

    catalog = _run(["-m", "elt", "dbt", "run", "-s", "stg_catalog__products"], timeout=300)
    output = catalog.stdout + catalog.stderr
    assert catalog.returncode != 0, output
    assert (
        "no raw data yet: run make elt (or make extract) first (nothing has been loaded into raw_catalog)"
        in (output)
    ), output


@pytest.mark.slow  # make test: test_recover_is_in_the_run_log (the same run-log path)
def test_manual_dbt_is_in_the_run_log_with_its_command_line(
    elt_env: EltPaths, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``python -m elt dbt seed`` (no raw data needed: not refused before a load) is one ``ops.runs`` row
    with the whole command line, a secret in it masked; ``dbt ls`` never opens the warehouse: no row."""
    secret = "s3cret-token-value-0123"
    monkeypatch.setenv("SHOP_TEST_API_TOKEN", secret)
    seed = _run(["-m", "elt", "dbt", "seed", "--vars", f'{{"probe": "{secret}"}}'], timeout=300)
    assert seed.returncode == 0, seed.stdout + seed.stderr
    rows = _ops_runs(elt_env.warehouse)
    assert len(rows) == 1, rows
    command, step, status, error = rows[0]
    assert (step, status, error) == ("dbt", "success", None)
    assert command == 'python -m elt dbt seed --vars \'{"probe": "***"}\'', command
    assert secret not in command

    listing = _run(["-m", "elt", "dbt", "ls", "--select", "stg_orders__orders"], timeout=300)
    assert listing.returncode == 0, listing.stdout + listing.stderr
    assert _ops_runs(elt_env.warehouse) == rows


def test_recover_is_in_the_run_log(elt_env: EltPaths) -> None:
    """``python -m extract --recover`` is a ``recover`` row with its command line and what it found."""
    fill_marts(elt_env.warehouse)
    result = _run(["-m", "extract", "--recover", "customers"])
    assert result.returncode == 0, result.stderr
    assert _ops_runs(elt_env.warehouse) == [
        ("python -m extract --recover customers", "recover", "success", None)
    ]
    with duckdb.connect(str(elt_env.warehouse), read_only=True) as con:
        facts = con.execute("select kind, name, detail from ops.run_inputs order by all").fetchall()
    assert ("recover", "customers", "customers: no pending load package") in facts, facts
    assert all(kind == "recover" and name == "customers" for kind, name, _ in facts), facts


def _committed(warehouse: Path, table: str) -> int:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return con.execute(
            f"select count(*) from raw_catalog.{table} where _dlt_load_id in "
            "(select load_id from raw_catalog._dlt_loads where status = 0)"
        ).fetchone()[0]


@pytest.mark.slow
def test_moving_a_damaged_warehouse_away_and_re_running_rebuilds_it(
    elt_env: EltPaths, fleet_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the line tells the user to do works: with the damaged file moved away, the next load (its dlt
    state still that of the old file) loads everything again, not only what changed since."""
    for name, value in fleet_env.items():
        monkeypatch.setenv(name, value)
    assert _run(["-m", "extract", "catalog"]).returncode == 0
    products, categories = (
        _committed(elt_env.warehouse, "products"),
        _committed(elt_env.warehouse, "categories"),
    )
    assert products > 0 and categories > 0

    data = elt_env.warehouse.read_bytes()
    elt_env.warehouse.write_bytes(data[:4096] + os.urandom(8192) + data[12288:])
    broken = _run(["-m", "extract", "catalog"])
    assert broken.returncode == 1 and UNREADABLE in broken.stderr.strip().splitlines()[-1], broken.stderr

    elt_env.warehouse.rename(elt_env.warehouse.with_name("shop.duckdb.damaged"))
    again = _run(["-m", "extract", "catalog"])
    assert again.returncode == 0, again.stderr
    assert (_committed(elt_env.warehouse, "products"), _committed(elt_env.warehouse, "categories")) == (
        products,
        categories,
    )
