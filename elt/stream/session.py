"""One read-write warehouse connection per micro-batch, shared by the steps that run SQL directly.

Why: opening the DuckDB file reads its catalog, and closing a connection that wrote checkpoints it;
each open/close cycle costs a measurable slice of a batch's CPU (docs/stream.md, "Measured"). The
``ops.runs`` row, the direct raw append and the direct run of the real-time models share one; it is
closed before anything else opens the file in this process with another configuration (the read-only
publish, dbt, dlt), because DuckDB refuses a second configuration of an open file in one process.
"""

from __future__ import annotations

from collections.abc import Callable

import duckdb


class BatchConnection:
    """Opens on first use, closes on demand (and again harmlessly); the caller holds the warehouse lock."""

    def __init__(self, opener: Callable[[], duckdb.DuckDBPyConnection]) -> None:
        self.opener = opener
        self.con: duckdb.DuckDBPyConnection | None = None

    def get(self) -> duckdb.DuckDBPyConnection:
        if self.con is None:
            self.con = self.opener()
        return self.con

    def close(self) -> None:
        if self.con is not None:
            con, self.con = self.con, None
            con.close()
