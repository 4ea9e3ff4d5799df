"""Run dbt on the spark target (profiles.yml ``spark``): the project's one dbt wrapper for that target.

What differs from the DuckDB wrapper (transform/dbt_runner.py), and why:

- Its files live under ``SHOP_SPARK_DIR`` (default ``data/spark``, git-ignored): the metastore, the
  warehouse of Spark tables, the raw lake, and dbt's target and log folders, so a Spark build never
  replaces the ``target/manifest.json`` and run record that the DuckDB flow publishes from.
- The PII key reaches Spark as a file (macros/pii_hash.sql, ``spark__pii_key``): Spark has no session
  variable profiles.yml could set without the value appearing in SQL text. The key resolved exactly as
  for DuckDB (``core.pii_key.pii_key``: ``SHOP_PII_KEY`` or ``run/pii.key``, refused when lost after a
  publish) is written to ``<spark dir>/pii.key`` (mode 600, in an owner-only folder) and named by
  ``SHOP_SPARK_PII_KEY_FILE``; compiled SQL and logs hold the path, never the key.
- A lock of its own (``<spark dir>/spark.lock``): Spark's embedded metastore (Derby) takes one process
  at a time. The DuckDB warehouse lock is not held during the build, which reads only the lake.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from core import pii_key, settings
from transform import dbt_artifacts, dbt_progress, dbt_runner

log = logging.getLogger("transform.spark")

TARGET = "spark"
KEY_FILE_ENV = "SHOP_SPARK_PII_KEY_FILE"


def spark_dir() -> Path:
    """Everything the spark target writes (``SHOP_SPARK_DIR``, default ``data/spark``)."""
    raw = os.environ.get("SHOP_SPARK_DIR") or "data/spark"
    path = Path(raw).expanduser()
    path = path if path.is_absolute() else settings.repo_root() / path
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path, 0o700)  # holds the key file and raw personal data
    return path


def target_dir() -> Path:
    """dbt's target folder for Spark builds (its manifest lists the marts to publish)."""
    return spark_dir() / "target"


def warehouse_dir() -> Path:
    """``spark.sql.warehouse.dir``: managed tables live in ``<schema>.db/<table>/`` below it."""
    return spark_dir() / "warehouse"


@contextmanager
def spark_lock(wait: float = 900.0) -> Iterator[None]:
    """One Spark build at a time (the embedded metastore allows one process); waits up to ``wait`` s."""
    path = spark_dir() / "spark.lock"
    with open(path, "a+") as fh:
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"another Spark build holds {path}: wait for it, then re-run"
                    ) from None
                time.sleep(1.0)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def write_key_file(key: str) -> Path:
    """The key in an owner-only file for ``spark__pii_key``; replaced atomically, never logged."""
    path = spark_dir() / "pii.key"
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(key + "\n")
    os.replace(tmp, path)
    return path


def spark_env(key: str | None = None) -> dict[str, str]:
    """The environment of a dbt child on the spark target (paths absolute, the key file named)."""
    env = dbt_runner.dbt_env(need_key=False)
    env.pop(pii_key.DBT_ENV_VAR, None)  # the spark target reads the key file, never the variable
    root = spark_dir()
    env["SHOP_SPARK_DIR"] = str(root)
    env["DBT_TARGET_PATH"] = str(target_dir())
    env["DBT_LOG_PATH"] = str(root / "logs")
    if key is not None:
        env[KEY_FILE_ENV] = str(write_key_file(key))
    return env


@dataclass
class SparkBuild:
    args: list[str]
    exit_code: int
    seconds: float
    summary: dbt_artifacts.RunSummary | None
    pii_key_fingerprint: str | None
    built: list[str]  # unique ids of the models that succeeded

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


def run_dbt(args: list[str], *, raw_lake: dict[str, object] | None = None, wait: float = 900.0) -> SparkBuild:
    """``dbt <args> --target spark``; ``raw_lake`` (``LakeExport.dbt_var()``) is registered first."""
    key = pii_key.pii_key()  # raises before anything runs when the key is lost after a publish
    fingerprint = pii_key.check_build_key(key)
    full = [*args, "--target", TARGET]
    if raw_lake is not None:
        full += ["--vars", json.dumps({"spark_raw_lake": raw_lake})]
    run_results = target_dir() / "run_results.json"
    before = run_results.stat().st_mtime_ns if run_results.exists() else None
    started = time.monotonic()
    log.info("dbt %s (spark)", " ".join(args))
    with spark_lock(wait):
        code = dbt_progress.run(
            dbt_runner.dbt_command(full),
            cwd=settings.repo_root(),
            env=spark_env(key),
            progress=dbt_progress.structured(dbt_runner.subcommand(args)),
        )
    seconds = time.monotonic() - started
    summary, built = None, []
    if run_results.exists() and run_results.stat().st_mtime_ns != before:
        summary = dbt_artifacts.run_summary(run_results)
        results = json.loads(run_results.read_text()).get("results", [])
        built = [r["unique_id"] for r in results if r.get("status") == "success"]
    log.info("dbt %s (spark) exited %d after %.1fs", dbt_runner.subcommand(args), code, seconds)
    return SparkBuild(full, code, seconds, summary, fingerprint, built)
