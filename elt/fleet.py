"""Bring the source services up for a flow run, when they are ours to manage.

``python -m elt run`` manages the local fleet (through the launcher CLI, ``python -m services``) only
when the configured base URLs point at loopback - a run against real remote systems must never try
to start or stop anything. It takes a lease on the fleet for its own pid (``services use``), which
starts whatever is down, and gives it back at the end (``services release``). The launcher decides
what that stops, from its owner record and the leases of the other runs (services/README.md, "Who
owns the fleet"): never the user's fleet, and a fleet a run started only once no live run uses it.
Why the CLI and not an import: the services stand alone (they import nothing of the pipeline), and
the pipeline only talks to them as a user would.

Which services: the sources whose file says ``embedded: true`` (the registry, ``elt.selection``), and
only those a ``--sources`` selection names; a user's own source is loaded like any other but never
started or probed here. Their ports come from the launcher (``python -m services ports``), so no name
or port of the shop is written in this module.
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

from core import envfile, settings
from elt import selection

log = logging.getLogger("elt.fleet")

LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}
EXIT_FOREIGN = 3  # `python -m services use`: the ports serve another fleet (services/__main__.py)


class FleetError(RuntimeError):
    """The services could not be brought up (or are not healthy)."""


def layout() -> tuple[int, dict[str, int]]:
    """The launcher's port base (flag, ``SHOP_PORT_BASE``, its fleet.env, else its default) and each of
    its services' port (``python -m services ports``)."""
    code, reply = _services_cli("ports")
    ports = reply.get("ports")
    if code != 0 or not isinstance(ports, dict):
        raise FleetError(f"`python -m services ports` exited {code}: {reply.get('error') or 'see above'}")
    return int(str(reply.get("port_base"))), {str(k): int(v) for k, v in ports.items()}


def base_urls(names: list[str] | None = None) -> dict[str, str]:
    """Each embedded source's base URL (only those among ``names`` when given): the environment, else
    ``run/fleet.env``, else the launcher's port for it.

    Raises FleetError when a file says ``embedded: true`` for a service the launcher does not run."""
    try:
        wanted = selection.embedded(names)
    except selection.SelectionError as exc:
        raise FleetError(str(exc)) from exc
    if not wanted:
        return {}
    fleet = envfile.fleet_env()
    _, ports = layout()
    foreign = [n for n in wanted if n not in ports]
    if foreign:
        raise FleetError(
            f"source(s) {', '.join(foreign)} say embedded: true but the local fleet runs only "
            f"{', '.join(ports)}; set embedded: false in their file and configure their base URL"
        )
    urls: dict[str, str] = {}
    for name in wanted:
        var = f"SOURCES__{name.upper()}__BASE_URL"
        urls[name] = os.environ.get(var) or fleet.get(var) or f"http://127.0.0.1:{ports[name]}"
    return urls


def is_local(urls: dict[str, str]) -> bool:
    """True when every service is configured on loopback (ours to start and stop)."""
    return all((urlsplit(u).hostname or "") in LOOPBACK for u in urls.values())


def unhealthy(urls: dict[str, str], timeout: float = 2.0) -> list[str]:
    """Services whose ``GET /health`` does not answer ``{"status": "ok"}`` as that service (its
    ``service`` field, when it names one: a URL that reaches another service is not healthy)."""
    import requests  # here, not at the top: `elt export`/`elt dbt` import this module but never probe

    bad = []
    for name, url in urls.items():
        try:
            resp = requests.get(url.rstrip("/") + "/health", timeout=timeout)
            body = resp.json()
            ok = (
                resp.status_code == 200
                and isinstance(body, dict)
                and body.get("status") == "ok"
                and body.get("service", name) == name
            )
        except (requests.RequestException, ValueError):
            ok = False
        if not ok:
            bad.append(name)
    return bad


def fleet_port_base(urls: dict[str, str], fleet_layout: tuple[int, dict[str, int]]) -> int | None:
    """The launcher's port base when the URLs are one fleet's ports (its layout, shifted), else None."""
    layout_base, ports = fleet_layout
    offsets = {name: ports[name] - layout_base for name in urls}
    configured = {name: urlsplit(url).port for name, url in urls.items()}
    first = next(iter(urls))
    if configured[first] is None:
        return None
    base = configured[first] - offsets[first]
    return base if all(configured[n] == base + offsets[n] for n in urls) else None


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


def ensure_up(names: list[str] | None = None, wait_seconds: float = 30.0) -> FleetHandle:
    """Make sure the configured embedded services (among ``names``, when given) answer; on loopback,
    lease the local fleet for this run (``python -m services use``), which starts whatever is down.
    With no embedded source to load there is nothing to manage.

    Raises FleetError when they cannot be brought up, after stopping whatever this run started (also on
    Ctrl-C or SIGTERM while starting).
    """
    urls = base_urls(names)
    if not urls:
        log.info("no embedded source to load: not managing the local fleet")
        return FleetHandle(managed=False, started=False, urls=urls)
    if not is_local(urls):
        log.info("services configured off this machine (%s): not managing them", sorted(set(urls.values())))
        return FleetHandle(managed=False, started=False, urls=urls)
    fleet_layout = layout()
    base = fleet_port_base(urls, fleet_layout)
    if base is None:
        if not unhealthy(urls):
            log.info("services already running (not one fleet's ports): not managing them")
            return FleetHandle(managed=False, started=False, urls=urls)
        raise FleetError(
            "the configured base URLs are on this machine but not one fleet's ports ("
            + ", ".join(f"{n} base+{p - fleet_layout[0]}" for n, p in fleet_layout[1].items() if n in urls)
            + f"): {', '.join(urls.values())}; fix SOURCES__<SERVICE>__BASE_URL "
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
