"""One line for a warehouse file that is not a readable DuckDB database (random bytes, a truncated or
damaged copy, a directory, a file this user may not read), shared by every entry point.

Why one place: DuckDB reports these as ``IOException``/``Error`` texts that do not say what to do, and
the same texts also cover faults that are not about the file's content (another process holding it,
a full disk, a read-only folder), which have their own messages (core/lock.py, tests/pytest/faults/
test_storage.py). ``explain`` tells them apart and names the file and the remedy; ``check`` asks DuckDB
itself, by opening the file read-only, before dbt runs: dbt-duckdb retries a connection that fails
with an ``IOException`` (profiles.yml ``retries``) for about a minute per attempt, so a damaged file
held ``dbt build`` for many minutes before it failed.

The texts matched are DuckDB 2.0's (see the tests in tests/pytest/elt/test_messages.py); an error
that matches none of them keeps the entry point's generic one-line message.
"""

from __future__ import annotations

import errno
import getpass
import logging
import os
import re
import stat
from pathlib import Path

import duckdb

from core import file_modes, settings

log = logging.getLogger("elt.warehouse")

# (what DuckDB says, the short reason we give): the file's content is not a database DuckDB can read
_DAMAGED = (
    ("is not a valid DuckDB database file", "not a DuckDB database file"),
    ("Could not read enough bytes", "truncated: shorter than its own header says"),
    ("Corrupt database file", "damaged: a block does not match its checksum"),
)
# faults of the storage or of concurrency, never reported as a damaged file
_NOT_THE_FILE = (
    "Could not set lock",
    "Conflicting lock",
    "No space left",
    "out of disk",
    "Read-only file system",
    "Disk quota",
)
_STORAGE_ERRNOS = (errno.ENOSPC, errno.EROFS, errno.EDQUOT)
_QUOTED_FILE = re.compile(r'file "([^"]+)"')


class WarehouseUnreadable(OSError):
    """The warehouse file is not a readable DuckDB database; the message says which file and what to do.

    An ``OSError`` so that the run log's fallback (core/ops_fallback.py) keeps the record of a run that
    failed on it, as for any other storage error."""


def message(reason: str, path: Path | None = None) -> str:
    """The one line: the file, why it cannot be read, and what to do about it."""
    path = path or settings.warehouse_path()
    if reason.startswith("no read permission"):
        todo = f"run as its owner, or have root make this user its owner (chown {_user()} {path})"
    else:
        todo = (
            f"restore it from a backup, or move it (and {path.name}.wal, if any) away and re-run make elt "
            "to rebuild it from the services (snapshot history starts over)"
        )
    return f"warehouse {path} is not a readable DuckDB database ({reason}): {todo}"


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return str(os.getuid())


def _about_other_file(text: str, path: Path) -> bool:
    """Whether DuckDB's text names a file that is neither the warehouse nor its WAL."""
    named = _QUOTED_FILE.findall(text)
    return bool(named) and all(
        Path(n).resolve() not in (path.resolve(), path.with_name(path.name + ".wal").resolve()) for n in named
    )


def _filesystem_reason(path: Path) -> str | None:
    """Why the file cannot be read at all (a directory, no read permission), else None."""
    try:
        st = path.stat()
    except OSError:
        return None
    if stat.S_ISDIR(st.st_mode):
        return "a directory, not a file"
    try:
        os.close(os.open(path, os.O_RDONLY))
    except PermissionError:
        mode = stat.S_IMODE(st.st_mode)
        return f"no read permission for this user: owned by uid {st.st_uid}, mode {mode:04o}"
    except OSError:
        return None
    return None


def explain(exc: BaseException | str, path: Path | None = None) -> str | None:
    """The one-line message when ``exc`` (an exception, or an error text such as a flow step's) says the
    warehouse is not a readable DuckDB database; None for anything else (a lock held by another process,
    a full disk, a read-only folder, a damaged file other than the warehouse)."""
    if isinstance(exc, WarehouseUnreadable):
        return str(exc)
    path = path or settings.warehouse_path()
    if isinstance(exc, OSError) and exc.errno in _STORAGE_ERRNOS:
        return None
    text = exc if isinstance(exc, str) else str(exc)
    if any(marker in text for marker in _NOT_THE_FILE) or _about_other_file(text, path):
        return None
    for marker, reason in _DAMAGED:
        if marker in text:
            return message(reason, path)
    if isinstance(exc, OSError) and exc.filename is not None and Path(exc.filename) != path:
        return None
    if "Permission denied" in text or "Operation not permitted" in text or "Is a directory" in text:
        reason = _filesystem_reason(path)  # the text alone does not say whether reading or writing failed
        return message(reason, path) if reason else None
    return None


def check(path: Path | None = None) -> None:
    """Raise ``WarehouseUnreadable`` when DuckDB cannot read the warehouse file; a missing file (a first
    run creates it) or one held by another process passes. Opens it read-only for a moment: hold the
    warehouse lock, so that no writer of ours is refused by this reader."""
    path = path or settings.warehouse_path()
    if not path.exists():
        return
    reason = _filesystem_reason(path)
    if reason is None:
        try:
            duckdb.connect(str(path), read_only=True).close()
            return
        except duckdb.Error as exc:
            line = explain(exc, path)
            if line is None:
                return  # not about the file's content: the command itself reports it
            raise WarehouseUnreadable(line) from None
    raise WarehouseUnreadable(message(reason, path))


def tighten_private_paths() -> None:
    """``file_modes.tighten`` over ``settings.private_paths()``, each path on its own: the entry points'
    first touch of the warehouse. A file of another user cannot be made owner-only; when it is the
    warehouse and this user cannot read it either, raise ``WarehouseUnreadable`` (it used to end in a
    ``PermissionError`` traceback); otherwise warn and go on, the command then reports what it cannot do."""
    for path in settings.private_paths():
        try:
            file_modes.tighten([path])
        except OSError as exc:
            line = explain(exc)
            if line is not None:
                raise WarehouseUnreadable(line) from None
            log.warning("could not make %s owner-only (%s): it keeps its mode", exc.filename, exc.strerror)
