"""Stream mode: follow the events feed in micro-batches, exactly once, with fresh real-time marts.

``python -m elt stream`` long-polls the events service, loads each micro-batch into
``raw_events.events`` through the *same* dlt pipeline and resource state as the batch loader
(``extract_events``), rebuilds the ``tag:realtime`` dbt models in-process and republishes them to
``exports/realtime/``. The design (exactly-once, the warehouse lock, latency) is in docs/stream.md.
"""
