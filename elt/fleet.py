"""Bring the source services up for a flow run, when they are ours to manage.

``python -m elt run`` starts the local fleet (through the launcher CLI, ``python -m services``) only
when the configured base URLs point at loopback - a run against real remote systems must never try
to start or stop anything - and stops it at the end only if this run started it.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from elt import settings

log = logging.getLogger("elt.fleet")

SERVICES = ("customers", "catalog", "orders", "payments", "events")
LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}


class FleetError(RuntimeError):
    """The services could not be brought up (or are not healthy)."""


def _fleet_env() -> dict[str, str]:
    values: dict[str, str] = {}
    try:
        lines = (settings.run_dir() / "fleet.env").read_text().splitlines()
    except OSError:
        return values
    for line in lines:
        name, sep, value = line.strip().partition("=")
        if sep and not name.startswith("#"):
            values[name.strip()] = value.strip().strip("'\"")
    return values


def base_urls() -> dict[str, str]:
    """Each service's base URL: the environment, else ``run/fleet.env``, else the launcher's default port."""
    fleet = _fleet_env()
    port_base = int(os.environ.get("SHOP_PORT_BASE") or 8100)
    urls: dict[str, str] = {}
    for i, name in enumerate(SERVICES, start=1):
        var = f"SOURCES__{name.upper()}__BASE_URL"
        urls[name] = os.environ.get(var) or fleet.get(var) or f"http://127.0.0.1:{port_base + i}"
    return urls


def is_local(urls: dict[str, str]) -> bool:
    """True when every service is configured on loopback (ours to start and stop)."""
    return all((urlsplit(u).hostname or "") in LOOPBACK for u in urls.values())


def unhealthy(urls: dict[str, str], timeout: float = 2.0) -> list[str]:
    """Services whose ``GET /health`` does not answer ``{"status": "ok"}``."""
    import requests  # here, not at the top: `elt export`/`elt dbt` import this module but never probe

    bad = []
    for name, url in urls.items():
        try:
            resp = requests.get(url.rstrip("/") + "/health", timeout=timeout)
            ok = resp.status_code == 200 and resp.json().get("status") == "ok"
        except (requests.RequestException, ValueError):
            ok = False
        if not ok:
            bad.append(name)
    return bad


def _services_cli(*args: str) -> int:
    """Run the launcher CLI with its output passed through (a first start generates data: show progress)."""
    return subprocess.run([sys.executable, "-m", "services", *args], cwd=settings.repo_root()).returncode


@dataclass
class FleetHandle:
    """Whether this run started the fleet (and must stop it)."""

    managed: bool
    started: bool
    urls: dict[str, str]


def ensure_up(wait_seconds: float = 120.0) -> FleetHandle:
    """Make sure the configured services answer; start the local fleet when they do not."""
    urls = base_urls()
    if not is_local(urls):
        log.info("services configured off this machine (%s): not managing them", sorted(set(urls.values())))
        return FleetHandle(managed=False, started=False, urls=urls)
    if not unhealthy(urls):
        log.info("services already running: %s", ", ".join(urls.values()))
        return FleetHandle(managed=True, started=False, urls=urls)
    log.info("starting the local fleet: python -m services start")
    code = _services_cli("start")
    if code != 0:
        raise FleetError(f"`python -m services start` exited {code} (see its output above)")
    urls = base_urls()  # the launcher may have written new ports into run/fleet.env
    deadline = time.monotonic() + wait_seconds
    while bad := unhealthy(urls):
        if time.monotonic() > deadline:
            raise FleetError(f"services not healthy after {wait_seconds:.0f}s: {bad}")
        time.sleep(0.5)
    log.info("fleet up: %s", ", ".join(urls.values()))
    return FleetHandle(managed=True, started=True, urls=urls)


def stop(handle: FleetHandle) -> None:
    """Stop the fleet if (and only if) this run started it."""
    if not handle.started:
        return
    code = _services_cli("stop")
    if code != 0:
        log.warning("`python -m services stop` exited %d (see its output above)", code)
    else:
        log.info("fleet stopped")
