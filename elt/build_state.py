"""Whether ``elt run`` has anything to build: the inputs of the last successful build, and the check
that skips dbt and publish when none of them changed.

Why: the loaders already know when nothing is new (an incremental walk that finds no change commits no
load), but ``dbt build`` and the publish used to run in full anyway, and published a version identical to
the last. A team running the flow every few minutes paid a whole transform for nothing.

What a build's output depends on, and how each is compared (``BuildInputs``):

- **definitions**: every file of the dbt project (models, seeds, snapshots, macros, data tests,
  analyses, ``dbt_project.yml``, ``profiles.yml``, package files and installed packages), the values of
  the environment variables those files read with ``env_var()`` (vars such as ``settle_seconds`` come
  from them; a secret's value enters only through its fingerprint), the sources the loaders know
  (``SHOP_SOURCE_NAMES``) and the installed dbt versions - one sha256 over all of it (the variables that
  only say where the warehouse and run folder are, ``LOCATION_ENV``, are left out);
- **loads**: the newest committed dlt load id of every ``raw_*`` schema (a load that changed or added
  anything commits a new one; an unchanged walk commits none);
- **time**: the UTC day (models keep "today" and drop yesterday), and *pending rows*: a model whose
  rows can change with time alone declares it with ``meta.rebuild_while`` (a SQL condition over its
  rows, e.g. orders waiting for the consistent cut, which moves with every load horizon). While any row
  of the last build matches, every run builds;
- **the build and version of record**: the last ``dbt build`` through the wrapper must be the one that
  was recorded (a ``make dbt`` in between may have changed the marts) and ``exports/current`` must
  still be the version it published (a rollback or a lost folder publishes again).

The state is written only after a run built *and* published successfully, so a failed or interrupted
run is never mistaken for a finished one; anything unknown (no state, an unreadable file, a missing
manifest) means "build". ``--full-build`` (or ``SHOP_FULL_BUILD=1``) builds regardless.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import duckdb
import yaml

from core import settings
from publish import versions

STATE_FILE = "build_state.json"
FORMAT = 1
FORCE_ENV = "SHOP_FULL_BUILD"
FORCE_FLAG = "--full-build"
PENDING_META_KEY = "rebuild_while"
# dbt_project.yml keys naming folders of project files (with dbt's defaults)
PATH_KEYS = {
    "model-paths": ["models"],
    "seed-paths": ["seeds"],
    "macro-paths": ["macros"],
    "snapshot-paths": ["snapshots"],
    "test-paths": ["tests"],
    "analysis-paths": ["analyses"],
}
PROJECT_FILES = ("dbt_project.yml", "profiles.yml", "packages.yml", "dependencies.yml", "package-lock.yml")
PACKAGES_DIR = "dbt_packages"
SUFFIXES = {".sql", ".yml", ".yaml", ".csv", ".md", ".py", ".jinja", ".json"}
ENV_VAR_CALL = re.compile(r"""env_var\(\s*['"]([A-Za-z_][A-Za-z0-9_]*)['"]""")
SECRET_PREFIX = "DBT_ENV_SECRET_"
DBT_DISTRIBUTIONS = ("dbt-core", "dbt-duckdb", "duckdb")
# set by the dbt wrapper (elt/dbt_runner.py) and read by generated models' `enabled`
EXTRA_ENV = ("SHOP_SOURCE_NAMES",)
# Where the data lives, not what is built from it: the load ids and the recorded dbt invocation already tie
# the state to one warehouse, so a workspace that moved (or a copy of it) need not rebuild.
LOCATION_ENV = ("SHOP_WAREHOUSE", "SHOP_RUN_DIR")


def state_file() -> Path:
    return settings.run_dir() / STATE_FILE


def forced(env: Mapping[str, str] | None = None) -> bool:
    """``SHOP_FULL_BUILD`` set to a true value: build whatever the check says."""
    raw = (env if env is not None else os.environ).get(FORCE_ENV, "").strip().lower()
    return raw not in ("", "0", "false", "no", "off")


def project_files(root: Path) -> list[Path]:
    """Every file whose content can change what dbt builds, sorted (the order is part of the digest)."""
    try:
        project = yaml.safe_load((root / "dbt_project.yml").read_text()) or {}
    except (OSError, yaml.YAMLError):
        project = {}
    folders: set[str] = {PACKAGES_DIR}
    for key, default in PATH_KEYS.items():
        folders.update(str(p) for p in (project.get(key) or default))
    files = {root / name for name in PROJECT_FILES if (root / name).is_file()}
    for folder in folders:
        base = root / folder
        if base.is_dir():
            found = (p for p in base.rglob("*") if p.is_file() and p.suffix in SUFFIXES)
            files.update(p for p in found if "__pycache__" not in p.parts)
    return sorted(files)


def definitions_digest(root: Path, env: Mapping[str, str]) -> str:
    """sha256 over the project files (path and bytes), the values of the env vars they read and the
    installed dbt versions. A secret's value enters only as its own sha256 inside this one digest."""
    digest = hashlib.sha256(f"format {FORMAT}\n".encode())
    names: set[str] = set(EXTRA_ENV)
    for path in project_files(root):
        data = path.read_bytes()
        digest.update(f"file {path.relative_to(root).as_posix()} {len(data)}\n".encode())
        digest.update(data)
        names.update(ENV_VAR_CALL.findall(data.decode("utf-8", "replace")))
    for name in sorted(names - set(LOCATION_ENV)):
        value = env.get(name)
        if value is not None and name.startswith(SECRET_PREFIX):
            value = "sha256:" + hashlib.sha256(value.encode()).hexdigest()
        digest.update(f"env {name}={'<unset>' if value is None else value}\n".encode())
    for dist in DBT_DISTRIBUTIONS:
        try:
            digest.update(f"dist {dist} {metadata.version(dist)}\n".encode())
        except metadata.PackageNotFoundError:
            digest.update(f"dist {dist} -\n".encode())
    return digest.hexdigest()


def committed_loads(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    """Newest committed dlt load id per ``raw_*`` schema."""
    from core.steps import committed_loads_of  # the flow's own reading of the same table

    return committed_loads_of(con)


@dataclass(frozen=True)
class Probe:
    """A model whose rows can change with time alone: ``condition`` over ``relation`` (from the
    manifest of the build that wrote it)."""

    model: str
    relation: str
    condition: str


def pending_probes(manifest_path: Path) -> list[Probe]:
    """The models with ``meta.rebuild_while`` in dbt's manifest."""
    manifest = json.loads(manifest_path.read_text())
    probes = []
    for node in (manifest.get("nodes") or {}).values():
        if node.get("resource_type") != "model":
            continue
        config = node.get("config") or {}
        meta = {**(config.get("meta") or {}), **(node.get("meta") or {})}
        condition = meta.get(PENDING_META_KEY)
        if condition and config.get("enabled", True) is not False:
            relation = ".".join(
                '"' + str(p).replace('"', '""') + '"'
                for p in (node.get("database"), node["schema"], node.get("alias") or node["name"])
                if p
            )
            probes.append(Probe(node["name"], relation, str(condition)))
    return sorted(probes, key=lambda p: p.model)


def pending_rows(con: duckdb.DuckDBPyConnection, probes: list[Probe]) -> dict[str, int]:
    """Rows matching each probe's condition now (a relation that is gone counts as pending)."""
    out: dict[str, int] = {}
    for probe in probes:
        count = -1  # unknown: treat as pending
        # as recorded, then in the connection's own database (a warehouse file renamed since: dbt names
        # the database after the file)
        for relation in (probe.relation, probe.relation.split(".", 1)[-1]):
            try:
                query = f"select count(*) from {relation} where {probe.condition}"
                (count,) = con.execute(query).fetchone()
                break
            except duckdb.Error:
                continue
        out[probe.model] = int(count)
    return out


@dataclass
class BuildInputs:
    """What a build is made of, compared between runs."""

    definitions: str
    loads: dict[str, str]
    utc_day: str
    probes: list[Probe] = field(default_factory=list)


@dataclass
class Recorded:
    """The state file: the inputs of the last successful build and what it produced."""

    inputs: BuildInputs
    invocation_id: str | None
    version: str | None
    recorded_at: str


def current_inputs(
    con: duckdb.DuckDBPyConnection, env: Mapping[str, str], now: datetime | None = None
) -> BuildInputs:
    """The inputs as they are now (``con`` on the warehouse; ``env`` the one dbt runs with)."""
    day = (now or datetime.now(UTC)).astimezone(UTC).date().isoformat()
    return BuildInputs(definitions_digest(settings.repo_root(), env), committed_loads(con), day)


def record(
    inputs: BuildInputs, invocation_id: str | None, version: str | None, manifest_path: Path | None
) -> None:
    """Remember a successful build and publish (with the pending probes of the build's manifest)."""
    probes = pending_probes(manifest_path) if manifest_path is not None and manifest_path.is_file() else []
    data = {
        "format": FORMAT,
        "inputs": {**asdict(inputs), "probes": [asdict(p) for p in probes]},
        "invocation_id": invocation_id,
        "version": version,
        "recorded_at": datetime.now(UTC).isoformat(),
    }
    path = state_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    versions.write_atomic(path, json.dumps(data, indent=2) + "\n")


def forget() -> None:
    """Drop the record (the next run builds): after anything that may have changed the marts."""
    state_file().unlink(missing_ok=True)


def load() -> Recorded | None:
    """The recorded state, or None when there is none or it cannot be read (then a run builds)."""
    try:
        data = json.loads(state_file().read_text())
        if data.get("format") != FORMAT:
            return None
        raw = data["inputs"]
        inputs = BuildInputs(
            str(raw["definitions"]),
            {str(k): str(v) for k, v in raw["loads"].items()},
            str(raw["utc_day"]),
            [Probe(str(p["model"]), str(p["relation"]), str(p["condition"])) for p in raw.get("probes", [])],
        )
        return Recorded(inputs, data.get("invocation_id"), data.get("version"), str(data.get("recorded_at")))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


@dataclass(frozen=True)
class Decision:
    """``build`` False: nothing changed since ``version``; else ``reasons`` say why a build is needed."""

    build: bool
    reasons: list[str]
    version: str | None = None

    def describe(self) -> str:
        if not self.build:
            return f"nothing new since version {self.version}: no new load, no definition change"
        return "; ".join(self.reasons)


def decide(
    con: duckdb.DuckDBPyConnection,
    inputs: BuildInputs,
    *,
    exports: Path,
    last_build: Mapping[str, Any] | None,
    recorded: Recorded | None = None,
) -> Decision:
    """Compare ``inputs`` (now) with the recorded state; every difference is a reason to build."""
    recorded = recorded if recorded is not None else load()
    if recorded is None:
        return Decision(True, ["no successful build recorded"])
    old = recorded.inputs
    reasons: list[str] = []
    if old.definitions != inputs.definitions:
        reasons.append("the dbt project's definitions, vars or their env changed")
    for schema in sorted(set(old.loads) | set(inputs.loads)):
        before, now = old.loads.get(schema), inputs.loads.get(schema)
        if before != now:
            reasons.append(f"new load in {schema}" if now else f"{schema} has no committed load any more")
    if old.utc_day != inputs.utc_day:
        reasons.append(f"a new UTC day ({inputs.utc_day})")
    for model, rows in pending_rows(con, old.probes).items():
        if rows:
            what = "unknown" if rows < 0 else f"{rows:,}"
            reasons.append(f"{what} row(s) of {model} can change with time ({PENDING_META_KEY})")
    if last_build is None or last_build.get("exit_code") != 0:
        reasons.append("the last dbt build did not succeed")
    elif last_build.get("invocation_id") != recorded.invocation_id:
        reasons.append("dbt ran since the recorded build")
    if versions.current_version_id(exports) != recorded.version or recorded.version is None:
        reasons.append(f"exports/current is not the recorded version {recorded.version}")
    return Decision(bool(reasons), reasons, recorded.version)
