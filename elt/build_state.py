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
  only say where the warehouse and run folder are, ``LOCATION_ENV``, are left out). Kept in three
  parts (``Definitions``) so a change can be traced to what it touches: the files of nodes (one sha256
  each), the named inputs (each var of ``dbt_project.yml`` and each env var a node file reads), and
  the rest (``dbt_project.yml`` without its vars, profiles, packages, versions), which has no node of
  its own;
- **loads**: the newest committed dlt load id of every ``raw_*`` schema (a load that changed or added
  anything commits a new one; an unchanged walk commits none);
- **horizons**: the newest load horizon per service (``ops.source_horizons``, extract/horizon.py), which
  every extract moves, quiet services included. The consistent cut reads them; its move alone changes a
  published mart only through rows a model declares with ``meta.rebuild_while`` (next point), so a
  moved horizon is not by itself a reason to build (unless a published model reads the horizons past
  no such model, ``build_plan.horizons_reach_published``), only a part of what a build must refresh
  (elt/build_plan.py); a horizon that went back builds everything;
- **time**: the UTC day (models keep "today" and drop yesterday), and *pending rows*: a model whose
  rows can change with time alone declares it with ``meta.rebuild_while`` (a SQL condition over its
  rows, e.g. orders waiting for the consistent cut, which moves with every load horizon). While any row
  of the last build matches, every run builds;
- **the build and version of record**: the last ``dbt build`` through the wrapper must be the one that
  was recorded (a ``make dbt`` in between may have changed the marts) and ``exports/current`` must
  still be the version it published (a rollback or a lost folder publishes again).

The state is written only after a run built *and* published successfully, so a failed or interrupted
run is never mistaken for a finished one; anything unknown (no state, an unreadable file, a missing
manifest) means "build". ``--full-build`` (or ``SHOP_FULL_BUILD=1``) builds regardless. With the state,
the dbt manifest of that build is kept (``build_state/manifest.json`` in the run folder): the graph
the next run's changed-only build is planned on, and dbt's ``--state`` for ``state:modified``.

``decide`` says whether to build and what changed (``Changes``); some changes leave nothing to narrow
(``Changes.full``: a new UTC day, a build or version that is not the recorded one, a load or horizon
that went back, a definition without a node of its own), the others name loads, horizons, rows,
files and inputs that elt/build_plan.py turns into a dbt selection.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
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
STATE_DIR = "build_state"  # beside STATE_FILE: the manifest of the recorded build (dbt's --state folder)
FORMAT = 2
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
VAR_CALL = re.compile(r"\bvar\(")  # not env_var(
SECRET_PREFIX = "DBT_ENV_SECRET_"
DBT_DISTRIBUTIONS = ("dbt-core", "dbt-duckdb", "duckdb")
# set by the dbt wrapper (elt/dbt_runner.py) and read by generated models' `enabled`
EXTRA_ENV = ("SHOP_SOURCE_NAMES",)
# Where the data lives, not what is built from it: the load ids and the recorded dbt invocation already tie
# the state to one warehouse, so a workspace that moved (or a copy of it) need not rebuild.
LOCATION_ENV = ("SHOP_WAREHOUSE", "SHOP_RUN_DIR")
# the loaders' horizons (extract/horizon.py writes ops.source_horizons)
HORIZON_SCHEMA, HORIZON_TABLE = "ops", "source_horizons"


def state_file() -> Path:
    return settings.run_dir() / STATE_FILE


def state_dir() -> Path:
    """The folder holding the recorded build's ``manifest.json`` (what ``dbt --state`` reads)."""
    return settings.run_dir() / STATE_DIR


def saved_manifest() -> dict[str, Any] | None:
    """The recorded build's dbt manifest, or None when it is missing or unreadable."""
    try:
        return json.loads((state_dir() / "manifest.json").read_text())
    except (OSError, ValueError):
        return None


def forced(env: Mapping[str, str] | None = None) -> bool:
    """``SHOP_FULL_BUILD`` set to a true value: build whatever the check says."""
    raw = (env if env is not None else os.environ).get(FORCE_ENV, "").strip().lower()
    return raw not in ("", "0", "false", "no", "off")


