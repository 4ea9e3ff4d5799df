"""The run log's fallback file: ``ops`` rows the warehouse could not take, kept until it can.

Why a file outside the warehouse: the run log lives in the warehouse it describes, so the runs that
most need recording (a full disk, a read-only mount, a file DuckDB will not open) are exactly the ones
that cannot write it. Failing the run for that, or crashing with a traceback on the failure path,
would lose the record and hide the real error. Instead every write of a run record goes through
``save``: on a storage failure the whole record is appended to ``<run dir>/ops-fallback.jsonl``
(one JSON object per line) and the next writer that can write the warehouse ``replay``s the file
into ``ops`` first, then empties it. Records are written whole and by run id (``ops_log.save_run``),
so a replay is idempotent: a row replayed twice is one row, and a run left ``running`` by the failure
gets its final status.

Appends and the replay hold an ``flock`` on the file itself: a run that could not take the warehouse
lock (read-only: the lock file cannot be created) still appends safely while another process replays.
If the run folder is unwritable too, one line on stderr says which run is not recorded.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import duckdb

from core import settings
from core.ops_log import RunRecord, close_orphans, finish, save_run
from core.secrets import scrub

log = logging.getLogger("elt.ops")

FILE_NAME = "ops-fallback.jsonl"
STORAGE_ERRORS = (duckdb.Error, OSError)


def path() -> Path:
    """The fallback file: ``ops-fallback.jsonl`` in the run folder (``SHOP_RUN_DIR``)."""
    return settings.run_dir() / FILE_NAME


def reason(exc: BaseException | str) -> str:
    """A one-line, scrubbed description of why a write failed (the file name stays, it says which)."""
    if isinstance(exc, str):
        text = exc
    elif isinstance(exc, OSError) and exc.strerror:
        text = f"{exc.strerror}: {exc.filename}" if exc.filename else exc.strerror
    else:
        text = f"{type(exc).__name__}: {exc}"
    first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    return scrub(first) or first


@contextlib.contextmanager
def _locked(flags: int) -> Iterator[int]:
    fd = os.open(path(), flags, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield fd
    finally:
        os.close(fd)  # closing drops the flock


def keep(record: RunRecord, why: BaseException | str) -> bool:
    """Append ``record`` to the fallback file; False (and one line on stderr) when that fails too.

    A write cut short (the run folder is full as well) is truncated away, so a torn line never
    swallows the records appended after it.
    """
    line = json.dumps({**record.to_json(), "unwritten_because": reason(why)}, default=str) + "\n"
    data = line.encode()
    target = path()
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with _locked(os.O_WRONLY | os.O_APPEND | os.O_CREAT) as fd:
            size = os.fstat(fd).st_size
            try:
                written = 0
                while written < len(data):
                    written += os.write(fd, data[written:])
                os.fsync(fd)
            except OSError:
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, size)
                raise
    except OSError as exc:
        log.error(
            "run %s (%s, %s) is not recorded: the warehouse refused it (%s) and so did %s (%s)",
            record.run_id,
            record.step,
            record.status,
            reason(why),
            target,
            reason(exc),
        )
        return False
    log.warning(
        "ops.runs: run %s (%s, %s) not written to the warehouse (%s); kept in %s for the next run",
        record.run_id,
        record.step,
        record.status,
        reason(why),
        target,
    )
    return True


def pending() -> list[RunRecord]:
    """The records the fallback file holds now (for tests and operators; unreadable lines skipped)."""
    target = path()
    if not target.exists():
        return []
    return _parse(target.read_bytes())[0]


def _parse(data: bytes) -> tuple[list[RunRecord], int]:
    records, bad = [], 0
    for raw in data.splitlines():
        if not raw.strip():
            continue
        try:
            records.append(RunRecord.from_json(json.loads(raw)))
        except (ValueError, KeyError, TypeError):
            bad += 1
    return records, bad


def replay(con: duckdb.DuckDBPyConnection, quiet: bool = False) -> int:
    """Write every kept record into ``ops`` through ``con`` (caller holds the warehouse lock), in the
    order they were kept, then empty the file; returns how many were written.

    Never raises for a storage failure: the file stays as it is (records already written are written
    again, harmlessly, next time) and one warning says why (a debug line when ``quiet``: ``save``'s
    own write warns in that case).
    """
    target = path()
    try:
        if not target.exists() or target.stat().st_size == 0:
            return 0
        with _locked(os.O_RDWR) as fd:
            chunks = []
            while chunk := os.read(fd, 1 << 20):
                chunks.append(chunk)
            records, bad = _parse(b"".join(chunks))
            for record in records:
                save_run(con, record)
            os.ftruncate(fd, 0)  # truncate, not unlink: an appender waiting on the flock keeps its file
    except STORAGE_ERRORS as exc:
        level = logging.DEBUG if quiet else logging.WARNING
        log.log(level, "ops.runs: could not write the runs kept in %s yet (%s); kept", target, reason(exc))
        return 0
    if bad:
        log.warning("ops.runs: skipped %d unreadable line(s) of %s", bad, target)
    if records:
        log.info("ops.runs: wrote %d run(s) kept in %s by earlier runs", len(records), target)
    return len(records)


@contextlib.contextmanager
def kept_on_failure(record: RunRecord) -> Iterator[RunRecord]:
    """Around a run that writes ``record`` itself: when a storage error escapes before the record got
    its final status (the lock file, the warehouse cannot be opened), finish it as failed with that
    error and keep it in the fallback file, then let the error go on to the caller's one-line report."""
    try:
        yield record
    except STORAGE_ERRORS as exc:
        if record.status == "running":
            keep(finish(record, "failed", record.rows, reason(exc)), exc)
        raise


def save(con: duckdb.DuckDBPyConnection, record: RunRecord) -> bool:
    """Write ``record`` to ``ops`` after anything kept earlier (and after closing rows whose process is
    gone, ``ops_log.close_orphans``); on a storage failure keep it in the fallback file instead.
    Never raises for a storage failure; True when the warehouse has it."""
    try:
        replay(con, quiet=True)
        if closed := close_orphans(con):
            log.info("ops.runs: closed %d run(s) left 'running' by processes that are gone", closed)
        save_run(con, record)
    except STORAGE_ERRORS as exc:
        keep(record, exc)
        return False
    return True
