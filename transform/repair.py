"""``python -m elt repair-snapshot <snapshot> --since TIME``: mend an SCD2 snapshot that a build on a
source which had lost its rows damaged (snapshots with ``hard_deletes: invalidate``, e.g. snap_customers).

What such a build did (dbt-core 1.11's snapshot merge): every current version whose key was missing from
the source got ``dbt_valid_to`` = that build's time, with no version after it. Once the source is whole
again, the next build finds those keys without a current version and inserts them again: the same version
a second time (timestamp strategy: the same ``dbt_scd_id``, so ``unique_<snapshot>_dbt_scd_id`` fails on
every build from then on) or the key's next version.

The repair, per key, in one transaction under the warehouse lock:

1. a version closed at or after ``--since`` with no version of its key starting at that moment was closed
   by a hard-delete invalidation ("closed without successor"); updates always close a version exactly
   where the next one starts, so they are never mistaken for one;
2. a later row with the same values as such a version (the re-insert) is folded into it: the later row is
   deleted and the earlier one takes its ``dbt_valid_to``;
3. a version still closed without successor is then closed where the key's next version starts, if there
   is one (what the snapshot would have recorded), or reopened if its key is in the snapshot's source
   relation now; otherwise it stays closed (an erasure, or a source still missing it: repair the source
   and run this again).

Rows closed before ``--since`` and rows closed by an update are never touched; a second run changes
nothing. Why mend rather than rebuild: raw holds only the latest version of each record (dlt merge), so
the snapshot is the only history there is.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import duckdb

from core import lock, settings, steps
from core.checksums import quote_ident, quote_literal
from transform import dbt_artifacts

BOOKKEEPING_PREFIX = "dbt_"


class RepairError(RuntimeError):
    """The snapshot cannot be repaired as asked; the message says why and what to do."""


@dataclass(frozen=True)
class SnapshotSpec:
    """One snapshot as dbt's manifest describes it: where it lives, its key, what it reads."""

    name: str
    relation: str
    unique_key: str
    source_relation: str
    hard_deletes: str


@dataclass
class Version:
    """One snapshot row: its physical row id (``dbt_scd_id`` is not unique in a damaged snapshot)."""

    rowid: int
    key: Any
    valid_from: datetime
    valid_to: datetime | None
    values: tuple[Any, ...]


@dataclass
class RepairPlan:
    """What the repair changes: rows to delete, ``dbt_valid_to`` to set (None reopens)."""

    delete: list[int] = field(default_factory=list)
    valid_to: dict[int, datetime | None] = field(default_factory=dict)
    closures: dict[datetime, int] = field(default_factory=dict)
    left_closed: int = 0

    @property
    def changes(self) -> int:
        return len(self.delete) + len(self.valid_to)

    @property
    def reopened(self) -> int:
        return sum(1 for valid_to in self.valid_to.values() if valid_to is None)

    @property
    def reclosed(self) -> int:
        return len(self.valid_to) - self.reopened


def parse_since(text: str) -> datetime:
    """``--since``: an ISO 8601 time in the snapshot's own clock. dbt-duckdb stamps snapshots with
    ``now()::timestamp``, the wall time of the building machine's zone (UTC here), so a time without an
    offset is taken as that and one with an offset is converted to it."""
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise RepairError(
            f"--since {text!r} is not an ISO 8601 time; pass e.g. 2026-12-01T20:46:00 (UTC), the start "
            "of the first bad build (select started_at from ops.runs where step = 'dbt' order by 1 desc)"
        ) from None
    return moment.astimezone().replace(tzinfo=None) if moment.tzinfo else moment


def _relation(node: dict[str, Any]) -> str:
    parts = [
        node.get("database"),
        node["schema"],
        node.get("alias") or node.get("identifier") or node["name"],
    ]
    return ".".join(quote_ident(p) for p in parts if p)