def project_root() -> Path:
    """The dbt project the flow builds: ``DBT_PROJECT_DIR`` when set (as the dbt wrapper honours it),
    else the repository."""
    raw = os.environ.get("DBT_PROJECT_DIR")
    if not raw:
        return settings.repo_root()
    path = Path(raw).expanduser()
    return path if path.is_absolute() else settings.repo_root() / path  # dbt runs from the repo root


def _project_yaml(root: Path) -> dict[str, Any]:
    try:
        loaded = yaml.safe_load((root / "dbt_project.yml").read_text()) or {}
    except (OSError, yaml.YAMLError):
        return {}
    return loaded if isinstance(loaded, dict) else {}


def node_files(root: Path) -> list[Path]:
    """The files that define nodes (models, seeds, snapshots, macros, tests, analyses), sorted."""
    project = _project_yaml(root)
    folders: set[str] = set()
    for key, default in PATH_KEYS.items():
        folders.update(str(p) for p in (project.get(key) or default))
    files: set[Path] = set()
    for folder in folders:
        base = root / folder
        if base.is_dir():
            found = (p for p in base.rglob("*") if p.is_file() and p.suffix in SUFFIXES)
            files.update(p for p in found if "__pycache__" not in p.parts)
    return sorted(files)


@dataclass
class Definitions:
    """The definitions in three parts, so a change can be traced to the nodes it touches.

    ``project``: one sha256 over what belongs to no node (``dbt_project.yml`` without ``vars``,
    profiles, packages, the env vars those read, ``SHOP_SOURCE_NAMES``, the dbt versions): a change
    there rebuilds everything. ``files``: sha256 per node file (dbt's ``state:modified`` says which
    nodes a changed file defines). ``names``: a fingerprint per named input, ``var:<name>`` for each var
    of ``dbt_project.yml`` (its text and the env values it reads) and ``env:<NAME>`` for each env var a
    node file reads (a secret only as its sha256): a change rebuilds the nodes that mention the name."""

    project: str
    files: dict[str, str]
    names: dict[str, str]

    def digest(self) -> str:
        data = json.dumps({"format": FORMAT, **asdict(self)}, sort_keys=True)
        return hashlib.sha256(data.encode()).hexdigest()


def _env_value(name: str, env: Mapping[str, str]) -> str:
    value = env.get(name)
    if value is None:
        return "<unset>"
    if name.startswith(SECRET_PREFIX):
        return "sha256:" + hashlib.sha256(value.encode()).hexdigest()
    return value


def _env_print(text: str, env: Mapping[str, str]) -> str:
    """The values of the env vars ``text`` reads (location variables left out)."""
    names = sorted(set(ENV_VAR_CALL.findall(text)) - set(LOCATION_ENV))
    return "".join(f"env {name}={_env_value(name, env)}\n" for name in names)


def definitions(root: Path, env: Mapping[str, str]) -> Definitions:
    """The three parts of the project's definitions as they are now (``env``: dbt's environment)."""
    project = _project_yaml(root)
    raw_vars = project.pop("vars", None) or {}
    raw_vars = raw_vars if isinstance(raw_vars, dict) else {"<vars>": raw_vars}

    digest = hashlib.sha256(f"format {FORMAT}\n".encode())
    project_text = json.dumps(project, sort_keys=True, default=str)
    digest.update(f"dbt_project {project_text}\n".encode())
    extra = {name: env.get(name) for name in EXTRA_ENV}
    digest.update(f"extra {json.dumps(extra, sort_keys=True)}\n".encode())
    digest.update(_env_print(project_text, env).encode())
    others = [root / n for n in PROJECT_FILES if n != "dbt_project.yml" and (root / n).is_file()]
    packages = root / PACKAGES_DIR
    if packages.is_dir():
        others += sorted(p for p in packages.rglob("*") if p.is_file() and p.suffix in SUFFIXES)
    for path in others:
        data = path.read_bytes()
        digest.update(f"file {path.relative_to(root).as_posix()} {len(data)}\n".encode())
        digest.update(data)
        digest.update(_env_print(data.decode("utf-8", "replace"), env).encode())
    for dist in DBT_DISTRIBUTIONS:
        try:
            digest.update(f"dist {dist} {metadata.version(dist)}\n".encode())
        except metadata.PackageNotFoundError:
            digest.update(f"dist {dist} -\n".encode())

    files: dict[str, str] = {}
    read_env: set[str] = set()
    for path in node_files(root):
        data = path.read_bytes()
        files[path.relative_to(root).as_posix()] = hashlib.sha256(data).hexdigest()
        read_env.update(ENV_VAR_CALL.findall(data.decode("utf-8", "replace")))

    names: dict[str, str] = {}
    all_vars = json.dumps(raw_vars, sort_keys=True, default=str)
    for name, value in raw_vars.items():
        text = json.dumps(value, sort_keys=True, default=str)
        # a var whose value reads another var changes with the whole block
        basis = f"{text}\n{_env_print(text, env)}"
        if VAR_CALL.search(text):
            basis += f"{all_vars}\n{_env_print(all_vars, env)}"
        names[f"var:{name}"] = hashlib.sha256(basis.encode()).hexdigest()
    for name in sorted(read_env - set(LOCATION_ENV)):
        names[f"env:{name}"] = hashlib.sha256(_env_value(name, env).encode()).hexdigest()
    return Definitions(digest.hexdigest(), files, names)


