"""Secrets and audit, checked last (marker ``audit_last``, ordered by tests/pytest/conftest.py) so they
also cover every workspace the suite left behind, whatever the file names.

Secrets: no credential — the fleet's API keys, tokens, OAuth client secret, admin token, the PII key, or a
wrong credential someone configured — appears in any captured log or error, dbt log or artifact, dlt
trace or state file, warehouse table, Parquet file or manifest, after runs that failed (wrong credential,
exhausted retries, kills, poison packages, wrong CA in the other cases of the session).

Audit: ``ops.runs`` records every run, failed ones included: who (user, host), what (command, step),
which code (git revision), when, how it ended (status, error) and, in ``ops.run_tables``, what it wrote.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from tests.pytest.support.workspace import Workspace, flow, make_workspace
from tests.pytest.support.world import PII_KEY, Reference

pytestmark = pytest.mark.audit_last

WRONG_TOKEN = "wrong-catalog-token-Zq7x9Lk2Pv"  # configured by mistake: still a secret
NEVER_SCANNED = {"fleet.env", "pii.key"}  # the credential stores themselves (mode 600)


@pytest.fixture(scope="module")
def failed_workspace(source_fleet, reference: Reference, tmp_path_factory) -> Workspace:
    """A flow failing at extract: a wrong credential on one service, exhausted retries on another."""
    ws = make_workspace(tmp_path_factory.mktemp("secrets-failed"), source_fleet.env(), PII_KEY)
    ws.env["SOURCES__CATALOG__TOKEN"] = WRONG_TOKEN
    source_fleet.admin("orders").set_faults({"error_burst": 50})
    try:
        out = flow(ws)
    finally:
        source_fleet.admin("orders").clear_faults()
    assert out.returncode == 1, out.describe()
    assert "elt run FAILED at step 'extract'" in out.output, out.describe()
    assert "catalog" in out.output and "403" in out.output, out.describe()
    return ws


def _secrets(source_fleet) -> dict[str, str]:
    env = source_fleet.env()
    found = {k: v for k, v in env.items() if not k.endswith("BASE_URL")}
    found["SHOP_PII_KEY"] = PII_KEY
    found["wrong SOURCES__CATALOG__TOKEN"] = WRONG_TOKEN
    return found


def _scan_files(root: Path, secrets: dict[str, str]) -> list[str]:
    hits = []
    for path in root.rglob("*"):
        if not path.is_file() or path.name in NEVER_SCANNED or path.suffix in (".duckdb", ".wal"):
            continue
        data = path.read_bytes()
        for name, value in secrets.items():
            if value.encode() in data:
                hits.append(f"{name} in {path}")
    return hits


def _scan_warehouse(path: Path, secrets: dict[str, str]) -> list[str]:
    """Every text column of every table and view, searched for every secret: one scan per relation
    (one count per column and secret in a single SELECT), not one query per column and secret."""
    hits = []
    with duckdb.connect(str(path), read_only=True) as con:
        columns = con.execute(
            "select table_catalog, table_schema, table_name, column_name from information_schema.columns "
            "where data_type = 'VARCHAR' order by all"
        ).fetchall()
        views = set(
            con.execute(
                "select table_catalog, table_schema, table_name from information_schema.tables "
                "where table_type = 'VIEW'"
            ).fetchall()
        )
        by_relation: dict[tuple[str, str, str], list[str]] = {}
        for catalog, schema, table, column in columns:
            by_relation.setdefault((catalog, schema, table), []).append(column)
        for (catalog, schema, table), names in by_relation.items():
            checks = [(column, name, value) for column in names for name, value in secrets.items()]
            counts = ", ".join(f'count(*) filter (where contains("{column}", ?))' for column, _, _ in checks)
            # fully qualified: a warehouse file named ops.duckdb makes a bare "ops" ambiguous
            try:
                found = con.execute(
                    f'select {counts} from "{catalog}"."{schema}"."{table}"', [v for _, _, v in checks]
                ).fetchone()
            except duckdb.BinderException:
                # a view a deliberately broken model left behind (tests/pytest/dbt/test_dbt_output.py) no
                # longer binds: it holds no data of its own, the tables it reads are scanned themselves
                if (catalog, schema, table) in views:
                    continue
                raise
            for (column, name, _), n in zip(checks, found, strict=True):
                if n:
                    hits.append(f"{name} in {schema}.{table}.{column} ({n} rows)")
    return hits


def test_no_secret_anywhere_after_failed_runs(failed_workspace, source_fleet, tmp_path_factory) -> None:
    secrets = _secrets(source_fleet)
    assert len(secrets) >= 8
    base = tmp_path_factory.getbasetemp()
    scanned = list(base.rglob("captured/*.log"))
    assert scanned, "no captured output to search"
    assert any("FAILED" in p.read_text(errors="replace") for p in scanned)
    hits = _scan_files(base, secrets)
    for warehouse in base.rglob("*.duckdb"):
        hits += _scan_warehouse(warehouse, secrets)
    assert not hits, "secrets leaked:\n" + "\n".join(hits[:20])


def _runs(ws: Workspace) -> list[dict]:
    with duckdb.connect(str(ws.warehouse), read_only=True) as con:
        cur = con.execute("select * from ops.runs order by started_at")
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def test_ops_log_records_successful_and_failed_runs(failed_workspace, reference: Reference) -> None:
    for ws, expected in ((reference.workspace, "success"), (failed_workspace, "failed")):
        runs = _runs(ws)
        by_step = {r["step"]: r for r in runs if r["command"].startswith("python -m elt run")}
        assert by_step["run"]["status"] == expected, runs
        assert by_step["extract"]["status"] == expected, runs
        for r in runs:
            assert r["user"] and r["host"] and r["git_rev"], f"run without who/where/which code: {r}"
            assert r["finished_at"] is not None and r["status"] in ("success", "failed"), r
        if expected == "failed":
            assert "dbt" not in by_step and "export" not in by_step, "steps after a failed extract ran"
            assert "extract" in by_step["run"]["error"], by_step["run"]
            loader = [r for r in runs if r["command"].startswith("python -m extract")]
            assert loader and loader[-1]["status"] == "failed" and "catalog" in loader[-1]["error"]
        else:
            assert {"dbt", "export"} <= set(by_step), runs


def test_ops_log_records_what_each_run_wrote(reference: Reference) -> None:
    with duckdb.connect(str(reference.workspace.warehouse), read_only=True) as con:
        wrote = con.execute(
            "select r.step, t.source, t.table_name, t.rows from ops.run_tables t "
            "join ops.runs r using (run_id) where r.command like 'python -m elt run%'"
        ).fetchall()
    steps = {s for s, *_ in wrote}
    assert {"extract", "export"} <= steps, wrote
    assert ("extract", "raw_orders", "orders", 1000) in [(s, src, t, n) for s, src, t, n in wrote]


def test_ops_log_records_what_each_run_read(reference: Reference) -> None:
    """Each run says what it read: the loader its services' base URLs and cursor positions, the dbt
    build the committed raw loads it built from, the export the dbt invocation it published."""
    with duckdb.connect(str(reference.workspace.warehouse), read_only=True) as con:
        read = con.execute(
            "select r.command, r.step, i.kind, i.name, i.detail "
            "from ops.run_inputs i join ops.runs r using (run_id)"
        ).fetchall()
        committed = {
            (schema, load_id)
            for schema in ("raw_customers", "raw_catalog", "raw_orders", "raw_payments", "raw_events")
            for (load_id,) in con.execute(
                f"select load_id from {schema}._dlt_loads where status = 0"
            ).fetchall()
        }
    sources = {n: d for c, _, k, n, d in read if c.startswith("python -m extract") and k == "source"}
    assert set(sources) == {"customers", "catalog", "orders", "payments", "events"}, read
    assert all(d.startswith("http://127.0.0.1:") and "; cursors: " in d for d in sources.values()), sources
    raw_loads = {(n, d) for c, s, k, n, d in read if s == "dbt" and k == "raw_load"}
    assert {n for n, _ in raw_loads} == {s for s, _ in committed}, read
    assert raw_loads <= committed, "dbt read loads that are not committed"
    invocations = [n for _, s, k, n, _ in read if s == "export" and k == "dbt_invocation"]
    assert invocations and all(n and n != "None" for n in invocations), read
