"""Load horizons: how far each service's committed raw data is complete, for dbt's consistent cut.

Why: the loaders walk the services one after another (or two at a time), each at its own wall time,
while the services keep changing. A payment can be in raw while the order it paid is still loaded at its
older version. The loader's cutoff gives each run one time for every service: records stamped at or
after it wait for the next run. A record stamped before ``cutoff - max commit delay`` was committed
before the cutoff, so before any walk of that run began: every service's load holds it. dbt
(docs/consistency.md) publishes an order only once every service's horizon has passed its last
change, which is what makes the cross-service checks hold on live sources.

Each successful service load appends one row to ``ops.source_horizons`` (service, the run's cutoff,
the service's lag window, the run id). The row is written after the load committed and only for a
service that did not fail: a crash in between leaves the older horizon, which is safe (it only holds
back publishing). Rows are kept (one per service per run) as the record of what each run completed.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import UTC, datetime

import duckdb

from extract.config import tuning

log = logging.getLogger("extract.horizon")

TABLE = "source_horizons"
_DDL = """
create schema if not exists {ops};
create table if not exists {ops}.source_horizons (
    service varchar not null,
    cutoff_at timestamp with time zone not null,
    lag_seconds double not null,
    run_id varchar,
    recorded_at timestamp with time zone not null
);
"""


def _ops(con: duckdb.DuckDBPyConnection) -> str:
    """The ``ops`` schema qualified by the connection's database (as core.ops_log does, so a warehouse
    file called ``ops.duckdb`` does not make ``ops.source_horizons`` ambiguous)."""
    (database,) = con.execute("select current_database()").fetchone()
    return '"{}".ops'.format(database.replace('"', '""'))


def record(con: duckdb.DuckDBPyConnection, service: str, cutoff: datetime, run_id: str | None = None) -> None:
    """Append the horizon of one committed service load: ``cutoff`` is the run's cutoff (records stamped
    at or after it were left for the next run); the service's ``lag_seconds`` is kept with it so dbt can
    check that the commit delay it assumes is one the loader re-reads."""
    ops = _ops(con)
    con.execute(_DDL.format(ops=ops))
    con.execute(
        f"insert into {ops}.{TABLE} (service, cutoff_at, lag_seconds, run_id, recorded_at) "
        "values (?, ?, ?, ?, ?)",
        [service, cutoff.astimezone(UTC), float(tuning(service).lag_seconds), run_id, datetime.now(UTC)],
    )


def record_loaded(
    con: duckdb.DuckDBPyConnection,
    services: Iterable[str],
    failures: Iterable[str],
    cutoff: datetime | None,
    run_id: str | None = None,
) -> list[str]:
    """Record the horizon of every service in ``services`` that is not in ``failures``; returns them.

    A failure to write is logged, not raised: the loads themselves committed, and a missing horizon only
    keeps dbt's cut where the previous run left it (marts publish less, never something wrong).
    """
    if cutoff is None:  # the run never reached its services
        return []
    failed = set(failures)
    recorded: list[str] = []
    try:
        for name in services:
            if name not in failed:
                record(con, name, cutoff, run_id)
                recorded.append(name)
    except duckdb.Error as exc:
        log.warning(
            "could not record the load horizon (%s); dbt's consistent cut stays at the previous run's "
            "until a later run records one",
            type(exc).__name__,
        )
    return recorded
