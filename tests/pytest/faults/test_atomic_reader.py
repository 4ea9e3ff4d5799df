"""A reader polling the Parquet exports during every publish never sees a partial or mixed version.

The reader follows the documented protocol (docs/publishing.md): resolve ``exports/current`` once, then
read only inside the resolved folder. Every poll checks the whole version against its manifest
(``publish.verify.verify_version``: files, sha256, row counts, content checksums, no stray files) while
``python -m elt export`` publishes new versions over and over on the clean reference warehouse.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

from publish.verify import verify_version
from tests.pytest.support.paths import REPO
from tests.pytest.support.world import Reference

PUBLISHES = 4


def test_reader_never_sees_partial_or_mixed_version(reference: Reference) -> None:
    ws = reference.workspace
    exports = ws.exports
    stop = threading.Event()
    seen: set[str] = set()
    problems: list[str] = []
    polls_during_publish = [0]
    publishing = threading.Event()

    def reader() -> None:
        while not stop.is_set():
            target = os.readlink(exports / "current")
            version = exports / target
            if version.name.endswith(".partial"):
                problems.append(f"current pointed at a partial folder {target}")
            found = verify_version(Path(version))
            if found:
                problems.append(f"{version.name}: {found}")
            seen.add(version.name)
            if publishing.is_set():
                polls_during_publish[0] += 1

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    try:
        for _ in range(PUBLISHES):
            publishing.set()
            proc = subprocess.run(
                [sys.executable, "-m", "elt", "export", "--keep", "20"],
                cwd=REPO,
                env=ws.env,
                capture_output=True,
                text=True,
            )
            publishing.clear()
            assert proc.returncode == 0, proc.stdout + proc.stderr
    finally:
        stop.set()
        thread.join(timeout=120)
    assert not problems, "the reader saw a broken version:\n" + "\n".join(problems[:10])
    assert polls_during_publish[0] > 0, "the reader never polled while a publish ran"
    assert len(seen) >= 2, f"the reader saw only {seen}: no switch happened while it was reading"
