"""The floor every part of the pipeline stands on: paths and settings, the one env-file reader, the
warehouse lock, the run log, secret scrubbing and the PII key, signals, file modes, atomic small
files, the warehouse check, checksums and SQL quoting, TLS client settings.

It imports nothing else of the repository (tests/pytest/test_layers.py), so the loaders, dbt, the
publisher and the flows can all use it without importing each other.

Why the PII key lives here: the key is a secret the transform side hands to dbt (transform/dbt_runner.py)
and the publisher records by fingerprint in every manifest (publish/publish.py); in either of those two
layers the other would have to import it. The run log's step recorder (``steps.py``) is here for the
same reason: the flows and the snapshot repair (transform/repair.py) both log their steps with it.
"""
