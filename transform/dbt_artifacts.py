"""Read what dbt wrote into its target folder: which models to publish (``manifest.json``) and how
the last invocation went (``run_results.json``).

Publishing is driven by dbt's own metadata rather than a hand-kept list: a model tagged ``publish``
is exported, ``meta.publish_partition_by`` names its partition column (``meta.publish_partition_grain``,
optional: ``hour``/``day``/``month``/``year`` of a timestamp or date column, one file per bucket without a
column added to the mart; ``meta.publish_partition_rollup``, a coarser grain for the rows before its
current period), ``meta.publish_high_water_mark``
the column whose newest value the manifest records (how far the data reaches), and the relation
(database/schema/alias) is taken from the manifest so custom schemas and aliases just work.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core import settings

PUBLISH_TAG = "publish"
PARTITION_META_KEY = "publish_partition_by"
GRAIN_META_KEY = "publish_partition_grain"
ROLLUP_META_KEY = "publish_partition_rollup"
HIGH_WATER_META_KEY = "publish_high_water_mark"


class ArtifactError(RuntimeError):
    """dbt's artifacts are missing or unusable (e.g. dbt never ran)."""


def target_dir() -> Path:
    """dbt's target folder: ``DBT_TARGET_PATH`` (relative to the repo root) or ``target/``."""
    raw = os.environ.get("DBT_TARGET_PATH") or "target"
    path = Path(raw).expanduser()
    return path if path.is_absolute() else settings.repo_root() / path


@dataclass(frozen=True)
class MartSpec:
    """One model to publish and where it lives in the warehouse."""

    name: str
    unique_id: str
    database: str | None
    schema: str
    alias: str
    partition_by: str | None = None
    partition_grain: str | None = None  # a file per hour/day/month/year of partition_by
    partition_rollup: str | None = None  # ...before the current month (say): a file per month
    high_water_mark: str | None = None
    description: str = ""
    column_descriptions: dict[str, str] = field(default_factory=dict)


def _load_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise ArtifactError(f"{path} not found: run `dbt build` (make dbt ARGS=build) first") from None
    except json.JSONDecodeError as exc:
        raise ArtifactError(f"{path} is not valid JSON ({exc}); re-run dbt") from None


def publish_specs(manifest_path: Path | None = None) -> list[MartSpec]:
    """Every enabled, non-ephemeral model tagged ``publish``, sorted by name."""
    path = manifest_path or target_dir() / "manifest.json"
    manifest = _load_json(path)
    specs: list[MartSpec] = []
    for unique_id, node in manifest.get("nodes", {}).items():
        if node.get("resource_type") != "model":
            continue
        config = node.get("config") or {}
        tags = set(node.get("tags") or []) | set(config.get("tags") or [])
        if PUBLISH_TAG not in tags or config.get("enabled") is False:
            continue
        if config.get("materialized") == "ephemeral":
            raise ArtifactError(f"{unique_id} is tagged publish but ephemeral: it has no relation to export")
        meta = {**(config.get("meta") or {}), **(node.get("meta") or {})}
        columns = node.get("columns") or {}
        specs.append(
            MartSpec(
                name=node["name"],
                unique_id=unique_id,
                database=node.get("database"),
                schema=node["schema"],
                alias=node.get("alias") or node["name"],
                partition_by=meta.get(PARTITION_META_KEY) or None,
                partition_grain=meta.get(GRAIN_META_KEY) or None,
                partition_rollup=meta.get(ROLLUP_META_KEY) or None,
                high_water_mark=meta.get(HIGH_WATER_META_KEY) or None,
                description=node.get("description") or "",
                column_descriptions={
                    name: col.get("description") or ""
                    for name, col in columns.items()
                    if col.get("description")
                },
            )
        )
    names = [s.name for s in specs]
    duplicates = {n for n in names if names.count(n) > 1}
    if duplicates:
        raise ArtifactError(f"two published models share a name (export folders would clash): {duplicates}")
    return sorted(specs, key=lambda s: s.name)


@dataclass(frozen=True)
class RunSummary:
    """The gist of one dbt invocation's ``run_results.json``."""

    invocation_id: str | None
    command: str | None
    generated_at: str | None
    statuses: dict[str, int]
    tests_passed: int
    tests_failed: int
    tests_warned: int
    models_built: int
    failures: list[str]
    nodes: int = 0  # results other than the project's hooks: the models, seeds, snapshots and tests run

    @property
    def ok(self) -> bool:
        """No node errored or failed (warnings and skips allowed, as dbt's own exit code does)."""
        return not self.failures


def run_summary(run_results_path: Path | None = None) -> RunSummary:
    """Summarise ``run_results.json``: statuses, test outcomes, the invocation id."""
    data = _load_json(run_results_path or target_dir() / "run_results.json")
    metadata = data.get("metadata") or {}
    args = data.get("args") or {}
    statuses: dict[str, int] = {}
    passed = failed = warned = models = nodes = 0
    failures: list[str] = []
    for result in data.get("results") or []:
        status = str(result.get("status"))
        uid = str(result.get("unique_id", ""))
        statuses[status] = statuses.get(status, 0) + 1
        nodes += not uid.startswith("operation.")
        if status in ("error", "fail", "runtime error"):
            failures.append(f"{uid}: {status}")
        if uid.startswith("test."):
            passed += status == "pass"
            failed += status in ("fail", "error")
            warned += status == "warn"
        elif uid.startswith("model.") and status == "success":
            models += 1
    return RunSummary(
        invocation_id=metadata.get("invocation_id"),
        command=args.get("which"),
        generated_at=metadata.get("generated_at"),
        statuses=statuses,
        tests_passed=passed,
        tests_failed=failed,
        tests_warned=warned,
        models_built=models,
        failures=failures,
        nodes=nodes,
    )
