"""The orchestrator: the whole flow as Dagster assets, on a schedule, with its history in a UI.

A flow on top of the pipeline, beside ``elt/flow.py`` (``make elt``): it imports the pipeline's public
pieces (the loaders' registry, the flow's steps, the dbt wrapper's environment, the publisher) and adds
what a scheduler gives - an asset graph from raw table to export, dbt tests as checks, schedules, a
stream sensor, run history. Nothing below imports it (tests/pytest/test_layers.py).

``definitions.py`` is the code location (``[tool.dagster]`` in pyproject.toml); ``python -m
orchestration`` (``make orchestrate``, ``make orchestrate-run``) starts the UI or runs the batch job
headless. docs: the README's "Orchestration" section.
"""
