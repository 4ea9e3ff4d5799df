"""The simulator: a separate process that keeps changing the shop while the services serve it.

Each change is one business action (a sign-up, an order, a payment, a shipment, a price change, …)
written as a few short transactions, one per service file, in an order that never lets a reader see an
effect before its cause (payments before the order turns ``paid``, the order before its event).

Determinism: the random stream is seeded from the seed and the number of steps already applied (kept in
``events.sqlite`` meta as ``simulator_steps``), so two simulators on identical data with the same seed make
identical choices. Timestamps come from ``clock`` (the wall clock by default; tests inject a fake one).

Late commits: with ``late_commit_share`` > 0 that share of changes stamp their records ``late_seconds``
in the past (never before the record's previous ``updated_at`` or a cause it depends on) while being
committed now: exactly what an ``updated_since`` loader without a lag window silently misses.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from services.simulator.changes import KINDS, Changes
from services.simulator.recorder import StepRecorder
from services.simulator.state import SimState, load_state
from services.store.db import connect, db_path, get_meta, set_meta, transaction
from services.store.schema import SERVICES
from services.store.timefmt import US_PER_S, fmt_us, now_us

log = logging.getLogger("services.simulator")


class Simulator(Changes):
    """Applies realistic changes to the five service files (see module docstring)."""

    def __init__(
        self,
        data_dir: Path | str,
        seed: int,
        *,
        clock: Callable[[], int] | None = None,
        late_seconds: float = 5.0,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.seed = seed
        self.clock = clock or now_us
        self.late_us = int(late_seconds * US_PER_S)
        missing = [str(db_path(self.data_dir, s)) for s in SERVICES if not db_path(self.data_dir, s).exists()]
        if missing:  # opening a writer would create empty files the launcher might then trust
            raise FileNotFoundError(f"no generated service data: missing {', '.join(missing)}")
        self.cons = {s: connect(self.data_dir, s) for s in SERVICES}
        self.state: SimState = load_state(self.cons)
        self.steps_done = int(get_meta(self.cons["events"]).get("simulator_steps", 0))
        self.rng = random.Random(f"sim:{seed}:{self.steps_done}")
        self.events_rng = random.Random(f"sim-events:{seed}:{self.state.next_ids['event']}")
        self.last_us = self.state.clock_floor_us
        self.kind_names = list(KINDS)
        self.kind_weights = list(KINDS.values())
        self._rec: StepRecorder | None = None
        self._base_us = 0

    def close(self) -> None:
        """Close the service files."""
        for con in self.cons.values():
            con.close()

    def __enter__(self) -> Simulator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- time --------------------------------------------------------------------------------------
    def now(self) -> int:
        """Strictly increasing "now": the clock, but never at or before the last stamp or the data's end."""
        self.last_us = max(self.clock(), self.last_us + 1)
        return self.last_us

    def stamp(self, *floors_us: int) -> int:
        """This change's time for a record: ``now`` (or ``now - late`` for a late commit) above its floors."""
        return max(self._base_us, *(f + 1 for f in floors_us)) if floors_us else self._base_us

    # -- the public API ----------------------------------------------------------------------------
    def step(self, n: int = 1, late_commit_share: float = 0.0) -> dict[str, Any]:
        """Apply exactly ``n`` changes; returns counts by kind and every id created or touched."""
        rec = StepRecorder(self.steps_done)
        self._rec = rec
        for index in range(n):
            kind = self.rng.choices(self.kind_names, self.kind_weights)[0]
            late = self.rng.random() < late_commit_share
            committed_us = self.now()
            self._base_us = (
                max(committed_us - self.late_us, self.state.late_floor_us + 1) if late else committed_us
            )
            rec.current = []
            applied = self.apply(kind)
            rec.kinds[applied] += 1
            if late:
                rec.late.append(
                    {
                        "step": self.steps_done + index,
                        "kind": applied,
                        "records": [list(r) for r in rec.current],
                        "committed_at": fmt_us(committed_us),
                        "stamped_at": fmt_us(self._base_us),
                    }
                )
        self.steps_done += n
        with transaction(self.cons["events"]):
            set_meta(self.cons["events"], {"simulator_steps": self.steps_done, "simulator_seed": self.seed})
        self._rec = None
        return rec.summary(n)

    def change(self, kind: str, n: int = 1) -> dict[str, Any]:
        """Apply ``n`` changes of one ``kind`` (e.g. ``price_change``: the catalog only), stamped now like
        ``step``'s: a change confined to one service, for checks of what a build after it touches."""
        rec = StepRecorder(self.steps_done)
        self._rec = rec
        for _ in range(n):
            self._base_us = self.now()
            rec.current = []
            rec.kinds[self.apply(kind)] += 1
        self._rec = None
        return rec.summary(n)

    def run(
        self,
        rate: float,
        duration: float | None = None,
        stop_event: threading.Event | None = None,
        late_commit_share: float = 0.0,
    ) -> dict[str, int]:
        """Apply ``rate`` changes per second until ``duration`` passes or ``stop_event`` is set."""
        if rate <= 0:
            raise ValueError("rate must be positive")
        stop = stop_event or threading.Event()
        started = time.monotonic()
        done = 0
        totals: Counter[str] = Counter()
        last_log = started
        while not stop.is_set():
            elapsed = time.monotonic() - started
            if duration is not None and elapsed >= duration:
                break
            due = int(elapsed * rate) - done
            if due > 0:
                summary = self.step(min(due, max(1, int(rate))), late_commit_share)
                done += summary["steps"]
                totals.update(summary["kinds"])
            else:
                stop.wait(min(0.05, 1 / rate))
            if time.monotonic() - last_log >= 10:
                last_log = time.monotonic()
                log.info("simulator: %d changes in %.0f s (%s)", done, last_log - started, dict(totals))
        log.info(
            "simulator stopped after %d changes in %.1f s: %s", done, time.monotonic() - started, dict(totals)
        )
        return dict(totals)

    def run_events(
        self,
        rate_per_s: float,
        duration: float | None = None,
        stop_event: threading.Event | None = None,
        tick_s: float = 0.05,
    ) -> int:
        """Steady events-only producer: about ``rate_per_s`` browse events per second, one commit per tick."""
        if rate_per_s <= 0:
            raise ValueError("rate must be positive")
        stop = stop_event or threading.Event()
        started = time.monotonic()
        emitted = 0
        pending: list[dict[str, Any]] = []
        while not stop.is_set():
            elapsed = time.monotonic() - started
            if duration is not None and elapsed >= duration:
                break
            due = int(elapsed * rate_per_s) - emitted
            if due > 0:
                while len(pending) < due:
                    pending.extend(doc for _at, doc in self._browse_events(self.events_rng, 0))
                batch, pending = pending[:due], pending[due:]
                at = fmt_us(self.now())
                for doc in batch:
                    doc["occurred_at"] = at
                self._write_events(batch)
                emitted += len(batch)
            stop.wait(tick_s)
        log.info("events producer stopped: %d events in %.1f s", emitted, time.monotonic() - started)
        return emitted
