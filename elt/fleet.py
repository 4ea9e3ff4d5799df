"""Bring the source services up for a flow run, when they are ours to manage.

``python -m elt run`` manages the local fleet (through the launcher CLI, ``python -m services``) only
when the configured base URLs point at loopback - a run against real remote systems must never try
to start or stop anything. It takes a lease on the fleet for its own pid (``services use``), which
starts whatever is down, and gives it back at the end (``services release``). The launcher decides
what that stops, from its owner record and the leases of the other runs (services/README.md, "Who
owns the fleet"): never the user's fleet, and a fleet a run started only once no live run uses it.
Why the CLI and not an import: the services stand alone (they import nothing of the pipeline), and
the pipeline only talks to them as a user would.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from elt import settings

log = logging.getLogger("elt.fleet")

SERVICES = ("customers", "catalog", "orders", "payments", "events")
LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}
EXIT_FOREIGN = 3  # `python -m services use`: the ports serve another fleet (services/__main__.py)


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


def fleet_port_base(urls: dict[str, str]) -> int | None:
    """The launcher's port base when the URLs are one fleet's ports (base+1 … base+5), else None."""
    ports = [urlsplit(urls[name]).port for name in SERVICES]
    if ports[0] is None:
        return None
    base = ports[0] - 1
    return base if ports == [base + i for i in range(1, len(SERVICES) + 1)] else None


def _services_cli(*args: str) -> tuple[int, dict[str, object]]:
    """Run the launcher CLI (``use``/``release``): its log passes through on stderr (a first start
    generates data: show progress); its one-line JSON reply on stdout is returned with the exit code."""
    proc = subprocess.run(
        [sys.executable, "-m", "services", *args], cwd=settings.repo_root(), stdout=subprocess.PIPE, text=True
    )
    lines = proc.stdout.strip().splitlines()
    try:
        reply = json.loads(lines[-1]) if lines else {}
    except ValueError:
        reply = {}
    return proc.returncode, reply if isinstance(reply, dict) else {}


@dataclass
class FleetHandle:
    """What this run did to the fleet: whether it is ours to manage (then the run holds a lease for
    ``holder``, its pid, and must release it) and which services it started."""

    managed: bool
    started: bool
    urls: dict[str, str]
    started_services: list[str] = field(default_factory=list)
    holder: int = field(default_factory=os.getpid)


def ensure_up(wait_seconds: float = 30.0) -> FleetHandle:
    """Make sure the configured services answer; on loopback, lease the local fleet for this run
    (``python -m services use``), which starts whatever is down.

    Raises FleetError when they cannot be brought up, after stopping whatever this run started (also on
    Ctrl-C or SIGTERM while starting).
    """
    urls = base_urls()
    if not is_local(urls):
        log.info("services configured off this machine (%s): not managing them", sorted(set(urls.values())))
        return FleetHandle(managed=False, started=False, urls=urls)
    base = fleet_port_base(urls)
    if base is None:
        if not unhealthy(urls):
            log.info("services already running (not one fleet's ports): not managing them")
            return FleetHandle(managed=False, started=False, urls=urls)
        raise FleetError(
            "the configured base URLs are on this machine but not one fleet's ports (base+1 … base+5 for "
            f"{', '.join(SERVICES)}): {', '.join(urls.values())}; fix SOURCES__<SERVICE>__BASE_URL "
            "(or unset it to use run/fleet.env)"
        )
    handle = FleetHandle(managed=True, started=False, urls=urls)
    try:
        code, reply = _services_cli("use", "--holder", str(handle.holder), "--port-base", str(base))
        if code == EXIT_FOREIGN and not unhealthy(urls):
            log.info("services already running, but not the fleet of this run folder: not managing them")
            return FleetHandle(managed=False, started=False, urls=urls)
        if code != 0:
            raise FleetError(f"`python -m services use` exited {code}: {reply.get('error') or 'see above'}")
        handle.started_services = [str(name) for name in reply.get("started") or []]
        handle.started = bool(handle.started_services)
        deadline = time.monotonic() + wait_seconds
        while bad := unhealthy(urls):
            if time.monotonic() > deadline:
                raise FleetError(f"services not healthy after {wait_seconds:.0f}s: {bad}")
            time.sleep(0.5)
    except BaseException:
        stop(handle, undo=True)
        raise
    if handle.started:
        log.info("started %s: %s", ", ".join(handle.started_services), ", ".join(urls.values()))
    else:
        log.info("services already running: %s", ", ".join(urls.values()))
    return handle


def stop(handle: FleetHandle, undo: bool = False) -> tuple[str, str]:
    """End this run's use of the local fleet (``python -m services release``); returns (state, detail)
    for the summary, ("", "") when there was nothing to manage.

    The launcher stops a fleet a run started once no other live run uses it, and never the user's
    (except, with ``undo``, the services this run started in it before its services step failed).
    """
    if not handle.managed:
        return "", ""
    code, reply = _services_cli("release", "--holder", str(handle.holder), *(["--undo"] if undo else []))
    if code != 0:
        log.warning("`python -m services release` exited %d: %s", code, reply.get("error") or "see above")
        return "failed", str(reply.get("error") or f"exit {code}")
    stopped = [str(name) for name in reply.get("stopped") or []]
    reason = str(reply.get("reason") or "")
    if stopped:
        log.info("stopped %s (%s)", ", ".join(stopped), reason)
        return "stopped", f"{len(stopped)} service(s): {reason}"
    log.info("left the services running: %s", reason)
    return "kept", reason
