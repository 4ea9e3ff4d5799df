"""The generated history's calendar: a fixed two-year window and when shopping happens within it.

The window is anchored to a constant end date (never the wall clock) so a seed and scale always give the
same bytes. Day weights carry the shape analysts look for: growth over time, a weekly cycle, a Q4 peak
and a Black Friday to Cyber Monday spike.
"""

from __future__ import annotations

import random
from bisect import bisect_right
from datetime import date, timedelta
from itertools import accumulate

from services.store.timefmt import US_PER_DAY, parse_us

HISTORY_END = "2026-11-28T00:00:00.000000Z"
HISTORY_DAYS = 730
HISTORY_END_US = parse_us(HISTORY_END)
HISTORY_START_US = HISTORY_END_US - HISTORY_DAYS * US_PER_DAY
_START_DATE = date(2024, 11, 28)

_WEEKDAY = (0.95, 0.92, 0.94, 1.0, 1.08, 1.2, 1.12)  # Monday .. Sunday
_MONTH = (0.85, 0.8, 0.9, 0.92, 0.95, 0.93, 0.9, 0.92, 0.98, 1.05, 1.35, 1.6)  # Jan .. Dec
# share of a day's orders per hour (UTC): quiet nights, lunchtime bump, evening peak
_HOURS = (
    2,
    1.2,
    0.8,
    0.6,
    0.6,
    0.9,
    1.6,
    2.6,
    3.6,
    4.2,
    4.6,
    5.0,
    5.6,
    5.4,
    5.0,
    4.9,
    5.0,
    5.4,
    6.0,
    6.8,
    7.2,
    6.6,
    5.0,
    3.4,
)
HOUR_CUM_WEIGHTS = list(accumulate(_HOURS))
assert HISTORY_END_US - HISTORY_START_US == HISTORY_DAYS * US_PER_DAY


def _black_friday(year: int) -> date:
    nov1 = date(year, 11, 1)
    first_thursday = nov1 + timedelta(days=(3 - nov1.weekday()) % 7)
    return first_thursday + timedelta(days=22)


def day_weight(day: date, index: int) -> float:
    """Relative order volume of one day: trend x weekday x month x promo spike."""
    weight = (0.7 + 0.6 * index / HISTORY_DAYS) * _WEEKDAY[day.weekday()] * _MONTH[day.month - 1]
    if 0 <= (day - _black_friday(day.year)).days <= 3:
        weight *= 2.6
    return weight


def day_cum_weights() -> list[float]:
    """Cumulative day weights over the window, for ``bisect``-style day sampling."""
    return list(accumulate(day_weight(_START_DATE + timedelta(days=i), i) for i in range(HISTORY_DAYS)))


def day_start_us(index: int) -> int:
    """Epoch microseconds at 00:00 UTC of history day ``index``."""
    return HISTORY_START_US + index * US_PER_DAY


def sample_day(rng: random.Random, cum: list[float]) -> int:
    """One day index drawn with the day weights."""
    return bisect_right(cum, rng.random() * cum[-1])


def sample_time_in_day(rng: random.Random, index: int) -> int:
    """A moment on day ``index`` drawn with the hourly profile."""
    hour = bisect_right(HOUR_CUM_WEIGHTS, rng.random() * HOUR_CUM_WEIGHTS[-1])
    return day_start_us(index) + hour * 3_600_000_000 + rng.randrange(3_600_000_000)
