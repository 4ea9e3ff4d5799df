"""A source service down for the whole run, and one that comes back mid-run.

Down all run: the loader fails that service clearly (naming it), still loads the others, the flow stops
at extract with a non-zero exit and publishes nothing; once the service is back, a plain re-run equals a
clean run. Back mid-run: the loader's bounded retries ride over the outage and the run succeeds, equal to
a clean run.
"""

from __future__ import annotations

import pytest

from tests.pytest.faults.helpers import flow_with_action, stop_service
from tests.pytest.support.fingerprints import assert_matches_clean
from tests.pytest.support.workspace import flow
from tests.pytest.support.world import Reference

pytestmark = pytest.mark.slow


def test_service_down_for_the_whole_run(workspace, reference: Reference, fleet_clean) -> None:
    ws = workspace("down")
    stop_service(fleet_clean, "orders")
    out = flow(ws)
    assert out.returncode == 1, out.describe()
    assert "elt run FAILED at step 'extract'" in out.output, out.describe()
    assert "orders: FAILED" in out.output and "ConnectionError" in out.output, out.describe()
    for other in ("customers", "catalog", "payments", "events"):
        assert f"{other}: loaded" in out.output, out.describe()
    assert ws.current_version() is None
    fleet_clean.start()
    again = flow(ws)
    assert again.returncode == 0, again.describe()
    assert_matches_clean(reference.prints, ws, "orders was down for a whole run")


@pytest.mark.parametrize(
    "service",
    [
        "payments",
        "orders",
    ],
)
def test_service_comes_back_mid_run(service: str, workspace, reference: Reference, fleet_clean) -> None:
    ws = workspace(f"back-{service}")
    ws.env.update(SOURCES__EXTRACT__MAX_ATTEMPTS="10", SOURCES__EXTRACT__BACKOFF_MAX="2")
    stop_service(fleet_clean, service)
    out, acted = flow_with_action(ws, rf"{service} \S+: attempt 1/10 failed", fleet_clean.start)
    assert acted, f"the loader never retried the stopped service: {out.describe()}"
    assert out.returncode == 0, out.describe()
    assert f"{service}: loaded" in out.output
    assert_matches_clean(reference.prints, ws, f"{service} came back mid-run")
