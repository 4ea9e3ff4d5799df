"""dbt, run from Python: the wrapper that runs it under the warehouse lock with the PII key set
(``dbt_runner``), reading its artifacts and results, sqlfluff and the macro check, the docs page and
the SCD2 snapshot repair. Imports ``core`` and, of the loaders, only their registry of source names
(tests/pytest/test_layers.py)."""
