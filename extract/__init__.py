"""dlt loaders: pull the five shop services' REST APIs into the DuckDB warehouse (``raw_<service>``).

Run with ``python -m extract [names...] [--full-refresh] [--recover]``; see extract/README.md.
"""
