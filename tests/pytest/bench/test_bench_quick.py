"""Smoke check of the benchmark harness: `python -m bench --quick` runs end to end and every measured run
it reports is correct (row counts and money sums match the services' data). No speed assertions: speed
is what the benchmark reports, not what a test can promise on a shared 2-core machine.

It runs in its own work folder, so the Meltano peer is never built here (a cold pip build takes minutes)
and must be reported as skipped with a reason rather than silently left out.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.pytest.support.paths import REPO

# The default smoke run leaves out `elt run` (dbt dominates it: minutes on a busy 2-core machine); the
# slow case below covers it through the publish/scale/stream/incremental groups.
GROUPS = "pull,singer"


def run_bench(cmd: list[str], timeout: float) -> subprocess.CompletedProcess:
    """Run the harness; on timeout stop it with SIGTERM (not SIGKILL) so it stops its service fleet."""
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.terminate()
        out, err = proc.communicate(timeout=120)
        pytest.fail(f"python -m bench did not finish in {timeout}s: {err[-2000:]}")
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


@pytest.fixture(scope="module")
def quick_results(tmp_path_factory: pytest.TempPathFactory) -> dict:
    work = tmp_path_factory.mktemp("bench-work")
    out = work / "results"
    cmd = [sys.executable, "-m", "bench", "--quick", "--only", GROUPS, "--skip", "elt run", "--no-profile"]
    proc = run_bench([*cmd, "--work", str(work), "--out", str(out)], timeout=540)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (out / "latest.md").exists()
    return json.loads((out / "latest.json").read_text())


def test_records_machine_and_versions(quick_results: dict) -> None:
    machine = quick_results["machine"]
    assert machine["cpus"] >= 1 and machine["date_utc"].endswith("Z")
    assert machine["versions"]["duckdb"] and machine["versions"]["dlt"]
    assert quick_results["config"]["quick"] is True


def test_every_group_is_measured_or_says_why(quick_results: dict) -> None:
    for name in GROUPS.split(","):
        group = quick_results["groups"][name]
        assert group["subjects"] or group["unavailable"], f"{name}: neither measured nor explained"
        for subject, why in group["unavailable"].items():
            assert why.strip(), f"{name}/{subject}: unavailable without a reason"


def test_limit_client_and_seed_peer_are_correct(quick_results: dict) -> None:
    pull = quick_results["groups"]["pull"]["subjects"]
    assert quick_results["groups"]["pull"]["unavailable"]["elt run"] == "skipped on request (--skip)"
    for subject in ("limit client", "seed-style peer", "extract --full-refresh"):
        stats = pull[subject]
        assert stats["valid"] == stats["runs"] == 1, stats["invalid"]
        assert stats["rows"] > 0 and stats["rows_per_s"] > 0
        assert stats["maxrss_median_mb"] > 0 and stats["cpu_median_s"] > 0


def test_every_measured_run_passed_its_check(quick_results: dict) -> None:
    for name, group in quick_results["groups"].items():
        for run in group["runs"]:
            assert run["ok"], f"{name}/{run['subject']}: {run['check']}"
            assert run["returncode"] == 0


def test_fleet_truth_matches_the_limit_client(quick_results: dict) -> None:
    truth_rows = next(iter(quick_results["fleets"].values()))["rows"]
    limit = quick_results["groups"]["pull"]["subjects"]["limit client"]
    assert limit["rows"] == sum(truth_rows.values())


def test_meltano_is_skipped_with_a_reason_in_quick_mode(quick_results: dict) -> None:
    singer = quick_results["groups"]["singer"]
    assert "Meltano/Singer peer" in singer["unavailable"]
    assert "skipped in --quick" in singer["unavailable"]["Meltano/Singer peer"]


@pytest.mark.slow
def test_quick_publish_scale_incremental_groups_are_correct(tmp_path: Path) -> None:
    """The remaining groups of `--quick`, `elt run` included (many minutes on a busy machine: slow)."""
    out = tmp_path / "results"
    cmd = [
        sys.executable,
        "-m",
        "bench",
        "--quick",
        "--only",
        "publish,scale,stream,incremental",
        "--no-profile",
    ]
    proc = run_bench([*cmd, "--work", str(tmp_path / "work"), "--out", str(out)], timeout=1500)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((out / "latest.json").read_text())
    for name in ("publish", "scale", "stream", "incremental"):
        group = results["groups"][name]
        assert group["runs"], f"{name}: nothing measured ({group['unavailable']})"
        for run in group["runs"]:
            assert run["ok"], f"{name}/{run['subject']}: {run['check']}"
    ratios = {r["name"]: r for r in results["groups"]["incremental"]["ratios"]}
    assert ratios["incremental ÷ full re-pull"]["value"] is not None
    stream = {r["name"]: r for r in results["groups"]["stream"]["ratios"]}
    assert stream["stream p95"]["value"] is not None
    assert stream["stream cores"]["value"] is not None  # the probe read the stream's /proc CPU
