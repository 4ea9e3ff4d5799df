"""The one loaded world the dbt, fault and consumers suites share: a fleet of the five services (scale 0.02,
seed 42, never changed by a test) and one clean ``python -m elt run --no-services`` against it (extract,
dbt build, publish with its report) in its own workspace.

Why shared: building a world (services, extract, a full ``dbt build``) is the most expensive step of
``make test``. The fault suite compares every recovered case with this clean run; the dbt suite starts
from a copy of the same warehouse, dbt target and source data (tests/pytest/dbt/conftest.py), so it
can change its copy freely. The fixtures themselves live in tests/pytest/conftest.py; both areas run in
one pytest-xdist group so the world is built once per session.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from services.launcher import Fleet
from tests.pytest.faults.helpers import Outcome, TablePrint, Workspace, fingerprint, flow, make_workspace

# 1000 orders, ~200 customers, erasures and refunds present: enough for every dbt and fault case.
SCALE = 0.02
PII_KEY = "faults-suite-pii-key-6f1c2d"


@dataclass
class Reference:
    """The clean run every fault case is compared with (and the dbt suite starts from)."""

    workspace: Workspace
    prints: dict[str, TablePrint]
    outcome: Outcome


def start_source_fleet(root: Path, port_base: int) -> Fleet:
    """The shared fleet on fresh generated data under ``root``; the caller stops it."""
    fl = Fleet(run_dir=root / "run", data_dir=root / "data", port_base=port_base, scale=SCALE, seed=42)
    fl.start()
    return fl


def build_reference(root: Path, fleet: Fleet) -> Reference:
    """A clean ``elt run --no-services`` on ``fleet``'s data, fingerprinted."""
    ws = make_workspace(root, fleet.env(), PII_KEY)
    ws.env["SHOP_REPORT"] = "on"  # the one run of the session that builds the report (tests/pytest/consumers)
    out = flow(ws)
    assert out.returncode == 0, f"the clean reference run failed: {out.describe()}"
    return Reference(ws, fingerprint(ws), out)
