"""Timestamps as the services serve them: ISO 8601 UTC, microseconds, trailing ``Z``.

Generator and simulator do their arithmetic on integer microseconds since the epoch (cheap, exact,
no tz pitfalls) and render text only when a record is written. Rendering caches the date part per
day because the generator formats tens of millions of timestamps at large scales.
"""

from __future__ import annotations

import time
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache

US_PER_S = 1_000_000
US_PER_DAY = 86_400 * US_PER_S
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_DATE = date(1970, 1, 1)


@lru_cache(maxsize=8192)
def _day_text(day: int) -> str:
    return (_EPOCH_DATE + timedelta(days=day)).isoformat()


def fmt_us(us: int) -> str:
    """Render epoch microseconds as ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` (fixed width: text order = time order)."""
    day, rest = divmod(us, US_PER_DAY)
    secs, micros = divmod(rest, US_PER_S)
    hours, secs = divmod(secs, 3600)
    minutes, secs = divmod(secs, 60)
    return f"{_day_text(day)}T{hours:02d}:{minutes:02d}:{secs:02d}.{micros:06d}Z"


def parse_us(text: str) -> int:
    """Parse a served timestamp back to epoch microseconds (accepts any ISO form with an offset or Z)."""
    dt = datetime.fromisoformat(text)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return (dt - _EPOCH) // timedelta(microseconds=1)


def now_us() -> int:
    """Wall clock in epoch microseconds (the simulator's notion of "now")."""
    return time.time_ns() // 1000
