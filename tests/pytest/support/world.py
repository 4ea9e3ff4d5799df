"""The one loaded world the dbt, fault and consumers suites share: a fleet of the five services (scale 0.02,
seed 42, never changed by a test) and one clean ``python -m elt run --no-services`` against it (extract,
dbt build, publish with its report) in its own workspace, plus the dbt docs site of that run
(``python -m elt docs``, what ``make docs`` runs).

Why shared: building a world (services, extract, a full ``dbt build``) is the most expensive step of
``make test``. The fault suite compares every recovered case with this clean run; the dbt suite starts
from a copy of the same warehouse, dbt target and source data (tests/pytest/dbt/conftest.py), so it
can change its copy freely. The fixtures themselves live in tests/pytest/conftest.py; both areas run in
one pytest-xdist group so the world is built once per session.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from services.launcher import Fleet
from tests.pytest.support.fingerprints import TablePrint, fingerprint
from tests.pytest.support.fleets import new_fleet
from tests.pytest.support.workspace import Outcome, Workspace, flow, make_workspace, run

# 1000 orders, ~200 customers, erasures and refunds present: enough for every dbt and fault case.
SCALE = 0.02
PII_KEY = "faults-suite-pii-key-6f1c2d"


@dataclass
class Reference:
    """The clean run every fault case is compared with (and the dbt suite starts from)."""

    workspace: Workspace
    prints: dict[str, TablePrint]
    outcome: Outcome
    docs: Outcome | None = None  # `python -m elt docs` on it (checked by tests/pytest/consumers)

    @property
    def docs_target(self) -> Path:
        return self.workspace.root / DOCS_TARGET


def start_source_fleet(root: Path, port_base: int) -> Fleet:
    """The shared fleet on fresh generated data under ``root``; the caller stops it."""
    fl = new_fleet(root / "run", root / "data", port_base=port_base, scale=SCALE, seed=42)
    fl.start()
    return fl


def build_reference(root: Path, fleet: Fleet) -> Reference:
    """A clean ``elt run --no-services`` on ``fleet``'s data, fingerprinted."""
    ws = make_workspace(root, fleet.env(), PII_KEY)
    ws.env["SHOP_REPORT"] = "on"  # the one run of the session that builds the report (tests/pytest/consumers)
    out = flow(ws)
    assert out.returncode == 0, f"the clean reference run failed: {out.describe()}"
    reference = Reference(ws, fingerprint(ws), out)
    reference.docs = build_docs(reference)
    return reference


DOCS_TARGET = "docs-target"


def build_docs(reference: Reference) -> Outcome:
    """``python -m elt docs --no-compile`` on the clean run, into a dbt target folder of its own seeded
    with the run's manifest (already compiled) and partial parse: dbt skips the full parse and the
    compile, and the run's own ``target/`` stays as its build left it. Part of building the world, so
    no test changes it; whether it worked is the consumers suite's to check."""
    ws = reference.workspace
    target = reference.docs_target
    target.mkdir(exist_ok=True)
    for name in ("manifest.json", "partial_parse.msgpack"):
        if (ws.root / "target" / name).exists():
            shutil.copy2(ws.root / "target" / name, target / name)
    env = {**ws.env, "DBT_TARGET_PATH": str(target)}
    return run(Workspace(ws.root, env), ["-m", "elt", "docs", "--no-compile"], timeout=600)


@dataclass
class Published:
    """The current version of the shared clean run, resolved once (as consumers are told to)."""

    version_dir: Path
    manifest: dict[str, Any]
    warehouse: Path


@dataclass
class DocsSite:
    """The docs site of the shared clean run (``build_docs``): its one page and how the build ended."""

    page: Path
    outcome: Outcome
