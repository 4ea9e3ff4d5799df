"""What the benchmark ran on: machine, versions, date. Numbers without this are not comparable."""

from __future__ import annotations

import datetime as dt
import importlib.metadata as md
import os
import platform
import subprocess

import psutil

PACKAGES = (
    "dlt",
    "duckdb",
    "dbt-core",
    "dbt-duckdb",
    "pyarrow",
    "fastapi",
    "uvicorn",
    "orjson",
    "requests",
    "pandas",
    "py-spy",
    "dbt-spark",  # the optional spark group (bench/spark_cost.py); None when not installed
    "pyspark",
)


def machine_info() -> dict:
    """Host, CPU, memory, Python and package versions, git revision, UTC time."""
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = md.version(name)
        except md.PackageNotFoundError:
            versions[name] = None
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
        ).stdout.strip()
    except OSError:
        rev = ""
    cpu_model = ""
    try:
        with open("/proc/cpuinfo") as f:
            cpu_model = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), "")
    except OSError:
        pass
    return {
        "date_utc": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "host": platform.node(),
        "platform": platform.platform(),
        "cpu_model": cpu_model,
        "cpus": os.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "git_rev": rev,
        "versions": versions,
        "load_avg_at_start": [round(x, 2) for x in os.getloadavg()],
    }
