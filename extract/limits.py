"""The bounds of one service's HTTP traffic: timeouts, the total deadline, the body cap, the retry budget.

One frozen object (config keys under ``[sources.extract]``, overridable per service) shared by the page
client and the OAuth token request, so both are bounded the same way. Two bounds are derived:

* ``deadline``: a whole request (connect, headers and body) may take at most ``request_deadline``
  seconds, default ``DEADLINE_FACTOR`` x ``read_timeout``. ``read_timeout`` alone bounds each socket
  read, so a server that drips a byte now and then never trips it;
* ``max_bytes``: a response body may inflate to at most ``max_response_mib`` MiB *after*
  decompression. The default is far above the largest page a ``page_size`` of 5000 gives (a few MiB,
  a hostile 1 MiB value included), so only a response that is not a page of this API reaches it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

DEADLINE_FACTOR = 4.0
MIB = 1 << 20


@dataclass(frozen=True)
class HttpPolicy:
    """Timeouts, size cap and retry budget of one service (config keys under ``[sources.extract]``)."""

    connect_timeout: float = 5.0
    read_timeout: float = 30.0
    max_attempts: int = 5
    backoff_base: float = 0.5
    backoff_max: float = 8.0
    max_retry_after: float = 30.0
    max_refreshes: int = 10
    request_deadline: float = 0.0  # 0 = DEADLINE_FACTOR x read_timeout
    max_response_mib: float = 64.0

    def __post_init__(self) -> None:
        """A bound that is not a number would silently be no bound (nan compares false)."""
        if not (math.isfinite(self.request_deadline) and self.request_deadline >= 0):
            raise ValueError(
                f"[sources.extract] request_deadline must be seconds >= 0 (0 = {DEADLINE_FACTOR:g} x "
                f"read_timeout), got {self.request_deadline}"
            )
        if not (math.isfinite(self.max_response_mib) and self.max_response_mib > 0):
            raise ValueError(
                f"[sources.extract] max_response_mib must be a positive size, got {self.max_response_mib}"
            )

    @property
    def deadline(self) -> float:
        """Seconds one whole request may take (connect + headers + body)."""
        if self.request_deadline > 0:
            return self.request_deadline
        return DEADLINE_FACTOR * self.read_timeout

    @property
    def max_bytes(self) -> int:
        """Decompressed bytes one response body may have."""
        return max(1, int(self.max_response_mib * MIB))

    def deadline_text(self) -> str:
        """``request_deadline = 12s`` (with where a derived value comes from), for messages."""
        if self.request_deadline > 0:
            return f"request_deadline = {self.deadline:g}s"
        return f"request_deadline = {self.deadline:g}s ({DEADLINE_FACTOR:g} x read_timeout)"

    def cap_text(self) -> str:
        """``max_response_mib = 64`` for messages."""
        return f"max_response_mib = {self.max_response_mib:g}"
