"""Resolve a service's base URL, credentials and tuning from dlt config, env and run/fleet.env.

Lookup order for each key is dlt's: environment (``SOURCES__ORDERS__CLIENT_ID``), ``.dlt/secrets.toml``,
``.dlt/config.toml``. When a service has no credentials configured, the launcher's ``run/fleet.env``
(``core.settings.run_dir()``) is read, as long as it points at a loopback fleet - so ``make extract``
works right after ``make services`` with whatever port base the fleet got.

A credential still holding a placeholder of ``.dlt/secrets.toml.example`` (the file is copied to
``.dlt/secrets.toml`` to start) is refused here, before any request: sent, it would come back as a
401 that reads like a wrong password, and it would reach the service. The message names the service
and the key to set, never the value.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import tomllib
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import dlt

from core import envfile, settings
from extract.errors import ConfigMissing
from extract.limits import HttpPolicy

log = logging.getLogger("extract.config")

CREDENTIAL_KEYS = {  # the secrets each auth kind of a source file needs (docs/sources.md)
    "none": (),
    "api_key": ("api_key",),
    "bearer": ("token",),
    "basic": ("username", "password"),
    "oauth2": ("client_id", "client_secret"),
}
LOOPBACK = {"127.0.0.1", "localhost", "::1"}  # one host to the same-origin rule (extract.paginators)
SECRETS_EXAMPLE = ".dlt/secrets.toml.example"
_PLACEHOLDER_FORM = re.compile(r"<[^<>]*>")  # the example file's convention: "<orders oauth client secret>"


@dataclass(frozen=True)
class Tuning:
    """Loader knobs under ``[sources.extract]`` (overridable per service under ``[sources.<name>]``)."""

    page_size: int
    lag_seconds: float
    max_pages: int
    progress_every_pages: int
    prefetch_pages: int
    batch_rows: int
    http: HttpPolicy


@dataclass(frozen=True)
class ServiceConfig:
    """Everything a source needs to connect; ``credentials`` values are secrets."""

    name: str
    base_url: str
    credentials: dict[str, str]
    tuning: Tuning
    from_fleet_env: bool = False

    def __repr__(self) -> str:
        return f"ServiceConfig(name={self.name!r}, base_url={self.base_url!r}, credentials=***)"


@functools.cache
def example_placeholders() -> frozenset[str]:
    """Every string value of ``.dlt/secrets.toml.example`` (all placeholders, by its own header)."""
    try:
        doc = tomllib.loads((settings.repo_root() / SECRETS_EXAMPLE).read_text())
    except (OSError, tomllib.TOMLDecodeError):
        return frozenset()
    found: set[str] = set()
    stack: list[Any] = [doc]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            stack.extend(node.values())
        elif isinstance(node, str):
            found.add(node.strip())
    return frozenset(found)


def is_placeholder(value: str) -> bool:
    """True for a value of the example file, or one in its ``<...>`` placeholder form."""
    text = value.strip()
    return text in example_placeholders() or bool(_PLACEHOLDER_FORM.fullmatch(text))


def refuse_placeholders(service: str, creds: dict[str, Any]) -> None:
    """Raise ``ConfigMissing`` naming each credential key that still holds a placeholder (never the value)."""
    keys = [k for k, v in creds.items() if isinstance(v, str) and is_placeholder(v)]
    if not keys:
        return
    upper = service.upper()
    env = ", ".join(f"SOURCES__{upper}__{k.upper()}" for k in keys)
    toml = ", ".join(f"[sources.{service}] {k}" for k in keys)
    raise ConfigMissing(
        f"{service}: {env} ({toml}) still {'holds' if len(keys) == 1 else 'hold'} the placeholder from "
        f"{SECRETS_EXAMPLE}; set the real "
        f"value in the environment or .dlt/secrets.toml, or remove it there to use the local fleet's "
        f"run/fleet.env (make services)"
    )


def _get(service: str, key: str, default: Any) -> Any:
    for path in (f"sources.{service}.{key}", f"sources.extract.{key}"):
        value = dlt.config.get(path)
        if value is not None:
            return type(default)(value) if default is not None else value
    return default


def tuning(service: str) -> Tuning:
    """The knobs for one service (per-service key, then the shared one, then the default)."""
    d = HttpPolicy()
    policy = HttpPolicy(
        connect_timeout=_get(service, "connect_timeout", d.connect_timeout),
        read_timeout=_get(service, "read_timeout", d.read_timeout),
        max_attempts=_get(service, "max_attempts", d.max_attempts),
        backoff_base=_get(service, "backoff_base", d.backoff_base),
        backoff_max=_get(service, "backoff_max", d.backoff_max),
        max_retry_after=_get(service, "max_retry_after", d.max_retry_after),
        max_refreshes=_get(service, "max_refreshes", d.max_refreshes),
        request_deadline=_get(service, "request_deadline", d.request_deadline),
        max_response_mib=_get(service, "max_response_mib", d.max_response_mib),
    )
    return Tuning(
        page_size=_get(service, "page_size", 5000),
        lag_seconds=_get(service, "lag_seconds", 30.0),
        max_pages=_get(service, "max_pages", 100_000),
        progress_every_pages=_get(service, "progress_every_pages", 20),
        prefetch_pages=_get(service, "prefetch_pages", 2),
        batch_rows=_get(service, "batch_rows", 50_000),
        http=policy,
    )


def same_loopback_url(a: str, b: str) -> bool:
    """True when ``a`` and ``b`` are the same URL, up to the loopback name and a trailing slash.

    Why: ``SOURCES__ORDERS__BASE_URL=http://localhost:8003`` names the fleet that ``run/fleet.env``
    calls ``http://127.0.0.1:8003``; without this its credentials were not taken and the run said
    "credentials missing" for a service that was up. Another port or path stays another service."""
    pa, pb = urlsplit(a.rstrip("/")), urlsplit(b.rstrip("/"))
    if pa.hostname not in LOOPBACK or pb.hostname not in LOOPBACK:
        return a.rstrip("/") == b.rstrip("/")
    try:
        return (pa.scheme, pa.port, pa.path) == (pb.scheme, pb.port, pb.path)
    except ValueError:  # a malformed port: not the fleet's URL
        return False


def service_config(service: str, auth: str) -> ServiceConfig:
    """Resolve one service's connection; raise ``ConfigMissing`` naming the keys to set."""
    keys = CREDENTIAL_KEYS[auth]
    base_url = dlt.config.get(f"sources.{service}.base_url")
    creds = {k: dlt.secrets.get(f"sources.{service}.{k}") for k in keys}
    from_fleet = False
    if not all(creds.values()):
        fleet_path = envfile.fleet_env_path()
        fleet = envfile.read_env_file(fleet_path)
        prefix = f"SOURCES__{service.upper()}__"
        fleet_url = fleet.get(prefix + "BASE_URL")
        explicit_url = os.environ.get(prefix + "BASE_URL")
        url = explicit_url or fleet_url or base_url
        if (
            fleet_url
            and urlsplit(url or "").hostname in LOOPBACK
            and (not explicit_url or same_loopback_url(explicit_url, fleet_url))
        ):
            creds = {k: creds.get(k) or fleet.get(prefix + k.upper()) for k in keys}
            base_url = explicit_url or fleet_url
            from_fleet = True
    if not base_url:
        raise ConfigMissing(
            f"{service}: no base URL; set SOURCES__{service.upper()}__BASE_URL or "
            f"[sources.{service}] base_url in .dlt/config.toml"
        )
    missing = [k for k, v in creds.items() if not v]
    if missing:
        names = ", ".join(f"SOURCES__{service.upper()}__{k.upper()}" for k in missing)
        raise ConfigMissing(
            f"{service}: credentials missing ({names}); set them in the environment or "
            f".dlt/secrets.toml, or start the local fleet (make services) to get run/fleet.env"
        )
    refuse_placeholders(service, creds)
    if from_fleet:
        log.info("%s: using %s and credentials from %s", service, base_url, settings.run_dir() / "fleet.env")
    return ServiceConfig(
        service, str(base_url), {k: str(v) for k, v in creds.items()}, tuning(service), from_fleet
    )
