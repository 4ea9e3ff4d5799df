"""How a service's failure is told: its root cause in one line, without secrets or the field value a
destination error may quote, with what to do next; and a stop signal seen as a stop, not a fault."""

from __future__ import annotations

import logging
import re
import signal

from core import signals
from extract import redact
from extract.errors import ExtractError
from extract.result import RunResult

log = logging.getLogger("extract")

# a value DuckDB quotes when it refuses it (`value "..." is not valid UTF8!`): field values stay out of
# every message and log
_QUOTED_VALUE = re.compile(r'value ".*"(?= is not valid UTF8)|value "(?:[^"\\]|\\.)*"', re.DOTALL)


def root_cause(exc: BaseException) -> BaseException:
    """The innermost exception behind ``exc`` (dlt wraps a step's error in its own)."""
    seen = set()
    while id(exc) not in seen:
        seen.add(id(exc))
        inner = getattr(exc, "exception", None) or exc.__cause__
        if inner is None or inner is exc:
            break
        exc = inner
    return exc


def failure_cause(exc: BaseException) -> str:
    """The root cause of ``exc`` in one line, without the field value a destination error may quote."""
    cause = root_cause(exc)
    text = str(cause) if isinstance(cause, ExtractError) else f"{type(cause).__name__}: {cause}"
    return _QUOTED_VALUE.sub("a value", text)


class QuotedValueFilter(logging.Filter):
    """Takes the field value a destination error quotes out of dlt's own log lines too (dlt logs a
    failed load job's message, value included, before the runner sees the error)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: leave it to logging to report
            return True
        scrubbed = _QUOTED_VALUE.sub("a value", message)
        if scrubbed != message:
            record.msg, record.args = scrubbed, None
        return True


def describe_failure(service: str, exc: BaseException) -> str:
    """A one-paragraph error: what failed and how to recover, with secrets masked."""
    cause = root_cause(exc)
    step = getattr(exc, "step", None)
    text = failure_cause(exc)
    if step in ("normalize", "load") and not isinstance(cause, ExtractError):
        text += (
            f" -- the {step} step failed and its load package stays pending; the next run retries it first."
            f" If it keeps failing, run `python -m extract --recover {service}` to abort it"
            " (incremental state rewinds; the next run re-extracts)."
        )
    else:
        text += " (incremental state not advanced)"
    return redact.mask(text)


def record_failure(name: str, exc: Exception, result: RunResult) -> None:
    """Log and keep one service's failure. One that a stop signal caused (dlt wraps the Ctrl-C it took
    during a load, or ours, in its own error) starts our stop too, so the run ends as interrupted."""
    cause = root_cause(exc)
    if isinstance(cause, KeyboardInterrupt):
        signum = getattr(cause, "signum", None) or getattr(cause, "signal_code", None) or signal.SIGINT
        signals.begin_stop(int(signum))
        result.failures[name] = f"stopped by {signal.Signals(int(signum)).name} before it committed"
        log.warning("%s: %s", name, result.failures[name])
        return
    message = describe_failure(name, exc)
    result.failures[name] = message
    log.error("%s: FAILED: %s", name, message)
