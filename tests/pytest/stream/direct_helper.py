"""One step of the stream's direct paths, run as a child process in a world's environment (pointed at a
copy of its warehouse), printing what it did as JSON on the last line.

* ``marts``: parse and ``dbt compile`` the real-time models, then run their compiled SQL directly once
  (``RealtimeMarts.build_models``), as every stream batch after the first does;
* ``raw direct|dlt AFTER_ID``: read one page of events after ``AFTER_ID`` from the events service
  (the feed's own request and conform), and commit it with ``RawLoader`` through that writer.
"""

from __future__ import annotations

import json
import sys


def marts() -> dict:
    from elt.stream.marts import RealtimeMarts

    m = RealtimeMarts("run")
    m.compile_direct()
    if m.plan is None:
        return {"direct": False}
    _, direct = m.build_models()
    return {"direct": direct, "models": [p.unique_id for p in m.plan.models]}


def raw(writer: str, after: int) -> dict:
    from core import lock
    from elt.stream.feed import EventFeed
    from elt.stream.raw import RawLoader

    feed = EventFeed(after, 5000)
    table, _, _ = feed._poll(after, 5000, 0.0)
    with lock.warehouse_lock("stream test: raw", wait=300):
        loader = RawLoader(direct=writer == "direct")
        loader.finish_pending()
        out = loader.commit(table)
    return {"rows": out.rows, "direct": out.direct, "after": out.committed_after}


def main(argv: list[str]) -> int:
    result = marts() if argv[0] == "marts" else raw(argv[1], int(argv[2]))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
