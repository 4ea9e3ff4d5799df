"""Small files written so a reader sees the old content or the new, never a torn one.

Why in the core: the publisher's pointer and manifest (publish/versions.py), dbt's last-build record
(transform/dbt_runner.py), the docs page (transform/docs_site.py) and the stream's statistics
(elt/stream/latency.py) all need it, and none of them may import another's internals.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path


def fsync_dir(path: Path) -> None:
    """Make a rename or new entry in ``path`` durable (best effort on filesystems that refuse)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, text: str) -> None:
    """Write a small file so readers see the old or the new content, never a torn one."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)