def snapshot_spec(name: str, manifest: dict[str, Any] | None = None) -> SnapshotSpec:
    """The snapshot ``name`` from ``target/manifest.json``; refuses what this repair cannot mend."""
    if manifest is None:
        path = dbt_artifacts.target_dir() / "manifest.json"
        try:
            manifest = json.loads(path.read_text())
        except FileNotFoundError:
            raise RepairError(f"{path} not found: run `make dbt ARGS=parse` first") from None
    snapshots = {
        n["name"]: n for n in manifest.get("nodes", {}).values() if n.get("resource_type") == "snapshot"
    }
    node = snapshots.get(name)
    if node is None:
        raise RepairError(
            f"no snapshot named {name!r}; the project's snapshots: {', '.join(sorted(snapshots))}"
        )
    config = node.get("config") or {}
    hard_deletes = config.get("hard_deletes") or (
        "invalidate" if config.get("invalidate_hard_deletes") else "ignore"
    )
    if hard_deletes != "invalidate":
        raise RepairError(
            f"{name} has hard_deletes: {hard_deletes}: rows missing from its source never close its "
            "versions, so a source that lost rows cannot have damaged it; nothing to repair"
        )
    unique_key = config.get("unique_key")
    if not isinstance(unique_key, str):
        raise RepairError(f"{name}: only a single-column unique_key can be repaired (it has {unique_key!r})")
    parents = node.get("depends_on", {}).get("nodes") or []
    if len(parents) != 1:
        raise RepairError(
            f"{name} reads {len(parents)} relations; the repair needs exactly one to reopen from"
        )
    parent = manifest.get("nodes", {}).get(parents[0]) or manifest.get("sources", {}).get(parents[0])
    if parent is None:
        raise RepairError(f"{name}'s source {parents[0]} is not in the manifest: run `make dbt ARGS=parse`")
    return SnapshotSpec(name, _relation(node), unique_key, _relation(parent), hard_deletes)


def plan_repair(versions: list[Version], present: set[Any], since: datetime) -> RepairPlan:
    """The repair of every key in ``versions`` (all rows of each key), given the keys ``present`` in the
    snapshot's source now. Pure: the three rules of the module docstring, nothing else."""
    plan = RepairPlan()
    by_key: dict[Any, list[Version]] = defaultdict(list)
    for v in versions:
        by_key[v.key].append(v)
    for key, rows in by_key.items():
        # by start, then end (an open row last): a re-insert starts where the wrongly closed one did
        rows.sort(key=lambda v: (v.valid_from, v.valid_to is None, v.valid_to or v.valid_from))
        starts = {v.valid_from for v in rows}

        def without_successor(v: Version, starts: set[datetime] = starts) -> bool:
            return v.valid_to is not None and v.valid_to >= since and v.valid_to not in starts

        kept: list[Version] = []
        wrongly_closed: set[int] = set()
        for v in rows:
            if v.valid_to is not None and without_successor(v):
                plan.closures[v.valid_to] = plan.closures.get(v.valid_to, 0) + 1
            if kept and kept[-1].rowid in wrongly_closed and kept[-1].values == v.values:
                plan.delete.append(v.rowid)  # rule 2: the same version inserted again by a later build
                kept[-1].valid_to = v.valid_to
                plan.valid_to[kept[-1].rowid] = v.valid_to
                if not without_successor(kept[-1]):
                    wrongly_closed.discard(kept[-1].rowid)
                continue
            kept.append(v)
            if without_successor(v):
                wrongly_closed.add(v.rowid)
        for i, v in enumerate(kept):
            if v.rowid not in wrongly_closed:
                continue
            if i + 1 < len(kept):  # rule 3: closed where its next version starts
                plan.valid_to[v.rowid] = kept[i + 1].valid_from
            elif key in present:
                plan.valid_to[v.rowid] = None
            else:  # erased, or the source still lacks it (a closing taken over from a re-insert stays)
                plan.left_closed += 1
    return plan


