"""What an HTTP failure message says: the URL it was about, the cause in words, and what to check.

Shared by page requests (``extract.http``) and the OAuth token request (``extract.auth``), so both
word the same failure the same way. Nothing here ever shows a query string (it may carry a secret),
user info, a header or a field value.
"""

from __future__ import annotations

import http.client
import socket
from urllib.parse import urlsplit

import orjson
import requests
import urllib3

from extract.limits import HttpPolicy
from extract.retry import Attempt
from extract.transfer import BodyTooLarge, DeadlineExceeded, Reply


def public_url(url: str) -> str:
    """``scheme://host:port/path`` of ``url``: no query, fragment or user info."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


def error_code(reply: Reply) -> tuple[str | None, str]:
    """The error envelope's code and a short message (never headers) of an error answer."""
    try:
        doc = orjson.loads(reply.body)
        err = doc.get("error") if isinstance(doc, dict) else None
        if isinstance(err, dict):
            return err.get("code"), f"{err.get('code')}: {str(err.get('message'))[:200]}"
    except (orjson.JSONDecodeError, AttributeError):
        pass
    return None, f"HTTP {reply.status} {reply.reason}".rstrip()


def _causes(exc: BaseException) -> list[BaseException]:
    """``exc`` and everything it wraps (urllib3 keeps the socket error in ``reason`` or ``args``)."""
    out: list[BaseException] = []
    stack = [exc]
    while stack:
        e = stack.pop()
        if any(e is seen for seen in out):
            continue
        out.append(e)
        stack.extend(a for a in getattr(e, "args", ()) if isinstance(a, BaseException))
        for attr in ("reason", "__cause__", "__context__"):
            inner = getattr(e, attr, None)
            if isinstance(inner, BaseException):
                stack.append(inner)
    return out


def connection_reason(exc: BaseException) -> str:
    """``ConnectionError (connection refused)``: the exception type and its cause in words."""
    reason = "no answer"
    for cause in _causes(exc):
        if isinstance(cause, ConnectionRefusedError):
            reason = "connection refused"
        elif isinstance(cause, socket.gaierror | urllib3.exceptions.NameResolutionError):
            reason = "host name not resolved"
        elif isinstance(cause, http.client.RemoteDisconnected):
            reason = "closed by the service before it answered"
        elif isinstance(cause, urllib3.exceptions.IncompleteRead | http.client.IncompleteRead):
            reason = "connection dropped in the middle of the body"
        elif isinstance(cause, ConnectionResetError):
            reason = "connection reset by the service"
        else:
            continue
        break
    return f"{type(exc).__name__} ({reason})"


def transport_failure(exc: Exception, policy: HttpPolicy) -> tuple[Attempt, str | int, str]:
    """(outcome, status shown, detail) of an exchange that raised ``exc`` (not a TLS error)."""
    if isinstance(exc, DeadlineExceeded):
        return Attempt("deadline"), "timeout", f"the whole request took longer than {policy.deadline_text()}"
    if isinstance(exc, BodyTooLarge):
        cap = f"{policy.max_response_mib:g} MiB cap ({policy.cap_text()})"
        return Attempt("too_large"), 200, f"response body over the {cap}: {exc}"
    if isinstance(exc, requests.Timeout):
        limits = f"connect {policy.connect_timeout:g}s / read {policy.read_timeout:g}s"
        return Attempt("timeout"), "timeout", f"{type(exc).__name__} ({limits})"
    return Attempt("connection"), "connection error", connection_reason(exc)


def hint(service: str, outcome: Attempt, policy: HttpPolicy, detail: str = "") -> str:
    """What to check after the last failed attempt, naming the knob or setting that governs it."""
    upper = service.upper()
    base = f"[sources.{service}] base_url (SOURCES__{upper}__BASE_URL)"
    kind = outcome.kind
    if kind == "connection":
        return f"check that the {service} service is running at that address and that {base} points at it"
    if kind == "timeout":
        return (
            f"the service sent nothing for read_timeout = {policy.read_timeout:g}s: check that it is "
            "healthy, or raise [sources.extract] read_timeout"
        )
    if kind == "deadline":
        return (
            "the service is stalled or sending very slowly: check it, or raise [sources.extract] "
            "request_deadline"
        )
    if kind == "too_large":
        return (
            f"no page of this API is that large: check what {base} serves, or raise [sources.extract] "
            "max_response_mib (or lower page_size)"
        )
    if kind == "bad_page":
        if detail.startswith("not JSON"):
            return f"check that {base} is the service's API, not a web page, proxy or login page"
        if detail.startswith("error envelope"):
            return (
                "the service reports an error in a 200 answer (the endpoint's error_path): check its "
                "status, then re-run"
            )
        return "the service sent incomplete or malformed bodies on every attempt: check it, then re-run"
    status = outcome.status or 0
    if status in (401, 403):
        return (
            f"check the {service} credentials (SOURCES__{upper}__* in the environment, or "
            f"[sources.{service}] in .dlt/secrets.toml)"
        )
    if status == 404:
        return f"check {base} and the endpoint's path in sources/{service}.yml"
    if status == 429:
        return (
            "rate limited on every attempt: re-run later, or raise [sources.extract] max_attempts / "
            "max_retry_after, or lower parallel_services"
        )
    if status >= 500:
        return (
            f"the {service} service is failing: check its logs and re-run once it is back "
            "(max_attempts and backoff_max ride out longer outages)"
        )
    return f"the service refused the request: check {base} and the endpoint in sources/{service}.yml"
