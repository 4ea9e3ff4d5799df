"""One line per logged error from dlt: its tracebacks folded into the message's last line.

Why: dlt logs every retried load job with ``logger.exception`` and repeats the whole traceback inside
the retry warning's text. A full disk during a load therefore printed dozens of tracebacks before the
run's own one-line failure, which an operator (or a test) cannot tell apart from a crash. The
exception's type and message say everything those retries need to say; with ``--log-level debug``
(``EXTRACT_LOG_LEVEL=DEBUG``) the tracebacks are kept for debugging.
"""

from __future__ import annotations

import logging

from extract import redact

_MARKER = "Traceback (most recent call last):"


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""


class OneLineTracebacks(logging.Filter):
    """Replaces a record's traceback (``exc_info`` or one pasted into its text) by the exception line."""

    def filter(self, record: logging.LogRecord) -> bool:
        if logging.getLogger().isEnabledFor(logging.DEBUG):
            return True
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: leave it to logging to report
            return True
        changed = False
        if _MARKER in message:
            head, _, tail = message.partition(_MARKER)
            message = f"{head.rstrip()} [{_last_line(tail)}]"
            changed = True
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            message = f"{message} [{type(exc).__name__}: {_last_line(str(exc)) or '-'}]"
            record.exc_info, record.exc_text = None, None
            changed = True
        if changed:
            record.msg, record.args = redact.mask(message), None
        return True


def install(*loggers: logging.Logger) -> None:
    """Attach the filter to the given loggers (idempotent)."""
    for logger in loggers:
        if not any(isinstance(f, OneLineTracebacks) for f in logger.filters):
            logger.addFilter(OneLineTracebacks())
