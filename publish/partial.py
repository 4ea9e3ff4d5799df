"""``elt run --allow-partial``: when some sources fail, publish what does not depend on them.

Why opt-in: by default a failed source fails the run and publishes nothing, so every published version
is one consistent cut of every source. Some teams prefer fresh marts from the sources that loaded over
no new version at all. With ``--allow-partial`` (and only when the loader reported which sources failed
while others loaded, ``python -m extract --outcome-file``):

* ``dbt build`` excludes every source of the failed services and all their descendants
  (``--exclude source:<name>+``), so nothing is rebuilt from a mix of fresh and stale raw data and no
  test compares them;
* the publish writes the marts that do not depend on a failed source (their lineage in dbt's
  ``manifest.json``) and *carries* the others from the current version, file for file (a hard link,
  checked against the recorded sha256), so ``exports/current`` keeps every mart;
* the manifest says so: ``partial`` names the failed sources, the stale marts, the version they were
  carried from and any stale mart that had no earlier version to carry; each carried mart's entry has
  ``stale`` (``built_in_version``: the version whose build it is).

A version published this way is marked, not hidden: consumers check ``partial`` (absent in a complete
version) and each mart's ``stale``.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from core import checksums, settings
from publish import versions
from publish.publish import FORMAT_VERSION, PublishError
from transform.dbt_artifacts import MartSpec, target_dir

OUTCOME_FILE = "extract_outcome.json"
FLAG = "--allow-partial"


def outcome_path() -> Path:
    """Where the flow asks the loader to write which sources loaded and which failed."""
    return settings.run_dir() / OUTCOME_FILE


def read_failures(path: Path) -> dict[str, str] | None:
    """The sources the loader reported failed (``{"loaded": [...], "failed": {name: message}}``, written
    by ``python -m extract --outcome-file`` at the end of its run), when it reported and at least one
    source loaded; None otherwise (a crash, a busy warehouse, every source failed: no partial run)."""
    try:
        outcome = json.loads(path.read_text())
        failed = {str(k): str(v) for k, v in (outcome.get("failed") or {}).items()}
        loaded = [str(n) for n in outcome.get("loaded") or []]
    except (OSError, ValueError, AttributeError):
        return None
    return failed if failed and loaded else None


def _yaml_files() -> list[Path]:
    root = settings.repo_root()
    try:
        project = yaml.safe_load((root / "dbt_project.yml").read_text()) or {}
    except (OSError, yaml.YAMLError):
        project = {}
    folders = project.get("model-paths") or ["models"]
    return sorted(p for folder in folders for p in (root / folder).rglob("*.y*ml"))


def dbt_sources_of(services: Iterable[str]) -> list[str]:
    """The dbt sources reading the services' raw schemas (``schema: raw_<service>``; a source without a
    schema reads the schema of its own name), from the project's YAML files."""
    schemas = {f"raw_{s}" for s in services}
    names: set[str] = set()
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    for path in _yaml_files():
        try:
            text = path.read_text()
            doc = yaml.load(text, Loader=loader) or {} if "sources:" in text else {}
        except (OSError, yaml.YAMLError):
            continue
        for source in (doc.get("sources") or []) if isinstance(doc, dict) else []:
            named = isinstance(source, dict) and source.get("name")
            if named and str(source.get("schema") or source["name"]) in schemas:
                names.add(str(source["name"]))
    return sorted(names)


