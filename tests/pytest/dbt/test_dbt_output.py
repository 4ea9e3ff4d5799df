"""What dbt prints under the project's wrapper: progress lines, failures in full, no colour codes.

The clean shared run (tests/pytest/support/world.py: ``python -m elt run`` with its output captured on a pipe)
shows the default output of a whole ``dbt build``; a second, failing ``python -m elt dbt build`` on a
private copy of that warehouse (one raw column renamed) shows what a failure looks like. Both are real
dbt child processes; dbt's own log file is read back from disk.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb

from services.launcher import Fleet
from tests.pytest.support.paths import REPO
from tests.pytest.support.world import Reference

ESC = "\x1b"
PROGRESS = re.compile(r"dbt: (\d+)/(\d+) nodes done, (\d+) failed, (\d+) skipped(?:, \d+ warned)?, \d+\.\d s")
NODE_LINE = re.compile(r"\d+ of \d+ (START|OK|PASS)")  # dbt's own per-node lines


def test_flow_shows_dbt_progress_and_no_colour_codes(reference: Reference, source_fleet: Fleet) -> None:
    out = reference.outcome.output
    assert ESC not in out, "a captured flow output holds no terminal escape codes"
    progress = [tuple(int(n) for n in m) for m in PROGRESS.findall(out)]
    assert len(progress) >= 3, out[-3000:]
    done = [p[0] for p in progress]
    assert done == sorted(set(done)), done  # each line further on
    final_done, total, failed, skipped = progress[-1]
    assert final_done == total and failed == 0 and skipped == 0, progress[-1]
    assert len(progress) <= total // 40 + 3, "a line per 40 nodes (and on a long wait), not per node"
    assert not NODE_LINE.search(out), "per-node lines are summed up by the progress lines"
    assert "Completed successfully" in out and re.search(r"Done\. PASS=\d+ WARN=0 ERROR=0", out)

    dbt_log = reference.workspace.root / "logs" / "dbt.log"
    text = dbt_log.read_text()
    assert "[info ]" in text and "Running with dbt=" in text  # dbt's usual text format
    assert ESC not in text, f"{dbt_log} holds terminal colour codes"
    for log in sorted(source_fleet.run_dir.glob("*.log")):  # the services' own logs
        assert ESC not in log.read_text(errors="replace"), f"{log} holds terminal colour codes"


def test_a_failed_build_shows_the_failure_as_it_happens_and_in_full(
    reference: Reference, tmp_path: Path
) -> None:
    ws = reference.workspace
    (tmp_path / "warehouse").mkdir()
    warehouse = tmp_path / "warehouse" / "shop.duckdb"
    shutil.copyfile(ws.warehouse, warehouse)
    shutil.copytree(ws.root / "target", tmp_path / "target")
    with duckdb.connect(str(warehouse)) as con:  # stg_catalog__categories selects this column
        con.execute("alter table raw_catalog.categories rename column department to dept_gone")
    env = {
        **ws.env,
        "SHOP_WAREHOUSE": str(warehouse),
        "SHOP_RUN_DIR": str(tmp_path / "run"),
        "SHOP_EXPORTS_DIR": str(tmp_path / "exports"),
        "DBT_TARGET_PATH": str(tmp_path / "target"),
        "DBT_LOG_PATH": str(tmp_path / "logs"),
        "SHOP_DBT_PROGRESS_EVERY": "2",
    }
    proc = subprocess.run(
        [sys.executable, "-m", "elt", "dbt", "build", "--select", "stg_catalog__categories+"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    out = proc.stdout
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert ESC not in out + proc.stderr
    lines = out.splitlines()
    failed_at = next(
        i for i, x in enumerate(lines) if "ERROR creating sql view model staging.stg_catalog__categories" in x
    )
    finished_at = next(i for i, x in enumerate(lines) if "Finished running" in x)
    assert failed_at < finished_at, "the failure shows when it happens, before the end of the run"
    assert "OK created" not in out and not NODE_LINE.search(out), "passing nodes show only as counts"

    tail = "\n".join(lines[finished_at:])  # dbt's end summary: node, path, message, compiled code
    assert (
        "Failure in model stg_catalog__categories (models/staging/catalog/stg_catalog__categories.sql)"
        in tail
    )
    assert "Binder Error" in tail and "department" in tail, tail
    compiled = re.search(r"compiled code at (\S+stg_catalog__categories\.sql)", tail)
    assert compiled and Path(compiled.group(1)).is_file(), tail
    assert re.search(r"Done\. PASS=\d+ WARN=0 ERROR=1 SKIP=\d+", tail), tail

    progress = [tuple(int(n) for n in m) for m in PROGRESS.findall(out)]
    assert len(progress) >= 2, out
    final_done, total, failed, skipped = progress[-1]
    assert final_done == total and failed == 1 and skipped >= 1, progress[-1]

    record = json.loads((tmp_path / "run" / "dbt_last_build.json").read_text())  # the summary still parses
    assert record["exit_code"] == 1
    assert "model.shop.stg_catalog__categories: error" in record["summary"]["failures"]
    assert ESC not in (tmp_path / "logs" / "dbt.log").read_text()