def _load(con: duckdb.DuckDBPyConnection, spec: SnapshotSpec, since: datetime) -> tuple[list[Version], set]:
    """Every row of each key with a version closed at or after ``since``, and which of those keys the
    snapshot's source holds now."""
    key = quote_ident(spec.unique_key)
    cols = [
        r[0]
        for r in con.execute(f"describe select * from {spec.relation}").fetchall()
        if not r[0].startswith(BOOKKEEPING_PREFIX)
    ]
    if spec.unique_key not in cols:
        raise RepairError(f"{spec.name} has no column {spec.unique_key!r} (its unique_key)")
    values = ", ".join(quote_ident(c) for c in cols)
    touched = f"select {key} from {spec.relation} where dbt_valid_to >= {quote_literal(since.isoformat())}"
    rows = con.execute(
        f"select rowid, {key}, dbt_valid_from, dbt_valid_to, {values} from {spec.relation} "
        f"where {key} in ({touched})"
    ).fetchall()
    versions = [Version(r[0], r[1], r[2], r[3], tuple(r[4:])) for r in rows]
    present = {
        r[0]
        for r in con.execute(
            f"select distinct {key} from {spec.source_relation} where {key} in ({touched})"
        ).fetchall()
    }
    return versions, present


def _apply(con: duckdb.DuckDBPyConnection, spec: SnapshotSpec, plan: RepairPlan) -> None:
    con.execute("begin transaction")
    try:
        if plan.delete:
            con.executemany(f"delete from {spec.relation} where rowid = ?", [[r] for r in plan.delete])
        if plan.valid_to:
            con.executemany(
                f"update {spec.relation} set dbt_valid_to = ? where rowid = ?",
                [[valid_to, rowid] for rowid, valid_to in plan.valid_to.items() if rowid not in plan.delete],
            )
        con.execute("commit")
    except BaseException:
        con.execute("rollback")
        raise


def describe(spec: SnapshotSpec, since: datetime, plan: RepairPlan, dry_run: bool) -> str:
    """What was (or, with --dry-run, would be) changed, for the operator."""
    lines = [
        f"{spec.name}: {sum(plan.closures.values())} row(s) closed at or after {since.isoformat(sep=' ')} "
        "without a successor (a hard-delete invalidation):"
    ]
    lines += [
        f"  closed at {moment.isoformat(sep=' ')}: {n} row(s)" for moment, n in sorted(plan.closures.items())
    ]
    verb = "would" if dry_run else "did"
    lines.append(
        f"  {verb} reopen {plan.reopened} version(s), re-close {plan.reclosed} (at their key's next version "
        f"or a re-insert's end), delete {len(plan.delete)} duplicate(s) re-inserted by later builds"
    )
    if plan.left_closed:
        lines.append(
            f"  {plan.left_closed} stay closed: their key is not in {spec.source_relation} now (erased, or "
            "still missing from the source: repair the source and run this again)"
        )
    if not plan.changes:
        lines.append("  nothing to change")
    elif dry_run:
        lines.append("  dry run: nothing written; run again without --dry-run to apply")
    else:
        lines.append("  next: make elt (or python -m elt run)")
    return "\n".join(lines)


def repair_snapshot(name: str, since: datetime, *, dry_run: bool = False, wait: float | None = None) -> str:
    """Plan and (unless ``dry_run``) apply the repair of snapshot ``name``; returns the description.

    Runs under the warehouse lock and is recorded in ``ops.runs`` as step ``repair``.
    """
    spec = snapshot_spec(name)
    command = f"python -m elt repair-snapshot {name} --since {since.isoformat()}" + (
        " --dry-run" if dry_run else ""
    )
    with lock.warehouse_lock(command, wait=wait), steps.logged_step(command, "repair") as rec:
        with duckdb.connect(str(settings.warehouse_path())) as con:
            try:
                versions, present = _load(con, spec, since)
            except duckdb.CatalogException as exc:
                raise RepairError(f"{spec.name}: {exc}; has the snapshot been built (make elt)?") from None
            plan = plan_repair(versions, present, since)
            if not dry_run and plan.changes:
                _apply(con, spec, plan)
        rec.rows = 0 if dry_run else plan.changes
        rec.tables = [("snapshots", spec.name, rec.rows)]
    return describe(spec, since, plan, dry_run)
