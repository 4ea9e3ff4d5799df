"""The stream's small parts on their own: settings validation, latency percentiles, the lock wait, and
the OpenAPI check before the first poll (against a small server on 127.0.0.1, no fleet)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pyarrow as pa
import pytest

from core import lock
from elt.stream.latency import LatencyStats, latencies_seconds, percentile
from elt.stream.lockwait import LockTimeout, batch_lock
from elt.stream.settings import StreamSettings
from tests.pytest.extract.faultserver import fault_server
from tests.pytest.support.envs import isolated_env
from tests.pytest.support.paths import REPO


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


def test_a_drifted_events_document_stops_the_stream_before_any_poll(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The events service's own document with ``session_id`` renamed: the stream exits 1 with the batch
    loader's drift message, and the server saw a request for its document and none for events."""
    for name in ("SHOP_EVENTS_TOKEN", "SHOP_ADMIN_TOKEN"):  # the app reads its settings on import
        monkeypatch.setenv(name, "document-only")
    monkeypatch.setenv("SHOP_SERVICES_DATA", str(tmp_path / "services-data"))
    from services.events.app import app

    doc = app.openapi()
    schemas = doc["components"]["schemas"]
    (event,) = [s for s in schemas.values() if "session_id" in s.get("properties", {})]
    event["properties"]["session_key"] = event["properties"].pop("session_id")
    if "session_id" in event.get("required", []):
        event["required"] = ["session_key" if f == "session_id" else f for f in event["required"]]
    seen: list[str] = []

    def answer(h) -> None:  # type: ignore[no-untyped-def]
        path = h.path.split("?", 1)[0]
        seen.append(path)
        body = orjson.dumps(doc) if path == "/openapi.json" else b"[]"
        h.send_response(200 if path == "/openapi.json" else 404)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    with fault_server(answer) as srv:
        env = isolated_env(
            tmp_path,
            "SOURCES__",
            SOURCES__EVENTS__BASE_URL=srv.url,  # type: ignore[attr-defined]
            SOURCES__EVENTS__TOKEN="stream-drift-token",
        )
        proc = subprocess.run(
            [sys.executable, "-m", "elt", "stream", "--once", "--no-marts", "--lock-wait", "5"],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert "no longer matches" in out and "session_id" in out, out
    assert "Traceback" not in out
    assert seen and set(seen) == {"/openapi.json"}, seen
