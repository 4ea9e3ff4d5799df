"""What a batch of simulator steps did, in the form other engineers' tests consume.

``created`` and ``touched`` list ids per table (``price_history`` by product id, ``deletions`` by customer
id); ``late`` lists the late commits with the records they stamped, so a test knows exactly which changes
an ``updated_since`` loader without a lag window would miss.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

TOUCHABLE = ("customers", "deletions", "products", "price_history", "orders", "payments", "refunds", "events")


class StepRecorder:
    """Collects what a batch of steps did: counts by kind, ids created and touched, late commits."""

    def __init__(self, first_step: int) -> None:
        self.first_step = first_step
        self.kinds: Counter[str] = Counter()
        self.created: dict[str, set[int]] = {t: set() for t in TOUCHABLE}
        self.touched: dict[str, set[int]] = {t: set() for t in TOUCHABLE}
        self.late: list[dict[str, Any]] = []
        self.current: list[tuple[str, int]] = []

    def touch(self, table: str, key: int, created: bool = False) -> None:
        self.touched[table].add(key)
        if created:
            self.created[table].add(key)
        self.current.append((table, key))

    def summary(self, steps: int) -> dict[str, Any]:
        return {
            "first_step": self.first_step,
            "steps": steps,
            "kinds": dict(sorted(self.kinds.items())),
            "created": {t: sorted(ids) for t, ids in self.created.items()},
            "touched": {t: sorted(ids) for t, ids in self.touched.items()},
            "late": self.late,
        }
