"""Mask credentials in every log record, whoever logs it (our code, dlt, urllib3).

Auth objects register the secret values they hold; a logging filter on the root handlers (and dlt's
own logger) replaces them, plus every secret ``core.secrets.scrub`` knows (env, run/fleet.env), with
``***``. The filter rewrites the final message, so secrets passed as %-args are masked too.
"""

from __future__ import annotations

import logging
import threading

from core.secrets import MASK, MIN_SECRET_LEN, scrub

_values: set[str] = set()
_lock = threading.Lock()


def register(value: str) -> str:
    """Remember ``value`` as a secret to mask; returns it unchanged for inline use."""
    if value and len(value) >= MIN_SECRET_LEN:
        with _lock:
            _values.add(value)
    return value


def registered() -> list[str]:
    """Secret values registered in this process (for tests and the final scrub of errors)."""
    with _lock:
        return sorted(_values, key=len, reverse=True)


def mask(text: str) -> str:
    """``text`` with every registered and environment secret replaced by ``***``."""
    for value in registered():
        text = text.replace(value, MASK)
    return scrub(text) or text


class RedactingFilter(logging.Filter):
    """Rewrites each record's message with secrets masked."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: leave it to logging to report
            return True
        masked = mask(message)
        if record.exc_info and record.exc_info[1] is not None:
            masked_exc = mask(str(record.exc_info[1]))
            if masked_exc != str(record.exc_info[1]):
                kind = type(record.exc_info[1]).__name__
                record.exc_info = None
                record.exc_text = None
                masked = f"{masked} [{kind}: {masked_exc}]"
        record.msg, record.args = masked, None
        return True


def install(*loggers: logging.Logger) -> None:
    """Attach the filter to the root logger's handlers, and to the given loggers themselves (dlt adds its
    own handler later, when a pipeline starts; a logger-level filter covers it anyway)."""
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())
    for logger in loggers:
        if not any(isinstance(f, RedactingFilter) for f in logger.filters):
            logger.addFilter(RedactingFilter())
