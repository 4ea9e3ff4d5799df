"""The stream's small parts on their own: settings validation, latency percentiles, the lock wait."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pytest

from core import lock
from elt.stream.latency import LatencyStats, latencies_seconds, percentile
from elt.stream.lockwait import LockTimeout, batch_lock
from elt.stream.settings import StreamSettings


def test_settings_reject_inconsistent_batches() -> None:
    with pytest.raises(ValueError, match="batch-cap"):
        StreamSettings(batch_max_events=100, batch_cap=10)
    with pytest.raises(ValueError, match="batch-max-seconds"):
        StreamSettings(batch_max_seconds=0)
    assert StreamSettings(batch_max_events=5, batch_cap=5).batch_cap == 5


def test_percentiles_and_stats_file(tmp_path: Path) -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 95) == 95.0
    assert percentile([], 95) is None
    stats = LatencyStats()
    stats.add([3.0, 1.0, 2.0])
    stats.batches, stats.events = 1, 3
    out = tmp_path / "stats.json"
    stats.write(out, {"state": "stopped"})
    data = json.loads(out.read_text())
    assert (data["latency_p50_s"], data["latency_max_s"], data["events"], data["state"]) == (
        2.0,
        3.0,
        3,
        "stopped",
    )


def test_latency_from_occurred_at() -> None:
    occurred = pa.array([1_000_000_000_000_000, 1_000_000_001_500_000], pa.timestamp("us", tz="UTC"))
    assert latencies_seconds(occurred, 1_000_000_003.0) == [3.0, 1.5]


def test_batch_lock_waits_for_holder_then_takes_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A batch waits (bounded) while another process holds the lock, and gets it once released."""
    warehouse = tmp_path / "shop.duckdb"
    monkeypatch.setenv("SHOP_WAREHOUSE", str(warehouse))
    monkeypatch.delenv(lock.INHERITED_FD_ENV, raising=False)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from core.lock import warehouse_lock\n"
            "with warehouse_lock('test holder'):\n    print('held', flush=True); time.sleep(1.5)",
        ],
        env={**os.environ, "SHOP_WAREHOUSE": str(warehouse)},
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(LockTimeout, match="test holder"), batch_lock("test batch", 0.3, lambda: False):
            pass
        with batch_lock("test batch", wait=30, abandon=lambda: False) as waited:
            assert waited > 0
            assert "test batch" in lock.lock_path().read_text()
    finally:
        holder.wait(timeout=30)


def test_batch_lock_abandons_on_request(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHOP_WAREHOUSE", str(tmp_path / "shop.duckdb"))
    monkeypatch.delenv(lock.INHERITED_FD_ENV, raising=False)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import time; from core.lock import warehouse_lock\n"
            "with warehouse_lock('other'):\n    print('held', flush=True); time.sleep(5)",
        ],
        env={**os.environ, "SHOP_WAREHOUSE": str(tmp_path / "shop.duckdb")},
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        asked = time.monotonic() + 0.3
        abandon = lambda: time.monotonic() > asked  # noqa: E731 - a one-line predicate
        with pytest.raises(LockTimeout, match="stop requested"), batch_lock("test batch", 60, abandon):
            pass
    finally:
        holder.kill()
        holder.wait()
