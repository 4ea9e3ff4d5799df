"""Orchestration side of the project: shared settings, the warehouse lock, the ops run log,
Parquet publishing of the marts, and the ``python -m elt`` command line.

The helpers here are deliberately dependency-light (stdlib + duckdb) because every other part
(services launcher, loaders, dbt wrapper, benchmark) imports them.
"""
