"""The spark target (profiles.yml ``spark``): the same dbt project built by Spark. ``lake`` copies raw out
of the DuckDB warehouse as Parquet for Spark to register, ``runner`` runs dbt on the target with the PII
key file and a lock of its own, ``mirror`` lets the one publisher (publish/publish.py) read Spark's marts.
The flow that strings them together is elt/spark_flow.py (``make spark-elt``); README "Scaling out"."""
