"""What a changed-only ``elt run`` builds: the dbt selection for the changes elt/build_state.py found.

Why: a run after a change in one service used to build the whole project (every model, every test).
The warehouse is the same one the last build wrote, so the models whose inputs did not change are
simply not selected: they stay as the relations that build left, which are what a new build would
write again (dbt's ``--defer`` is only needed when building into another target). The graph is the
manifest of the recorded build, kept beside the state; dbt itself compares changed definitions with it
(``state:modified``).

What is selected, per change (dbt runs the tests of every selected node, source tests included):

- **a new load in a raw schema**: every dbt source reading that schema and everything downstream
  (``source:<name>+``). Staging views are selected too, so one that stood in an empty relation for a
  table the load has just created (``source_or_empty``) is compiled again.
- **moved load horizons** (every extract moves them): the nodes between the horizons and the first
  model that declares ``meta.rebuild_while`` (the consistent cut, ``int_settled_horizon``), whose output
  moves with them. The declaring model (``int_order_settlement``) is where the cut takes effect: with
  no row matching its condition, every order is settled or waits for a reference no horizon brings,
  so a later cut changes none of its rows; it and its descendants build only for another reason.
- **rows that can change with time** (a ``rebuild_while`` model with matching rows, or unknown): that
  model and everything downstream.
- **changed node files**: ``state:modified+`` against the recorded manifest (bodies, configs, the
  macros a node calls, contracts, seeds).
- **a changed var or env var**: every node whose SQL, config, test arguments or macros (followed
  through the macros they call) name it, and everything downstream; a node that calls ``var()`` or
  ``env_var()`` with a computed name counts as naming all of them.
- **anything else** (``Changes.full``: a new UTC day, a build or version that is not the recorded one,
  a load or horizon that went back, a definition no node owns) or no recorded manifest: everything.

Unit tests run when a definition changed (a node file, a var or env var) and in every full build, not in
a build for new data alone (``--exclude-resource-type unit_test``): a unit test feeds its model fixed
rows from its own YAML, so its outcome follows the model's SQL, macros, vars and fixtures, never the
warehouse's rows; dbt's own advice is to run them where definitions change, not on every production
build. A definition change that fails one is not recorded, so the next run selects it again.

Snapshots are nodes like the others: one builds when its source changed. A snapshot run on unchanged
input records nothing (same ``updated_at``, same checked columns, the same keys for
``hard_deletes``), so leaving it out misses nothing; a failed or partial build is never recorded, so its
changes are selected again by the next run.

The promise that makes the state valid after a changed-only build: every node left out would have
written the same relation. Hence when in doubt (an unknown pending count, a load or horizon going
back, an unreadable manifest) the plan selects more, up to everything.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from elt import build_state

BUILT_TYPES = ("model", "seed", "snapshot")
RUN_TYPES = (*BUILT_TYPES, "test")  # what `dbt build` runs (besides unit tests)
DYNAMIC_CALL = {"var": re.compile(r"\bvar\(\s*[^'\"\s)]"), "env": re.compile(r"\benv_var\(\s*[^'\"\s)]")}


@dataclass(frozen=True)
class Plan:
    """``full``: build everything; else ``select`` (dbt selection words) and why. ``state``: the folder
    for ``--state`` when ``state:modified`` is part of the selection."""

    full: bool
    why: str
    select: list[str] = field(default_factory=list)
    state: Path | None = None
    unit_tests: bool = True  # False: a build for new data alone, whose unit tests cannot change outcome

    def dbt_args(self) -> list[str]:
        if self.full:
            return []
        skip = [] if self.unit_tests else ["--exclude-resource-type", "unit_test"]
        return ["--select", *self.select, *(["--state", str(self.state)] if self.state else []), *skip]


class Graph:
    """The recorded manifest as a graph: nodes, sources and unit tests by unique id, their children."""

    def __init__(self, manifest: dict[str, Any]) -> None:
        self.nodes: dict[str, dict[str, Any]] = dict(manifest.get("nodes") or {})
        self.sources: dict[str, dict[str, Any]] = dict(manifest.get("sources") or {})
        self.macros: dict[str, dict[str, Any]] = dict(manifest.get("macros") or {})
        self.unit_tests: dict[str, dict[str, Any]] = dict(manifest.get("unit_tests") or {})
        child_map = manifest.get("child_map") or {}
        self.children: dict[str, list[str]] = {k: list(v) for k, v in child_map.items()}
        self._macro_text: dict[str, str] = {}

    def total(self) -> int:
        """The nodes a full ``dbt build`` runs: models, seeds, snapshots, data tests, unit tests."""
        runs = [n for n in self.nodes.values() if n.get("resource_type") in RUN_TYPES]
        enabled = sum((n.get("config") or {}).get("enabled", True) is not False for n in runs)
        return enabled + len(self.unit_tests)

    def descendants(self, roots: Iterable[str]) -> set[str]:
        """``roots`` and every node downstream of them."""
        seen: set[str] = set()
        stack = list(roots)
        while stack:
            uid = stack.pop()
            if uid not in seen:
                seen.add(uid)
                stack.extend(self.children.get(uid, []))
        return seen

    def sources_in(self, schema: str) -> list[str]:
        """The sources reading ``schema`` (unique ids)."""
        wanted = schema.lower()
        return sorted(u for u, s in self.sources.items() if str(s.get("schema", "")).lower() == wanted)

    def rebuild_while_models(self) -> list[str]:
        out = []
        for uid, node in self.nodes.items():
            config = node.get("config") or {}
            meta = {**(config.get("meta") or {}), **(node.get("meta") or {})}
            if node.get("resource_type") == "model" and meta.get(build_state.PENDING_META_KEY):
                out.append(uid)
        return sorted(out)

    def model_named(self, name: str) -> str | None:
        return next(
            (u for u, n in self.nodes.items() if n.get("resource_type") == "model" and n.get("name") == name),
            None,
        )

    def horizon_sources(self) -> list[str]:
        return [
            u
            for u in self.sources_in(build_state.HORIZON_SCHEMA)
            if self.sources[u].get("name") == build_state.HORIZON_TABLE
        ]

    def horizon_nodes(self) -> set[str]:
        """Downstream of the load horizons, short of the models declaring ``rebuild_while`` (and of
        what is downstream of those): what a moved horizon changes by itself."""
        damped = self.descendants(self.rebuild_while_models())
        return self.descendants(self.horizon_sources()) - damped

    def _text_of_macro(self, uid: str, seen: set[str]) -> str:
        if uid in self._macro_text:
            return self._macro_text[uid]
        macro = self.macros.get(uid) or {}
        parts = [str(macro.get("macro_sql") or "")]
        for dep in (macro.get("depends_on") or {}).get("macros") or []:
            if dep and dep not in seen:
                seen.add(dep)
                parts.append(self._text_of_macro(dep, seen))
        text = "\n".join(parts)
        self._macro_text[uid] = text
        return text

    def text_of(self, uid: str) -> str:
        """Everything of a node that can name a var or env var: its SQL, configs, test arguments and the
        macros it calls (through the macros they call)."""
        node = self.nodes.get(uid) or {}
        parts = [
            str(node.get("raw_code") or ""),
            json.dumps(node.get("unrendered_config") or {}, sort_keys=True, default=str),
            json.dumps(node.get("test_metadata") or {}, sort_keys=True, default=str),
        ]
        for dep in (node.get("depends_on") or {}).get("macros") or []:
            if dep:
                parts.append(self._text_of_macro(dep, {dep}))
        return "\n".join(parts)

    def users(self, names: Iterable[str]) -> set[str]:
        """Nodes naming any of ``names`` (``var:<name>`` / ``env:<NAME>``), or computing a name."""
        wanted = list(names)
        kinds = {n.split(":", 1)[0] for n in wanted}
        words = [re.compile(rf"\b{re.escape(n.split(':', 1)[1])}\b") for n in wanted]
        out = set()
        for uid, node in self.nodes.items():
            if node.get("resource_type") not in RUN_TYPES:
                continue
            text = self.text_of(uid)
            if any(w.search(text) for w in words) or any(DYNAMIC_CALL[k].search(text) for k in kinds):
                out.add(uid)
        return out

    def word(self, uid: str, downstream: bool) -> str:
        """The dbt selection word for one node or source (``+``: and everything downstream)."""
        plus = "+" if downstream else ""
        if uid in self.sources:
            source = self.sources[uid]
            return f"source:{source['source_name']}.{source['name']}{plus}"
        return f"{self.nodes[uid]['name']}{plus}"


def _names(graph: Graph, uids: Iterable[str]) -> str:
    return ", ".join(sorted(graph.nodes[u]["name"] for u in uids if u in graph.nodes))


def horizons_reach_published(changes: build_state.Changes) -> bool:
    """Whether moved horizons alone change a published model (one tagged ``publish`` among the nodes
    they reach before a ``rebuild_while`` model): then even a run with no new load must build. Not the
    case in this project (the cut's own models are not published); checked so a new model cannot make
    the no-change skip wrong. Without a readable manifest: yes."""
    if not changes.horizons:
        return False
    manifest = build_state.saved_manifest()
    if manifest is None:
        return True
    graph = Graph(manifest)
    for uid in graph.horizon_nodes():
        node = graph.nodes.get(uid) or {}
        tags = set(node.get("tags") or []) | set((node.get("config") or {}).get("tags") or [])
        if node.get("resource_type") == "model" and "publish" in tags:
            return True
    return False


def plan(changes: build_state.Changes, forced: list[str] | None = None) -> Plan:
    """The build for ``changes`` on the recorded manifest (elt/build_state.py keeps it)."""
    if forced:
        return Plan(True, f"full build ({', '.join(forced)})")
    if changes.full:
        return Plan(True, f"full build: {'; '.join(changes.full)}")
    manifest = build_state.saved_manifest()
    if manifest is None:
        return Plan(True, "full build: the recorded build's manifest is missing")
    return plan_on(Graph(manifest), changes, build_state.state_dir())


def plan_on(graph: Graph, changes: build_state.Changes, state: Path) -> Plan:
    """``plan`` on a given graph (``state``: the folder holding its manifest)."""
    select: list[str] = []
    why: list[str] = []
    selected: set[str] = set()  # for the horizon rule: what the other rules already build

    def add(uids: Iterable[str], downstream: bool) -> None:
        for uid in sorted(uids):
            word = graph.word(uid, downstream)
            if word not in select:
                select.append(word)
            selected.update(graph.descendants([uid]) if downstream else {uid})

    if changes.loads:
        for schema in changes.loads:
            ids = graph.sources_in(schema)
            for name in sorted({graph.sources[u]["source_name"] for u in ids}):
                # every table of a source reads the same schema: one word per source
                select.append(f"source:{name}+")
            selected.update(graph.descendants(ids))
        why.append(f"downstream of {', '.join(changes.loads)}")
    for model, rows in sorted(changes.pending.items()):
        uid = graph.model_named(model)
        if uid is None:
            return Plan(True, f"full build: {model} ({build_state.PENDING_META_KEY}) is not in the manifest")
        add([uid], downstream=True)
        what = "unknown" if rows < 0 else f"{rows:,}"
        why.append(f"{model}+ ({what} row(s) can change with time)")
    if changes.files:
        select.append("state:modified+")
        why.append(f"definitions changed in {len(changes.files)} file(s) (state:modified+)")
    if changes.names:
        users = graph.users(changes.names)
        add(users, downstream=True)
        shown = ", ".join(n.split(":", 1)[1] for n in changes.names)
        why.append(f"{shown} changed ({len(users)} node(s) use it)")
    if changes.horizons:
        nodes = graph.horizon_nodes()
        sources = [u for u in nodes if u in graph.sources]
        built = [u for u in nodes if graph.nodes.get(u, {}).get("resource_type") in BUILT_TYPES]
        add(sources, downstream=False)
        add(built, downstream=False)
        damped = sorted(graph.nodes[u]["name"] for u in graph.rebuild_while_models())
        if built:
            nothing_waits = (
                f"; {', '.join(damped)} left as built: none of its rows can change with the cut"
                if damped
                and not (changes.pending or changes.files)  # state:modified+ may reach it: not known here
                and not (selected & set(graph.rebuild_while_models()))
                else ""
            )
            why.append(f"the load horizons moved ({_names(graph, built)}){nothing_waits}")
    if not select:
        return Plan(True, "full build: the changes name no node of the recorded manifest")
    definitions = bool(changes.files or changes.names)
    if not definitions:
        why.append("unit tests left out: no definition changed")
    return Plan(False, "; ".join(why), select, state if "state:modified+" in select else None, definitions)
