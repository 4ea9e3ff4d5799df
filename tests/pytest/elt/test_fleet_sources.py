"""The flow's services step covers the embedded sources only (elt/fleet.py): their names come from the
source files, their ports from the launcher (``python -m services ports``), and a user's own source is
loaded like any other but never started or probed. Real files, the real launcher CLI, real services."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from elt import fleet as elt_fleet
from services.launcher import Fleet
from tests.pytest.elt.helpers import EltPaths
from tests.pytest.support.ports import closed_port, free_port_base
from tests.pytest.support.sources import REPO, embedded_copy

TICKETS = """\
{embedded}auth: none
endpoints:
  - name: tickets
    path: /api/tickets
    primary_key: id
    paginator: none
    incremental: snapshot
    fields: {{id: int, title: str}}
"""


@pytest.fixture()
def user_sources(elt_env: EltPaths, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the real ``sources/`` as the registry's folder, no base URL in the environment, the
    launcher's port base a free one (nothing listens there)."""
    folder = tmp_path / "sources"
    shutil.copytree(REPO / "sources", folder)
    monkeypatch.setenv("SHOP_SOURCES_DIR", str(folder))
    monkeypatch.setenv("SHOP_PORT_BASE", str(free_port_base()))
    for name in [n for n in os.environ if n.startswith("SOURCES__")]:
        monkeypatch.delenv(name)
    return folder


def test_only_embedded_sources_are_the_fleets_and_a_users_source_is_left_alone(
    user_sources: Path, elt_env: EltPaths, monkeypatch: pytest.MonkeyPatch
) -> None:
    shop = {p.stem for p in embedded_copy(REPO / "sources", elt_env.root / "shop").glob("*.yml")}
    (user_sources / "tickets.yml").write_text(TICKETS.format(embedded=""))
    monkeypatch.setenv("SOURCES__TICKETS__BASE_URL", f"http://127.0.0.1:{closed_port()}")

    urls = elt_fleet.base_urls()
    assert set(urls) == shop  # not tickets, though its URL is on loopback
    base = int(os.environ["SHOP_PORT_BASE"])
    assert {urlsplit(u).port for u in urls.values()} == set(range(base + 1, base + len(shop) + 1))
    assert elt_fleet.fleet_port_base(urls, elt_fleet.layout()) == base
    assert set(elt_fleet.base_urls(["tickets", "orders"])) == {"orders"}

    # a run of the user's source alone manages nothing: no lease, no start, no probe
    handle = elt_fleet.ensure_up(["tickets"])
    assert (handle.managed, handle.started, handle.urls) == (False, False, {})
    assert not (elt_env.run / "fleet.env").exists()


def test_a_file_claiming_embedded_for_a_service_the_fleet_does_not_run_fails_the_step(
    user_sources: Path,
) -> None:
    (user_sources / "tickets.yml").write_text(TICKETS.format(embedded="embedded: true\n"))
    with pytest.raises(
        elt_fleet.FleetError, match=r"tickets say embedded: true but the local fleet runs only "
    ):
        elt_fleet.ensure_up()


def test_a_url_that_reaches_another_service_is_not_healthy(fleet: Fleet) -> None:
    """The port guard no longer knows the launcher's order: ``/health`` names the service that answers."""
    assert elt_fleet.unhealthy({"customers": fleet.url("customers")}) == []
    assert elt_fleet.unhealthy({"customers": fleet.url("catalog")}) == ["customers"]