@dataclass
class Partial:
    """A run going on without the sources that failed."""

    failed: dict[str, str]  # service -> the loader's message
    dbt_sources: list[str] = field(default_factory=list)
    stale: list[str] = field(default_factory=list)  # published marts that depend on a failed source
    carried_from: str | None = None
    missing: list[str] = field(default_factory=list)  # stale marts with no earlier version (of this format)

    @classmethod
    def of(cls, failed: dict[str, str]) -> Partial:
        return cls(failed, dbt_sources_of(failed))

    def exclude_args(self) -> list[str]:
        """dbt arguments that leave out the failed sources and everything built from them."""
        return ["--exclude", *(f"source:{name}+" for name in self.dbt_sources)] if self.dbt_sources else []

    def split(self, specs: list[MartSpec], manifest_path: Path | None = None) -> list[MartSpec]:
        """The specs to publish from the warehouse; the others (``stale``) depend on a failed source, by
        the lineage of dbt's manifest (written by the build that just ran)."""
        manifest = json.loads((manifest_path or target_dir() / "manifest.json").read_text())
        schemas = {f"raw_{s}" for s in self.failed}
        roots = {uid for uid, src in (manifest.get("sources") or {}).items() if src.get("schema") in schemas}
        parents = manifest.get("parent_map") or {}
        stale: set[str] = set()
        for spec in specs:
            seen: set[str] = set()
            todo = [spec.unique_id]
            while todo:
                for parent in parents.get(todo.pop(), []):
                    if parent not in seen:
                        seen.add(parent)
                        todo.append(parent)
            if seen & roots:
                stale.add(spec.name)
        self.stale = sorted(stale)
        fresh = [s for s in specs if s.name not in stale]
        if not fresh:
            raise PublishError(f"every published mart depends on a failed source: {self.summary()}")
        return fresh

    def hook(self, exports: Path) -> Callable[[Path, dict[str, Any]], None]:
        """``publish``'s ``amend_manifest``: carry the stale marts and mark the manifest partial."""
        return lambda staging, manifest: self.amend(exports, staging, manifest)

    def amend(self, exports: Path, staging: Path, manifest: dict[str, Any]) -> None:
        """The publish hook: carry the stale marts into ``staging`` and mark the manifest partial."""
        manifest["marts"].update(self.carry(exports, staging))
        manifest["partial"] = self.manifest_entry()

    def carry(self, exports: Path, staging: Path) -> dict[str, Any]:
        """Hard-link the stale marts' files of the current version into ``staging`` (a copy where a link
        is impossible), check each against its recorded sha256, and return their manifest entries
        marked ``stale``. A stale mart the current version lacks is listed in ``missing``."""
        current = versions.resolve_current(exports)
        previous = versions.read_manifest(current) if current is not None else {}
        self.carried_from = previous.get("version")
        # files of an older format (Hive folders, naive timestamps) are not mixed into this version
        same_format = previous.get("format_version") == FORMAT_VERSION
        entries: dict[str, Any] = {}
        for name in self.stale:
            entry = (previous.get("marts") or {}).get(name)
            if entry is None or current is None or not same_format:
                self.missing.append(name)
                continue
            for f in entry["files"]:
                src, dst = current / f["path"], staging / f["path"]
                dst.parent.mkdir(parents=True, exist_ok=True)
                try:
                    os.link(src, dst)
                except OSError:
                    shutil.copy2(src, dst)
                if checksums.sha256_file(dst) != f["sha256"]:
                    raise PublishError(
                        f"{name}: {f['path']} of version {self.carried_from} no longer matches its manifest;"
                        " not carrying a damaged file (run without --allow-partial once the source is back)"
                    )
            built_in = (entry.get("stale") or {}).get("built_in_version") or self.carried_from
            entries[name] = {
                **entry,
                "stale": {"built_in_version": built_in, "failed_sources": sorted(self.failed)},
            }
        return entries

    def manifest_entry(self) -> dict[str, Any]:
        """The manifest's ``partial`` record."""
        return {
            "failed_sources": dict(sorted(self.failed.items())),
            "stale_marts": self.stale,
            "carried_from": self.carried_from,
            "not_published": self.missing,
        }

    def summary(self) -> str:
        """One line for the flow's summary."""
        carried = [m for m in self.stale if m not in self.missing]
        text = f"PARTIAL: source(s) {', '.join(sorted(self.failed))} failed"
        if carried:
            text += f"; stale, carried from version {self.carried_from}: {', '.join(carried)}"
        if self.missing:
            text += f"; not published (no earlier version): {', '.join(self.missing)}"
        return text
