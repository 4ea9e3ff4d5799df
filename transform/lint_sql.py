"""``python -m elt lint-sql``: sqlfluff over the dbt project's SQL with the dbt templater, then the
macro style check (transform/lint_macros.py: sqlfluff cannot lint macro bodies).

The dbt templater compiles every model, and the staging models introspect the raw tables, so it
connects to the warehouse read-write (dbt-duckdb's only mode): it runs under the warehouse lock with
the real warehouse when one exists. On a fresh clone (no warehouse yet) it lints against a
throwaway empty one; files whose compilation needs raw tables are then skipped with a warning.
dbt's artifacts go to a separate target folder so linting never replaces the ``target/manifest.json``
that publishing reads.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

from core import lock, settings
from transform import dbt_runner, lint_macros

SQL_FOLDERS = ("models", "snapshots", "analyses", "tests/dbt")
DEFAULT_CONFIG = Path(__file__).with_name("sqlfluff.cfg")


def sql_paths(root: Path) -> list[str]:
    """The project's SQL folders that exist and hold at least one .sql file."""
    return [f for f in SQL_FOLDERS if (root / f).is_dir() and any((root / f).rglob("*.sql"))]


def run(paths: list[str] | None = None, wait: float = 600.0, extra: list[str] | None = None) -> int:
    """Lint ``paths`` (default: the dbt SQL folders and macros/); non-zero when either check fails."""
    root = settings.repo_root()
    if paths is None or any(Path(p).parts[:1] == ("macros",) for p in paths):
        macros_rc = lint_macros.run(root)
        paths = None if paths is None else [p for p in paths if Path(p).parts[:1] != ("macros",)]
        if paths == []:
            return macros_rc
        return max(macros_rc, _sqlfluff(root, paths, wait, extra))
    return _sqlfluff(root, paths, wait, extra)


def _sqlfluff(root: Path, paths: list[str] | None, wait: float, extra: list[str] | None) -> int:
    """sqlfluff over ``paths`` (default: the dbt SQL folders); its exit code."""
    targets = paths or sql_paths(root)
    if not targets:
        print("lint-sql: no SQL files found", file=sys.stderr)
        return 0
    sqlfluff = Path(sys.executable).with_name("sqlfluff")
    cmd = [str(sqlfluff), "lint", *targets, *(extra or [])]
    if not (root / ".sqlfluff").exists():
        cmd += ["--config", str(DEFAULT_CONFIG)]
    with tempfile.TemporaryDirectory(prefix="elt-lint-") as tmp:
        env = dbt_runner.dbt_env(need_key=False)  # the templater compiles, never queries: no key needed
        env["DBT_TARGET_PATH"] = str(Path(tmp) / "target")
        env["DBT_LOG_PATH"] = str(Path(tmp) / "logs")
        print(f"lint-sql: sqlfluff lint {' '.join(targets)} (dbt templater)", file=sys.stderr, flush=True)
        if not settings.warehouse_path().exists():
            env["SHOP_WAREHOUSE"] = str(Path(tmp) / "empty.duckdb")
            return subprocess.run(cmd, cwd=root, env=env).returncode
        with lock.warehouse_lock("lint-sql (dbt templater)", wait=wait):
            return subprocess.run(cmd, cwd=root, env=env).returncode