def definitions_digest(root: Path, env: Mapping[str, str]) -> str:
    """One sha256 over every part of the definitions (equal digests: nothing to rebuild for them)."""
    return definitions(root, env).digest()


def committed_loads(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    """Newest committed dlt load id per ``raw_*`` schema."""
    from core.steps import committed_loads_of  # the flow's own reading of the same table

    return committed_loads_of(con)


def horizons(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    """The newest load horizon per service (ISO UTC), {} before the first extract recorded one."""
    (database,) = con.execute("select current_database()").fetchone()
    relation = '"{}".{}.{}'.format(database.replace('"', '""'), HORIZON_SCHEMA, HORIZON_TABLE)
    try:
        rows = con.execute(f"select service, max(cutoff_at) from {relation} group by service").fetchall()
    except duckdb.CatalogException:
        return {}
    return {str(s): at.astimezone(UTC).isoformat() for s, at in rows if at is not None}


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
    horizons: dict[str, str] = field(default_factory=dict)
    parts: Definitions | None = None


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
    parts = definitions(project_root(), env)
    return BuildInputs(parts.digest(), committed_loads(con), day, [], horizons(con), parts)


def record(
    inputs: BuildInputs, invocation_id: str | None, version: str | None, manifest_path: Path | None
) -> None:
    """Remember a successful build and publish (with the pending probes of the build's manifest, and
    the manifest itself for the next run's plan). The manifest is in place before the state names it."""
    have_manifest = manifest_path is not None and manifest_path.is_file()
    probes = pending_probes(manifest_path) if have_manifest else []
    saved = state_dir() / "manifest.json"
    saved.parent.mkdir(parents=True, exist_ok=True)
    if have_manifest:
        staged = saved.with_name(f".manifest.{os.getpid()}.tmp")
        shutil.copyfile(manifest_path, staged)
        os.replace(staged, saved)
    else:
        saved.unlink(missing_ok=True)
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
    """Drop the record (the next run builds in full): after anything that may have changed the marts."""
    state_file().unlink(missing_ok=True)
    (state_dir() / "manifest.json").unlink(missing_ok=True)


def load() -> Recorded | None:
    """The recorded state, or None when there is none or it cannot be read (then a run builds)."""
    try:
        data = json.loads(state_file().read_text())
        if data.get("format") != FORMAT:
            return None
        raw = data["inputs"]
        parts = raw.get("parts")
        inputs = BuildInputs(
            str(raw["definitions"]),
            {str(k): str(v) for k, v in raw["loads"].items()},
            str(raw["utc_day"]),
            [Probe(str(p["model"]), str(p["relation"]), str(p["condition"])) for p in raw.get("probes", [])],
            {str(k): str(v) for k, v in (raw.get("horizons") or {}).items()},
            Definitions(str(parts["project"]), dict(parts["files"]), dict(parts["names"])) if parts else None,
        )
        return Recorded(inputs, data.get("invocation_id"), data.get("version"), str(data.get("recorded_at")))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


@dataclass
class Changes:
    """What differs from the recorded build, as elt/build_plan.py needs it.

    ``full``: reasons that leave nothing to narrow (the whole project builds). Otherwise ``loads``: raw
    schemas with a new committed load; ``horizons``: services whose load horizon moved; ``pending``:
    models with rows that can change with time (``meta.rebuild_while``) and how many (-1: unknown);
    ``files``: node files added, changed or removed; ``names``: vars and env vars whose value changed."""

    full: list[str] = field(default_factory=list)
    loads: list[str] = field(default_factory=list)
    horizons: list[str] = field(default_factory=list)
    pending: dict[str, int] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)
    names: list[str] = field(default_factory=list)

    def needs_build(self) -> bool:
        """Anything beyond moved horizons (whose effect reaches the marts only through pending rows)."""
        return bool(self.full or self.loads or self.pending or self.files or self.names)


@dataclass(frozen=True)
class Decision:
    """``build`` False: nothing changed since ``version``; else ``reasons`` say why a build is needed
    and ``changes`` what to build from (elt/build_plan.py)."""

    build: bool
    reasons: list[str]
    version: str | None = None
    changes: Changes = field(default_factory=Changes)

    def describe(self) -> str:
        if not self.build:
            return f"nothing new since version {self.version}: no new load, no definition change"
        return "; ".join(self.reasons)


def _went_back(before: str, now: str | None) -> bool:
    if now is None:
        return True
    try:
        return datetime.fromisoformat(now) < datetime.fromisoformat(before)
    except ValueError:
        return True


def _compare_definitions(old: BuildInputs, new: BuildInputs, changes: Changes) -> list[str]:
    """Reasons for the definition changes; fills ``changes`` (files and names, or a full reason)."""
    if old.definitions == new.definitions:
        return []
    reason = "the dbt project's definitions, vars or their env changed"
    if old.parts is None or new.parts is None or old.parts.project != new.parts.project:
        changes.full.append(reason + " (outside any one node: dbt_project.yml, profiles, packages, versions)")
        return [reason]
    a, b = old.parts, new.parts
    changes.files = sorted(p for p in set(a.files) | set(b.files) if a.files.get(p) != b.files.get(p))
    changes.names = sorted(n for n in set(a.names) | set(b.names) if a.names.get(n) != b.names.get(n))
    if not changes.files and not changes.names:  # the digest differs, no part does: do not guess
        changes.full.append(reason)
    what = [*changes.files[:3], *(n.split(":", 1)[1] for n in changes.names[:3])]
    more = len(changes.files) + len(changes.names) - len(what)
    return [reason + (f" ({', '.join(what)}{f' and {more} more' if more > 0 else ''})" if what else "")]


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
        reason = "no successful build recorded"
        return Decision(True, [reason], changes=Changes(full=[reason]))
    old = recorded.inputs
    changes = Changes()
    reasons = _compare_definitions(old, inputs, changes)
    for schema in sorted(set(old.loads) | set(inputs.loads)):
        before, now = old.loads.get(schema), inputs.loads.get(schema)
        if before != now:
            if now and (before is None or now > before):
                reasons.append(f"new load in {schema}")
                changes.loads.append(schema)
            else:
                reason = f"{schema}'s newest load went back" if now else f"{schema} lost its committed loads"
                reasons.append(reason)
                changes.full.append(reason)
    for service in sorted(set(old.horizons) | set(inputs.horizons)):
        before, now = old.horizons.get(service), inputs.horizons.get(service)
        if before is None:
            changes.horizons.append(service)  # a first horizon: the cut can only move forward from none
        elif _went_back(before, now):
            changes.full.append(f"the load horizon of {service} went back")
        elif now != before:
            changes.horizons.append(service)
    if old.utc_day != inputs.utc_day:
        reason = f"a new UTC day ({inputs.utc_day})"
        reasons.append(reason)
        changes.full.append(reason)
    for model, rows in pending_rows(con, old.probes).items():
        if rows:
            what = "unknown" if rows < 0 else f"{rows:,}"
            reasons.append(f"{what} row(s) of {model} can change with time ({PENDING_META_KEY})")
            changes.pending[model] = rows
    if last_build is None or last_build.get("exit_code") != 0:
        reasons.append("the last dbt build did not succeed")
        changes.full.append(reasons[-1])
    elif last_build.get("invocation_id") != recorded.invocation_id:
        reasons.append("dbt ran since the recorded build")
        changes.full.append(reasons[-1])
    if versions.current_version_id(exports) != recorded.version or recorded.version is None:
        reasons.append(f"exports/current is not the recorded version {recorded.version}")
        changes.full.append(reasons[-1])
    for reason in changes.full:
        if reason not in reasons:
            reasons.append(reason)
    return Decision(changes.needs_build(), reasons, recorded.version, changes)
