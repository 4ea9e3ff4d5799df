"""Show a dbt child's output as progress: a line per N finished nodes, failures as they happen and in
full at the end, and never a terminal colour code in a log or a pipe.

Why parse dbt's structured output (``--log-format json`` on the child's stdout) rather than register
``dbtRunner(callbacks=[...])``: callbacks only exist in-process, and the batch flow keeps dbt in a
child process (its global state, logging and DuckDB write connection end with it). The JSON lines
carry the same events the callbacks would get (name, level, message, node status, index and total),
so the parent counts finished nodes from them and prints dbt's own message for everything that is not
a per-node line: the start-up lines, warnings, the end-of-run failure block (node, path, message,
compiled code path) and the ``Done. PASS=...`` line, exactly as dbt words them.

dbt's log file (``<log-path>/dbt.log``) keeps its usual ``debug`` text format, uncoloured.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TextIO

from core import signals

# dbt subcommands that run nodes one by one: their per-node lines become progress lines.
NODE_COMMANDS = {"build", "run", "test", "seed", "snapshot", "retry", "clone"}
EVERY_ENV = "SHOP_DBT_PROGRESS_EVERY"
DEFAULT_EVERY = 40
# ``progress`` (default): progress lines, failures, dbt's summary; ``nodes``: also every node's own
# start and result line (uncoloured), for whoever wants to watch or match them.
OUTPUT_ENV = "SHOP_DBT_OUTPUT"
OUTPUT_MODES = ("progress", "nodes")
# A progress line also comes after this long without one, so a slow model still shows life.
QUIET_SECONDS = 30.0

# One finished node each (a pass, a failure, a skip); their own lines are replaced by progress lines.
RESULT_EVENTS = {
    "LogModelResult",
    "LogTestResult",
    "LogSeedResult",
    "LogSnapshotResult",
    "LogFreshnessResult",
    "LogFunctionResult",
    "LogNodeNoOpResult",
    "LogNodeResult",
    "SkippingDetails",
    "LogSkipBecauseError",
}
# Per-node and per-hook chatter that says nothing a progress line does not.
QUIET_EVENTS = {"LogStartLine", "LogHookStartLine", "LogHookEndLine", "NodeStart", "NodeFinished"}
SKIP_EVENTS = {"SkippingDetails", "LogSkipBecauseError"}
FAILED = {"error", "fail", "runtime error"}
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def strip_ansi(text: str) -> str:
    """``text`` without terminal escape sequences (colours, cursor moves)."""
    return ANSI.sub("", text)


def structured(subcommand: str | None) -> bool:
    """Whether this dbt subcommand's output is turned into progress lines."""
    return subcommand in NODE_COMMANDS


def child_env(env: Mapping[str, str], *, progress: bool, tty: bool) -> dict[str, str]:
    """dbt's output settings for the child: the log file never coloured; the console uncoloured when
    it is not a terminal, and as JSON lines when the parent renders progress from it.

    Set through dbt's environment variables, not flags, so they apply wherever dbt takes them and a
    flag the user passes (``--log-format text``) still wins; the parent then passes plain lines on.
    """
    out = dict(env)
    out["DBT_USE_COLORS_FILE"] = "false"
    if progress:
        out["DBT_LOG_FORMAT"] = "json"
        out.setdefault("DBT_LOG_FORMAT_FILE", "debug")  # the file keeps dbt's usual text format
        out["DBT_USE_COLORS"] = "false"
        out["PYTHONUNBUFFERED"] = "1"  # a line as soon as dbt writes it, not a pipe buffer later
    elif not tty:
        out["DBT_USE_COLORS"] = "false"
    return out


def output_mode(env: Mapping[str, str] | None = None) -> str:
    """``SHOP_DBT_OUTPUT``: ``progress`` (default) or ``nodes``."""
    raw = (os.environ if env is None else env).get(OUTPUT_ENV, "").strip().lower() or OUTPUT_MODES[0]
    if raw not in OUTPUT_MODES:
        raise RuntimeError(f"{OUTPUT_ENV} must be one of {', '.join(OUTPUT_MODES)}, got {raw!r}")
    return raw


def every_nodes(env: Mapping[str, str] | None = None) -> int:
    """Nodes per progress line (``SHOP_DBT_PROGRESS_EVERY``, default 40)."""
    raw = (os.environ if env is None else env).get(EVERY_ENV, "").strip()
    try:
        return max(1, int(raw)) if raw else DEFAULT_EVERY
    except ValueError:
        raise RuntimeError(f"{EVERY_ENV} must be a whole number of nodes, got {raw!r}") from None


