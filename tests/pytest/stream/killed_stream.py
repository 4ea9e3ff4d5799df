"""``python -m elt stream`` that kills itself with SIGKILL at one exact moment of dlt's commit.

Run as ``python -m tests.pytest.stream.killed_stream <point> <stream arguments...>`` in a world's
environment. The stream, dlt, DuckDB and the events service are the real ones; the only addition is a
``kill -9`` of this process right after one dlt call returns, so a window a random kill hits once in
many runs (tests/pytest/stream/test_stream_e2e.py, the many-kill9s case) is hit every time:

* ``extract-committed``: dlt moved the extracted package (rows + advanced cursor) into place, the
  pipeline state (``state.json``) is not saved yet;
* ``events-inserted``: the INSERT of the events file committed, dlt has not recorded the job done;
* ``load-recorded``: the package's ``_dlt_loads`` row is written, the package is not archived yet.

Exits only by the kill; if the point is never reached it exits 3, so the caller can tell.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable
from typing import Any

from dlt.destinations.impl.duckdb.duck import DuckDbCopyJob
from dlt.destinations.job_client_impl import SqlJobClientBase
from dlt.extract.extract import Extract

NOT_REACHED = 3


def _kill() -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def _after(owner: type, name: str, when: Callable[..., bool]) -> None:
    """Replace ``owner.name`` by a call of the original followed by a kill when ``when(self)`` holds."""
    original = getattr(owner, name)

    def wrapped(self: Any, *args: Any, **kwargs: Any) -> Any:
        result = original(self, *args, **kwargs)
        if when(self):
            _kill()
        return result

    setattr(owner, name, wrapped)


POINTS: dict[str, Callable[[], None]] = {
    # the stream extracts only in a commit with new events, so the first package committed holds them
    "extract-committed": lambda: _after(Extract, "commit_packages", lambda _extract: True),
    "events-inserted": lambda: _after(DuckDbCopyJob, "run", lambda job: job.load_table_name == "events"),
    "load-recorded": lambda: _after(SqlJobClientBase, "complete_load", lambda _client: True),
}


def main(argv: list[str]) -> int:
    point, stream_args = argv[0], argv[1:]
    POINTS[point]()
    from elt.stream.__main__ import main as stream_main

    stream_main(stream_args)
    return NOT_REACHED


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
