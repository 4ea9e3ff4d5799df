"""Benchmark peers: deliberately simple or foreign ways of doing the same pull, for comparison only.

Nothing here is part of the pipeline. The limit client stores nothing (an upper bound for HTTP + JSON),
the seed-style script is what a first draft would look like (requests + pandas), and the Singer peer
runs tap-rest-api-msdk into target-duckdb from a separate virtual environment.
"""
