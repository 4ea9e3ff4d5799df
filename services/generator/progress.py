"""Progress of a generation: a line per stage and per tenth of each stage, or a bar on a terminal.

Why: generating scale 1 takes most of a minute and scale 20 several, and a first ``make services``
spends it before the fleet answers; with only a start and an end line nobody can tell a slow run from
a stuck one. A log or a pipe gets plain lines (no carriage returns, no escape codes) through the
``services.generator`` logger; a terminal on stderr gets one redrawn bar instead of those lines.
Hand-written rather than tqdm or rich: those are not dependencies of the services (only present in the
venv through other packages), and the bar needs a dozen lines.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TextIO

log = logging.getLogger("services.generator")

CHUNKS = 10  # plain lines per stage with a known total
BAR_WIDTH = 24
REDRAW_SECONDS = 0.1


@dataclass
class Stage:
    """One stage of a generation (customers, catalog, the days of orders, the final write)."""

    owner: Progress
    name: str
    total: int | None
    unit: str
    started: float = field(default_factory=time.monotonic)
    done: int = 0
    _chunk: int = 0
    _drawn_at: float = 0.0

    def update(self, done: int, detail: Callable[[], str] | None = None) -> None:
        """``done`` units so far; ``detail`` (called only when a line or the bar is drawn) adds counts."""
        self.done = done
        if self.owner.bar:
            now = time.monotonic()
            if now - self._drawn_at >= REDRAW_SECONDS:
                self._drawn_at = now
                self.owner.draw(self._bar(detail() if detail else ""))
            return
        if not self.total:
            return
        chunk = done * CHUNKS // self.total
        if chunk > self._chunk and done < self.total:
            self._chunk = chunk
            log.info("generator: %s%s, %.1f s", self._position(), _with(detail), self.elapsed())

    def finish(self, summary: str) -> None:
        """The stage's closing line (on a terminal it replaces the bar)."""
        self.owner.clear()
        log.info("generator: %s done: %s in %.1f s", self.name, summary, self.elapsed())

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def _position(self) -> str:
        if not self.total:
            return f"{self.name}: {self.done:,} {self.unit}"
        percent = 100 * self.done // self.total
        return f"{self.name}: {self.done:,}/{self.total:,} {self.unit} ({percent} %)"

    def _bar(self, detail: str) -> str:
        filled = BAR_WIDTH * self.done // self.total if self.total else 0
        bar = "#" * filled + "." * (BAR_WIDTH - filled)
        extra = f", {detail}" if detail else ""
        return f"generator: [{bar}] {self._position()}{extra}, {self.elapsed():.0f} s"


class Progress:
    """Where a generation reports to: ``stream`` (default stderr), a bar only when it is a terminal."""

    def __init__(self, stream: TextIO | None = None, *, bar: bool | None = None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.bar = _isatty(self.stream) if bar is None else bar
        self._drawn = 0

    def stage(self, name: str, total: int | None = None, unit: str = "") -> Stage:
        if not self.bar:
            of = f" ({total:,} {unit})" if total else ""
            log.info("generator: %s%s", name, of)
        return Stage(self, name, total, unit)

    def draw(self, text: str) -> None:
        pad = " " * max(0, self._drawn - len(text))
        self.stream.write("\r" + text + pad)
        self.stream.flush()
        self._drawn = len(text)

    def clear(self) -> None:
        if self.bar and self._drawn:
            self.stream.write("\r" + " " * self._drawn + "\r")
            self.stream.flush()
            self._drawn = 0


def _with(detail: Callable[[], str] | None) -> str:
    text = detail() if detail else ""
    return f", {text}" if text else ""


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # a closed or fake stream
        return False
