"""Publishing the marts: Parquet versions with a manifest switched in atomically (``publish``), the
``exports/`` layout and pointer (``versions``), read-back verification (``verify``) and the carrying
of stale marts under ``--allow-partial`` (``partial``). Imports ``core`` and what dbt built
(``transform.dbt_artifacts``), never the loaders or the flows (tests/pytest/test_layers.py)."""