@dataclass
class Progress:
    """Turns dbt's JSON log lines into the lines to show."""

    every: int = DEFAULT_EVERY
    nodes: bool = False  # also show every node's own lines
    quiet_seconds: float = QUIET_SECONDS
    started: float = field(default_factory=time.monotonic)
    done: int = 0
    failed: int = 0
    warned: int = 0
    skipped: int = 0
    total: int | None = None
    finished: bool = False  # dbt reported the end of its run (what follows is its summary)
    _shown_done: int = 0
    _shown_at: float = field(default_factory=time.monotonic)

    def line(self) -> str:
        """``dbt: 40/272 nodes done, 0 failed, 0 skipped, 12.3 s`` (warnings when there are any)."""
        of = f"/{self.total}" if self.total else ""
        warned = f", {self.warned} warned" if self.warned else ""
        seconds = time.monotonic() - self.started
        return (
            f"dbt: {self.done}{of} nodes done, {self.failed} failed, {self.skipped} skipped{warned}, "
            f"{seconds:.1f} s"
        )

    def feed(self, raw: str) -> list[str]:
        """The lines to show for one line of dbt's output (often none)."""
        raw = raw.rstrip("\n")
        try:
            event = json.loads(raw)
            info, data = event["info"], event.get("data") or {}
            name = str(info["name"])
        except (ValueError, KeyError, TypeError):  # not an event: dbt's --help, a user's --log-format
            text = strip_ansi(raw)
            return [text] if text.strip() else []
        return self._event(name, str(info.get("level", "info")), strip_ansi(str(info.get("msg", ""))), data)

    def _event(self, name: str, level: str, msg: str, data: dict) -> list[str]:
        if name in QUIET_EVENTS and level not in ("warn", "error"):
            if name == "LogStartLine" and self.total is None and isinstance(data.get("total"), int):
                self.total = data["total"]
                self._shown_at = time.monotonic()  # the quiet time counts from the first node, not parsing
            return [stamp(msg)] if self.nodes and msg.strip() else []
        if name in RESULT_EVENTS:
            return self._result(name, level, msg, data)
        if name == "FinishedRunningStats":
            self.finished = True
            return [*self._progress(force=True), stamp(msg)]
        if name == "Formatting" or not msg.strip():
            return [""] if self.finished else []  # dbt's blank lines, kept only in its end summary
        return [stamp(msg)]

    def _result(self, name: str, level: str, msg: str, data: dict) -> list[str]:
        node = data.get("node_info") or {}
        status = str(node.get("node_status") or data.get("status") or "").lower()
        total = data.get("total") or data.get("num_models")
        if isinstance(total, int) and total > 0:
            self.total = total
        self.done += 1
        if name in SKIP_EVENTS or status == "skipped":
            self.skipped += 1
        elif status in FAILED:
            self.failed += 1
        elif status == "warn":
            self.warned += 1
        shown = [stamp(msg)] if self.nodes or level in ("warn", "error") else []  # failures at once
        return shown + self._progress()

    def _progress(self, force: bool = False) -> list[str]:
        now = time.monotonic()
        due = self.done - self._shown_done >= self.every or (
            self.done > self._shown_done and now - self._shown_at >= self.quiet_seconds
        )
        if not (due or (force and self.done != self._shown_done)):
            return []
        self._shown_done, self._shown_at = self.done, now
        return [stamp(self.line())]

    def finish(self) -> list[str]:
        """The last progress line, if dbt ended without reporting its end (a crash, a cancel)."""
        return [] if self.finished else self._progress(force=True)


def stamp(msg: str) -> str:
    """A message as dbt's text console shows it: local time, two spaces, the message."""
    return f"{time.strftime('%H:%M:%S')}  {msg}"


def emit(lines: Iterable[str], out: TextIO) -> None:
    for text in lines:
        out.write(text + "\n")
    out.flush()


def run(
    cmd: list[str],
    *,
    cwd: str | os.PathLike[str],
    env: Mapping[str, str],
    pass_fds: tuple[int, ...] = (),
    progress: bool,
    out: TextIO | None = None,
) -> int:
    """Run dbt as a child; with ``progress`` render its JSON events to ``out`` (default stdout).

    On any exception here (SIGTERM and Ctrl-C included) dbt gets SIGTERM and a grace period, then
    SIGKILL, before the exception goes on (``core.signals.stop_child``); it also dies with this process
    (``die_with_parent``), so no dbt outlives the wrapper that holds the lock it inherited.
    """
    out = out or sys.stdout
    tty = out.isatty()
    env = child_env(env, progress=progress, tty=tty)
    if not progress:
        return signals.run_child(cmd, cwd=cwd, env=env, pass_fds=pass_fds)
    view = Progress(every=every_nodes(env), nodes=output_mode(env) == "nodes")
    with subprocess.Popen(
        cmd,
        cwd=cwd,
        env=env,
        pass_fds=pass_fds,
        stdout=subprocess.PIPE,
        text=True,
        encoding="utf-8",
        errors="replace",
        preexec_fn=signals.die_with_parent,
    ) as proc:
        try:
            assert proc.stdout is not None
            for raw in proc.stdout:
                emit(view.feed(raw), out)
            code = proc.wait()
        except BaseException:
            signals.stop_child(proc)
            raise
    emit(view.finish(), out)
    return code
