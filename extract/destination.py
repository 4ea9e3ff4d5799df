"""The warehouse destination of the loaders: dlt's DuckDB destination, with its capabilities resolved once.

Why: dlt asks a destination for its capabilities many times per pipeline run (setting the destination,
each step's storage set-up, every load package), and each time it resolves a partial
``DuckDbClientConfiguration`` through every config provider (environment, secrets.toml, config.toml,
with several section layouts per field) and - with a borrowed connection - runs a query to learn the
database path. That partial configuration only depends on the factory's own arguments, yet py-spy
showed it as a third of the Python time of a run that loads nothing and a tenth of a full load
(bench/tuning-history.md). Here the factory keeps the first partial configuration and hands the same
object to every later capabilities call of the same pipeline. The full client configuration (the one
holding credentials and the dataset name) is still resolved per client, exactly as before.
"""

from __future__ import annotations

import threading
from typing import Any

import dlt
import duckdb
from dlt.common.destination import Destination


def warehouse_destination(target: str | duckdb.DuckDBPyConnection) -> Destination:
    """``dlt.destinations.duckdb(target)`` whose partial (capabilities) configuration is resolved once.

    The override lives on the instance, not in a subclass: dlt records a destination's type from its
    class path in the pipeline state, so a subclass would change what existing pipelines have stored.
    """
    dest = dlt.destinations.duckdb(target)
    resolve = dest.configuration
    lock = threading.Lock()
    cached: dict[str, Any] = {}

    def configuration(initial_config: Any, accept_partial: bool = False) -> Any:
        if not accept_partial:  # a client's own configuration: resolved every time, as dlt does
            return resolve(initial_config, accept_partial)
        with lock:  # load jobs ask from several threads at once
            if "partial" not in cached:
                cached["partial"] = resolve(initial_config, True)
            return cached["partial"]

    dest.configuration = configuration  # type: ignore[method-assign]
    return dest
