"""When to try a request again and how long to wait: pure functions, no I/O.

Kept apart from the client so each decision can be tested without a server
(tests/pytest/extract/test_http_units.py), and so page requests and the OAuth token request decide the
same way.

``Retry-After`` is read per RFC 9110 section 10.2.3: ``delay-seconds`` (digits only) or an
``HTTP-date`` (IMF-fixdate, and the obsolete RFC 850 and asctime forms a recipient must accept).
Anything else (``nan``, ``-1``, ``1.5``, a word) is treated as absent: the attempt backs off as any
other transient failure does. ``float()`` is not used because it takes ``nan`` and ``inf``.
"""

from __future__ import annotations

import logging
import random
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

_MONTH_NAMES = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_MONTHS = {m: i for i, m in enumerate(_MONTH_NAMES, 1)}
_DAY = r"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)"
_LONG_DAY = r"(?:Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday)"
_MONTH = "(" + "|".join(_MONTH_NAMES) + ")"
_TIME = r"(\d{2}):(\d{2}):(\d{2})"
_IMF_FIXDATE = re.compile(rf"{_DAY}, (\d{{2}}) {_MONTH} (\d{{4}}) {_TIME} GMT")
_RFC850 = re.compile(rf"{_LONG_DAY}, (\d{{2}})-{_MONTH}-(\d{{2}}) {_TIME} GMT")
_ASCTIME = re.compile(rf"{_DAY} {_MONTH} ([ \d]\d) {_TIME} (\d{{4}})")
_DELAY_SECONDS = re.compile(r"\d+")

# kinds of failed attempt (see ``decide``)
RETRIED = frozenset({"timeout", "deadline", "connection", "bad_page"})
FINAL = frozenset({"tls", "too_large"})


class Budget(Protocol):
    """The retry knobs ``decide`` reads (``extract.limits.HttpPolicy`` has them)."""

    max_attempts: int
    backoff_base: float
    backoff_max: float
    max_retry_after: float


def _two_digit_year(yy: int, now: datetime) -> int:
    """RFC 9110 5.6.7: a two-digit year more than 50 years in the future is the most recent past one."""
    year = now.year - now.year % 100 + yy
    return year - 100 if year > now.year + 50 else year


def parse_http_date(text: str, now: datetime | None = None) -> datetime | None:
    """An RFC 9110 HTTP-date as an aware UTC datetime, or None if ``text`` is not one."""
    now = now or datetime.now(UTC)
    try:
        if m := _IMF_FIXDATE.fullmatch(text):
            day, mon, year, hh, mm, ss = m.groups()
            return datetime(int(year), _MONTHS[mon], int(day), int(hh), int(mm), int(ss), tzinfo=UTC)
        if m := _RFC850.fullmatch(text):
            day, mon, yy, hh, mm, ss = m.groups()
            year = _two_digit_year(int(yy), now)
            return datetime(year, _MONTHS[mon], int(day), int(hh), int(mm), int(ss), tzinfo=UTC)
        if m := _ASCTIME.fullmatch(text):
            mon, day, hh, mm, ss, year = m.groups()
            return datetime(int(year), _MONTHS[mon], int(day), int(hh), int(mm), int(ss), tzinfo=UTC)
    except ValueError:  # 31 Feb, 25:00:00 ...
        return None
    return None


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds a ``Retry-After`` value asks to wait (a past date is 0), or None if absent or invalid."""
    if value is None:
        return None
    text = value.strip()
    if _DELAY_SECONDS.fullmatch(text):
        return float(int(text))
    wall = time.time() if now is None else now
    when = parse_http_date(text, datetime.fromtimestamp(wall, UTC))
    if when is None:
        return None
    return max(0.0, when.timestamp() - wall)


class RetryAfterReader:
    """``Retry-After`` of a client's answers in seconds; an invalid value is None (normal backoff) and
    is logged once per client, so a server sending garbage on every 429 does not flood the log."""

    def __init__(self, logger: logging.Logger) -> None:
        self._log = logger
        self._warned = False

    def __call__(self, headers: Mapping[str, str], where: str) -> float | None:
        value = headers.get("Retry-After")
        seconds = parse_retry_after(value)
        if value is not None and seconds is None and not self._warned:
            self._warned = True
            self._log.warning(
                "%s: ignoring Retry-After %r: neither seconds nor an HTTP date (RFC 9110); backing off "
                "as for any other failure (logged once)",
                where,
                value[:40],
            )
        return seconds


def backoff(budget: Budget, attempt: int, rand: Callable[[], float] = random.random) -> float:
    """Exponential backoff after failed attempt ``attempt`` (1-based), capped, jittered to 50-100 %."""
    delay = min(budget.backoff_max, budget.backoff_base * (2 ** (attempt - 1)))
    return delay * (0.5 + rand() / 2)


@dataclass(frozen=True)
class Attempt:
    """What one attempt ended with.

    ``kind``: ``status`` (an HTTP answer other than a good page: see ``status``), ``timeout`` (a read
    waited longer than ``read_timeout``), ``deadline`` (the whole request outlived its deadline),
    ``connection`` (refused, reset, dropped mid-body), ``bad_page`` (a 200 that is not a usable page),
    ``tls`` (certificate verification), ``too_large`` (the body passed the size cap).
    """

    kind: str
    status: int | None = None
    retry_after: float | None = None  # parsed Retry-After of a 429/503, None if absent or invalid


def decide(
    budget: Budget, attempt: int, outcome: Attempt, rand: Callable[[], float] = random.random
) -> float | None:
    """Seconds to wait before trying again after failed attempt ``attempt``, or None to fail now.

    Retried within ``max_attempts``: timeouts, deadlines, connection errors, bad pages, 5xx and 429.
    A 429 or 503 with a valid ``Retry-After`` waits that long (capped by ``max_retry_after``), every
    other retry backs off exponentially. Never retried: TLS errors (a wrong certificate does not fix
    itself), an oversized body (the same URL sends the same body) and other 4xx.
    """
    if attempt >= budget.max_attempts or outcome.kind in FINAL:
        return None
    if outcome.kind == "status":
        status = outcome.status or 0
        if status != 429 and status < 500:
            return None
        if status in (429, 503) and outcome.retry_after is not None:
            return min(outcome.retry_after, budget.max_retry_after)
        return backoff(budget, attempt, rand)
    if outcome.kind in RETRIED:
        return backoff(budget, attempt, rand)
    raise ValueError(f"unknown attempt kind {outcome.kind!r}")
